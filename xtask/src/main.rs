//! `cargo xtask`: build steps that are not a plain `cargo build`.

use std::{env, path::PathBuf, process::ExitCode};

use xtask::ebpf;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  build-ebpf [--out DIR]   compile the eBPF objects (default DIR: target/ebpf)
  check-ebpf DIR           check prebuilt eBPF objects against this tree's shared types
  clippy-ebpf              clippy -D warnings on the eBPF crate
  build-libelf TARGET      a static libelf for TARGET's libbpf (target/libelf/TARGET),
                           with $CC_<target> and $AR_<target> (default: Debian's
                           aarch64 musl gcc wrapper and aarch64 ar)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = ebpf::workspace_root(&PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build-ebpf"] => build(&root, root.join("target/ebpf")),
        ["build-ebpf", "--out", dir] => build(&root, PathBuf::from(dir)),
        ["clippy-ebpf"] => {
            ebpf::clippy(&root.join("ebpf/programs"), &root.join("target/ebpf-build"))
        }
        ["build-libelf", target] => build_libelf(&root, target),
        ["check-ebpf", dir] => ebpf::check_objects(&PathBuf::from(dir)).map(|()| {
            println!("{dir}: every object is eBPF and matches this tree's shared types");
        }),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build(root: &std::path::Path, out: PathBuf) -> Result<(), String> {
    ebpf::build(
        &root.join("ebpf/programs"),
        &root.join("target/ebpf-build"),
        &out,
    )?;
    println!("eBPF objects in {}", out.display());
    Ok(())
}

fn build_libelf(root: &std::path::Path, target: &str) -> Result<(), String> {
    let var = |what: &str| env::var(format!("{what}_{}", target.replace('-', "_"))).ok();
    // Debian's musl-dev:arm64 wrapper, and the cross binutils.
    let cc = var("CC").unwrap_or_else(|| "aarch64-linux-musl-gcc".into());
    let ar = var("AR").unwrap_or_else(|| "aarch64-linux-gnu-ar".into());
    let headers = PathBuf::from("/usr/aarch64-linux-gnu/include");
    let out = xtask::libelf::default_out(root, target);
    xtask::libelf::build(root, &cc, &ar, &headers, &out)?;
    println!("libelf for {target} in {}", out.display());
    Ok(())
}
