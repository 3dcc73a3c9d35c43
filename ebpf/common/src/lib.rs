//! Types shared by nodus's eBPF programs and its userspace.
//!
//! Every map key, map value and ring-buffer event crosses the kernel boundary
//! as raw bytes, so both sides must agree on its exact layout. Defining each
//! type once, here, `#[repr(C)]`, is how they agree; [`abi::LAYOUT_FINGERPRINT`]
//! is how a build notices when a prebuilt eBPF object was compiled against a
//! different version of these types.
#![no_std]
#![deny(missing_docs)]

pub mod abi;
pub mod fileserver;
pub mod layout;
pub mod numa;
pub mod objects;
pub mod pagecache;
pub mod probe;
pub mod proccache;
pub mod proxy;
pub mod sched;
