//! `make cross` and `make aarch64` prepare the same target libraries: the
//! image Cross.toml names is the one cross/image.sh makes, whose
//! Containerfile runs xtask/cross-pre-build.sh, the script `make setup` runs
//! for `make aarch64`; and cross gets the prebuilt eBPF objects instead of
//! building them.

use std::{fs, path::PathBuf};

fn root() -> PathBuf {
    xtask::ebpf::workspace_root(&PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn the_cross_image_and_make_setup_share_one_pre_build_script() {
    let text = fs::read_to_string(root().join("Cross.toml")).expect("Cross.toml");
    let cross: toml::Table = text.parse().expect("Cross.toml parses");
    let targets = cross["target"].as_table().expect("[target.*]");
    let image_sh = fs::read_to_string(root().join("cross/image.sh")).expect("cross/image.sh");
    let image = image_sh
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE="))
        .expect("IMAGE= in cross/image.sh");
    for triple in ["aarch64-unknown-linux-gnu", "aarch64-unknown-linux-musl"] {
        assert_eq!(
            targets[triple].get("image").and_then(|i| i.as_str()),
            Some(image),
            "{triple} builds in the image cross/image.sh makes"
        );
    }
    let containerfile =
        fs::read_to_string(root().join("cross/Containerfile")).expect("cross/Containerfile");
    assert!(
        containerfile.contains("COPY xtask/cross-pre-build.sh ")
            && containerfile.contains("CROSS_DEB_ARCH=arm64"),
        "the image runs the pre-build script for arm64"
    );
    assert!(root().join("xtask/cross-pre-build.sh").is_file());
    let setup = fs::read_to_string(root().join("xtask/setup.sh")).expect("setup.sh");
    assert!(
        setup.contains("CROSS_DEB_ARCH=arm64") && setup.contains("cross-pre-build.sh"),
        "make setup runs the same script for arm64"
    );
    let env = cross["build"]["env"].as_table().expect("[build.env]");
    for key in ["passthrough", "volumes"] {
        let list = env[key].as_array().expect(key);
        assert!(
            list.iter()
                .any(|v| v.as_str() == Some(xtask::ebpf::PREBUILT_DIR_ENV)),
            "{key} hands the prebuilt eBPF objects to the container"
        );
    }
}

#[test]
fn make_aarch64_builds_the_target_the_docs_name() {
    let make = fs::read_to_string(root().join("Makefile")).expect("Makefile");
    assert!(make.contains("AARCH64_TARGET := aarch64-unknown-linux-musl"));
    let config = fs::read_to_string(root().join(".cargo/config.toml")).expect("config");
    assert!(config.contains("[target.aarch64-unknown-linux-musl]"));
    assert!(config.contains("linker = \"aarch64-linux-gnu-gcc\""));
}
