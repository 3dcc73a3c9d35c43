//! Puts the eBPF objects the binary embeds into `OUT_DIR`.
//!
//! - `NODUS_EBPF_DIR=<dir>` (firmware builds, `make`): take prebuilt objects
//!   from `<dir>`, after checking each is eBPF and matches this tree's shared
//!   types. Needs neither nightly Rust nor bpf-linker.
//! - otherwise (a developer's `cargo build`): compile `ebpf/programs` with the
//!   pinned nightly and bpf-linker, as `make setup` installs them.

use std::{env, fs, path::PathBuf};

use xtask::ebpf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?);
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR not set")?);
    println!("cargo::rerun-if-env-changed={}", ebpf::PREBUILT_DIR_ENV);
    let objects = out_dir.join("ebpf");
    match env::var_os(ebpf::PREBUILT_DIR_ENV) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            ebpf::check_objects(&dir)
                .map_err(|e| format!("{}={}: {e}", ebpf::PREBUILT_DIR_ENV, dir.display()))?;
            fs::create_dir_all(&objects).map_err(|e| e.to_string())?;
            for object in nodus_common::objects::ALL {
                let from = dir.join(object.name);
                println!("cargo::rerun-if-changed={}", from.display());
                ebpf::copy_if_changed(&from, &objects.join(object.name))?;
            }
        }
        None => {
            let root = ebpf::workspace_root(&manifest_dir);
            println!(
                "cargo::rerun-if-changed={}",
                root.join("ebpf/programs").display()
            );
            println!(
                "cargo::rerun-if-changed={}",
                root.join("ebpf/common").display()
            );
            ebpf::build(
                &root.join("ebpf/programs"),
                &out_dir.join("ebpf-target"),
                &objects,
            )?;
        }
    }
    embed(&out_dir)
}

/// Writes `embedded.rs`: every object of `nodus_common::objects::ALL`,
/// included aligned, so the list of objects is written down once.
fn embed(out_dir: &std::path::Path) -> Result<(), String> {
    let mut code = String::from(
        "/// Every embedded object's bytes, by name, in `objects::ALL` order.\n\
         static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for object in nodus_common::objects::ALL {
        code.push_str(&format!(
            "    ({name:?}, aya::include_bytes_aligned!(concat!(env!(\"OUT_DIR\"), \"/ebpf/{name}\"))),\n",
            name = object.name
        ));
    }
    code.push_str("];\n");
    let path = out_dir.join("embedded.rs");
    fs::write(&path, code).map_err(|e| format!("{}: {e}", path.display()))
}
