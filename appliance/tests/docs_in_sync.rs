//! What the README shows is what the binary does.

mod common;

#[test]
fn readme_shows_the_current_help() {
    let out = common::nodus()
        .arg("--help")
        .output()
        .expect("nodus --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    assert!(
        readme.contains(help.trim_end()),
        "README.md's `nodus --help` block is stale; paste the current output:\n{help}"
    );
}

#[test]
fn the_annotated_profile_example_passes_profile_check() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/board-profiles.md"
    ))
    .expect("docs/board-profiles.md");
    let start = doc.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let len = doc[start..].find("```").expect("end of the example");
    let dir = common::tempdir();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &doc[start..start + len]).unwrap();
    let out = common::nodus()
        .args(["profile", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the example in docs/board-profiles.md is not a valid profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docs_stats_md_is_what_the_code_declares() {
    let out = common::nodus()
        .args(["status", "--describe", "--markdown"])
        .output()
        .expect("nodus status --describe --markdown");
    assert!(out.status.success());
    let generated = String::from_utf8_lossy(&out.stdout);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/stats.md");
    let doc = std::fs::read_to_string(path).expect("docs/stats.md");
    assert!(
        doc == generated,
        "docs/stats.md disagrees with the stats the code declares; regenerate it with \
         `nodus status --describe --markdown > docs/stats.md`"
    );
}
