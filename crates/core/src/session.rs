//! The `Session` trait (what an embedder implements) and `Cx`, the handle a session uses to
//! act on the core from inside its callbacks.
//!
//! A session is created per accepted connection. It wires that connection to a module by
//! opening pipes (`Cx::pipe`) and, when it needs one, an upstream connection (`Cx::connect`).
//! The core moves the bytes; the session hears only about what needs a decision. When no
//! flow can continue (`Session::is_done`, by default: no pipe open and no connect under way)
//! or the session calls `Cx::close`, the core frees it with all its connections.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::TcpStream;
use mio::Interest;

use crate::connection::{Connection, Peer, ProxyInfo};
use crate::core::conn_token;
use crate::ids::{ConnId, PipeId, SessionId, TimerId};
use crate::io::{Io, Notice};
use crate::pipe::{Pipe, PipeBuffer, PipeEnd, PipeOpts, Sink, SinkKind, Source, SourceKind};
use crate::remote::Remote;
use crate::timer::Owner;

/// A session: the per-connection logic plugged into the core.
///
/// Every callback gets a [`Cx`]. None may block: the loop is single-threaded.
pub trait Session {
    /// The session was created for the accepted connection `client`.
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId);

    /// Bytes wait in `pipe`, whose sink is this session: take them with [`Cx::take`].
    fn on_readable(&mut self, _cx: &mut Cx<'_>, _pipe: PipeId) {}

    /// An outgoing connection opened with [`Cx::connect`] is established (or failed).
    fn on_connect(&mut self, _cx: &mut Cx<'_>, _conn: ConnId, _result: io::Result<()>) {}

    /// A pipe ended. By default a failure closes the whole session (a reset on one side
    /// means the other side's flow cannot complete either).
    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, _pipe: PipeId, end: PipeEnd) {
        if end != PipeEnd::Finished {
            cx.close();
        }
    }

    /// A connection watched with [`Cx::watch_readable`] became readable (bytes, its peer's
    /// FIN, or an error): open a pipe to read it. Default: nothing.
    fn on_conn_readable(&mut self, _cx: &mut Cx<'_>, _conn: ConnId) {}

    /// A pipe this session filled to its threshold with [`Cx::push`] drained below it: the
    /// session may push again (streaming with backpressure).
    fn on_drained(&mut self, _cx: &mut Cx<'_>, _pipe: PipeId) {}

    /// A timer armed with [`Cx::set_timer`] fired with the key it was given.
    fn on_timer(&mut self, _cx: &mut Cx<'_>, _key: u64) {}

    /// Another thread called [`Remote::wake`] with `key` (see [`Cx::remote`]).
    fn on_wake(&mut self, _cx: &mut Cx<'_>, _key: u64) {}

    /// The session was started by [`crate::Core::spawn`], with no client connection (a
    /// health checker, a poller): it opens what it needs itself.
    fn on_spawn(&mut self, _cx: &mut Cx<'_>) {}

    /// Whether no flow can continue. Checked after every callback round. By default: no
    /// pipe open, no connect under way, and no connection watched.
    fn is_done(&self, cx: &Cx<'_>) -> bool {
        cx.open_pipes() == 0 && cx.pending_connects() == 0 && !cx.watching()
    }

    /// The core is draining (graceful shutdown, reload): no new connection will come, and
    /// the loop ends once every session is done. Finish what is under way and end soon; a
    /// connection idle between requests may close now. Default: nothing changes.
    fn on_drain(&mut self, _cx: &mut Cx<'_>) {}

    /// The session is being freed; its connections close right after.
    fn on_close(&mut self, _cx: &mut Cx<'_>) {}

    /// Whether the session only waits on its client, with nothing under way: at the
    /// connection limit the core sheds the one that has waited longest (an unfinished
    /// request head first by when it began, an idle connection by its last activity) so a
    /// new client gets its place (`Core`'s `shed_one`). Default: never shed.
    fn waiting(&self) -> Option<Waiting> {
        None
    }

    /// The core sheds this session at the connection limit: close it. Default: close.
    fn on_shed(&mut self, cx: &mut Cx<'_>) {
        cx.close();
    }
}

/// What a session waiting on its client waits for ([`Session::waiting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The rest of a request head whose first byte came at this instant.
    HeadSince(std::time::Instant),
    /// The next request, on a connection idle since its last activity.
    Idle,
}

/// How [`Cx::connect_with`] opens an upstream connection.
#[derive(Clone, Copy, Default)]
pub struct ConnectOpts<'a> {
    /// Speak TLS with this client config and name.
    pub tls: Option<&'a crate::tls::TlsClient>,
    /// Send this PROXY protocol header (`proxy_protocol::encode_v1`/`encode_v2`) before
    /// anything else.
    pub proxy_header: Option<&'a [u8]>,
    /// Never take a pooled connection (a retry, a health probe).
    pub fresh: bool,
}

/// What a session can do to the core.
pub struct Cx<'a> {
    pub(crate) io: &'a mut Io,
    pub(crate) sid: usize,
}

impl<'a> Cx<'a> {
    /// This session's id.
    pub fn id(&self) -> SessionId {
        SessionId {
            idx: self.sid,
            gen: self.io.sessions[self.sid].gen,
        }
    }

    /// A handle another thread can use to wake this session (`on_wake`).
    pub fn remote(&self) -> Option<Remote> {
        let waker = self.io.waker.clone()?;
        Some(Remote {
            sid: self.sid,
            gen: self.io.sessions[self.sid].gen,
            queue: self.io.wakes.clone(),
            waker,
        })
    }

    /// Start a session owned by the loop, with no client connection (a multiplexer that
    /// several sessions share, say): it gets `on_spawn` now and lives until it is done like
    /// any other. The in-loop counterpart of [`crate::Core::spawn`].
    pub fn spawn(&mut self, session: Box<dyn Session>) -> SessionId {
        let (sid, gen) = self.io.new_session();
        let mut obj = session;
        let mut cx = Cx {
            io: &mut *self.io,
            sid,
        };
        obj.on_spawn(&mut cx);
        self.io.sessions[sid].obj = Some(obj);
        self.io.touch(sid);
        SessionId { idx: sid, gen }
    }

    /// Wake another session of this loop: its `on_wake(key)` runs once the current
    /// callback returns (queued like every notice, never called from here). False if that
    /// session is gone or closing.
    pub fn wake(&mut self, s: SessionId, key: u64) -> bool {
        let alive = self.alive(s);
        if alive {
            self.io.notices.push_back((s.idx, s.gen, Notice::Wake(key)));
            self.io.touch(s.idx);
        }
        alive
    }

    /// Whether session `s` of this loop is still there and not closing (nothing queued).
    pub fn alive(&self, s: SessionId) -> bool {
        (self.io.sessions.get(s.idx)).is_some_and(|x| x.gen == s.gen && !x.closing)
    }

    /// Loop time (read once per wake-up of the loop).
    pub fn now(&self) -> Instant {
        self.io.now
    }

    fn conn(&self, c: ConnId) -> Option<&Connection> {
        self.io
            .conns
            .get(c.idx)
            .filter(|x| x.gen == c.gen && x.session == self.sid)
    }

    fn pipe_ref(&self, p: PipeId) -> Option<&Pipe> {
        self.io
            .pipes
            .get(p.idx)
            .filter(|x| x.gen == p.gen && x.session == self.sid)
    }

    fn pipe_mut(&mut self, p: PipeId) -> Option<&mut Pipe> {
        let sid = self.sid;
        self.io
            .pipes
            .get_mut(p.idx)
            .filter(|x| x.gen == p.gen && x.session == sid)
    }

    /// The remote address of a connection.
    pub fn peer_addr(&self, c: ConnId) -> Option<SocketAddr> {
        self.conn(c).and_then(|x| x.peer.get())
    }

    /// The local address of a connection (on a PROXY protocol listener: the front address
    /// the header named).
    pub fn local_addr(&self, c: ConnId) -> Option<SocketAddr> {
        let conn = self.conn(c)?;
        match conn.proxy.as_deref() {
            Some(ProxyInfo::Front(front)) => Some(*front),
            _ => conn.stream.local_addr().ok(),
        }
    }

    /// The raw descriptor of a connection (for socket options; do not read or write it).
    pub fn raw_fd(&self, c: ConnId) -> Option<RawFd> {
        self.conn(c).map(|x| x.stream.as_raw_fd())
    }

    /// Bytes read from and written to `c` so far (plaintext over TLS; zeros for an unknown
    /// connection), wrapping at 4 GiB: a request's share is the wrapping difference between
    /// two readings.
    pub fn conn_bytes(&self, c: ConnId) -> (u32, u32) {
        self.conn(c).map_or((0, 0), |x| (x.received, x.sent))
    }

    /// How long since a byte last moved on `c` (zero for an unknown connection).
    pub fn idle(&self, c: ConnId) -> Duration {
        self.conn(c)
            .map(|x| self.io.now.saturating_duration_since(x.last_active))
            .unwrap_or_default()
    }

    /// The peer of `c` sent its FIN (or the socket failed).
    pub fn read_closed(&self, c: ConnId) -> bool {
        self.conn(c).is_none_or(|x| x.read_eof)
    }

    /// Connect to `addr`, reusing an idle pooled connection when there is one (see
    /// [`Cx::park`]); `on_connect` tells how it went, in both cases.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        if let Some((idx, gen)) = self.io.adopt(self.sid, addr, 0) {
            let result = Ok(());
            self.io
                .notify(self.sid, Notice::Connected { idx, gen, result });
            return Ok(ConnId { idx, gen });
        }
        self.connect_fresh(addr)
    }

    /// Connect to `addr` over TLS, reusing an idle pooled TLS connection made with the same
    /// name and config when there is one. `on_connect` comes once the handshake is over
    /// (an `InvalidData` error names a handshake failure, a bad certificate say).
    /// `fresh`: never from the pool (a retry, a health probe).
    pub fn connect_tls(
        &mut self,
        addr: SocketAddr,
        tls: &crate::tls::TlsClient,
        fresh: bool,
    ) -> io::Result<ConnId> {
        let tag = tls.tag();
        let pooled = if fresh {
            None
        } else {
            self.io.adopt(self.sid, addr, tag)
        };
        if let Some((idx, gen)) = pooled {
            let result = Ok(());
            self.io
                .notify(self.sid, Notice::Connected { idx, gen, result });
            return Ok(ConnId { idx, gen });
        }
        let state = crate::tls::Tls::client(tls)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let id = self.connect_fresh(addr)?;
        let conn = &mut self.io.conns[id.idx];
        conn.tls = Some(Box::new(state));
        conn.pool_tag = tag;
        Ok(id)
    }

    /// Connect to `addr` as `opts` says: over TLS or not, with a PROXY protocol header
    /// first or not, from the pool or fresh. Pooled connections are told apart by TLS
    /// client and by header, so a connection that introduced one client is reused only for
    /// that same client connection.
    pub fn connect_with(&mut self, addr: SocketAddr, opts: ConnectOpts<'_>) -> io::Result<ConnId> {
        let Some(header) = opts.proxy_header else {
            return match opts.tls {
                Some(tls) => self.connect_tls(addr, tls, opts.fresh),
                None if opts.fresh => self.connect_fresh(addr),
                None => self.connect(addr),
            };
        };
        let tag = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            opts.tls.map_or(0, |t| t.tag()).hash(&mut h);
            header.hash(&mut h);
            h.finish() | 1
        };
        if !opts.fresh {
            if let Some((idx, gen)) = self.io.adopt(self.sid, addr, tag) {
                let result = Ok(());
                self.io
                    .notify(self.sid, Notice::Connected { idx, gen, result });
                return Ok(ConnId { idx, gen });
            }
        }
        let id = match opts.tls {
            Some(tls) => self.connect_tls(addr, tls, true)?,
            None => self.connect_fresh(addr)?,
        };
        let conn = &mut self.io.conns[id.idx];
        conn.proxy = Some(Box::new(ProxyInfo::Header(header.into())));
        conn.pool_tag = tag;
        Ok(id)
    }

    /// The TLS facts of a connection (SNI, ALPN, version, cipher), once its handshake is
    /// over; `None` on a plain connection.
    pub fn tls_info(&self, c: ConnId) -> Option<std::sync::Arc<crate::tls::TlsInfo>> {
        self.conn(c)?.tls.as_ref()?.info.clone()
    }

    /// Whether `c` came from the pool (a request that fails on it before any answer may be
    /// retried on a fresh connection: the server may have closed it just then).
    pub fn reused(&self, c: ConnId) -> bool {
        self.conn(c).is_some_and(|x| x.reused)
    }

    /// Hand an upstream connection this session is done with to the pool, for a later
    /// `connect` to the same address by any session. False if it cannot be reused (pipes
    /// attached, half-closed); then it stays this session's.
    pub fn park(&mut self, c: ConnId) -> bool {
        self.conn(c).is_some() && self.io.park(self.sid, c.idx)
    }

    /// Start a fresh non-blocking connect (never from the pool).
    pub fn connect_fresh(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        let stream = TcpStream::connect(addr)?;
        let _ = stream.set_nodelay(true);
        let gen = self.io.gen();
        let now = self.io.now;
        let entry = self.io.conns.vacant_entry();
        let idx = entry.key();
        let mut conn = Connection::new(stream, gen, self.sid, now);
        conn.peer = Peer::from(Some(addr));
        conn.connecting = true;
        self.io.registry.register(
            &mut conn.stream,
            conn_token(idx),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(conn);
        let s = &mut self.io.sessions[self.sid];
        s.conns.push(idx as u32);
        s.pending_connects += 1;
        Ok(ConnId { idx, gen })
    }

    /// Open a pipe with the default options (threshold, no limit, FIN at the end).
    pub fn pipe(&mut self, from: Source, to: Sink) -> PipeId {
        self.pipe_with(from, to, PipeOpts::default())
    }

    /// Open a pipe holding at most `threshold` bytes. See [`Cx::pipe_with`].
    pub fn pipe_with_threshold(&mut self, from: Source, to: Sink, threshold: usize) -> PipeId {
        self.pipe_with(
            from,
            to,
            PipeOpts {
                threshold,
                ..PipeOpts::default()
            },
        )
    }

    /// Open a pipe from `from` to `to` with `opts` (threshold, limit, FIN). It starts moving
    /// bytes when this callback returns, so bytes [`Cx::push`]ed now go first.
    ///
    /// A connection end that is not this session's, or already has a pipe on that side, is a
    /// bug in the session: it is logged, the session is closed, and the returned id names no
    /// pipe. One faulty session never takes the process down.
    pub fn pipe_with(&mut self, from: Source, to: Sink, opts: PipeOpts) -> PipeId {
        let dead = PipeId {
            idx: usize::MAX,
            gen: 0,
        };
        let src_conn = match &from {
            Source::Conn(c) => Some(*c),
            _ => None,
        };
        let sink_conn = match &to {
            Sink::Conn(c) => Some(*c),
            _ => None,
        };
        if let Some(c) = src_conn {
            if let Some(conn) = self.io.conns.get_mut(c.idx).filter(|x| x.gen == c.gen) {
                conn.watch = false; // a pipe reads it now
            }
            if self.conn(c).is_none_or(|x| x.reader.is_some()) {
                log::error!("session bug: pipe source {c:?} is unknown or already read by a pipe");
                self.close();
                return dead;
            }
        }
        if let Some(c) = sink_conn {
            if self.conn(c).is_none_or(|x| x.writer.is_some()) {
                log::error!("session bug: pipe sink {c:?} is unknown or already written by a pipe");
                self.close();
                return dead;
            }
        }
        // sendfile(2) writes raw bytes: not to a TLS connection.
        let sink_tls = sink_conn.is_some_and(|c| self.conn(c).is_some_and(|x| x.tls.is_some()));
        let gen = self.io.gen();
        let idx = self.io.pipes.vacant_entry().key();
        let source = match from {
            Source::Conn(c) => {
                self.io.conns[c.idx].reader = Some(idx as u32);
                SourceKind::Conn(c.idx)
            }
            Source::File { file, offset, len } => SourceKind::File {
                file,
                offset,
                remaining: len,
                sendfile: !sink_tls,
            },
            Source::Session => SourceKind::Session,
        };
        let sink = match to {
            Sink::Conn(c) => {
                self.io.conns[c.idx].writer = Some(idx as u32);
                SinkKind::Conn(c.idx)
            }
            Sink::Session => SinkKind::Session,
            Sink::Discard => SinkKind::Discard,
        };
        self.io.pipes.insert(Pipe {
            gen,
            session: self.sid,
            source,
            sink,
            buf: PipeBuffer::default(),
            threshold: opts.threshold.max(1),
            limit: opts.limit,
            fin: opts.fin,
            source_active: true,
            sink_active: true,
            notified: false,
            was_full: false,
            queued: false,
            error: None,
        });
        self.io.sessions[self.sid].pipes.push(idx as u32);
        self.io.mark_dirty(idx);
        PipeId { idx, gen }
    }

    /// Queue bytes on a pipe (any source kind: a response head before a file, say).
    /// Returns false if the pipe is gone.
    pub fn push(&mut self, p: PipeId, bytes: Bytes) -> bool {
        let Some(pipe) = self.pipe_mut(p) else {
            return false;
        };
        if !pipe.sink_active {
            return false;
        }
        pipe.buf.push(bytes);
        if pipe.buf.len() >= pipe.threshold {
            pipe.was_full = true;
        }
        self.io.mark_dirty(p.idx);
        true
    }

    /// The session source of `p` has nothing more to give: once flushed, the pipe finishes.
    pub fn end(&mut self, p: PipeId) {
        if let Some(pipe) = self.pipe_mut(p) {
            pipe.source_active = false;
            self.io.mark_dirty(p.idx);
        }
    }

    /// Take the oldest bytes waiting in a pipe whose sink is this session.
    pub fn take(&mut self, p: PipeId) -> Option<Bytes> {
        let pipe = self.pipe_mut(p)?;
        let b = pipe.buf.pop();
        pipe.notified = false;
        self.io.mark_dirty(p.idx);
        b
    }

    /// The pipe holds its threshold or more: stop pushing until `on_drained`.
    pub fn is_full(&self, p: PipeId) -> bool {
        self.pipe_ref(p).is_some_and(|x| x.buf.len() >= x.threshold)
    }

    /// Bytes waiting in a pipe.
    pub fn buffered(&self, p: PipeId) -> usize {
        self.pipe_ref(p).map_or(0, |x| x.buf.len())
    }

    /// The pipe's source ended (its last bytes may still be buffered).
    pub fn source_ended(&self, p: PipeId) -> bool {
        self.pipe_ref(p).is_none_or(|x| !x.source_active)
    }

    /// Whether the pipe is still open.
    pub fn pipe_open(&self, p: PipeId) -> bool {
        self.pipe_ref(p).is_some()
    }

    /// Close a pipe now, dropping what it holds; no FIN is sent and no `on_pipe_end` comes.
    pub fn close_pipe(&mut self, p: PipeId) {
        if self.pipe_ref(p).is_some() {
            self.io.drop_pipe(p.idx);
        }
    }

    /// Close a connection now (and any pipe attached to it).
    pub fn close_conn(&mut self, c: ConnId) {
        if self.conn(c).is_some() {
            self.io.drop_conn(c.idx);
        }
    }

    /// Hear when `c`, which no pipe reads, becomes readable (`Session::on_conn_readable`,
    /// once), without holding a pipe meanwhile: what a keep-alive connection between
    /// requests needs, at less memory than an idle reader pipe. At once if `c` is readable
    /// already. Opening a pipe from `c` ends the watch. False if `c` is unknown or read by
    /// a pipe.
    pub fn watch_readable(&mut self, c: ConnId) -> bool {
        let sid = self.sid;
        let Some(conn) = self
            .io
            .conns
            .get_mut(c.idx)
            .filter(|x| x.gen == c.gen && x.session == sid && x.reader.is_none())
        else {
            return false;
        };
        // Watched until a pipe reads it, also while the notice below is on its way (the
        // session is not done meanwhile).
        conn.watch = true;
        if conn.can_read() {
            self.io.notify(
                sid,
                Notice::ConnReadable {
                    idx: c.idx,
                    gen: c.gen,
                },
            );
        }
        true
    }

    /// Whether one of this session's connections is watched (`Cx::watch_readable`).
    pub fn watching(&self) -> bool {
        let s = &self.io.sessions[self.sid];
        s.conns
            .iter()
            .any(|&c| self.io.conns.get(c as usize).is_some_and(|x| x.watch))
    }

    /// Call `on_timer(key)` after `after`.
    pub fn set_timer(&mut self, after: Duration, key: u64) -> TimerId {
        let gen = self.io.sessions[self.sid].gen;
        let owner = Owner::Session {
            idx: self.sid as u32,
            gen,
            key,
        };
        let id = self.io.timers.add(self.io.now + after, owner);
        self.io.sessions[self.sid].timers.push(id);
        TimerId(id)
    }

    /// Cancel a timer (no effect if it already fired).
    pub fn cancel_timer(&mut self, t: TimerId) {
        let timers = &mut self.io.sessions[self.sid].timers;
        if let Some(i) = timers.iter().position(|&x| x == t.0) {
            timers.swap_remove(i);
            self.io.timers.cancel(t.0);
        }
    }

    /// Free this session (and close its connections) once the current callback returns.
    pub fn close(&mut self) {
        self.io.sessions[self.sid].closing = true;
        self.io.touch(self.sid);
    }

    /// Pipes this session has open.
    pub fn open_pipes(&self) -> usize {
        self.io.sessions[self.sid].pipes.len()
    }

    /// Outgoing connects not yet finished.
    pub fn pending_connects(&self) -> usize {
        self.io.sessions[self.sid].pending_connects as usize
    }
}

/// Deliver one queued notice to its session.
pub(crate) fn deliver(s: &mut dyn Session, cx: &mut Cx<'_>, n: Notice) {
    match n {
        Notice::Readable(p) => {
            let gen = cx.io.pipes.get(p).map(|x| x.gen);
            if let Some(gen) = gen {
                if let Some(pipe) = cx.io.pipes.get_mut(p) {
                    pipe.notified = false;
                }
                s.on_readable(cx, PipeId { idx: p, gen });
            }
        }
        Notice::PipeEnd { idx, gen, end } => s.on_pipe_end(cx, PipeId { idx, gen }, end),
        Notice::Connected { idx, gen, result } => s.on_connect(cx, ConnId { idx, gen }, result),
        Notice::Timer(key) => s.on_timer(cx, key),
        Notice::Wake(key) => s.on_wake(cx, key),
        Notice::Drained { idx, gen } => s.on_drained(cx, PipeId { idx, gen }),
        Notice::ConnReadable { idx, gen } => {
            let id = ConnId { idx, gen };
            // Not when a pipe reads it already (the readiness was there when the watch
            // began, and an event came too: two notices, one call).
            if cx.conn(id).is_some_and(|x| x.reader.is_none()) {
                s.on_conn_readable(cx, id);
            }
        }
    }
}
