//! `Io`: the part of the core that sessions act on through [`crate::Cx`] — connections,
//! pipes, timers, session bookkeeping — and the pump that moves bytes through a pipe.
//!
//! Nothing here calls a session: what a session must hear about (data for it, a pipe that
//! ended, a connect that finished, a timer) is queued in `notices` and delivered by
//! `Core::settle`. Pipes that may move bytes are queued in `dirty` and pumped there too.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::Registry;
use slab::Slab;
use smallvec::SmallVec;

use crate::connection::Connection;
use crate::pipe::{Pipe, PipeEnd, SinkKind, SourceKind};
use crate::remote::WakeQueue;
use crate::session::Session;
use crate::stats::LoopStats;
use crate::timer::Timers;

/// Bytes read from a socket or file in one call, at most.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Size of the shared read buffer that reads are carved from.
const SCRATCH: usize = 256 * 1024;
/// Chunks handed to one `writev`.
const MAX_IOV: usize = 64;
/// Bytes handed to one `sendfile`.
const SENDFILE_CHUNK: usize = 1024 * 1024;
/// Size asked for a kernel pipe that splices a stream (at least the pipe's threshold).
const SPLICE_PIPE: usize = 256 * 1024;

/// What one read from a connection source gave.
enum Got {
    Eof,
    /// Bytes read into user space.
    Read(Bytes),
    /// Bytes spliced into the pipe's kernel pipe.
    Spliced(usize),
}

pub(crate) enum Notice {
    Readable(usize),
    PipeEnd {
        idx: usize,
        gen: u64,
        end: PipeEnd,
    },
    Connected {
        idx: usize,
        gen: u64,
        result: io::Result<()>,
    },
    Timer(u64),
    Wake(u64),
    /// A watched connection (`Cx::watch_readable`) became readable.
    ConnReadable {
        idx: usize,
        gen: u64,
    },
    Drained {
        idx: usize,
        gen: u64,
    },
}

pub(crate) struct SessionSlot {
    pub gen: u64,
    /// Taken out while one of its callbacks runs.
    pub obj: Option<Box<dyn Session>>,
    /// Its connections, pipes (slab indices, as `u32`: four fit where two `usize` did) and
    /// timers: a few each, kept inline. A proxied exchange has two connections and up to
    /// four pipes at once: a spilled vector would keep its heap buffer for the rest of the
    /// connection's life.
    pub conns: SmallVec<[u32; 4]>,
    pub pipes: SmallVec<[u32; 4]>,
    pub pending_connects: u32,
    /// Timers armed and not yet fired or cancelled (cancelled when the session goes).
    pub timers: SmallVec<[u64; 2]>,
    /// The session asked to be closed.
    pub closing: bool,
    /// Queued in `Io::touched` for a liveness check.
    pub touched: bool,
}

pub(crate) struct Io {
    pub registry: Registry,
    pub conns: Slab<Connection>,
    pub pipes: Slab<Pipe>,
    pub sessions: Slab<SessionSlot>,
    pub timers: Timers,
    pub notices: VecDeque<(usize, u64, Notice)>,
    pub dirty: Vec<usize>,
    pub touched: Vec<usize>,
    /// Loop time: read once per wake-up.
    pub now: Instant,
    pub pool: crate::pool::Pool,
    next_gen: u64,
    pub(crate) scratch: BytesMut,
    pub stats: Arc<LoopStats>,
    /// Wake-ups from other threads ([`crate::Remote`]), and the waker they use.
    pub wakes: WakeQueue,
    pub waker: Option<Arc<mio::Waker>>,
    /// Accepted connections still in their TLS handshake (no session yet).
    pub handshaking: usize,
}

impl Io {
    pub fn new(registry: Registry) -> Io {
        Io {
            registry,
            conns: Slab::new(),
            pipes: Slab::new(),
            sessions: Slab::new(),
            timers: Timers::default(),
            notices: VecDeque::new(),
            dirty: Vec::new(),
            touched: Vec::new(),
            now: Instant::now(),
            pool: crate::pool::Pool::default(),
            next_gen: 0,
            scratch: BytesMut::new(),
            stats: Arc::new(LoopStats::default()),
            wakes: WakeQueue::default(),
            waker: None,
            handshaking: 0,
        }
    }

    pub fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// An empty session slot (its object is put in once started): (slot, generation).
    pub fn new_session(&mut self) -> (usize, u64) {
        let gen = self.gen();
        let sid = self.sessions.insert(SessionSlot {
            gen,
            obj: None,
            conns: SmallVec::new(),
            pipes: SmallVec::new(),
            pending_connects: 0,
            timers: SmallVec::new(),
            closing: false,
            touched: false,
        });
        (sid, gen)
    }

    pub fn touch(&mut self, sid: usize) {
        if let Some(s) = self.sessions.get_mut(sid) {
            if !s.touched {
                s.touched = true;
                self.touched.push(sid);
            }
        }
    }

    pub fn notify(&mut self, sid: usize, n: Notice) {
        if let Some(s) = self.sessions.get(sid) {
            self.notices.push_back((sid, s.gen, n));
        }
    }

    /// Queue pipe `p` for pumping (once, however often it is marked before the pump).
    pub fn mark_dirty(&mut self, p: usize) {
        if let Some(pipe) = self.pipes.get_mut(p) {
            if !pipe.queued {
                pipe.queued = true;
                self.dirty.push(p);
            }
        }
    }

    /// Move bytes through pipe `p` until neither end can make progress, then retire it if
    /// it is over.
    pub fn pump(&mut self, p: usize) {
        let Some(pipe) = self.pipes.get_mut(p) else {
            return;
        };
        pipe.queued = false;
        loop {
            let drained = self.drain(p);
            let filled = self.fill(p);
            if !drained && !filled {
                break;
            }
        }
        let pipe = &mut self.pipes[p];
        if pipe.was_full && pipe.buf.len() < pipe.threshold {
            pipe.was_full = false;
            let (sid, gen) = (pipe.session, pipe.gen);
            self.notify(sid, Notice::Drained { idx: p, gen });
        }
        let pipe = &mut self.pipes[p];
        if matches!(pipe.sink, SinkKind::Session) && !pipe.buf.is_empty() && !pipe.notified {
            pipe.notified = true;
            let sid = pipe.session;
            self.notify(sid, Notice::Readable(p));
        }
        if self.pipes[p].is_over() && !self.sink_holds_records(p) {
            self.retire(p);
        }
    }

    /// The pipe's sink is a TLS connection that still holds records for the socket: the
    /// pipe is not over until they are written (the next writable event pumps it again).
    fn sink_holds_records(&self, p: usize) -> bool {
        let pipe = &self.pipes[p];
        match pipe.sink {
            SinkKind::Conn(c) if pipe.error.is_none() => {
                self.conns.get(c).is_some_and(|x| x.tls_pending())
            }
            _ => false,
        }
    }

    /// Hand buffered bytes to the sink. True if any moved.
    fn drain(&mut self, p: usize) -> bool {
        let pipe = &mut self.pipes[p];
        if !pipe.sink_active {
            return false;
        }
        match pipe.sink {
            SinkKind::Session => false,
            SinkKind::Discard => {
                let moved = !pipe.buf.is_empty();
                pipe.buf.clear();
                moved
            }
            SinkKind::Conn(c) if self.conns[c].tls.is_some() => {
                drain_tls(pipe, &mut self.conns[c], self.now)
            }
            SinkKind::Conn(c) => {
                let conn = &mut self.conns[c];
                if pipe.buf.is_empty() {
                    return send_file(pipe, conn, self.now, &self.stats);
                }
                let mut moved = false;
                while !pipe.buf.is_empty() && conn.write_ready {
                    let fd = conn.stream.as_raw_fd();
                    let r = if let Some(k) = pipe.buf.splice_out() {
                        // Spliced bytes come before the queue.
                        k.drain_to(fd)
                    } else {
                        let mut iov = [IoSlice::new(&[]); MAX_IOV];
                        let n = pipe.buf.slices(&mut iov);
                        (&conn.stream)
                            .write_vectored(&iov[..n])
                            .inspect(|&n| pipe.buf.consume(n))
                    };
                    match r {
                        Ok(0) => {
                            fail_sink(pipe, io::ErrorKind::WriteZero);
                            break;
                        }
                        Ok(n) => {
                            LoopStats::add(&self.stats.bytes_out, n as u64);
                            conn.sent = conn.sent.wrapping_add(n as u32);
                            conn.last_active = self.now;
                            moved = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.write_ready = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            fail_sink(pipe, e.kind());
                            conn.write_shut = true;
                            break;
                        }
                    }
                }
                moved
            }
        }
    }

    /// Read from the source while the pipe has room. True if any bytes (or the end) came.
    fn fill(&mut self, p: usize) -> bool {
        let Pipe {
            source,
            sink,
            buf,
            threshold,
            source_active,
            error,
            limit,
            ..
        } = &mut self.pipes[p];
        if !*source_active || error.is_some() {
            return false;
        }
        let threshold = *threshold;
        // Splicing moves raw socket bytes: only between two plain sockets.
        let to_conn = match sink {
            SinkKind::Conn(c) => self.conns.get(*c).is_some_and(|x| x.tls.is_none()),
            _ => false,
        };
        let mut moved = false;
        match source {
            SourceKind::Session => {}
            SourceKind::Conn(c) => {
                let conn = &mut self.conns[*c];
                let fd = conn.stream.as_raw_fd();
                let plain = conn.tls.is_none();
                let long = limit.is_some_and(|l| l >= READ_CHUNK as u64);
                if plain && to_conn && long && buf.is_empty() && !buf.splicing() {
                    // A long body of known length, socket to socket: spliced from its first
                    // byte. Read into user space first, its first chunk would stay there
                    // (with the shared read block it is carved from) while the client is
                    // slow to take it.
                    buf.start_splicing(threshold.max(SPLICE_PIPE));
                }
                while buf.len() < threshold && conn.can_read() && *source_active {
                    let want = limit.map_or(READ_CHUNK, |l| l.min(READ_CHUNK as u64) as usize);
                    if want == 0 {
                        *source_active = false;
                        moved = true;
                        break;
                    }
                    let got = if let Some(tls) = conn.tls.as_mut() {
                        crate::tls::read_plain(
                            tls,
                            &conn.stream,
                            &mut conn.read_ready,
                            &mut self.scratch,
                            want,
                        )
                        .map(|b| {
                            if b.is_empty() {
                                Got::Eof
                            } else {
                                Got::Read(b)
                            }
                        })
                    } else if let Some(k) = buf.splice_in() {
                        let room = k.cap - k.held;
                        let want = limit.map_or(room, |l| l.min(room as u64) as usize);
                        if want == 0 {
                            break; // the kernel pipe is full: drain first
                        }
                        let held = k.held;
                        match k.fill_from(fd, want) {
                            Ok(0) => Ok(Got::Eof),
                            Ok(n) => Ok(Got::Spliced(n)),
                            // With bytes in the kernel pipe, WouldBlock may mean that it is
                            // full rather than the socket empty: the pump comes back here
                            // once the sink took them.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock && held > 0 => break,
                            Err(e) => Err(e),
                        }
                    } else {
                        read_fd(fd, &mut self.scratch, want).map(|b| {
                            if b.is_empty() {
                                Got::Eof
                            } else {
                                Got::Read(b)
                            }
                        })
                    };
                    match got {
                        Ok(Got::Eof) => {
                            conn.read_eof = true;
                            conn.read_ready = false;
                            *source_active = false;
                            if limit.is_some() {
                                // The peer closed before the announced length.
                                *error = Some(PipeEnd::SourceError(io::ErrorKind::UnexpectedEof));
                            }
                            moved = true;
                        }
                        Ok(got) => {
                            let n = match &got {
                                Got::Read(b) => b.len(),
                                Got::Spliced(n) => *n,
                                Got::Eof => 0,
                            };
                            conn.last_active = self.now;
                            LoopStats::add(&self.stats.bytes_in, n as u64);
                            conn.received = conn.received.wrapping_add(n as u32);
                            if let Some(l) = limit {
                                *l -= n as u64;
                                if *l == 0 {
                                    *source_active = false;
                                }
                            }
                            if let Got::Read(b) = got {
                                if plain && n < want && !conn.drain_to_block {
                                    // Drained, and no FIN pending: see `connection.rs`.
                                    conn.read_ready = false;
                                }
                                if plain && n == READ_CHUNK && to_conn && !buf.splicing() {
                                    // A full read, socket to socket: a stream worth splicing.
                                    buf.start_splicing(threshold.max(SPLICE_PIPE));
                                }
                                buf.push(b);
                            }
                            moved = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.read_ready = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            conn.read_eof = true;
                            conn.read_ready = false;
                            *source_active = false;
                            *error = Some(PipeEnd::SourceError(e.kind()));
                            moved = true;
                        }
                    }
                }
            }
            // To a plain socket the file goes with sendfile(2) (`send_file`, in `drain`),
            // never through this buffer: read into it, a response the client does not take
            // would hold a threshold's worth of the file in memory.
            SourceKind::File { sendfile: true, .. } if matches!(sink, SinkKind::Conn(_)) => {}
            SourceKind::File {
                file,
                offset,
                remaining,
                ..
            } => {
                while buf.len() < threshold && *source_active {
                    let want = remaining.map_or(READ_CHUNK, |r| r.min(READ_CHUNK as u64) as usize);
                    if want == 0 {
                        *source_active = false;
                        moved = true;
                        break;
                    }
                    match pread_fd(file.as_raw_fd(), &mut self.scratch, want, *offset) {
                        Ok(b) if b.is_empty() => {
                            *source_active = false;
                            moved = true;
                        }
                        Ok(b) => {
                            *offset += b.len() as u64;
                            if let Some(r) = remaining {
                                *r -= b.len() as u64;
                            }
                            buf.push(b);
                            moved = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            *source_active = false;
                            *error = Some(PipeEnd::SourceError(e.kind()));
                            moved = true;
                        }
                    }
                }
            }
        }
        moved
    }

    /// Free a pipe that is over: half-close its socket sink after a clean finish, detach it
    /// from its connections and tell its session how it ended.
    pub fn retire(&mut self, p: usize) {
        let pipe = self.pipes.remove(p);
        let end = pipe.error.unwrap_or(PipeEnd::Finished);
        if let SourceKind::Conn(c) = pipe.source {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.reader = None;
            }
        }
        if let SinkKind::Conn(c) = pipe.sink {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.writer = None;
                if end == PipeEnd::Finished && pipe.fin {
                    conn.shutdown_write();
                }
            }
        }
        if let Some(s) = self.sessions.get_mut(pipe.session) {
            s.pipes.retain(|x| *x as usize != p);
        }
        self.notify(
            pipe.session,
            Notice::PipeEnd {
                idx: p,
                gen: pipe.gen,
                end,
            },
        );
        self.touch(pipe.session);
    }

    /// Remove a pipe at the session's request: no notice, no FIN.
    pub fn drop_pipe(&mut self, p: usize) {
        let pipe = self.pipes.remove(p);
        if let SourceKind::Conn(c) = pipe.source {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.reader = None;
            }
        }
        if let SinkKind::Conn(c) = pipe.sink {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.writer = None;
            }
        }
        if let Some(s) = self.sessions.get_mut(pipe.session) {
            s.pipes.retain(|x| *x as usize != p);
        }
        self.touch(pipe.session);
    }

    /// Close a connection: detach (and drop) its pipes, deregister, close the fd.
    pub fn drop_conn(&mut self, c: usize) {
        let Some(conn) = self.conns.get(c) else {
            return;
        };
        let pipes = [conn.reader, conn.writer];
        let pipes = pipes.into_iter().flatten().map(|p| p as usize);
        for p in pipes {
            if self.pipes.contains(p) {
                self.drop_pipe(p);
            }
        }
        let mut conn = self.conns.remove(c);
        // A connection once pooled keeps its idle deadline while a session uses it.
        self.timers.cancel(conn.pool_timer);
        let _ = self.registry.deregister(&mut conn.stream);
        if let Some(s) = self.sessions.get_mut(conn.session) {
            s.conns.retain(|x| *x as usize != c);
            if conn.connecting {
                s.pending_connects -= 1;
            }
        }
    }
}

/// Hand the pipe's bytes to a TLS connection: plaintext into rustls as far as its buffer
/// limit allows, records out to the socket. True if any bytes moved.
fn drain_tls(pipe: &mut Pipe, conn: &mut Connection, now: Instant) -> bool {
    let mut moved = false;
    loop {
        if let Err(e) = conn.flush_tls() {
            fail_sink(pipe, e.kind());
            return true;
        }
        if conn.tls_pending() || pipe.buf.is_empty() {
            return moved;
        }
        let Some(tls) = conn.tls.as_mut() else {
            return moved;
        };
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let n = pipe.buf.slices(&mut iov);
        match crate::tls::write_plain(tls, &iov[..n]) {
            Ok(0) => return moved,
            Ok(n) => {
                pipe.buf.consume(n);
                conn.sent = conn.sent.wrapping_add(n as u32);
                conn.last_active = now;
                moved = true;
            }
            Err(e) => {
                fail_sink(pipe, e.kind());
                conn.write_shut = true;
                return true;
            }
        }
    }
}

fn fail_sink(pipe: &mut Pipe, kind: io::ErrorKind) {
    pipe.sink_active = false;
    pipe.buf.clear();
    pipe.error = Some(PipeEnd::SinkError(kind));
}

/// File to socket without passing through user space. Only when nothing is queued before it
/// (a response head pushed by the session goes out first). True if bytes moved.
fn send_file(pipe: &mut Pipe, conn: &mut Connection, now: Instant, stats: &LoopStats) -> bool {
    let SourceKind::File {
        file,
        offset,
        remaining,
        sendfile,
    } = &mut pipe.source
    else {
        return false;
    };
    if !*sendfile || !pipe.source_active {
        return false;
    }
    let mut moved = false;
    while conn.write_ready && pipe.source_active {
        let want = remaining.map_or(SENDFILE_CHUNK, |r| r.min(SENDFILE_CHUNK as u64) as usize);
        if want == 0 {
            pipe.source_active = false;
            return true;
        }
        let mut off = *offset as libc::off_t;
        // SAFETY: both descriptors are open for the duration of the call; `off` is a valid
        // pointer to a local.
        let n =
            unsafe { libc::sendfile(conn.stream.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
        if n > 0 {
            let n = n as u64;
            LoopStats::add(&stats.bytes_out, n);
            conn.sent = conn.sent.wrapping_add(n as u32);
            *offset += n;
            if let Some(r) = remaining {
                *r -= n;
            }
            conn.last_active = now;
            moved = true;
        } else if n == 0 {
            pipe.source_active = false;
            return true;
        } else {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => conn.write_ready = false,
                io::ErrorKind::Interrupted => {}
                _ if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
                    // This file cannot be sent that way: fall back to read + write.
                    *sendfile = false;
                    return moved;
                }
                kind => {
                    fail_sink(pipe, kind);
                    conn.write_shut = true;
                    return true;
                }
            }
        }
    }
    moved
}

/// Make sure the shared read buffer has room for `want` bytes.
pub(crate) fn room(scratch: &mut BytesMut, want: usize) {
    if scratch.capacity() < want {
        // Reuses the old allocation when every `Bytes` carved from it is gone.
        scratch.reserve(SCRATCH.max(want));
    }
}

/// `read(2)` of `want` bytes into the shared buffer, returning the bytes read (empty at end
/// of stream).
pub(crate) fn read_fd(fd: i32, scratch: &mut BytesMut, want: usize) -> io::Result<Bytes> {
    room(scratch, want);
    let spare = scratch.spare_capacity_mut();
    let len = spare.len().min(want);
    debug_assert_eq!(len, want, "room() leaves space for the whole read");
    // SAFETY: `spare` is writable memory of at least `len` bytes owned by `scratch`.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), len) };
    carve(scratch, n)
}

/// `pread(2)` at `offset` into the shared buffer.
fn pread_fd(fd: i32, scratch: &mut BytesMut, want: usize, offset: u64) -> io::Result<Bytes> {
    room(scratch, want);
    let spare = scratch.spare_capacity_mut();
    let len = spare.len().min(want);
    // SAFETY: as in `read_fd`.
    let n = unsafe { libc::pread(fd, spare.as_mut_ptr().cast(), len, offset as libc::off_t) };
    carve(scratch, n)
}

pub(crate) fn carve(scratch: &mut BytesMut, n: isize) -> io::Result<Bytes> {
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised exactly `n` bytes of the spare capacity.
    unsafe { scratch.set_len(n) };
    Ok(scratch.split_to(n).freeze())
}
