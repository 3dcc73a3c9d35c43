//! Build orchestration shared by `cargo xtask` and the appliance's build script.
//!
//! Std-only on purpose: firmware builds (Yocto, Buildroot) compile this as a
//! build dependency of the appliance, and must not pull anything they cannot
//! build offline with stable Rust.

pub mod ebpf;
pub mod elf;
pub mod libelf;
