//! Decoding the records the kernel programs put in the ring buffer.

use nodus_common::proccache::{
    EVENT_EXEC, EVENT_EXIT, EVENT_FORK, ExecEvent, FLAG_ARGS_TRUNCATED, ProcEvent,
};

use crate::ebpf::read_record as read;

/// One kernel event, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new process (threads are filtered out in the kernel).
    Fork(ProcEvent),
    /// A successful exec, with what was executed.
    Exec(Box<Exec>),
    /// The last thread of a process exited.
    Exit(ProcEvent),
}

/// The variable part of an exec event, already trimmed to what was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The common part.
    pub header: ProcEvent,
    /// The path given to exec.
    pub filename: Box<str>,
    /// NUL-separated arguments.
    pub args: Box<[u8]>,
    /// The kernel kept only the first `ARGS_MAX` bytes of the arguments.
    pub args_truncated: bool,
}

/// Why a record could not be decoded (a layout mismatch would be a build
/// bug: the ABI fingerprint prevents it, so this is counted, not fatal).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable ring-buffer record ({len} bytes, kind {kind})")]
pub struct DecodeError {
    len: usize,
    kind: u32,
}

impl Event {
    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let err = |kind| DecodeError {
            len: bytes.len(),
            kind,
        };
        let header: ProcEvent = read(bytes).ok_or(err(0))?;
        match header.kind {
            EVENT_FORK => Ok(Event::Fork(header)),
            EVENT_EXIT => Ok(Event::Exit(header)),
            EVENT_EXEC => {
                let e: ExecEvent = read(bytes).ok_or(err(header.kind))?;
                let name_len = (e.filename_len as usize).min(e.filename.len());
                let args_len = (e.args_len as usize).min(e.args.len());
                Ok(Event::Exec(Box::new(Exec {
                    header: e.header,
                    filename: String::from_utf8_lossy(&e.filename[..name_len]).into(),
                    args: e.args[..args_len].into(),
                    args_truncated: e.flags & FLAG_ARGS_TRUNCATED != 0,
                })))
            }
            other => Err(err(other)),
        }
    }

    /// The common part.
    pub fn header(&self) -> &ProcEvent {
        match self {
            Event::Fork(h) | Event::Exit(h) => h,
            Event::Exec(e) => &e.header,
        }
    }
}

#[cfg(test)]
mod tests {
    use nodus_common::proccache::{ARGS_MAX, FILENAME_MAX};

    use super::*;

    fn bytes<T>(value: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a padding-free repr(C) value.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn decodes_each_kind() {
        let header = ProcEvent {
            kind: EVENT_FORK,
            pid: 42,
            ..Default::default()
        };
        assert_eq!(Event::decode(&bytes(&header)), Ok(Event::Fork(header)));
        let mut exec = ExecEvent {
            header: ProcEvent {
                kind: EVENT_EXEC,
                ..header
            },
            flags: FLAG_ARGS_TRUNCATED,
            filename_len: 8,
            args_len: 6,
            reserved: 0,
            filename: [0; FILENAME_MAX],
            args: [0; ARGS_MAX],
        };
        exec.filename[..8].copy_from_slice(b"/bin/env");
        exec.args[..6].copy_from_slice(b"env\0x\0");
        let Ok(Event::Exec(e)) = Event::decode(&bytes(&exec)) else {
            panic!("not an exec");
        };
        assert_eq!(
            (&*e.filename, &*e.args, e.args_truncated),
            ("/bin/env", &b"env\0x\0"[..], true)
        );
    }

    #[test]
    fn refuses_short_and_unknown_records() {
        assert!(Event::decode(&[1, 0, 0]).is_err());
        let header = ProcEvent {
            kind: EVENT_EXEC,
            ..Default::default()
        };
        assert!(
            Event::decode(&bytes(&header)).is_err(),
            "exec shorter than ExecEvent"
        );
        let odd = ProcEvent {
            kind: 99,
            ..Default::default()
        };
        assert!(Event::decode(&bytes(&odd)).is_err());
    }

    #[test]
    fn lengths_beyond_the_buffers_are_clamped() {
        let mut exec = ExecEvent {
            header: ProcEvent {
                kind: EVENT_EXEC,
                ..Default::default()
            },
            flags: 0,
            filename_len: u32::MAX,
            args_len: u32::MAX,
            reserved: 0,
            filename: [b'a'; FILENAME_MAX],
            args: [b'b'; ARGS_MAX],
        };
        exec.flags = 0;
        let Ok(Event::Exec(e)) = Event::decode(&bytes(&exec)) else {
            panic!("not an exec");
        };
        assert_eq!((e.filename.len(), e.args.len()), (FILENAME_MAX, ARGS_MAX));
    }
}
