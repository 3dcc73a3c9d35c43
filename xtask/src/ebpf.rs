//! Compiling the eBPF objects and checking prebuilt ones.
//!
//! Two ways produce the objects the appliance embeds:
//! - [`build`]: compile `ebpf/programs` with the pinned nightly (read from
//!   `ebpf/programs/rust-toolchain.toml` by rustup) and bpf-linker, and the
//!   C objects (the sched_ext scheduler, which libbpf loads) with clang
//!   against a `vmlinux.h` and libbpf's BPF headers ([`build_c`]);
//! - a directory of objects built elsewhere (firmware builds have neither),
//!   accepted only after [`check_objects`] confirms every object is eBPF and
//!   carries this tree's shared-types fingerprint.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use nodus_common::{
    abi,
    objects::{self, Object},
};

use crate::elf;

/// The eBPF target triple; BPF bytecode is the same for every host architecture.
pub const TARGET: &str = "bpfel-unknown-none";

/// Environment variable naming a directory of prebuilt eBPF objects.
pub const PREBUILT_DIR_ENV: &str = "NODUS_EBPF_DIR";

/// `cargo <args> --target bpfel-unknown-none -Z build-std=core` in
/// `programs_dir`, with the pinned nightly and without the environment an
/// enclosing cargo (a build script) would leak into it.
fn nightly_cargo(programs_dir: &Path, target_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(programs_dir)
        .args(args)
        .args(["--release", "--bins", "--target", TARGET])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        // BTF for maps and programs, as aya expects.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    // An enclosing cargo (build script) exports its own toolchain and flags;
    // drop them so rustup picks ebpf/programs/rust-toolchain.toml.
    for key in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO",
    ] {
        cmd.env_remove(key);
    }
    for (key, _) in env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO_CFG_")
            || key.to_string_lossy().starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Lints the eBPF crate with clippy (`-D warnings`), as `make lint` does for
/// the host crates.
pub fn clippy(programs_dir: &Path, target_dir: &Path) -> Result<(), String> {
    let status = nightly_cargo(programs_dir, target_dir, &["clippy"])
        .args(["--", "-D", "warnings"])
        .status()
        .map_err(|e| format!("cannot run cargo clippy for the eBPF crate: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "clippy found problems in the eBPF crate ({status})"
        ))
    }
}

/// Compiles every program binary of the crate at `programs_dir` and copies the
/// objects listed in [`objects::ALL`] into `out_dir`.
pub fn build(programs_dir: &Path, target_dir: &Path, out_dir: &Path) -> Result<(), String> {
    let status = nightly_cargo(programs_dir, target_dir, &["build"])
        .status()
        .map_err(|e| format!("cannot run cargo for the eBPF build: {e} (run `make setup`)"))?;
    if !status.success() {
        return Err(format!(
            "eBPF build failed ({status}); it needs the nightly toolchain and bpf-linker from `make setup`"
        ));
    }
    fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let built = target_dir.join(TARGET).join("release");
    let root = workspace_root(programs_dir);
    for object in objects::ALL {
        match object.c_source {
            None => copy_if_changed(&built.join(object.name), &out_dir.join(object.name))?,
            Some(source) => build_c(&root, &root.join(source), target_dir, out_dir, object)?,
        }
    }
    check_objects(out_dir)
}

/// Environment variable naming the clang to compile C eBPF with.
pub const CLANG_ENV: &str = "NODUS_CLANG";
/// Environment variable naming the directory holding `vmlinux.h`.
pub const VMLINUX_ENV: &str = "NODUS_VMLINUX_DIR";

/// Compiles one C object with clang (`NODUS_CLANG`, default `clang-22`)
/// against the `vmlinux.h` in `NODUS_VMLINUX_DIR` (default
/// `target/bpf-include`, which `make setup` fills from the board kernel's
/// `linux-bpf-dev`) and libbpf's BPF headers (from the libbpf-sys crate
/// the appliance links). The shared types' sizes and offsets go in as
/// `sched_layout.h`, the fingerprint as a macro.
pub fn build_c(
    root: &Path,
    source: &Path,
    target_dir: &Path,
    out_dir: &Path,
    object: &Object,
) -> Result<(), String> {
    let clang = env::var(CLANG_ENV).unwrap_or_else(|_| "clang-22".into());
    let vmlinux = env::var_os(VMLINUX_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bpf-include"));
    if !vmlinux.join("vmlinux.h").is_file() {
        return Err(format!(
            "{}: no vmlinux.h (run `make setup`, or set {VMLINUX_ENV})",
            vmlinux.display()
        ));
    }
    let libbpf = libbpf_headers(root)?;
    let generated = target_dir.join("c-include");
    fs::create_dir_all(&generated).map_err(|e| format!("{}: {e}", generated.display()))?;
    let mut layout = String::from(
        "/* Written by cargo xtask build-ebpf from nodus_common. */
",
    );
    layout.push_str(&format!(
        "#define NODUS_LAYOUT_FINGERPRINT 0x{:016x}ULL\n",
        abi::LAYOUT_FINGERPRINT
    ));
    for (name, value) in nodus_common::sched::C_LAYOUT {
        layout.push_str(&format!("#define {name} {value}\n"));
    }
    fs::write(generated.join("sched_layout.h"), layout)
        .map_err(|e| format!("{}: {e}", generated.display()))?;
    let built = target_dir.join(format!("{}.o", object.name));
    let status = Command::new(&clang)
        .args(["--target=bpfel", "-g", "-O2", "-D__TARGET_ARCH_arm64"])
        .args(["-Wall", "-Werror", "-Wno-missing-declarations"])
        .arg("-I")
        .arg(&generated)
        .arg("-I")
        .arg(&vmlinux)
        .arg("-I")
        .arg(&libbpf)
        .arg("-I")
        .arg(source.parent().unwrap_or(root))
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(&built)
        .status()
        .map_err(|e| format!("cannot run {clang}: {e} (run `make setup`, or set {CLANG_ENV})"))?;
    if !status.success() {
        return Err(format!("{}: clang failed ({status})", source.display()));
    }
    // DWARF out, BTF kept (libbpf needs it): 1 MB becomes about 115 KB of
    // the firmware binary.
    let strip = clang.replacen("clang", "llvm-strip", 1);
    let status = Command::new(&strip)
        .arg("-g")
        .arg(&built)
        .status()
        .map_err(|e| format!("cannot run {strip}: {e} (run `make setup`)"))?;
    if !status.success() {
        return Err(format!("{}: {strip} failed ({status})", built.display()));
    }
    copy_if_changed(&built, &out_dir.join(object.name))
}

/// The directory with libbpf's `bpf_helpers.h`: the libbpf-sys crate's
/// copy of libbpf.
fn libbpf_headers(root: &Path) -> Result<PathBuf, String> {
    crate_source(root, "libbpf-sys", "libbpf/src/bpf_helpers.h").map(|d| d.join("libbpf/src"))
}

/// The source directory of crate `name` at the version Cargo.lock pins, in
/// cargo's registry (fetched first if it is not there yet); `probe` is a
/// file it must hold.
pub fn crate_source(root: &Path, name: &str, probe: &str) -> Result<PathBuf, String> {
    let lock = fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("{}: {e}", root.join("Cargo.lock").display()))?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains(&format!("name = \"{name}\"")))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .ok_or_else(|| format!("Cargo.lock has no {name}"))?;
    let find = || -> Option<PathBuf> {
        let home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        fs::read_dir(home.join("registry/src"))
            .ok()?
            .flatten()
            .map(|d| d.path().join(format!("{name}-{version}")))
            .find(|d| d.join(probe).is_file())
    };
    if let Some(dir) = find() {
        return Ok(dir);
    }
    let _ = Command::new("cargo")
        .args(["fetch", "--locked"])
        .current_dir(root)
        .status();
    find().ok_or_else(|| format!("{name} {version} is not in cargo's registry (cargo fetch)"))
}

/// Copies `from` to `to` unless `to` already has the same bytes, so that an
/// unchanged object keeps its mtime and cargo does not rebuild the appliance.
pub fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let new = fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if fs::read(to).is_ok_and(|old| old == new) {
        return Ok(());
    }
    fs::write(to, new).map_err(|e| format!("{}: {e}", to.display()))
}

/// Checks that `dir` holds every object in [`objects::ALL`], each an eBPF ELF
/// built against the same shared types as this tree, with the programs and
/// maps the list gives it.
pub fn check_objects(dir: &Path) -> Result<(), String> {
    for object in objects::ALL {
        check_object(&dir.join(object.name), object)?;
    }
    Ok(())
}

/// Checks one object against its entry in [`objects::ALL`]; the error names
/// the file and what is wrong with it.
pub fn check_object(path: &Path, object: &Object) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let stamp =
        elf::bpf_section(&bytes, abi::SECTION).map_err(|e| format!("{}: {e}", path.display()))?;
    let want = abi::LAYOUT_FINGERPRINT.to_le_bytes();
    if stamp != want {
        return Err(format!(
            "{}: built against different shared types (layout fingerprint {} , this tree has {:016x}); rebuild the eBPF objects from this source tree",
            path.display(),
            hex(stamp),
            abi::LAYOUT_FINGERPRINT
        ));
    }
    let symbols = elf::symbol_names(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let missing: Vec<&str> = object
        .programs
        .iter()
        .chain(object.maps)
        .filter(|name| !symbols.iter().any(|s| s == *name))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}: lacks {} that nodus_common::objects lists for `{}`; the list and ebpf/programs disagree",
            path.display(),
            missing.join(", "),
            object.name
        ));
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    if b.len() == 8 {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        format!("{:016x}", u64::from_le_bytes(a))
    } else {
        format!("of {} bytes", b.len())
    }
}

/// The workspace root, from a crate directory inside it.
pub fn workspace_root(crate_dir: &Path) -> PathBuf {
    crate_dir
        .ancestors()
        .find(|d| d.join("ebpf/programs/Cargo.toml").is_file())
        .unwrap_or(crate_dir)
        .to_path_buf()
}
