//! One client connection: read, parse every complete request in the buffer
//! (pipelining), queue the responses, and write them with as few system calls
//! as possible: heads and in-memory bodies gathered into one writev, large or
//! cold bodies with sendfile.
//!
//! Every wait is bounded: a request head must complete within the header
//! timeout once it started (408), a kept-alive connection without a request is
//! closed after the idle timeout, and a client that stops reading is dropped
//! after the idle timeout too. Nothing a client sends can stop the worker.

use std::{
    io::{self, IoSlice},
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use nix::sys::sendfile::sendfile;
use tokio::{io::Interest, net::TcpStream, time::timeout};

use crate::supervisor::Heartbeat;

use crate::fileserver::{
    cache::{FileCache, Miss},
    http::{self, Limits, Method, Request},
    path::{PathError, normalize},
    resource::Variant,
    response::{self, Conn, Plan},
    stats::{ConnStats, WorkerStats},
    status::Status,
};

/// What every connection of a server shares.
pub struct ServerShared {
    /// The file cache.
    pub cache: Arc<FileCache>,
    /// Request head limits.
    pub limits: Limits,
    /// Time for a started request head to complete.
    pub header_timeout: Duration,
    /// Time a connection may wait for a request, or for the client to read.
    pub idle_timeout: Duration,
    /// Open-connection limit.
    pub max_connections: u64,
    /// Per-worker counters.
    pub workers: Box<[WorkerStats]>,
    /// Per-worker liveness: each worker's own loop beats its entry, so a
    /// worker that died or is stuck stops beating while the others go on.
    pub alive: Box<[Heartbeat]>,
    /// Connection counters.
    pub conns: ConnStats,
}

/// A queued piece of output.
enum Chunk {
    /// Head bytes (and small error bodies).
    Head(Vec<u8>),
    /// A slice of a resident body.
    Body(Arc<[u8]>, usize, usize),
    /// A byte range of a file, sent with sendfile.
    File(Arc<Variant>, u64, u64),
}

/// Responses waiting to be written, and the requests they answer.
struct Out {
    chunks: Vec<Chunk>,
    head: Vec<u8>,
    started: Vec<Instant>,
}

impl Out {
    /// Moves pending head bytes into the chunk list.
    fn seal(&mut self) {
        if !self.head.is_empty() {
            let head = std::mem::replace(&mut self.head, Vec::with_capacity(512));
            self.chunks.push(Chunk::Head(head));
        }
    }

    fn has_file(&self) -> bool {
        self.chunks.iter().any(|c| matches!(c, Chunk::File(..)))
    }
}

/// Serves one connection to completion. `worker` indexes the stats.
pub async fn serve(stream: TcpStream, shared: Arc<ServerShared>, worker: usize) {
    let stats = &shared.workers[worker];
    let _ = stream.set_nodelay(true);
    let mut c = Connection {
        stream,
        buf: vec![0; 4096],
        start: 0,
        end: 0,
        out: Out {
            chunks: Vec::new(),
            head: Vec::with_capacity(512),
            started: Vec::new(),
        },
        shared: &shared,
        stats,
    };
    let _ = c.run().await;
    shared.conns.open.fetch_sub(1, Relaxed);
}

struct Connection<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Out,
    shared: &'a ServerShared,
    stats: &'a WorkerStats,
}

/// Why a read wait ended without data.
enum ReadEnd {
    Closed,
    Idle,
    HeaderTimeout,
}

impl Connection<'_> {
    async fn run(&mut self) -> io::Result<()> {
        let cap = self.shared.limits.max_head() + 16;
        let mut head_deadline: Option<Instant> = None;
        loop {
            let mut close = false;
            // The buffer is moved out while requests borrow from it.
            let buf = std::mem::take(&mut self.buf);
            while self.start < self.end {
                let parsed = http::parse(&buf[self.start..self.end], &self.shared.limits);
                match parsed {
                    Ok(Some((req, n))) => {
                        let now = Instant::now();
                        close = !self.respond(&req, now);
                        self.start += n;
                        head_deadline = None;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let conn = Conn {
                            keep_alive: false,
                            http10: false,
                        };
                        self.error(e.status(), conn, false, Instant::now());
                        close = true;
                    }
                }
                if close {
                    break;
                }
                if self.out.has_file()
                    && let Err(e) = self.flush().await
                {
                    self.buf = buf;
                    return Err(e);
                }
            }
            self.buf = buf;
            self.flush().await?;
            if close {
                self.linger().await;
                return Ok(());
            }
            // Keep the unparsed tail at the front; grow up to the head limit.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() && self.buf.len() < cap {
                self.buf.resize((self.buf.len() * 2).min(cap), 0);
            }
            if self.end > 0 && head_deadline.is_none() {
                head_deadline = Some(Instant::now() + self.shared.header_timeout);
            }
            match self.read(head_deadline).await {
                Ok(n) => {
                    self.end += n;
                    if head_deadline.is_none() {
                        head_deadline = Some(Instant::now() + self.shared.header_timeout);
                    }
                }
                Err(ReadEnd::Closed | ReadEnd::Idle) => return Ok(()),
                Err(ReadEnd::HeaderTimeout) => {
                    self.shared.conns.timeouts.fetch_add(1, Relaxed);
                    let conn = Conn {
                        keep_alive: false,
                        http10: false,
                    };
                    self.error(Status::RequestTimeout, conn, false, Instant::now());
                    self.flush().await?;
                    self.linger().await;
                    return Ok(());
                }
            }
        }
    }

    /// Reads once, waiting at most until `deadline` (a started head) or the
    /// idle timeout (between requests).
    async fn read(&mut self, deadline: Option<Instant>) -> Result<usize, ReadEnd> {
        loop {
            match self.stream.try_read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(ReadEnd::Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(ReadEnd::Closed),
            }
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => self.shared.idle_timeout,
            };
            match timeout(wait, self.stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ReadEnd::Closed),
                Err(_) if deadline.is_some() => return Err(ReadEnd::HeaderTimeout),
                Err(_) => return Err(ReadEnd::Idle),
            }
        }
    }

    fn error(&mut self, status: Status, conn: Conn, head_only: bool, started: Instant) {
        response::error(&mut self.out.head, status, conn, head_only);
        self.stats.response(status.code());
        self.out.started.push(started);
    }

    /// Queues a response that has no body (301, 304, 416).
    fn bodiless(
        &mut self,
        status: Status,
        length: Option<u64>,
        extra: &str,
        conn: Conn,
        started: Instant,
    ) {
        response::head(&mut self.out.head, status, length, extra, conn);
        self.stats.response(status.code());
        self.out.started.push(started);
    }

    /// Queues the response to `req`; returns whether the connection stays open.
    fn respond(&mut self, req: &Request, started: Instant) -> bool {
        let conn = Conn {
            keep_alive: req.keep_alive,
            http10: req.minor == 0,
        };
        let head_only = req.method == Some(Method::Head);
        let path = match normalize(req.target) {
            Ok(p) => p,
            Err(e) => {
                let status = match e {
                    PathError::Bad(_) => Status::BadRequest,
                    PathError::Hidden => Status::NotFound,
                };
                let conn = Conn {
                    keep_alive: conn.keep_alive && !status.closes(),
                    ..conn
                };
                self.error(status, conn, head_only, started);
                return conn.keep_alive;
            }
        };
        let hit = match self
            .shared
            .cache
            .get(&path, req.accept_encoding, req.range.is_some())
        {
            Ok(hit) => hit,
            Err(Miss::Status(status)) => {
                self.error(status, conn, head_only, started);
                return conn.keep_alive;
            }
            Err(Miss::Redirect(location)) => {
                let extra = format!("Location: {location}\r\n");
                let length = Some(0);
                self.bodiless(Status::MovedPermanently, length, &extra, conn, started);
                return conn.keep_alive;
            }
        };
        let v = &hit.variant;
        let (status, start, len) = match response::plan(req, v) {
            Plan::NotModified => {
                let extra = format!("ETag: {}\r\nLast-Modified: {}\r\n", v.etag, v.last_modified);
                self.bodiless(Status::NotModified, None, &extra, conn, started);
                return conn.keep_alive;
            }
            Plan::Unsatisfiable => {
                let extra = format!("Content-Range: bytes */{}\r\n", v.len);
                self.bodiless(Status::RangeNotSatisfiable, Some(0), &extra, conn, started);
                return conn.keep_alive;
            }
            Plan::Full => (Status::Ok, 0, v.len),
            Plan::Partial { start, len } => (Status::PartialContent, start, len),
        };
        if status == Status::PartialContent {
            let extra = format!(
                "{}Content-Range: bytes {start}-{}/{}\r\n",
                v.head,
                start + len - 1,
                v.len
            );
            response::head(&mut self.out.head, status, Some(len), &extra, conn);
        } else {
            response::head(&mut self.out.head, status, Some(len), &v.head, conn);
        }
        self.stats.response(status.code());
        self.out.started.push(started);
        if head_only || len == 0 {
            return conn.keep_alive;
        }
        match hit.body {
            Some(body) if body.len() as u64 == v.len => {
                self.out.seal();
                let (s, e) = (start as usize, (start + len) as usize);
                self.out.chunks.push(Chunk::Body(body, s, e));
            }
            _ => {
                self.out.seal();
                self.out.chunks.push(Chunk::File(v.clone(), start, len));
            }
        }
        conn.keep_alive
    }

    /// Writes everything queued: consecutive in-memory chunks with writev,
    /// files with sendfile (corked behind their head).
    async fn flush(&mut self) -> io::Result<()> {
        self.out.seal();
        let mut i = 0;
        let mut corked = false;
        while i < self.out.chunks.len() {
            if let Chunk::File(v, off, len) = &self.out.chunks[i] {
                let (v, off, len) = (v.clone(), *off, *len);
                self.sendfile(&v, off, len).await?;
                if corked {
                    set_cork(&self.stream, false);
                    corked = false;
                }
                i += 1;
                continue;
            }
            let j = (i..self.out.chunks.len())
                .find(|&j| matches!(self.out.chunks[j], Chunk::File(..)))
                .unwrap_or(self.out.chunks.len());
            if j < self.out.chunks.len() && !corked {
                set_cork(&self.stream, true);
                corked = true;
            }
            self.writev(i, j).await?;
            i = j;
        }
        if corked {
            set_cork(&self.stream, false);
        }
        self.out.chunks.clear();
        let now = Instant::now();
        for t in self.out.started.drain(..) {
            self.stats
                .latency_us(now.saturating_duration_since(t).as_micros() as u64);
        }
        Ok(())
    }

    /// Writes chunks `i..j` (all in memory) completely.
    async fn writev(&mut self, i: usize, j: usize) -> io::Result<()> {
        // Per chunk, how much has been written already.
        let mut done = vec![0usize; j - i];
        let mut first = 0;
        loop {
            while first < done.len() && chunk_bytes(&self.out.chunks[i + first]).is_empty() {
                first += 1;
            }
            if first == done.len() {
                break;
            }
            let slices: Vec<IoSlice> = self.out.chunks[i + first..j]
                .iter()
                .zip(&done[first..])
                .take(64)
                .map(|(c, &d)| IoSlice::new(&chunk_bytes(c)[d..]))
                .collect();
            let mut n = match self.stream.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.stats.bytes.fetch_add(n as u64, Relaxed);
            while n > 0 && first < done.len() {
                let left = chunk_bytes(&self.out.chunks[i + first]).len() - done[first];
                let take = left.min(n);
                done[first] += take;
                n -= take;
                if done[first] == chunk_bytes(&self.out.chunks[i + first]).len() {
                    first += 1;
                }
            }
        }
        Ok(())
    }

    /// Closes after an error answer without losing it: stop sending, then
    /// drain what the client still sends for a moment, so the kernel does
    /// not answer unread data with a reset that destroys the response.
    async fn linger(&mut self) {
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || timeout(left, self.stream.readable()).await.is_err() {
                return;
            }
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match timeout(self.shared.idle_timeout, self.stream.writable()).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
        }
    }

    /// Sends `len` bytes of `v` from `off`. A file that shrank underneath
    /// (edited in place) ends the connection: the client sees a short
    /// response, never a complete-looking wrong one.
    async fn sendfile(&mut self, v: &Variant, off: u64, len: u64) -> io::Result<()> {
        let mut offset = off as libc::off_t;
        let mut left = len;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            // A short write means the socket buffer is full: report it as
            // WouldBlock so tokio forgets the readiness and the next call
            // waits for EPOLLOUT (a third of the buffer free), as nginx
            // does. Calling again at once finds only the few bytes the
            // reader drained meanwhile: measured on a 64 MiB file, three
            // times the sendfile calls for the same bytes, 0.88x nginx.
            let mut sent = 0u64;
            let r = self.stream.try_io(Interest::WRITABLE, || {
                let n = sendfile(&self.stream, &v.file, Some(&mut offset), chunk)
                    .map_err(io::Error::from)? as u64;
                sent = n;
                if n > 0 && n < chunk as u64 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            if sent > 0 {
                left -= sent;
                self.stats.bytes.fetch_add(sent, Relaxed);
            }
            match r {
                Ok(0) => return Err(io::Error::other("file shrank while being sent")),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if left > 0 {
                        self.writable().await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn chunk_bytes(c: &Chunk) -> &[u8] {
    match c {
        Chunk::Head(h) => h,
        Chunk::Body(b, s, e) => &b[*s..*e],
        Chunk::File(..) => &[],
    }
}

fn set_cork(stream: &TcpStream, on: bool) {
    let _ = socket2::SockRef::from(stream).set_tcp_cork(on);
}
