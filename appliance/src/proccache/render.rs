//! `nodus ps` output: a table like ps(1), optionally as a tree.

use std::collections::{BTreeMap, HashSet};

use super::{Process, PsReport};
use crate::terminal::printable;

/// How a process is doing, in a few characters.
fn state(p: &Process) -> String {
    match &p.exit {
        None => "live".into(),
        Some(x) if !x.observed => "gone ?".into(),
        Some(x) => match (x.code, x.signal) {
            (Some(code), _) => format!("exit {code}"),
            (_, Some(sig)) if x.core_dumped => format!("sig {sig} core"),
            (_, Some(sig)) => format!("sig {sig}"),
            _ => "exited".into(),
        },
    }
}

/// Age of a live process, or how long an exited one lived.
fn time(p: &Process, now_ns: u64) -> String {
    let end = p.exit.as_ref().map_or(now_ns, |x| x.time_ns);
    let ns = end.saturating_sub(p.start_ns);
    let us = ns / 1000;
    match us {
        0..1000 => format!("{us}us"),
        1000..1_000_000 => format!("{}ms", us / 1000),
        _ => {
            let s = us / 1_000_000;
            match s {
                0..60 => format!("{s}s"),
                60..3600 => format!("{}m{:02}s", s / 60, s % 60),
                _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
            }
        }
    }
}

/// Longest command line shown in the table (like ps without -ww); `--json`
/// has every byte.
const COMMAND_CHARS: usize = 200;

/// The command line as shown: any process can put terminal escapes in its
/// argv, so they are shown escaped, never sent to the terminal.
fn command(p: &Process) -> String {
    if p.argv.is_empty() {
        return format!("[{}]", printable(&p.comm));
    }
    let joined = p.argv.join(" ");
    let mut c: String = joined.chars().take(COMMAND_CHARS).collect();
    let cut = p.argv_truncated || c.len() < joined.len();
    c = printable(&c).into_owned();
    if cut {
        c.push_str(" ...");
    }
    c
}

fn row(p: &Process, indent: usize, now_ns: u64) -> String {
    let branch = if indent == 0 {
        String::new()
    } else {
        format!("{}\\_ ", "  ".repeat(indent - 1))
    };
    format!(
        "{:>7} {:>7} {:>6} {:<11} {:>7}  {branch}{}\n",
        p.pid,
        p.ppid,
        p.uid,
        state(p),
        time(p, now_ns),
        command(p)
    )
}

/// Renders a report; `now_ns` is the current time since boot.
pub fn render(report: &PsReport, tree: bool, now_ns: u64) -> String {
    let mut out = format!(
        "{:>7} {:>7} {:>6} {:<11} {:>7}  COMMAND\n",
        "PID", "PPID", "UID", "STATE", "TIME"
    );
    if tree {
        render_tree(&report.processes, now_ns, &mut out);
    } else {
        for p in &report.processes {
            out.push_str(&row(p, 0, now_ns));
        }
    }
    out.push_str(&format!(
        "{} shown; cache holds {} live and {} exited of {}\n",
        report.processes.len(),
        report.live,
        report.exited,
        report.capacity
    ));
    out
}

/// Children under their parent. Roots are processes whose parent is not
/// listed; exited processes hang under their parent too.
fn render_tree(processes: &[Process], now_ns: u64, out: &mut String) {
    let live: HashSet<u32> = processes
        .iter()
        .filter(|p| p.exit.is_none())
        .map(|p| p.pid)
        .collect();
    let mut children: BTreeMap<u32, Vec<&Process>> = BTreeMap::new();
    let mut roots = Vec::new();
    for p in processes {
        if p.ppid != p.pid && live.contains(&p.ppid) {
            children.entry(p.ppid).or_default().push(p);
        } else {
            roots.push(p);
        }
    }
    // Depth-first, with an explicit stack: a process tree can be deep.
    let mut stack: Vec<(&Process, usize)> = roots.into_iter().rev().map(|p| (p, 0)).collect();
    while let Some((p, depth)) = stack.pop() {
        out.push_str(&row(p, depth, now_ns));
        if p.exit.is_none()
            && let Some(kids) = children.remove(&p.pid)
        {
            stack.extend(kids.into_iter().rev().map(|k| (k, depth + 1)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proccache::{Exit, Origin};

    fn p(pid: u32, ppid: u32, argv: &[&str]) -> Process {
        Process {
            pid,
            ppid,
            start_ns: 1_000_000_000,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            comm: "c".into(),
            filename: String::new(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            argv_truncated: false,
            exec_ns: None,
            exit: None,
            origin: Origin::Events,
        }
    }

    #[test]
    fn terminal_escapes_in_argv_are_shown_not_sent() {
        let mut hostile = p(40, 1, &["sh", "-c", "\x1b]0;owned\x07\x1b[2J"]);
        hostile.comm = "x\x1b[31m".into();
        let mut no_argv = hostile.clone();
        no_argv.argv.clear();
        let report = PsReport {
            processes: vec![hostile, no_argv],
            live: 2,
            exited: 0,
            capacity: 10,
        };
        for tree in [false, true] {
            let out = render(&report, tree, 2_000_000_000);
            assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
            assert!(out.contains("\\x1b]0;owned\\x07\\x1b[2J"), "{out}");
            assert!(out.contains("[x\\x1b[31m]"), "{out}");
        }
    }

    #[test]
    fn renders_exit_states_and_a_tree() {
        let mut done = p(30, 20, &["false"]);
        done.exit = Some(Exit::from_wait_status(1_000_400_000, 1 << 8));
        let mut killed = p(31, 20, &["sleep", "9"]);
        killed.exit = Some(Exit::from_wait_status(3_000_000_000, 9));
        let report = PsReport {
            processes: vec![
                p(1, 0, &["init"]),
                p(20, 1, &["sh"]),
                done,
                killed,
                p(40, 1, &[]),
            ],
            live: 3,
            exited: 2,
            capacity: 16,
        };
        let text = render(&report, true, 5_000_000_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("  init"), "{text}");
        assert!(lines[2].ends_with("\\_ sh"), "{text}");
        assert!(
            lines[3].contains("exit 1")
                && lines[3].contains("400us")
                && lines[3].ends_with("  \\_ false"),
            "{text}"
        );
        assert!(
            lines[4].contains("sig 9") && lines[4].contains("2s"),
            "{text}"
        );
        assert!(lines[5].ends_with("\\_ [c]"), "{text}");
        assert!(lines[6].starts_with("5 shown"), "{text}");
    }

    #[test]
    fn long_command_lines_are_cut_in_the_table() {
        let long = "x".repeat(500);
        let text = render(
            &PsReport {
                processes: vec![p(7, 1, &["prog", &long])],
                live: 1,
                exited: 0,
                capacity: 16,
            },
            false,
            0,
        );
        let row = text.lines().nth(1).unwrap_or_default();
        assert!(row.ends_with("x ..."), "{row}");
        assert!(row.len() < 300, "{row}");
    }
}
