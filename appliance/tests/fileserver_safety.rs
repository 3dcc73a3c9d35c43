//! Nothing outside the document root is ever served: a traversal corpus sent
//! with curl and raw TCP, symlinks leaving the root, and files edited while
//! being served (never truncated, never stale).

mod common;

use std::{
    fs,
    os::unix::fs::symlink,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::fileserver::FsDaemon;

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// A docroot `www` inside a directory that also holds a secret next to it,
/// plus symlinks pointing inside and outside.
fn layout(outside: &std::path::Path) -> impl FnOnce(&std::path::Path) + '_ {
    move |root| {
        fs::write(outside.join("secret.txt"), SECRET).unwrap();
        fs::write(root.join("index.html"), "home\n").unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/page.html"), "page\n").unwrap();
        symlink(outside.join("secret.txt"), root.join("leak.txt")).unwrap();
        symlink(outside, root.join("leakdir")).unwrap();
        symlink("sub/page.html", root.join("inside.html")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
    }
}

const CORPUS: &[&str] = &[
    "/../secret.txt",
    "/../../../../etc/passwd",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub%2f..%2f..%2fsecret.txt",
    "/./../secret.txt",
    "/leak.txt",
    "/leakdir/secret.txt",
    "/leakdir/",
    "/passwd",
    "/%252e%252e/secret.txt",
    "/..\\secret.txt",
    "/sub/..%5c..%5csecret.txt",
    "/%00../secret.txt",
    "/index.html%00.txt",
    "//etc/passwd",
    "/sub//../../secret.txt",
    "http://x/../secret.txt",
];

#[test]
fn traversal_corpus_never_escapes() {
    require_root!();
    let outside = common::tempdir();
    let d = FsDaemon::start(layout(outside.path()), "");
    for path in CORPUS {
        let url = if path.starts_with("http://") {
            // Absolute form goes through raw TCP below.
            continue;
        } else {
            d.url(path)
        };
        let g = d.curl(&["--path-as-is", &url]);
        let body = String::from_utf8_lossy(&g.body);
        assert!(
            !body.contains(SECRET) && !body.contains("root:"),
            "{path} leaked: {body}"
        );
        assert!(matches!(g.status, 400 | 404), "{path}: {}", g.status);
    }
    for path in CORPUS {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = d.raw(req.as_bytes(), Duration::from_secs(5));
        assert!(
            !got.contains(SECRET) && !got.contains("root:"),
            "{path} leaked: {got}"
        );
        assert!(
            got.starts_with("HTTP/1.1 400 ") || got.starts_with("HTTP/1.1 404 "),
            "{path}: {got}"
        );
    }
    // Symlinks that stay inside work.
    let g = d.get("/inside.html", &[]);
    assert_eq!((g.status, g.body.as_slice()), (200, &b"page\n"[..]));
    assert_eq!(d.get("/", &[]).status, 200);
}

#[test]
fn symlinks_outside_only_when_allowed() {
    require_root!();
    let outside = common::tempdir();
    let d = FsDaemon::start(layout(outside.path()), "symlinks_outside = true");
    let g = d.get("/leak.txt", &[]);
    assert_eq!(
        (g.status, String::from_utf8_lossy(&g.body).as_ref()),
        (200, SECRET)
    );
    // `..` is still refused lexically.
    assert_eq!(
        d.curl(&["--path-as-is", &d.url("/../secret.txt")]).status,
        400
    );
}

#[test]
fn edited_file_is_never_stale() {
    require_root!();
    let d = FsDaemon::start(
        |r| fs::write(r.join("f.txt"), "version one, long text\n").unwrap(),
        "",
    );
    for _ in 0..3 {
        assert_eq!(d.get("/f.txt", &[]).body, b"version one, long text\n");
    }
    // In place, shorter: the next request sees exactly the new content.
    fs::write(d.file("f.txt"), "v2\n").unwrap();
    common::wait_for("the edit to be seen", Duration::from_secs(2), || {
        (d.get("/f.txt", &[]).body == b"v2\n").then_some(())
    });
    // Replaced by rename (what editors and deploy tools do).
    fs::write(d.file("f.tmp"), "version three\n").unwrap();
    fs::rename(d.file("f.tmp"), d.file("f.txt")).unwrap();
    let g = d.get("/f.txt", &[]);
    assert_eq!(g.body, b"version three\n");
    assert_eq!(g.header("content-length").as_deref(), Some("14"));
    fs::remove_file(d.file("f.txt")).unwrap();
    assert_eq!(d.get("/f.txt", &[]).status, 404);
    assert!(d.status()["stats"]["cache_invalidations"].as_u64().unwrap() >= 2);
}

#[test]
fn file_replaced_while_being_served_is_never_mixed_or_truncated() {
    require_root!();
    let a: Vec<u8> = vec![b'a'; 300_000];
    let b: Vec<u8> = vec![b'b'; 120_000];
    let d = FsDaemon::start(
        |r| fs::write(r.join("f.bin"), vec![b'a'; 300_000]).unwrap(),
        "",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, dir) = (stop.clone(), d.root.path().to_owned());
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tmp = dir.join(format!("f.{i}.tmp"));
                fs::write(&tmp, if i.is_multiple_of(2) { &b } else { &a }).unwrap();
                fs::rename(&tmp, dir.join("f.bin")).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let mut seen = (0, 0);
    for _ in 0..60 {
        let g = d.get("/f.bin", &[]);
        assert_eq!(g.status, 200);
        let len: usize = g.header("content-length").unwrap().parse().unwrap();
        assert_eq!(len, g.body.len(), "truncated response");
        if g.body == a {
            seen.0 += 1;
        } else if g.body == b {
            seen.1 += 1;
        } else {
            panic!(
                "served a body that is neither version ({} bytes)",
                g.body.len()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(seen.0 > 0 && seen.1 > 0, "both versions served: {seen:?}");
}

/// This process's open-file limit as "soft:hard", from /proc.
fn nofile(pid: i32) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    format!("{}:{}", f[3], f[4])
}

fn prlimit(pid: i32, nofile: &str) {
    let ok = std::process::Command::new(common::tool("prlimit"))
        .args(["--pid", &pid.to_string(), &format!("--nofile={nofile}")])
        .status()
        .expect("prlimit");
    assert!(ok.success());
}

/// Out of file descriptors (a lowered limit, a leak elsewhere): a new
/// connection is answered 503 at once instead of hanging in the backlog
/// until the client gives up, the warning is not repeated per accept, and
/// serving resumes once descriptors free up.
#[test]
fn out_of_file_descriptors_answers_503_and_recovers() {
    require_root!();
    let d = FsDaemon::start(
        |r| fs::write(r.join("index.html"), "hi\n").unwrap(),
        // The page-cache and NUMA components load their programs after
        // READY, taking descriptors while the steady count below is taken
        // (and freeing some after): not under test.
        "workers = 1\npin_workers = false\nmax_connections = 100\nopen_files = 16\nheader_timeout_ms = 30000\n[pagecache]\nenabled = false\n[numa]\nenabled = false",
    );
    assert_eq!(d.get("/", &[]).status, 200);
    let pid = d.daemon.pid();
    let before = nofile(pid);
    let hard = before.split(':').nth(1).unwrap().to_owned();
    // The steady count: other tests' processes make the process cache open
    // /proc files for a moment now and then.
    let open = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(40));
            fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
        })
        .min()
        .unwrap();
    prlimit(pid, &format!("{}:{hard}", open + 3));
    // Idle connections take the last descriptors.
    let held: Vec<_> = (0..16)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let g = d.curl(&["--max-time", "5", &d.url("/")]);
    assert_eq!(g.status, 503, "{g:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    prlimit(pid, &before);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.get("/", &[]).status, 200, "serving again");
    let fs = common::daemon::component(&d.daemon.status_json(), "fileserver");
    assert!(
        fs["stats"]["accept_fd_exhausted"].as_u64().unwrap() > 0,
        "{fs}"
    );
    let warnings = d
        .daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("accept:"))
        .count();
    assert!(warnings <= 2, "{warnings} accept warnings");
}
