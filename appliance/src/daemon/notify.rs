//! The systemd notification protocol (sd_notify), without libsystemd.
//!
//! A datagram of `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace). Other supervisors
//! (s6, runit with a shim, procd) speak the same protocol.

use std::{
    io,
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    },
    time::Duration,
};

/// Where notifications go, if anywhere.
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honouring `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&us| us > 0)
            .filter(|_| {
                std::env::var("WATCHDOG_PID")
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_none_or(|p| p == std::process::id())
            })
            .map(Duration::from_micros);
        Notifier::new(std::env::var("NOTIFY_SOCKET").ok().as_deref(), watchdog)
    }

    /// To `socket` (if any), expecting keep-alives every `watchdog` (if any).
    pub fn new(socket: Option<&str>, watchdog: Option<Duration>) -> Notifier {
        let socket = socket.and_then(|s| match open(s) {
            Ok(pair) => Some(pair),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={s}: {e}; not notifying the service manager");
                None
            }
        });
        Notifier { socket, watchdog }
    }

    /// The watchdog interval the service manager expects, if it set one.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (e.g. `READY=1\nSTATUS=...`); failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket
            && let Err(e) = sock.send_to_addr(state.as_bytes(), addr)
        {
            log::debug!("sd_notify: {e}");
        }
    }
}

fn open(name: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = match name.strip_prefix('@') {
        Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes())?,
        None => SocketAddr::from_pathname(name)?,
    };
    Ok((UnixDatagram::unbound()?, addr))
}
