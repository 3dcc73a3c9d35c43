//! The import graph, checked: every dependency between nodus's top-level
//! modules points down the layers `docs/design.md` lists, and no two modules
//! inside one folder import each other, directly or round a loop.
//!
//! The layer list is read from the design document itself, so the document
//! and the code cannot drift apart: a new module must be placed there
//! before this test passes. Needs no root.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// A module path inside a crate: `["fleet", "component"]`.
type ModPath = Vec<String>;

/// One source file, reduced to what matters here.
struct SourceFile {
    module: ModPath,
    /// Code with comments, string literals and `#[cfg(test)]` modules blanked.
    code: String,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src`, with its module path.
fn read_crate(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                let mut module: ModPath = rel
                    .with_extension("")
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                match module.last().map(String::as_str) {
                    Some("mod" | "lib") => {
                        module.pop();
                    }
                    Some("main") if module.len() == 1 => module = vec!["<binary>".into()],
                    _ => {}
                }
                let text = fs::read_to_string(&path).expect("read source");
                files.push(SourceFile {
                    module,
                    code: strip_test_modules(&blank_comments_and_strings(&text)),
                });
            }
        }
    }
    files
}

/// Replaces comments and the insides of string and char literals by spaces,
/// so that paths are only found in code.
fn blank_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                out.push(b'"');
                i += 2 + hashes;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while i < b.len() && !b[i..].starts_with(&close) {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                out.push(b'"');
                i += close.len();
            }
            b'"' => {
                out.push(b'"');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        out.push(b' ');
                        i += 1;
                    }
                    if i < b.len() {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                }
                out.push(b'"');
                i += 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\''), not a lifetime ('a).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p + usize::from(p == 0))
                } else {
                    let len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
                };
                match end {
                    Some(e) => {
                        out.extend(std::iter::repeat_n(b' ', e + 1 - i));
                        i = e + 1;
                    }
                    None => {
                        out.push(b'\'');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes `#[cfg(test)] mod name { ... }` blocks: test code may reach
/// anything, and `super` inside it names the file, not its parent.
fn strip_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = out.find("#[cfg(test)]") {
        let rest = &out[at + "#[cfg(test)]".len()..];
        let trimmed = rest.trim_start();
        let skip = rest.len() - trimmed.len();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let open = trimmed.find(['{', ';']);
        let end = match (is_mod, open) {
            (true, Some(o)) if trimmed.as_bytes()[o] == b'{' => {
                let mut depth = 0usize;
                let mut close = None;
                for (k, c) in trimmed[o..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = Some(o + k + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                close.expect("balanced braces")
            }
            // `#[cfg(test)] mod tests;` (a file, read on its own) or a
            // test-only item: drop just the attribute.
            _ => 0,
        };
        let start = at;
        let stop = at + "#[cfg(test)]".len() + skip + end;
        out.replace_range(start..stop, "");
    }
    out
}

/// The paths a `use` tree names, braces expanded: `a::{b, c::d}` gives
/// `a::b` and `a::c::d`.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let head = tree.split(" as ").next().unwrap_or(tree);
        return vec![
            head.split("::")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        ];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').expect("balanced use tree")];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        for tail in expand_use(part) {
            let mut p = prefix.clone();
            p.extend(tail.into_iter().filter(|s| s != "self"));
            out.push(p);
        }
    }
    out
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every crate-relative path a file names: its `use` trees and any
/// `crate::`/`super::` path written inline, resolved against its module.
fn referenced_paths(file: &SourceFile) -> Vec<ModPath> {
    let code = &file.code;
    let b = code.as_bytes();
    let mut raw = Vec::new();
    let mut i = 0;
    while let Some(p) = code[i..].find("use ") {
        let at = i + p;
        i = at + 4;
        if at > 0 && is_ident_byte(b[at - 1]) {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        raw.extend(expand_use(&code[at + 4..at + end]));
        i = at + end;
    }
    for root in ["crate::", "super::"] {
        let mut i = 0;
        while let Some(p) = code[i..].find(root) {
            let at = i + p;
            i = at + root.len();
            if at > 0 && (is_ident_byte(b[at - 1]) || b[at - 1] == b':') {
                continue;
            }
            let len = code[at..]
                .bytes()
                .take_while(|&c| is_ident_byte(c) || c == b':')
                .count();
            if b.get(at + len) == Some(&b'{') {
                continue; // the root of a use tree, expanded above
            }
            raw.push(
                code[at..at + len]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    raw.into_iter()
        .filter_map(|p| resolve(&file.module, &p))
        .collect()
}

/// `p` as a path from the crate root, if it starts at `crate`, `super` or `self`.
fn resolve(module: &ModPath, p: &[String]) -> Option<ModPath> {
    let mut base: ModPath = match p.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super" | "self") => module.clone(),
        _ => return None,
    };
    let mut rest = p.iter().peekable();
    if p[0] == "crate" {
        rest.next();
    }
    while let Some(seg) = rest.peek() {
        match seg.as_str() {
            "super" => {
                base.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest.next();
    }
    base.extend(rest.cloned());
    Some(base)
}

/// For each module with children, which child each re-exported name comes
/// from (`pub use component::Fleet;` in `fleet/mod.rs`).
fn reexports(files: &[SourceFile]) -> BTreeMap<(ModPath, String), String> {
    let mut map = BTreeMap::new();
    for f in files {
        let mut i = 0;
        while let Some(p) = f.code[i..].find("pub use ") {
            let at = i + p + "pub use ".len();
            let Some(end) = f.code[at..].find(';') else {
                break;
            };
            for path in expand_use(&f.code[at..at + end]) {
                if let (Some(first), Some(name)) = (path.first(), path.last())
                    && path.len() >= 2
                    && !matches!(first.as_str(), "crate" | "super" | "self")
                {
                    map.insert((f.module.clone(), name.clone()), first.clone());
                }
            }
            i = at + end;
        }
    }
    map
}

/// Edges between sibling modules: `parent -> {(from, to)}`.
fn sibling_edges(files: &[SourceFile]) -> BTreeMap<ModPath, BTreeSet<(String, String)>> {
    let modules: BTreeSet<ModPath> = files.iter().map(|f| f.module.clone()).collect();
    let reexported = reexports(files);
    let mut edges: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
    for f in files {
        for target in referenced_paths(f) {
            // The longest prefix of `target` that is a module, and the item after it.
            let Some(depth) = (0..=target.len())
                .rev()
                .find(|&n| modules.contains(&target[..n]))
            else {
                continue;
            };
            let mut to_module = target[..depth].to_vec();
            if let Some(item) = target.get(depth)
                && let Some(child) = reexported.get(&(to_module.clone(), item.clone()))
            {
                to_module.push(child.clone());
            }
            let common = f
                .module
                .iter()
                .zip(&to_module)
                .take_while(|(a, b)| a == b)
                .count();
            if common >= f.module.len() || common >= to_module.len() {
                continue; // a module and its own descendants or ancestors
            }
            edges
                .entry(f.module[..common].to_vec())
                .or_default()
                .insert((f.module[common].clone(), to_module[common].clone()));
        }
    }
    edges
}

/// A cycle in `edges`, if there is one, as the nodes round it.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(k) = path.iter().position(|&p| p == n) {
            let mut cycle: Vec<String> = path[k..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if !done.insert(n) {
            return None;
        }
        path.push(n);
        for &m in next.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    next.keys()
        .find_map(|n| visit(n, &next, &mut Vec::new(), &mut done))
}

/// The layers `docs/design.md` lists in its `layers` block, top first:
/// module -> rank (0 is the ground floor).
fn documented_layers() -> BTreeMap<String, usize> {
    let doc = manifest_dir().join("../docs/design.md");
    let text = fs::read_to_string(&doc).expect("docs/design.md");
    let start = text
        .find("```layers")
        .expect("docs/design.md has a ```layers block");
    let body = &text[start + "```layers".len()..];
    let body = &body[..body.find("```").expect("the layers block is closed")];
    let rows: Vec<Vec<&str>> = body
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .collect();
    let mut ranks = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let rank = rows.len() - 1 - i;
        for m in row.iter().skip(1) {
            assert!(
                ranks.insert(m.to_string(), rank).is_none(),
                "{m} is listed twice in docs/design.md's layers"
            );
        }
    }
    ranks
}

#[test]
fn every_dependency_between_top_level_modules_points_down() {
    let files = read_crate(&manifest_dir().join("src"));
    let ranks = documented_layers();
    let top: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.module.first().cloned())
        .filter(|m| m != "<binary>")
        .collect();
    let unplaced: Vec<&String> = top.iter().filter(|m| !ranks.contains_key(*m)).collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from the layers in docs/design.md: {unplaced:?}"
    );
    let stale: Vec<&String> = ranks.keys().filter(|m| !top.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "docs/design.md lists layers for modules that do not exist: {stale:?}"
    );
    let mut upward = BTreeSet::new();
    for f in &files {
        let Some(from) = f.module.first() else {
            continue;
        };
        for target in referenced_paths(f) {
            let Some(to) = target.first() else { continue };
            if to == from || !ranks.contains_key(to) || from == "<binary>" {
                continue;
            }
            if ranks[to] >= ranks[from] {
                upward.insert(format!(
                    "{} -> {} ({from} is on layer {}, {to} on layer {})",
                    f.module.join("::"),
                    target.join("::"),
                    ranks[from],
                    ranks[to]
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down the layers of docs/design.md:\n{}",
        upward.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_import_cycle_between_modules_of_one_folder() {
    for (name, src) in [
        ("nodus", manifest_dir().join("src")),
        ("nodus-common", manifest_dir().join("../ebpf/common/src")),
    ] {
        let files = read_crate(&src);
        for (parent, edges) in sibling_edges(&files) {
            if parent.is_empty() {
                continue; // the top level is held to the stricter layer rule
            }
            if let Some(cycle) = find_cycle(&edges) {
                panic!(
                    "{name}: import cycle inside {}: {}",
                    parent.join("::"),
                    cycle.join(" -> ")
                );
            }
        }
    }
}

#[test]
fn the_checks_see_what_they_should() {
    // The scanner must find paths in use trees and inline, and ignore them in
    // comments, strings and test modules; otherwise the tests above pass
    // vacuously.
    let file = SourceFile {
        module: vec!["fleet".into(), "component".into()],
        code: strip_test_modules(&blank_comments_and_strings(
            "use super::{document::{self, Document}, link};\n\
             use crate::{change::Scope, status::StatusSource};\n\
             // use crate::daemon::Nothing;\n\
             const S: &str = \"crate::config::Config\";\n\
             const C: char = '{';\n\
             fn f<'a>(x: &'a str) -> u8 { crate::sync::lock(x); 0 }\n\
             #[cfg(test)]\nmod tests { use crate::daemon::Test; }\n",
        )),
    };
    let paths: BTreeSet<String> = referenced_paths(&file)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    let expected: BTreeSet<String> = [
        "fleet::document",
        "fleet::document::Document",
        "fleet::link",
        "change::Scope",
        "status::StatusSource",
        "sync::lock",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(paths, expected);
    let cyclic: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert!(find_cycle(&cyclic).is_some());
    let acyclic: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("a", "c")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
}
