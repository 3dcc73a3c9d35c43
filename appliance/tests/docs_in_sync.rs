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
