//! The Buildroot external tree against a real Buildroot: adding it must not
//! break a build that does not enable nodus (it used to stop every Buildroot
//! build at parse time), and with nodus enabled it must parse too.
//!
//! The Buildroot source is taken from `NODUS_BUILDROOT_TARBALL`, else the
//! snapshot kept next to the project (`../shared/trees`); without either the
//! test says it was skipped.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const TARBALL: &str = "buildroot-2026.02.3.tar.xz";

fn buildroot_tarball() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NODUS_BUILDROOT_TARBALL") {
        return Some(PathBuf::from(p));
    }
    [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/trees"),
        PathBuf::from("/work/shared/trees"),
    ]
    .into_iter()
    .map(|d| d.join(TARBALL))
    .find(|p| p.exists())
}

/// `make` in the unpacked Buildroot tree with `args`; (success, output).
fn make(tree: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("make")
        .current_dir(tree)
        .args(args)
        .output()
        .expect("make");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_external_tree_parses_with_nodus_off_and_on() {
    let Some(tarball) = buildroot_tarball() else {
        eprintln!("SKIPPED: no {TARBALL} (set NODUS_BUILDROOT_TARBALL)");
        return;
    };
    let dir = common::tempdir();
    let ok = Command::new("tar")
        .arg("xf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar");
    assert!(ok.success());
    let tree = dir.path().join(TARBALL.trim_end_matches(".tar.xz"));
    let external = format!(
        "BR2_EXTERNAL={}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../buildroot")
            .display()
    );
    let out = format!("O={}", dir.path().join("out").display());
    let (ok, text) = make(&tree, &[&external, &out, "defconfig"]);
    assert!(ok, "defconfig: {text}");
    // Every package's .mk is parsed for any build target; printvars is the
    // cheapest one.
    let (ok, text) = make(&tree, &[&out, "printvars", "VARS=NODUS_VERSION"]);
    assert!(ok, "nodus off: {text}");
    assert!(text.contains("NODUS_VERSION=0.1.0"), "{text}");
    let config = dir.path().join("out/.config");
    let mut c = std::fs::read_to_string(&config).unwrap();
    c.push_str("BR2_PACKAGE_NODUS=y\n");
    std::fs::write(&config, c).unwrap();
    let (ok, text) = make(&tree, &[&out, "olddefconfig"]);
    assert!(ok, "olddefconfig: {text}");
    let c = std::fs::read_to_string(&config).unwrap();
    assert!(
        c.lines().any(|l| l == "BR2_PACKAGE_NODUS=y"),
        "nodus stayed enabled (its dependencies hold for the default target)"
    );
    let (ok, text) = make(&tree, &[&out, "printvars", "VARS=NODUS_SITE"]);
    assert!(ok, "nodus on: {text}");
}
