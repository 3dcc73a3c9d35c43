//! The firmware packaging against the real build systems.
//!
//! Buildroot: adding the external tree must not break a build that does not
//! enable nodus (it used to stop every Buildroot build at parse time); its
//! defconfig for the QEMU aarch64 board keeps nodus enabled and resolves the
//! prebuilt eBPF objects; Buildroot's check-package finds nothing in it. Yocto: the layer parses in BitBake
//! with OpenEmbedded-Core wrynose, the recipe resolves its source, and its
//! crate list is exactly what OE-Core's `update_crates` logic makes of the
//! committed Cargo.lock files.
//!
//! The source trees are taken from `NODUS_TREES` (a directory holding the
//! release tarballs), else from the build machines' shared copy; without
//! them a test says it was skipped.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const BUILDROOT: &str = "buildroot-2026.02.3.tar.xz";
const OE_CORE: &str = "openembedded-core-wrynose-ef022bf82d.tar.xz";
const BITBAKE: &str = "bitbake-yocto-6.0.2.tar.xz";

/// The tarball `name`, if a trees directory has it.
fn tree_tarball(name: &str) -> Option<PathBuf> {
    std::env::var("NODUS_TREES")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain([
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/trees"),
            PathBuf::from("/work/shared/trees"),
        ])
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// Unpacks `tarball` into `into`.
fn unpack(tarball: &Path, into: &Path) {
    let ok = Command::new("tar")
        .arg("xf")
        .arg(tarball)
        .arg("-C")
        .arg(into)
        .status()
        .expect("tar");
    assert!(ok.success(), "unpacking {}", tarball.display());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
    let Some(tarball) = tree_tarball(BUILDROOT) else {
        eprintln!("SKIPPED: no {BUILDROOT} (set NODUS_TREES)");
        return;
    };
    let dir = common::tempdir();
    unpack(&tarball, dir.path());
    let tree = dir.path().join(BUILDROOT.trim_end_matches(".tar.xz"));
    let external = format!("BR2_EXTERNAL={}", repo().join("buildroot").display());
    let out = format!("O={}", dir.path().join("out").display());
    let (ok, text) = make(&tree, &[&external, &out, "defconfig"]);
    assert!(ok, "defconfig: {text}");
    // Every package's .mk is parsed for any build target; printvars is the
    // cheapest one.
    let (ok, text) = make(&tree, &[&out, "printvars", "VARS=NODUS_VERSION"]);
    assert!(ok, "nodus off: {text}");
    assert!(text.contains("NODUS_VERSION=0.1.0"), "{text}");
    // On: the tree's own defconfig for the QEMU aarch64 board.
    let on = format!("O={}", dir.path().join("on").display());
    let (ok, text) = make(
        &tree,
        &[&external, &on, "nodus_qemu_aarch64_virt_defconfig"],
    );
    assert!(ok, "nodus_qemu_aarch64_virt_defconfig: {text}");
    let config = std::fs::read_to_string(dir.path().join("on/.config")).unwrap();
    assert!(
        config.lines().any(|l| l == "BR2_PACKAGE_NODUS=y"),
        "nodus stayed enabled (its dependencies hold on aarch64)"
    );
    let (ok, text) = make(&tree, &[&on, "printvars", "VARS=NODUS_EBPF_DIR NODUS_SITE"]);
    assert!(ok, "nodus on: {text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("NODUS_EBPF_DIR=") && l.ends_with("/../target/ebpf")),
        "{text}"
    );

    // Buildroot's own style checker, on every file of the tree. Debian's
    // python3 (it has the modules check-package imports), whatever python3
    // comes first in PATH.
    let files: Vec<PathBuf> = ["Config.in", "external.mk", "external.desc"]
        .iter()
        .map(|f| repo().join("buildroot").join(f))
        .chain(
            ["package/nodus", "configs", "board/nodus"]
                .iter()
                .flat_map(|d| std::fs::read_dir(repo().join("buildroot").join(d)).unwrap())
                .map(|e| e.unwrap().path()),
        )
        .collect();
    let checked = Command::new("/usr/bin/python3")
        .arg(tree.join("utils/check-package"))
        .arg("-b")
        .args(&files)
        .current_dir(&tree)
        .output()
        .expect("check-package");
    let text = String::from_utf8_lossy(&checked.stdout).into_owned()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success() && text.contains("0 warnings generated"),
        "check-package:\n{text}"
    );
}

#[test]
fn the_yocto_crate_list_is_what_oe_core_generates() {
    let Some(oe) = tree_tarball(OE_CORE) else {
        eprintln!("SKIPPED: no {OE_CORE} (set NODUS_TREES)");
        return;
    };
    let dir = common::tempdir();
    unpack(&oe, dir.path());
    let generated = dir.path().join("crates.inc");
    let ok = Command::new(repo().join("yocto-layer/update-crates.sh"))
        .arg(dir.path().join("openembedded-core-wrynose"))
        .arg(&generated)
        .status()
        .expect("update-crates.sh");
    assert!(ok.success());
    let committed =
        std::fs::read_to_string(repo().join("yocto-layer/recipes-nodus/nodus/nodus-crates.inc"))
            .unwrap();
    assert!(
        std::fs::read_to_string(&generated).unwrap() == committed,
        "nodus-crates.inc is stale: run `make yocto-crates` and commit it"
    );
}

#[test]
fn the_yocto_layer_parses_in_bitbake_and_the_recipe_resolves() {
    let (Some(oe), Some(bb)) = (tree_tarball(OE_CORE), tree_tarball(BITBAKE)) else {
        eprintln!("SKIPPED: no {OE_CORE} or {BITBAKE} (set NODUS_TREES)");
        return;
    };
    let dir = common::tempdir();
    unpack(&oe, dir.path());
    unpack(&bb, dir.path());
    let build = dir.path().join("build");
    std::fs::create_dir_all(build.join("conf")).unwrap();
    std::fs::write(
        build.join("conf/bblayers.conf"),
        format!(
            "BBPATH = \"${{TOPDIR}}\"\nBBFILES ?= \"\"\nBBLAYERS = \"{} {}\"\n",
            dir.path().join("openembedded-core-wrynose/meta").display(),
            repo().join("yocto-layer").canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    // Tests run as root: BitBake's sanity class refuses that. The
    // uninative tarball's server is not reachable from the build machines;
    // downloads (the crates) are kept across runs under target/.
    let downloads = repo().join("target/yocto-downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(
        build.join("conf/local.conf"),
        format!(
            "MACHINE = \"qemuarm64\"\nINHERIT:remove = \"sanity uninative\"\n\
             CONF_VERSION = \"2\"\nDL_DIR = \"{}\"\n",
            downloads.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let bitbake = |args: &[&str]| {
        let out = Command::new(dir.path().join("bitbake-yocto-6.0.2/bin/bitbake"))
            .args(args)
            .current_dir(&build)
            .env("LANG", "en_US.UTF-8")
            .env("LC_ALL", "en_US.UTF-8")
            .output()
            .expect("bitbake");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bitbake {args:?}:\n{text}");
        text
    };
    let parsed = bitbake(&["-p"]);
    assert!(parsed.contains(" 0 errors"), "{parsed}");
    let env = bitbake(&["-e", "nodus"]);
    let src = env
        .lines()
        .find_map(|l| l.strip_prefix("NODUS_SRC="))
        .expect("NODUS_SRC");
    assert!(
        src.trim_matches('"').ends_with("yocto-layer/.."),
        "NODUS_SRC={src}"
    );
    assert!(
        env.contains("crate://crates.io/aya/"),
        "the crates are in SRC_URI"
    );
    // Fetch and unpack: the committed tree from git, every crate from
    // crates.io with its checksum.
    bitbake(&["-c", "unpack", "nodus"]);
    let sources: Vec<PathBuf> = std::fs::read_dir(build.join("tmp/work"))
        .unwrap()
        .flat_map(|arch| std::fs::read_dir(arch.unwrap().path().join("nodus")).unwrap())
        .map(|v| v.unwrap().path().join("sources"))
        .collect();
    let sources = sources.first().expect("the recipe's work directory");
    assert!(sources.join("nodus/appliance/Cargo.toml").exists());
    assert!(
        !sources.join("nodus/target").exists(),
        "only the committed tree"
    );
    let crates = std::fs::read_dir(sources.join("cargo_home/bitbake")).map_or(0, |d| d.count());
    assert!(crates > 100, "{crates} crates unpacked");
}
