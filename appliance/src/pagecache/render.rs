//! `nodus cache files` output: one line per file like fincore(1), the
//! cachestat-only columns beside, then the totals and any errors.

use std::fmt::Write;

use super::{
    Method, Scan,
    live::{Hits, Row},
    scan::ScanError,
    top::{Top, Users},
};
use crate::cachesim::{Kind, Point};
use crate::terminal::printable;

/// Bytes in IEC units, like fincore's and ls -h's ("0", "4K", "1.5M").
pub fn iec(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 && value.fract() >= 0.05 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

fn count(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The scan as a table.
pub fn table(scan: &Scan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:>9} {:>7} {:>6} {:>6} {:>8} {:>8}  FILE",
        "RES", "PAGES", "SIZE", "DIRTY", "WBACK", "EVICTED", "RECENT"
    );
    let page = scan.page_size;
    for f in &scan.files {
        let r = &f.residency;
        let _ = writeln!(
            out,
            "{:>7} {:>9} {:>7} {:>6} {:>6} {:>8} {:>8}  {}",
            iec(r.cached * page),
            r.cached,
            iec(r.size),
            count(r.dirty),
            count(r.writeback),
            count(r.evicted),
            count(r.recently_evicted),
            printable(&f.path.to_string_lossy()),
        );
    }
    let t = &scan.totals;
    let pct = if t.pages == 0 {
        0.0
    } else {
        100.0 * t.cached as f64 / t.pages as f64
    };
    let method = if scan.all_by(Method::Cachestat) {
        "cachestat"
    } else if scan.all_by(Method::Mincore) {
        "mincore (no dirty/evicted counts)"
    } else {
        "cachestat, mincore where refused"
    };
    let _ = writeln!(
        out,
        "{} files, {} of {} cached ({} of {} pages, {pct:.1}%), {} dirty; page size {}; by {method}",
        t.files,
        iec(t.cached * page),
        iec(t.size),
        t.cached,
        t.pages,
        t.dirty,
        iec(page),
    );
    errors(&mut out, &scan.errors);
    out
}

/// One line per path that could not be measured.
fn errors(out: &mut String, errors: &[ScanError]) {
    for e in errors {
        let _ = writeln!(
            out,
            "error: {}: {}",
            printable(&e.path.to_string_lossy()),
            printable(&e.error)
        );
    }
}

/// Who uses a file, in a few words: "docroot", "3 procs: nginx 812, ...".
fn users(u: &Users) -> String {
    let mut parts = vec![];
    if u.docroot {
        parts.push("docroot".to_owned());
    }
    if u.named {
        parts.push("named".to_owned());
    }
    if u.process_count > 0 {
        let shown: Vec<String> = u
            .processes
            .iter()
            .map(|(pid, comm)| format!("{} {pid}", printable(comm)))
            .collect();
        let more = if u.process_count > shown.len() {
            ", ..."
        } else {
            ""
        };
        let procs = if u.process_count == 1 {
            "proc"
        } else {
            "procs"
        };
        parts.push(format!(
            "{} {procs}: {}{more}",
            u.process_count,
            shown.join(", ")
        ));
    }
    parts.join("; ")
}

/// `nodus cache top` as a table, most cached first.
pub fn top(t: &Top) -> String {
    let mut out = String::new();
    let page = t.page_size;
    let _ = writeln!(
        out,
        "{:>7} {:>9} {:>7}  {:<48} USED BY",
        "RES", "PAGES", "SIZE", "FILE"
    );
    for f in &t.files {
        let _ = writeln!(
            out,
            "{:>7} {:>9} {:>7}  {:<48} {}",
            iec(f.residency.cached * page),
            f.residency.cached,
            iec(f.residency.size),
            printable(&f.path.to_string_lossy()),
            users(&f.users),
        );
    }
    let _ = writeln!(
        out,
        "top {} of {} files in use: {} cached in all; page size {}",
        t.files.len(),
        t.candidates,
        iec(t.cached_total * page),
        iec(page)
    );
    errors(&mut out, &t.errors);
    out
}

fn rows(out: &mut String, title: &str, rows: &[Row], mark: &str) {
    let _ = writeln!(
        out,
        "\n{:>10} {:>10} {:>10} {:>6}  {title}",
        "ACCESSES",
        "MISSES",
        format!("HITS{mark}"),
        format!("HIT%{mark}")
    );
    for r in rows {
        let ratio = r
            .tally
            .hit_ratio_pct
            .map_or_else(|| "-".into(), |p| format!("{p:.1}"));
        let _ = writeln!(
            out,
            "{:>10} {:>10} {:>10} {:>6}  {}",
            r.tally.accesses,
            r.tally.misses,
            r.tally.hits,
            ratio,
            printable(&r.name)
        );
    }
}

/// `nodus cache hits` as three tables (files, processes, cgroups), busiest
/// first; `~` marks estimated columns (tracepoint counting).
pub fn hits(h: &Hits) -> String {
    let mut out = String::new();
    let t = &h.total;
    let mark = if h.hits_exact { "" } else { "~" };
    let _ = writeln!(
        out,
        "{:.1} s: {} pages accessed, {} missed, {} hits{mark} ({}); page size {}",
        h.seconds,
        t.accesses,
        t.misses,
        t.hits,
        t.hit_ratio_pct
            .map_or_else(|| "no accesses".into(), |p| format!("{p:.1}%{mark}")),
        iec(h.page_size)
    );
    if h.hits_exact {
        let _ = writeln!(
            out,
            "counted by fentry: hits are pages a read or fault found cached"
        );
    } else {
        let _ = writeln!(
            out,
            "counted by {}: ~ = estimated (hits = accesses - misses; pages mapped by fault-around and pages a write inserts are not told apart)",
            h.method
        );
    }
    rows(&mut out, "FILE", &h.files, mark);
    rows(&mut out, "PROCESS", &h.processes, mark);
    rows(&mut out, "CGROUP", &h.cgroups, mark);
    out
}

/// A miss-ratio curve as a table: one row per cache size, one column per
/// policy, miss ratios in percent; then the replay speed.
pub fn curve(points: &[Point], requests: usize, unique: usize, weighted: bool) -> String {
    let mut kinds: Vec<Kind> = vec![];
    let mut sizes: Vec<u64> = vec![];
    for p in points {
        if !kinds.contains(&p.policy) {
            kinds.push(p.policy);
        }
        if !sizes.contains(&p.size) {
            sizes.push(p.size);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{requests} requests, {unique} distinct objects; miss ratio (%) by cache size ({})",
        if weighted {
            "the trace's size unit, objects weighted by size"
        } else {
            "objects"
        }
    );
    let _ = write!(out, "{:>10}", "SIZE");
    for k in &kinds {
        let _ = write!(out, " {:>8}", k.name().to_uppercase());
    }
    out.push('\n');
    for s in &sizes {
        let _ = write!(out, "{s:>10}");
        for k in &kinds {
            match points.iter().find(|p| p.policy == *k && p.size == *s) {
                Some(p) => {
                    let _ = write!(out, " {:>8.3}", 100.0 * p.miss_ratio);
                }
                None => {
                    let _ = write!(out, " {:>8}", "-");
                }
            }
        }
        out.push('\n');
    }
    let replayed: u64 = points.iter().map(|p| p.requests).sum();
    let secs: f64 = points
        .iter()
        .filter(|p| p.requests_per_sec > 0.0)
        .map(|p| p.requests as f64 / p.requests_per_sec)
        .sum();
    if secs > 0.0 {
        let _ = writeln!(
            out,
            "replayed {replayed} requests at {:.1} M requests/s per thread",
            replayed as f64 / secs / 1e6
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::iec;

    #[test]
    fn sizes_read_like_fincore() {
        assert_eq!(iec(0), "0");
        assert_eq!(iec(1023), "1023");
        assert_eq!(iec(4096), "4K");
        assert_eq!(iec(1536 * 1024), "1.5M");
        assert_eq!(iec(64 * 1024 * 1024), "64M");
        assert_eq!(iec(10 * 1024 * 1024 + 1), "10M");
    }
}
