//! What the sockhash data path asks the kernel about a TCP socket it
//! relays: its cookie (its key in the maps), how many bytes it has received
//! and sent in all (`TCP_INFO`), how many still wait to be sent
//! (`SIOCOUTQ`), and a way to make TCP signal "data ready" again
//! (`SO_RCVLOWAT`). Neither nix nor socket2 has the last three; they are
//! the only raw socket calls of the proxy, kept here behind typed functions.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use socket2::SockRef;

/// `TCP_ESTABLISHED` in `tcpi_state`.
pub const ESTABLISHED: u8 = 1;
/// `TCP_CLOSE_WAIT` in `tcpi_state`: the peer's FIN came, this side can
/// still send.
pub const CLOSE_WAIT: u8 = 8;
/// `TCP_TIME_WAIT`: both FINs sent and acknowledged.
pub const TIME_WAIT: u8 = 6;
/// `TCP_CLOSE`: closed (reset, or never connected).
pub const CLOSE: u8 = 7;
/// `TCP_LAST_ACK`: the peer's FIN came, then this side's was sent.
pub const LAST_ACK: u8 = 9;
/// `TCP_CLOSING`: both sides' FINs crossed.
pub const CLOSING: u8 = 11;

/// Whether `sock`'s peer has sent its FIN (or the connection is gone),
/// asked of TCP's state rather than learnt from a wakeup.
pub fn fin_came(sock: &impl AsRawFd) -> bool {
    counters(sock).map_or(true, |c| {
        matches!(c.state, CLOSE_WAIT | LAST_ACK | CLOSING | TIME_WAIT | CLOSE)
    })
}

/// The kernel's name of a `tcpi_state` value, for messages.
pub fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "unknown",
    }
}

/// Offsets in `struct tcp_info` (Linux 4.1+ has both; the struct only
/// grows at its end).
const BYTES_ACKED_AT: usize = 120;
const BYTES_RECEIVED_AT: usize = 128;

/// A socket's lifetime byte counts and state, from one `TCP_INFO` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// `tcpi_state` (`ESTABLISHED`, `CLOSE_WAIT`, ...).
    pub state: u8,
    /// Sequence space sent and acknowledged by the peer: every data byte,
    /// plus one for the SYN of a socket that connected and one for a FIN
    /// (so compare differences, not totals).
    pub bytes_acked: u64,
    /// Sequence space received: every data byte, plus one for a FIN.
    pub bytes_received: u64,
}

/// The socket's cookie: unique while the system runs.
pub fn cookie(sock: &impl AsFd) -> io::Result<u64> {
    SockRef::from(sock).cookie()
}

/// Reads `sock`'s `TCP_INFO` counters.
pub fn counters(sock: &impl AsRawFd) -> io::Result<Counters> {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: TCP_INFO writes at most `len` bytes into the buffer and
    // stores the length written; the descriptor is borrowed from a live
    // socket.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let at = |offset: usize| -> io::Result<u64> {
        let bytes = info
            .get(offset..offset + 8)
            .filter(|_| offset + 8 <= len as usize)
            .ok_or_else(|| io::Error::other("the kernel's tcp_info lacks the byte counters"))?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_ne_bytes(word))
    };
    Ok(Counters {
        state: info[0],
        bytes_acked: at(BYTES_ACKED_AT)?,
        bytes_received: at(BYTES_RECEIVED_AT)?,
    })
}

/// Bytes in `sock`'s send queue not yet acknowledged (`SIOCOUTQ`).
pub fn unsent(sock: &impl AsRawFd) -> io::Result<u64> {
    let mut unsent: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) stores one int through the pointer given.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &raw mut unsent) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(unsent).unwrap_or(0))
}

/// Sets `SO_RCVLOWAT`; TCP re-checks its receive queue on the way and
/// signals "data ready" if bytes wait there (`tcp_set_rcvlowat`).
pub fn set_recv_low_water(sock: &impl AsRawFd, bytes: i32) -> io::Result<()> {
    // SAFETY: SO_RCVLOWAT reads one int from the pointer given, whose size
    // is passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const bytes).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::{Shutdown, TcpListener, TcpStream},
        time::{Duration, Instant},
    };

    use super::*;

    fn until(what: &str, mut done: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < end, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The relay's drain depends on these meanings: received counts a FIN
    /// as one, and what acked + unsent gains is every byte written.
    #[test]
    fn counters_count_data_and_the_fin() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut far, _) = listener.accept().unwrap();
        assert_ne!(cookie(&near).unwrap(), cookie(&far).unwrap());
        let before = counters(&near).unwrap().bytes_acked + unsent(&near).unwrap();
        near.write_all(b"request").unwrap();
        until("7 bytes received", || {
            counters(&far).unwrap().bytes_received == 7
        });
        assert_eq!(counters(&far).unwrap().state, ESTABLISHED);
        assert!(!fin_came(&far) && !fin_came(&near));
        until("written = acked + unsent", || {
            counters(&near).unwrap().bytes_acked + unsent(&near).unwrap() == before + 7
        });
        near.shutdown(Shutdown::Write).unwrap();
        until("the FIN counted", || {
            counters(&far).unwrap().bytes_received == 8
        });
        assert_eq!(counters(&far).unwrap().state, CLOSE_WAIT);
        assert!(fin_came(&far) && !fin_came(&near));
        let mut got = [0u8; 7];
        far.read_exact(&mut got).unwrap();
        set_recv_low_water(&far, 1).unwrap();
        far.shutdown(Shutdown::Write).unwrap();
        until("the far FIN came back", || fin_came(&near));
        // The socket itself is closed; TIME_WAIT lives in a mini-socket.
        assert_eq!(counters(&near).unwrap().state, CLOSE);
    }
}
