//! The firmware path: a directory of prebuilt eBPF objects is accepted only if
//! every object is there, is eBPF, and was built against this tree's shared
//! types. Uses the objects `make ebpf` produced (`NODUS_EBPF_DIR`).

use std::{
    fs,
    path::{Path, PathBuf},
};

use nodus_common::{
    abi,
    objects::{self, fileserver_tc},
};
use xtask::ebpf::{self, check_objects};

fn built_objects() -> PathBuf {
    let dir = std::env::var_os(ebpf::PREBUILT_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            ebpf::workspace_root(&PathBuf::from(env!("CARGO_MANIFEST_DIR"))).join("target/ebpf")
        });
    assert!(
        dir.join(objects::ALL[0].name).exists(),
        "no eBPF objects in {}: run `make ebpf` (or `make test`)",
        dir.display()
    );
    dir
}

fn copy_of(dir: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for o in objects::ALL {
        fs::copy(dir.join(o.name), tmp.path().join(o.name)).expect("copy object");
    }
    tmp
}

#[test]
fn freshly_built_objects_are_accepted() {
    check_objects(&built_objects()).expect("objects from this tree pass");
}

#[test]
fn an_object_built_against_other_shared_types_is_refused() {
    let tmp = copy_of(&built_objects());
    let victim = tmp.path().join(objects::ALL[0].name);
    let mut bytes = fs::read(&victim).unwrap();
    let stamp = abi::LAYOUT_FINGERPRINT.to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == stamp)
        .expect("fingerprint present in the object");
    bytes[at] ^= 0xff;
    fs::write(&victim, bytes).unwrap();
    let err = check_objects(tmp.path()).unwrap_err();
    assert!(err.contains(&*victim.display().to_string()), "{err}");
    assert!(err.contains("different shared types"), "{err}");
}

#[test]
fn a_host_binary_in_place_of_an_object_is_refused() {
    let tmp = copy_of(&built_objects());
    let victim = tmp.path().join(objects::ALL[1].name);
    fs::copy("/bin/true", &victim).unwrap();
    let err = check_objects(tmp.path()).unwrap_err();
    assert!(err.contains("expected 247 (eBPF)"), "{err}");
}

#[test]
fn a_missing_object_is_named() {
    let tmp = copy_of(&built_objects());
    let victim = tmp.path().join(objects::ALL[2].name);
    fs::remove_file(&victim).unwrap();
    let err = check_objects(tmp.path()).unwrap_err();
    assert!(err.contains(objects::ALL[2].name), "{err}");
}

#[test]
fn an_object_without_the_stamp_is_refused() {
    let tmp = copy_of(&built_objects());
    let victim = tmp.path().join(objects::ALL[0].name);
    let mut bytes = fs::read(&victim).unwrap();
    // Rename the section wherever its name appears: same size, different name.
    let name = abi::SECTION.as_bytes();
    let mut renamed = 0;
    for at in 0..bytes.len() - name.len() {
        if &bytes[at..at + name.len()] == name {
            bytes[at] = b'x';
            renamed += 1;
        }
    }
    assert!(renamed > 0, "section name present");
    fs::write(&victim, bytes).unwrap();
    let err = check_objects(tmp.path()).unwrap_err();
    assert!(err.contains("no `nodus_abi` section"), "{err}");
}

#[test]
fn an_object_without_a_listed_map_is_refused() {
    // The classifier object in the place of the steering one: eBPF, the
    // right fingerprint, but not the maps the list gives the steering object.
    let tmp = copy_of(&built_objects());
    let steering = objects::fileserver_reuseport::OBJECT;
    fs::copy(
        tmp.path().join(fileserver_tc::OBJECT.name),
        tmp.path().join(steering.name),
    )
    .expect("copy");
    let err = check_objects(tmp.path()).unwrap_err();
    assert!(err.contains(steering.name), "{err}");
    assert!(err.contains("FS_SOCKETS"), "{err}");
}
