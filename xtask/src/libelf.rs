//! `cargo xtask build-libelf`: a static libelf for the static musl build.
//!
//! libbpf (the sched_ext scheduler's loader) needs libelf. Debian has no
//! musl libelf, and libbpf-sys's own `vendored-libelf` runs elfutils'
//! autotools configure, which fails on musl (no argp, fts, obstack). libelf
//! itself needs none of those: its sources, listed in elfutils'
//! `libelf/Makefile.am`, compile with a small `config.h`. They come from the
//! elfutils copy inside the libbpf-sys crate the appliance links, so the
//! version is the one libbpf-sys is tested with.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::ebpf::crate_source;

/// What elfutils' configure would have found on musl, and what libelf's
/// sources need from it.
const CONFIG_H: &str = "/* Written by cargo xtask build-libelf (musl). */
#define PACKAGE_NAME \"elfutils\"
#define PACKAGE \"elfutils\"
#define PACKAGE_URL \"\"
#define PACKAGE_BUGREPORT \"\"
#define LOCALEDIR \"/usr/share/locale\"
#define _GNU_SOURCE 1
#define HAVE_DECL_MEMRCHR 1
#define HAVE_DECL_RAWMEMCHR 0
#define HAVE_DECL_POWEROF2 1
#define HAVE_DECL_MEMPCPY 1
#define HAVE_DECL_REALLOCARRAY 1
#define HAVE_ERR_H 1
#define HAVE_VISIBILITY 1
#define HAVE_GCC_STRUCT 1
#define HAVE_FALLTHROUGH 1
#define USE_ZLIB 1
#include <eu-config.h>
";

/// Builds `libelf.a` with `cc` and `ar` into `out`, with its headers in
/// `out/include` and the kernel's UAPI headers libbpf wants (the cross
/// toolchain's) linked in `out/kernel-include`. Does nothing when `out`
/// already has a library built from the same sources.
pub fn build(
    root: &Path,
    cc: &str,
    ar: &str,
    kernel_headers: &Path,
    out: &Path,
) -> Result<(), String> {
    let crate_dir = crate_source(root, "libbpf-sys", "elfutils/libelf/Makefile.am")?;
    let src = crate_dir.join("elfutils");
    let stamp = out.join("source");
    let lib = out.join("libelf.a");
    let marker = format!("{}\n{cc}\n", src.display());
    if lib.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == marker) {
        return Ok(());
    }
    let makefile = fs::read_to_string(src.join("libelf/Makefile.am"))
        .map_err(|e| format!("{}: {e}", src.display()))?;
    let sources = makefile_list(&makefile, "libelf_a_SOURCES")
        .ok_or("elfutils' libelf/Makefile.am has no libelf_a_SOURCES")?;
    let objects = out.join("obj");
    fs::create_dir_all(&objects).map_err(|e| format!("{}: {e}", objects.display()))?;
    fs::write(out.join("config.h"), CONFIG_H).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut built = Vec::new();
    for source in &sources {
        let object = objects.join(source.replace(".c", ".o"));
        let status = Command::new(cc)
            .args(["-O2", "-fPIC", "-mno-outline-atomics", "-w"])
            .arg("-include")
            .arg(out.join("config.h"))
            .arg("-I")
            .arg(out)
            .arg("-I")
            .arg(src.join("libelf"))
            .arg("-I")
            .arg(src.join("lib"))
            .arg("-I")
            .arg(&src)
            .arg("-I")
            .arg(crate_dir.join("zlib"))
            .arg("-c")
            .arg(src.join("libelf").join(source))
            .arg("-o")
            .arg(&object)
            .status()
            .map_err(|e| format!("cannot run {cc}: {e} (make setup installs musl-dev:arm64)"))?;
        if !status.success() {
            return Err(format!("libelf: {cc} failed on {source} ({status})"));
        }
        built.push(object);
    }
    let _ = fs::remove_file(&lib);
    let status = Command::new(ar)
        .arg("rcs")
        .arg(&lib)
        .args(&built)
        .status()
        .map_err(|e| format!("cannot run {ar}: {e}"))?;
    if !status.success() {
        return Err(format!("libelf: {ar} failed ({status})"));
    }
    let include = out.join("include");
    fs::create_dir_all(&include).map_err(|e| format!("{}: {e}", include.display()))?;
    for header in ["libelf.h", "gelf.h", "nlist.h", "elf.h"] {
        fs::copy(src.join("libelf").join(header), include.join(header))
            .map_err(|e| format!("{header}: {e}"))?;
    }
    let kernel = out.join("kernel-include");
    fs::create_dir_all(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    for dir in ["asm", "asm-generic", "linux"] {
        let link = kernel.join(dir);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(kernel_headers.join(dir), &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
    }
    fs::write(&stamp, marker).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(())
}

/// The file names of an automake list (`name = a.c b.c \` continued).
fn makefile_list(text: &str, name: &str) -> Option<Vec<String>> {
    let start = text.find(&format!("{name} ="))?;
    let mut out = Vec::new();
    for line in text[start + name.len() + 2..].lines() {
        let continued = line.trim_end().ends_with('\\');
        out.extend(
            line.trim_end_matches('\\')
                .split_whitespace()
                .filter(|w| w.ends_with(".c"))
                .map(str::to_owned),
        );
        if !continued {
            break;
        }
    }
    Some(out)
}

/// Where `make aarch64` keeps the library for `target`.
pub fn default_out(root: &Path, target: &str) -> PathBuf {
    root.join("target/libelf").join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_automake_list_across_continuations() {
        let text = "x = 1\nlibelf_a_SOURCES = a.c b.c \\\n\t\tc.c \\\n  d.c\nother = e.c\n";
        assert_eq!(
            makefile_list(text, "libelf_a_SOURCES").unwrap(),
            vec!["a.c", "b.c", "c.c", "d.c"]
        );
    }
}
