//! The firmware packaging against the real build systems.
//!
//! Buildroot: adding the external tree must not break a build that does not
//! enable nodus (it used to stop every Buildroot build at parse time); its
//! defconfig for the QEMU aarch64 board keeps nodus enabled; Buildroot's
//! check-package finds nothing in it; in both supported releases the
//! package downloads the source release (`make dist`: the tree and the
//! prebuilt eBPF objects), vendors its crates at the download step, and
//! legal-info collects it. Yocto: the layer parses in BitBake
//! with OpenEmbedded-Core wrynose, the recipe resolves its source, and its
//! crate list is exactly what OE-Core's `update_crates` logic makes of the
//! committed Cargo.lock files. The real builds: Buildroot builds the package
//! for aarch64 (with Debian's cross gcc as its external toolchain), cross-rs
//! builds both aarch64 targets in a local podman image, and each binary runs
//! on the QEMU board.
//!
//! The source trees are taken from `NODUS_TREES` (a directory holding the
//! release tarballs), else from the build machines' shared copy; without
//! them a test says it was skipped.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, MutexGuard},
};

const BUILDROOT: &str = "buildroot-2026.02.3.tar.xz";
/// Both supported Buildroot releases: the LTS (Rust 1.88) and the stable.
const BUILDROOTS: [&str; 2] = [BUILDROOT, "buildroot-2026.05.1.tar.xz"];
/// GNU tar >= 1.35, which Buildroot requires and Debian 12 lacks (built by
/// `make setup`, see xtask/setup.sh).
const HOST_TAR: &str = "/opt/nodus-tools/tar-1.35/bin/tar";
const OE_CORE: &str = "openembedded-core-wrynose-ef022bf82d.tar.xz";
const BITBAKE: &str = "bitbake-yocto-6.0.2.tar.xz";

/// Held by the tests that build or download much: the machine has two
/// cores (a build beside another makes the board's TCG guest slow enough to
/// miss its deadlines) and the Buildroot tests share a download directory.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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

/// Unpacks a source tree's release `tarball` into `into`; the tree's top
/// directory (the tarball's name without `.tar.xz`).
fn unpack_tree(tarball: &Path, into: &Path) -> PathBuf {
    unpack(tarball, into);
    let name = tarball.file_name().unwrap().to_string_lossy();
    into.join(name.trim_end_matches(".tar.xz"))
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
    let tree = unpack_tree(&tarball, dir.path());
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
    let (ok, text) = make(
        &tree,
        &[&on, "printvars", "VARS=NODUS_SOURCE NODUS_CARGO_ENV"],
    );
    assert!(ok, "nodus on: {text}");
    assert!(
        text.contains("NODUS_SOURCE=nodus-0.1.0-src.tar.gz"),
        "{text}"
    );
    assert!(text.contains("/ebpf/prebuilt"), "{text}");

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

/// The prebuilt eBPF objects of this build (what `make ebpf` made).
fn ebpf_objects() -> PathBuf {
    std::env::var("NODUS_EBPF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target/ebpf"))
}

/// Boots the QEMU board with `binary` (and the files under `rootfs`, if
/// any) and runs the named HIL scenarios; panics with the runner's output
/// if any fails.
fn runs_on_the_board(binary: &Path, rootfs: Option<&Path>, scenarios: &str, out: &str) {
    let mut hil = Command::new(repo().join("hil-tests/run.sh"));
    hil.arg("--binary")
        .arg(binary)
        .args(["--only", scenarios, "--out"])
        .arg(repo().join(out));
    if let Some(rootfs) = rootfs {
        hil.arg("--rootfs").arg(rootfs);
    }
    let run = hil.output().expect("hil-tests/run.sh");
    let text =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "{} on the board:\n{text}",
        binary.display()
    );
}

/// What `file -b` says of `path`.
fn file_kind(path: &Path) -> String {
    let out = Command::new("file")
        .arg("-b")
        .arg(path)
        .output()
        .expect("file");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The release tarball `make dist` makes from the committed tree and the
/// eBPF objects of this build; (its directory, the tarball).
fn source_release(into: &Path) -> PathBuf {
    let objects = ebpf_objects();
    let out = Command::new(repo().join("xtask/dist.sh"))
        .arg(&objects)
        .arg(into)
        .output()
        .expect("xtask/dist.sh");
    assert!(
        out.status.success(),
        "dist: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    into.join("nodus-0.1.0-src.tar.gz")
}

/// Rust's server keeps the aarch64 musl rust-std of a release only under
/// its dated directory, where Buildroot does not look; fetch it from there
/// into the download directory, as a download mirror would hold it
/// (Buildroot still checks it against its rust-bin.hash).
fn rust_std_into_dl_dir(tree: &Path, dl: &Path) {
    let mk = std::fs::read_to_string(tree.join("package/rust-bin/rust-bin.mk")).unwrap();
    let version = mk
        .lines()
        .find_map(|l| l.strip_prefix("RUST_BIN_VERSION = "))
        .expect("RUST_BIN_VERSION")
        .trim()
        .to_owned();
    let file = format!("rust-std-{version}-aarch64-unknown-linux-musl.tar.xz");
    let dest = dl.join("rust-bin").join(&file);
    if dest.exists() {
        return;
    }
    let channel = Command::new("curl")
        .args([
            "-sSf",
            &format!("https://static.rust-lang.org/dist/channel-rust-{version}.toml"),
        ])
        .output()
        .expect("curl");
    assert!(channel.status.success(), "channel-rust-{version}.toml");
    let channel = String::from_utf8_lossy(&channel.stdout);
    let date = channel
        .lines()
        .find_map(|l| l.strip_prefix("date = \""))
        .and_then(|d| d.strip_suffix('"'))
        .expect("date in the channel manifest");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let got = Command::new("curl")
        .args(["-sSfL", "-o"])
        .arg(&dest)
        .arg(format!("https://static.rust-lang.org/dist/{date}/{file}"))
        .status()
        .expect("curl");
    assert!(got.success(), "{file} from dist/{date}");
}

/// What `tar tzf` lists.
fn listing(tarball: &Path) -> String {
    let out = Command::new("tar")
        .arg("tzf")
        .arg(tarball)
        .output()
        .expect("tar");
    assert!(out.status.success(), "listing {}", tarball.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package's download step, as a firmware build runs it: Buildroot
/// fetches the release tarball (from a primary site holding what `make
/// dist` made, as a mirror of the release would), vendors every crate into
/// it with its own cargo (the release's Rust) so the build runs offline,
/// and legal-info collects the source and the licence.
#[test]
fn the_buildroot_package_downloads_vendors_and_reports_its_licence() {
    require_root!();
    let _heavy = heavy();
    let trees: Vec<PathBuf> = BUILDROOTS.iter().filter_map(|t| tree_tarball(t)).collect();
    if trees.len() < BUILDROOTS.len() {
        eprintln!("SKIPPED: no {BUILDROOTS:?} (set NODUS_TREES)");
        return;
    }
    assert!(
        Path::new(HOST_TAR).exists(),
        "{HOST_TAR} missing: run make setup"
    );
    let dir = common::tempdir();
    let dist = dir.path().join("dist");
    let release = source_release(&dist);
    let shipped = listing(&release);
    for object in ["proccache", "fileserver_tc", "probe", "SHA256SUMS"] {
        assert!(
            shipped.contains(&format!("nodus-0.1.0/ebpf/prebuilt/{object}\n")),
            "the release ships {object}"
        );
    }
    // Downloads (Buildroot's Rust, the crates) are kept between runs; the
    // nodus tarball never is, it changes with every commit.
    let dl = repo().join("target/buildroot-dl");
    let external = format!("BR2_EXTERNAL={}", repo().join("buildroot").display());
    let tar = format!("TAR={HOST_TAR}");
    for tarball in trees {
        let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
        let root = dir.path().join(name.trim_end_matches(".tar.xz"));
        std::fs::create_dir_all(&root).unwrap();
        let tree = unpack_tree(&tarball, &root);
        let out_dir = root.join("out");
        let out = format!("O={}", out_dir.display());
        let (ok, text) = make(
            &tree,
            &[&external, &out, "nodus_qemu_aarch64_virt_defconfig"],
        );
        assert!(ok, "{name}: defconfig: {text}");
        // As a user before a release: the tarball from `make dist`, whose
        // vendored hash no release has published yet, so hash checks are
        // not forced (they still apply to every other download).
        let mut config = std::fs::read_to_string(out_dir.join(".config"))
            .unwrap()
            .replace(
                "BR2_DOWNLOAD_FORCE_CHECK_HASHES=y",
                "# BR2_DOWNLOAD_FORCE_CHECK_HASHES is not set",
            );
        config.push_str(&format!(
            "BR2_PRIMARY_SITE=\"file://{}\"\nBR2_DL_DIR=\"{}\"\n",
            dist.display(),
            dl.display(),
        ));
        std::fs::write(out_dir.join(".config"), config).unwrap();
        let (ok, text) = make(&tree, &[&out, &tar, "olddefconfig"]);
        assert!(ok, "{name}: olddefconfig: {text}");
        rust_std_into_dl_dir(&tree, &dl);
        let config = std::fs::read_to_string(out_dir.join(".config")).unwrap();
        assert!(
            config.lines().any(|l| l == "BR2_PACKAGE_NODUS=y"),
            "{name}: nodus enabled"
        );

        // Each tree downloads and vendors for itself.
        let _ = std::fs::remove_dir_all(dl.join("nodus"));
        let (ok, text) = make(&tree, &[&out, &tar, "nodus-source"]);
        assert!(ok, "{name}: nodus-source: {text}");
        let vendored = out_dir.join("build/nodus-0.1.0");
        let (ok, text) = make(&tree, &[&out, &tar, "nodus-extract"]);
        assert!(ok, "{name}: nodus-extract: {text}");
        assert!(
            vendored.join("VENDOR/aya/Cargo.toml").exists(),
            "{name}: the crates were vendored at download"
        );
        let cargo_config =
            std::fs::read_to_string(vendored.join(".cargo/config.toml")).unwrap_or_default();
        assert!(
            cargo_config.contains("VENDOR"),
            "{name}: cargo is pointed at the vendored crates: {cargo_config}"
        );

        let (ok, text) = make(&tree, &[&out, &tar, "nodus-legal-info"]);
        assert!(ok, "{name}: nodus-legal-info: {text}");
        let manifest =
            std::fs::read_to_string(out_dir.join("legal-info/manifest.csv")).unwrap_or_default();
        assert!(
            manifest
                .lines()
                .any(|l| l.starts_with("\"nodus\",\"0.1.0\",\"Apache-2.0")),
            "{name}: manifest: {manifest}"
        );
        assert!(
            out_dir
                .join("legal-info/licenses/nodus-0.1.0/LICENSE")
                .exists(),
            "{name}: licence collected"
        );
        assert!(
            out_dir
                .join("legal-info/sources/nodus-0.1.0/nodus-0.1.0-src.tar.gz")
                .exists(),
            "{name}: source collected"
        );
    }
}

/// A real build of the package for aarch64 in the oldest supported
/// Buildroot (its Rust is the project's minimum), as far as this machine
/// allows: no toolchain can be downloaded here, so Debian's cross gcc is
/// the external toolchain (xtask/debian-aarch64-toolchain.sh), and no
/// rootfs image can be made (its host tools' sites do not answer), so the
/// target directory is the artefact. The binary Buildroot installed runs
/// on the QEMU board with the C library Buildroot installed beside it.
#[test]
fn the_buildroot_package_builds_for_aarch64_and_runs_on_the_board() {
    require_root!();
    let Some(tarball) = tree_tarball(BUILDROOT) else {
        eprintln!("SKIPPED: no {BUILDROOT} (set NODUS_TREES)");
        return;
    };
    assert!(
        Path::new(HOST_TAR).exists(),
        "{HOST_TAR} missing: run make setup"
    );
    let _heavy = heavy();
    let dir = common::tempdir();
    let dist = dir.path().join("dist");
    source_release(&dist);
    let toolchain = dir.path().join("toolchain");
    let made = Command::new(repo().join("xtask/debian-aarch64-toolchain.sh"))
        .arg(&toolchain)
        .output()
        .expect("xtask/debian-aarch64-toolchain.sh");
    assert!(
        made.status.success(),
        "toolchain: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let tree = unpack_tree(&tarball, dir.path());
    // The one change to Buildroot: it refuses every compiler configured
    // --with-sysroot=/ (a distribution's), which Debian's cross gcc is.
    let helpers = tree.join("toolchain/helpers.mk");
    let text = std::fs::read_to_string(&helpers).unwrap();
    let refusal = "if test \"$${with_sysroot}\"  = \"/\" ; then";
    assert!(
        text.contains(refusal),
        "Buildroot's distribution-toolchain check moved"
    );
    std::fs::write(&helpers, text.replace(refusal, "if false ; then")).unwrap();

    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dl = repo().join("target/buildroot-dl");
    // Debian 12's cross gcc: GCC 12, Linux 6.1 headers, glibc without RPC, OpenMP, no C++.
    let config = format!(
        "BR2_aarch64=y\n\
         BR2_TOOLCHAIN_EXTERNAL=y\n\
         BR2_TOOLCHAIN_EXTERNAL_CUSTOM=y\n\
         BR2_TOOLCHAIN_EXTERNAL_PREINSTALLED=y\n\
         BR2_TOOLCHAIN_EXTERNAL_PATH=\"{}\"\n\
         BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX=\"aarch64-linux-gnu\"\n\
         BR2_TOOLCHAIN_EXTERNAL_GCC_12=y\n\
         BR2_TOOLCHAIN_EXTERNAL_HEADERS_6_1=y\n\
         BR2_TOOLCHAIN_EXTERNAL_CUSTOM_GLIBC=y\n\
         BR2_TOOLCHAIN_EXTERNAL_OPENMP=y\n\
         # BR2_TOOLCHAIN_EXTERNAL_INET_RPC is not set\n\
         BR2_INIT_NONE=y\n\
         BR2_SYSTEM_BIN_SH_NONE=y\n\
         # BR2_PACKAGE_BUSYBOX is not set\n\
         # BR2_TARGET_ROOTFS_TAR is not set\n\
         BR2_PACKAGE_NODUS=y\n\
         BR2_PRIMARY_SITE=\"file://{}\"\n\
         BR2_DL_DIR=\"{}\"\n",
        toolchain.display(),
        dist.display(),
        dl.display(),
    );
    std::fs::write(out_dir.join(".config"), config).unwrap();
    let external = format!("BR2_EXTERNAL={}", repo().join("buildroot").display());
    let out = format!("O={}", out_dir.display());
    let tar = format!("TAR={HOST_TAR}");
    let (ok, text) = make(&tree, &[&external, &out, &tar, "olddefconfig"]);
    assert!(ok, "olddefconfig: {text}");
    let config = std::fs::read_to_string(out_dir.join(".config")).unwrap();
    assert!(
        config.lines().any(|l| l == "BR2_PACKAGE_NODUS=y"),
        "nodus enabled with the external toolchain"
    );
    let _ = std::fs::remove_dir_all(dl.join("nodus"));
    let (ok, text) = make(&tree, &[&out, &tar, "nodus"]);
    let tail: String = text
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ok, "make nodus:\n{tail}");

    let target = out_dir.join("target");
    let binary = target.join("usr/bin/nodus");
    let kind = file_kind(&binary);
    assert!(kind.contains("ARM aarch64"), "{}: {kind}", binary.display());
    assert!(
        target.join("etc/nodus/nodus.toml").exists(),
        "the default config is installed"
    );
    // The board's initramfs gets the C library from Buildroot's target.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(target.join("lib"))
        .arg(&rootfs)
        .status()
        .expect("cp");
    assert!(copied.success());
    runs_on_the_board(
        &binary,
        Some(&rootfs),
        "10-probe 30-lifecycle",
        "target/hil-buildroot",
    );
}

/// `make cross`'s script: cross-rs in the local podman image builds nodus
/// for aarch64 musl (static, like `make aarch64`) and gnu (dynamic glibc);
/// the static one runs on the QEMU board.
#[test]
fn cross_builds_both_aarch64_targets_and_the_static_one_runs_on_the_board() {
    require_root!();
    for tool in ["cross", "podman", "debootstrap"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} missing: run make setup"
        );
    }
    let _heavy = heavy();
    let built = Command::new(repo().join("cross/build.sh"))
        .env("NODUS_EBPF_DIR", ebpf_objects())
        .output()
        .expect("cross/build.sh");
    let text = String::from_utf8_lossy(&built.stdout).into_owned()
        + &String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "cross/build.sh:\n{text}");
    let musl = repo().join("target/cross/aarch64-unknown-linux-musl/release/nodus");
    let gnu = repo().join("target/cross/aarch64-unknown-linux-gnu/release/nodus");
    let (musl_kind, gnu_kind) = (file_kind(&musl), file_kind(&gnu));
    assert!(
        musl_kind.contains("ARM aarch64") && musl_kind.contains("statically linked"),
        "musl: {musl_kind}"
    );
    assert!(
        gnu_kind.contains("ARM aarch64") && gnu_kind.contains("ld-linux-aarch64.so.1"),
        "gnu: {gnu_kind}"
    );
    runs_on_the_board(&musl, None, "10-probe 30-lifecycle", "target/hil-cross");
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
    assert!(
        sources.join("run-ptest").exists(),
        "the ptest script is fetched with the source"
    );
}

/// The Yocto recipe linter a layer's users run (installed, pinned, by
/// `make setup`). Four rules are off, each for a reason of its own:
/// `homepageping` needs the network to reach the project's home page;
/// `inconspaces` and `notneededspace` flag the form OE-Core's own
/// update_crates writes `nodus-crates.inc` in (a test keeps it identical to
/// that); `srcurifile` does not expand the git fetcher the first SRC_URI
/// item names through `NODUS_GIT_URI`.
#[test]
fn the_yocto_recipe_passes_oelint_adv() {
    let oelint = Path::new("/opt/nodus-tools/oelint/bin/oelint-adv");
    if !oelint.exists() {
        assert!(
            std::env::var_os("NODUS_REQUIRE_ROOT").is_none(),
            "{} missing: run make setup",
            oelint.display()
        );
        eprintln!("SKIPPED: no oelint-adv (make setup installs it)");
        return;
    }
    let out = Command::new(oelint)
        .args(["--quiet", "--release", "wrynose"])
        .args([
            "--suppress",
            "oelint.vars.homepageping",
            "--suppress",
            "oelint.vars.inconspaces",
            "--suppress",
            "oelint.vars.notneededspace",
            "--suppress",
            "oelint.vars.srcurifile",
        ])
        .arg(repo().join("yocto-layer/recipes-nodus/nodus/nodus_git.bb"))
        .arg(repo().join("yocto-layer/recipes-kernel/linux/linux-yocto_%.bbappend.example"))
        .output()
        .expect("oelint-adv");
    let findings =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !findings.contains(":error:") && !findings.contains(":warning:"),
        "oelint-adv:\n{findings}"
    );
    assert!(!findings.contains(":info:"), "oelint-adv:\n{findings}");
}
