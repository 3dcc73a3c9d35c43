//! Lays a [`Snapshot`] out: a header, the nodes with CPU and memory bars,
//! the profile and the scheduler's layers, the processes, and a footer with
//! the keys and anything missing.
//!
//! One `render` serves the live view (into the terminal's frame) and
//! `--once` (into a buffer printed as plain text), so what a script reads
//! is what a person sees.

use ratatui::{
    Frame,
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Row, Table, Widget},
};

use super::Snapshot;
use crate::{
    numa::view::{NodeView, ProcessView},
    supervisor::Health,
    terminal::printable,
};

/// Width of a CPU or memory bar, in cells.
const BAR: usize = 20;

/// The column the process list is sorted on, largest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Resident memory.
    #[default]
    Memory,
    /// CPU share.
    Cpu,
    /// Share of pages away from home (the least local first).
    Remote,
    /// Moves to another node.
    Migrations,
}

impl SortBy {
    /// The next one (the `s` key).
    pub fn next(self) -> SortBy {
        match self {
            SortBy::Memory => SortBy::Cpu,
            SortBy::Cpu => SortBy::Remote,
            SortBy::Remote => SortBy::Migrations,
            SortBy::Migrations => SortBy::Memory,
        }
    }

    /// Its name (`--sort`).
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Memory => "memory",
            SortBy::Cpu => "cpu",
            SortBy::Remote => "remote",
            SortBy::Migrations => "migrations",
        }
    }

    /// The one named `name`.
    pub fn parse(name: &str) -> Option<SortBy> {
        [
            SortBy::Memory,
            SortBy::Cpu,
            SortBy::Remote,
            SortBy::Migrations,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    fn key(self, p: &ProcessView) -> f64 {
        match self {
            SortBy::Memory => p.rss_mib as f64,
            SortBy::Cpu => p.cpu_pct.unwrap_or(0.0),
            SortBy::Remote => p.local_pct().map_or(0.0, |l| 100.0 - l),
            SortBy::Migrations => p.node_migrations as f64,
        }
    }
}

/// Draws into the live terminal's frame; `problem` (the daemon stopped
/// answering) is said in the footer.
pub fn frame(f: &mut Frame<'_>, snapshot: &Snapshot, sort: SortBy, problem: Option<&str>) {
    let area = f.area();
    render(snapshot, sort, problem, area, f.buffer_mut());
}

/// One frame as plain text, `width` columns wide and as tall as it needs
/// (`--once`).
pub fn plain(snapshot: &Snapshot, sort: SortBy, width: u16) -> String {
    let procs = snapshot.numa.as_ref().map_or(0, |n| n.processes.len());
    let height = fixed_height(snapshot) + 1 + procs as u16 + 1;
    let area = Rect::new(0, 0, width.max(40), height);
    let mut buf = Buffer::empty(area);
    render(snapshot, sort, None, area, &mut buf);
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render(snapshot: &Snapshot, sort: SortBy, problem: Option<&str>, area: Rect, buf: &mut Buffer) {
    let header = header(snapshot);
    let nodes = nodes(snapshot);
    let layers = layers(snapshot);
    let [h, n, l, p, foot] = Layout::vertical([
        Constraint::Length(header.len() as u16),
        Constraint::Length(nodes.len() as u16 + 1),
        Constraint::Length(layers.len() as u16 + 1),
        Constraint::Min(2),
        Constraint::Length(1),
    ])
    .areas(area);
    Paragraph::new(header).render(h, buf);
    Paragraph::new(nodes).render(n, buf);
    Paragraph::new(layers).render(l, buf);
    processes(snapshot, sort).render(p, buf);
    Paragraph::new(footer(snapshot, sort, problem)).render(foot, buf);
}

/// Rows above the process list.
fn fixed_height(snapshot: &Snapshot) -> u16 {
    (header(snapshot).len() + nodes(snapshot).len() + 1 + layers(snapshot).len() + 1) as u16
}

fn bold(s: impl Into<String>) -> Span<'static> {
    Span::styled(s.into(), Style::default().add_modifier(Modifier::BOLD))
}

fn header(snapshot: &Snapshot) -> Vec<Line<'static>> {
    let s = &snapshot.status;
    let mut lines = vec![Line::from(vec![
        bold(format!("nodus {}", s.version)),
        Span::raw(format!(
            " pid {}, up {}s, RSS {:.1} MiB, config {}",
            s.pid,
            s.uptime_ms / 1000,
            s.rss_bytes as f64 / (1024.0 * 1024.0),
            printable(&s.config)
        )),
    ])];
    let Some(numa) = &snapshot.numa else {
        lines.push(Line::from(
            "numa: no look yet (the numa component is off, or its first look is pending)",
        ));
        return lines;
    };
    let classes = numa.classes.map_or("classes not seen".into(), |c| {
        format!("latency {}, batch {}, idle {}", c.latency, c.batch, c.idle)
    });
    lines.push(Line::from(format!(
        "balancing: {}; {} processes ({classes}); CPU moves {} ({} across nodes); pages moved {}; look {} us",
        numa.balancing,
        numa.processes_seen,
        numa.task_migrations,
        numa.task_node_migrations,
        numa.pages_moved,
        numa.look_cpu_us
    )));
    lines
}

/// `[||||||        ]`, `pct` filled.
fn bar(pct: f64, color: Color) -> Vec<Span<'static>> {
    let filled = ((pct.clamp(0.0, 100.0) / 100.0) * BAR as f64).round() as usize;
    vec![
        Span::raw("["),
        Span::styled("|".repeat(filled), Style::default().fg(color)),
        Span::raw(" ".repeat(BAR - filled)),
        Span::raw("]"),
    ]
}

fn node_line(n: &NodeView) -> Line<'static> {
    let mut spans = vec![
        bold(format!("node{:<2}", n.id)),
        Span::raw(format!(" cpus {:<6} cpu ", n.cpus)),
    ];
    spans.extend(bar(n.busy_pct.unwrap_or(0.0), Color::Green));
    spans.push(Span::raw(format!(
        " {:>4}  mem ",
        n.busy_pct.map_or("-".into(), |b| format!("{b:.0}%"))
    )));
    let mem_pct = if n.total_mib > 0 {
        n.used_mib as f64 * 100.0 / n.total_mib as f64
    } else {
        0.0
    };
    spans.extend(bar(mem_pct, Color::Cyan));
    spans.push(Span::raw(format!(
        " {}/{} MiB  hit {} miss {}",
        n.used_mib, n.total_mib, n.numa_hit, n.numa_miss
    )));
    Line::from(spans)
}

fn nodes(snapshot: &Snapshot) -> Vec<Line<'static>> {
    snapshot
        .numa
        .as_ref()
        .map(|n| n.nodes.iter().map(node_line).collect())
        .unwrap_or_default()
}

fn layers(snapshot: &Snapshot) -> Vec<Line<'static>> {
    let profile = snapshot
        .stat("profile", "profile")
        .unwrap_or_else(|| "-".into());
    let mut lines = vec![Line::from(vec![
        bold("profile "),
        Span::raw(printable(&profile).into_owned()),
    ])];
    let sched = snapshot
        .status
        .components
        .iter()
        .find(|c| c.name == "sched");
    match (sched, snapshot.stat("sched", "state")) {
        (Some(c), _) if matches!(c.health, Health::Unavailable(_)) => {
            lines.push(Line::from(vec![
                bold("scheduler "),
                Span::raw(printable(&c.health.to_string()).into_owned()),
            ]));
        }
        (Some(_), Some(state)) => {
            lines.push(Line::from(vec![bold("scheduler "), Span::raw(state)]));
            let layers = snapshot.stat("sched", "layers").unwrap_or_default();
            for layer in layers.split("; ").filter(|l| !l.is_empty() && *l != "none") {
                lines.push(Line::from(format!("  {}", printable(layer))));
            }
        }
        _ => lines.push(Line::from(vec![bold("scheduler "), Span::raw("off")])),
    }
    lines
}

fn processes(snapshot: &Snapshot, sort: SortBy) -> Table<'static> {
    let mut procs: Vec<&ProcessView> = snapshot
        .numa
        .as_ref()
        .map(|n| n.processes.iter().collect())
        .unwrap_or_default();
    procs.sort_by(|a, b| sort.key(b).total_cmp(&sort.key(a)).then(a.pid.cmp(&b.pid)));
    let header = Row::new([
        "PID",
        "COMMAND",
        "RSS MiB",
        "PAGES BY NODE",
        "LOCAL",
        "RUNS",
        "HOME",
        "CLASS",
        "CPU%",
        "IPC",
        "MISS/KI",
        "MOVES",
        "XNODE",
        "MOVED",
    ])
    .style(Style::default().add_modifier(Modifier::REVERSED));
    let rows = procs.into_iter().map(|p| {
        let pages = if p.pages_pct.is_empty() {
            "-".to_owned()
        } else {
            p.pages_pct
                .iter()
                .map(|s| format!("n{} {:.0}%", s.node, s.pct))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let home = match (p.home, &p.home_reason) {
            (Some(n), Some(why)) => format!("node{n} ({})", printable(why)),
            (Some(n), None) => format!("node{n}"),
            _ => "-".into(),
        };
        let local = p.local_pct();
        let style = match local {
            Some(l) if p.home.is_some() && l < 90.0 => Style::default().fg(Color::Yellow),
            _ => Style::default(),
        };
        Row::new([
            p.pid.to_string(),
            printable(&p.comm).into_owned(),
            p.rss_mib.to_string(),
            pages,
            local.map_or("-".into(), |l| format!("{l:.0}%")),
            p.runs_on.map_or("-".into(), |n| format!("node{n}")),
            home,
            p.class.clone().unwrap_or_else(|| "-".into()),
            p.cpu_pct.map_or("-".into(), |c| format!("{c:.1}")),
            p.ipc.map_or("-".into(), |v| format!("{v:.2}")),
            p.cache_misses_per_kilo_instruction
                .map_or("-".into(), |v| format!("{v:.1}")),
            p.migrations.to_string(),
            p.node_migrations.to_string(),
            p.pages_moved.to_string(),
        ])
        .style(style)
    });
    Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(15),
            Constraint::Length(7),
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(24),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(header)
}

fn footer(snapshot: &Snapshot, sort: SortBy, problem: Option<&str>) -> Line<'static> {
    let mut spans = vec![Span::raw(format!("q quit  s sort ({})", sort.name()))];
    if let Some(p) = problem {
        spans.push(Span::styled(
            format!("  daemon: {p}"),
            Style::default().fg(Color::Red),
        ));
    }
    for m in snapshot.numa.iter().flat_map(|n| &n.missing) {
        spans.push(Span::styled(
            format!("  {m}"),
            Style::default().fg(Color::Yellow),
        ));
    }
    Line::from(spans)
}
