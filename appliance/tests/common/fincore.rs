//! util-linux `fincore`: the page-cache residency a user would check
//! nodus's figures with.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

/// fincore's cached pages per file.
pub fn cached_pages(files: &[PathBuf]) -> BTreeMap<PathBuf, u64> {
    let out = Command::new("fincore")
        .args(["--json", "--bytes", "--output", "RES,PAGES,SIZE,FILE"])
        .args(files)
        .output()
        .expect("fincore (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["fincore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let num = |k: &str| match &f[k] {
                serde_json::Value::String(s) => s.parse::<u64>().unwrap(),
                other => other.as_u64().unwrap(),
            };
            // RES is in bytes, PAGES in the kernel's pages: both must say
            // the same.
            assert_eq!(
                num("res"),
                num("pages") * nodus::pagecache::residency::page_size(),
                "fincore {f}"
            );
            (PathBuf::from(f["file"].as_str().unwrap()), num("pages"))
        })
        .collect()
}
