//! `nodus top`: a live terminal view of where things run and where their
//! memory is, in the spirit of htop for NUMA.
//!
//! It is a client of the control socket like `nodus status`: each refresh
//! asks the daemon for its status and the numa component's last look
//! (`snapshot`), `draw` lays them out with ratatui (nodes with CPU and
//! memory bars, the profile and the scheduler's layers, the processes with
//! their class, locality and migrations), and this module runs the
//! terminal: the alternate screen in raw mode, keys, resizes, and the
//! terminal given back as it was on every way out. `--once` draws one frame
//! as plain text and `--json` prints the snapshot, for scripts.

pub mod draw;
pub mod snapshot;

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use ratatui::crossterm::{
    event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{Terminal, backend::CrosstermBackend};

pub use draw::SortBy;
pub use snapshot::Snapshot;

/// What `nodus top` was asked for.
#[derive(Clone, Debug)]
pub struct TopOptions {
    /// The daemon's control socket.
    pub socket: PathBuf,
    /// Time between refreshes.
    pub interval: Duration,
    /// The process column sorted on, largest first.
    pub sort: SortBy,
}

/// Why `nodus top` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// The daemon did not answer.
    #[error("{0}")]
    Daemon(String),
    /// The terminal could not be set up or written.
    #[error("terminal: {0}")]
    Terminal(#[source] std::io::Error),
}

/// The terminal's width when stdout is one; else `COLUMNS`, or 160 (a
/// pipe, a script: no columns squeezed).
pub fn width() -> u16 {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        if let Ok((w, _)) = terminal::size() {
            return w;
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(160)
}

/// Prints one frame as plain text, `width` columns wide.
pub fn once(options: &TopOptions, width: u16, out: &mut impl Write) -> Result<(), TopError> {
    let snapshot = Snapshot::fetch(&options.socket).map_err(TopError::Daemon)?;
    let text = draw::plain(&snapshot, options.sort, width);
    out.write_all(text.as_bytes()).map_err(TopError::Terminal)
}

/// Prints the snapshot as JSON.
pub fn json(options: &TopOptions, out: &mut impl Write) -> Result<(), TopError> {
    let snapshot = Snapshot::fetch(&options.socket).map_err(TopError::Daemon)?;
    let text = serde_json::to_string(&snapshot).map_err(|e| TopError::Daemon(e.to_string()))?;
    writeln!(out, "{text}").map_err(TopError::Terminal)
}

/// Runs the live view until `q`, Esc or Ctrl-C. A daemon that stops
/// answering is said on the screen (the last snapshot stays) rather than
/// ending the view: it is often restarting.
pub fn live(options: &TopOptions) -> Result<(), TopError> {
    // The first answer decides whether there is a daemon at all, before
    // the screen is taken.
    let mut snapshot = Snapshot::fetch(&options.socket).map_err(TopError::Daemon)?;
    let _screen = Screen::take()?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(TopError::Terminal)?;
    let mut sort = options.sort;
    let mut problem: Option<String> = None;
    let mut next = Instant::now() + options.interval;
    loop {
        terminal
            .draw(|f| draw::frame(f, &snapshot, sort, problem.as_deref()))
            .map_err(TopError::Terminal)?;
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait).map_err(TopError::Terminal)? {
            match event::read().map_err(TopError::Terminal)? {
                Event::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(());
                    }
                    KeyCode::Char('s') => sort = sort.next(),
                    _ => {}
                },
                // A resize (or anything else) redraws at once.
                _ => {}
            }
            continue;
        }
        next = Instant::now() + options.interval;
        match Snapshot::fetch(&options.socket) {
            Ok(s) => {
                snapshot = s;
                problem = None;
            }
            Err(e) => problem = Some(e),
        }
    }
}

/// The terminal in raw mode on the alternate screen, given back on drop
/// (and by the panic hook, which runs before unwinding reaches the drop).
struct Screen;

impl Screen {
    fn take() -> Result<Screen, TopError> {
        terminal::enable_raw_mode().map_err(TopError::Terminal)?;
        if let Err(e) = execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            ratatui::crossterm::cursor::Hide
        ) {
            let _ = terminal::disable_raw_mode();
            return Err(TopError::Terminal(e));
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            Screen::give_back();
            previous(info);
        }));
        Ok(Screen)
    }

    fn give_back() {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(
            std::io::stdout(),
            LeaveAlternateScreen,
            ratatui::crossterm::cursor::Show
        );
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        Screen::give_back();
    }
}
