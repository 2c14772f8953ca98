//! `Core`: one `mio::Poll`, the listeners, and the loop that turns readiness into pumped
//! pipes and session callbacks.
//!
//! One turn of the loop (`Core::turn`):
//! 1. poll, with the nearest timer as timeout;
//! 2. for each event: a listener accepts until `WouldBlock` and starts one session per
//!    connection; a connection records its readiness and queues the pipes it feeds or drains;
//! 3. fire due timers;
//! 4. `settle`: pump queued pipes and deliver queued notices until both queues are empty,
//!    then free every touched session that is done.
//!
//! Draining (`Handle::drain`, for a graceful shutdown or a reload): the loop accepts what is
//! queued on its listeners, closes them, tells every session (`Session::on_drain`), and
//! `run` returns once no session is left.
//!
//! Beside it: `core/accept.rs` (accepting, the connection limit), `core/pending.rs` (a
//! connection's PROXY header and TLS handshake before its session), `core/events.rs` (one
//! readiness event on a connection).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::Ready;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::ids::{ConnId, ListenerId, SessionId};
use crate::io::{Io, Notice};
use crate::proxy_protocol::Trusted;
use crate::session::{deliver, Cx, Session};
use crate::stats::LoopStats;
use crate::timer::Owner;
use crate::tls::{rustls, TlsInfo};

mod accept;
mod events;
mod pending;

const KIND_BITS: usize = 2;
const KIND_LISTENER: usize = 0;
const KIND_CONN: usize = 1;
const KIND_WAKER: usize = 2;
/// How long to wait before accepting again after the process ran out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

pub(crate) fn conn_token(idx: usize) -> Token {
    Token((idx << KIND_BITS) | KIND_CONN)
}

fn listener_token(idx: usize) -> Token {
    Token((idx << KIND_BITS) | KIND_LISTENER)
}

/// What a session factory learns about an accepted connection.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub listener: ListenerId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// On a TLS listener: the handshake's outcome (SNI, ALPN, ...). The factory is called
    /// once the handshake is over.
    pub tls: Option<Arc<TlsInfo>>,
    /// On a listener with `ListenerOpts::sniff`: the client's first bytes were that
    /// prefix (they are still unread: the session reads them).
    pub sniffed: bool,
}

/// How a listener's connections are opened.
#[derive(Clone)]
pub struct ListenerOpts {
    /// Terminate TLS with this config: sessions start after the handshake and see
    /// plaintext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A PROXY protocol header (v1 or v2) comes first, from these peers only (a connection
    /// from any other address is closed): the session sees the client it names.
    pub proxy_protocol: Option<Arc<Trusted>>,
    /// A handshake (PROXY header and TLS) not over after this long is abandoned (the
    /// connection is closed).
    pub handshake_timeout: Duration,
    /// On a plain listener: peek at the client's first bytes before the session starts and
    /// tell the factory whether they are this prefix (`Accepted::sniffed`), e.g. the
    /// HTTP/2 connection preface, so that one port serves two protocols. The wait is
    /// bounded by `handshake_timeout`; it ends at the first byte that differs.
    pub sniff: Option<&'static [u8]>,
}

impl Default for ListenerOpts {
    fn default() -> ListenerOpts {
        ListenerOpts {
            tls: None,
            proxy_protocol: None,
            handshake_timeout: Duration::from_secs(10),
            sniff: None,
        }
    }
}

/// `Connection::session` of an accepted connection still in its handshake (PROXY header,
/// TLS), owned by no session yet (`pending.rs`).
pub(crate) const HANDSHAKE: usize = usize::MAX - 1;

/// Makes the session for each accepted connection.
pub type SessionFactory = Box<dyn FnMut(&Accepted) -> Box<dyn Session>>;

struct Listener {
    /// `None` once closed by a drain: the entry stays for the factory, which the
    /// connections still in their handshake need.
    socket: Option<TcpListener>,
    factory: SessionFactory,
    local: SocketAddr,
    opts: ListenerOpts,
    /// Accepting is paused (descriptor exhaustion) until a retry timer fires.
    paused: bool,
}

/// Stops or drains a running core from any thread.
#[derive(Clone)]
pub struct Handle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
}

impl Handle {
    /// Ask the loop to return from `run` at its next wake-up.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Ask the loop to drain: accept what waits in the listeners' queues, close the
    /// listeners, tell every session (`Session::on_drain`), and return from `run` once no
    /// session is left. The caller bounds the wait: `stop` ends it at once.
    pub fn drain(&self) {
        self.drain.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
    }
}

/// The event loop and everything it owns.
pub struct Core {
    poll: Poll,
    events: Events,
    /// The events of one poll, copied out so handling them may borrow the core.
    ready: Vec<(Token, Ready)>,
    listeners: Slab<Listener>,
    io: Io,
    handle: Handle,
    /// At most this many sessions at once; at the limit the listeners stop accepting.
    max_sessions: usize,
    /// Accepting stopped at `max_sessions`; resumes when a session ends.
    full: bool,
    /// Draining: the listeners are closed and `run` returns when no session is left.
    draining: bool,
}

impl Core {
    pub fn new() -> io::Result<Core> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Arc::new(Waker::new(poll.registry(), Token(KIND_WAKER))?);
        Ok(Core {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            listeners: Slab::new(),
            io: {
                let mut io = Io::new(registry);
                io.waker = Some(waker.clone());
                io
            },
            handle: Handle {
                waker,
                stop: Arc::new(AtomicBool::new(false)),
                drain: Arc::new(AtomicBool::new(false)),
            },
            max_sessions: usize::MAX,
            full: false,
            draining: false,
        })
    }

    /// Bind `addr` and make a session with `factory` for each connection.
    pub fn listen(&mut self, addr: SocketAddr, factory: SessionFactory) -> io::Result<ListenerId> {
        let socket = std::net::TcpListener::bind(addr)?;
        self.add_listener(socket, factory)
    }

    /// Adopt a bound listening socket (built with `SO_REUSEPORT`, inherited, ...).
    pub fn add_listener(
        &mut self,
        socket: std::net::TcpListener,
        factory: SessionFactory,
    ) -> io::Result<ListenerId> {
        self.add_listener_with(socket, ListenerOpts::default(), factory)
    }

    /// Adopt a bound listening socket whose connections are opened as `opts` says (TLS).
    pub fn add_listener_with(
        &mut self,
        socket: std::net::TcpListener,
        opts: ListenerOpts,
        factory: SessionFactory,
    ) -> io::Result<ListenerId> {
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let mut socket = TcpListener::from_std(socket);
        let entry = self.listeners.vacant_entry();
        let idx = entry.key();
        self.poll
            .registry()
            .register(&mut socket, listener_token(idx), Interest::READABLE)?;
        entry.insert(Listener {
            socket: Some(socket),
            factory,
            local,
            opts,
            paused: false,
        });
        Ok(ListenerId(idx))
    }

    /// The address a listener is bound to (useful after binding port 0).
    pub fn local_addr(&self, l: ListenerId) -> Option<SocketAddr> {
        self.listeners.get(l.0).map(|x| x.local)
    }

    /// A handle that stops the loop from another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// This loop's counters (accepted, open, accept errors, bytes), for another thread to
    /// read.
    pub fn stats(&self) -> Arc<LoopStats> {
        self.io.stats.clone()
    }

    /// Accept at most `max` connections at once (`0`: no limit). At the limit the listeners
    /// stop accepting (new connections wait in the kernel's backlog) until one closes.
    pub fn set_max_sessions(&mut self, max: usize) {
        self.max_sessions = if max == 0 { usize::MAX } else { max };
    }

    /// Sessions alive now.
    pub fn sessions(&self) -> usize {
        self.io.sessions.len()
    }

    /// Connections open now (idle pooled ones included).
    pub fn connections(&self) -> usize {
        self.io.conns.len()
    }

    /// Timers armed now (sessions', listeners' and the pool's).
    pub fn timers(&self) -> usize {
        self.io.timers.live()
    }

    /// Idle upstream connections kept for reuse now.
    pub fn pooled(&self) -> usize {
        self.io.pooled()
    }

    /// Keep at most `max_idle` idle upstream connections per address (0: no pooling), each
    /// for at most `idle_timeout`.
    pub fn set_pool(&mut self, max_idle: usize, idle_timeout: Duration) {
        self.io.pool.max_idle = max_idle;
        self.io.pool.idle_timeout = idle_timeout;
    }

    /// Run until [`Handle::stop`] is called, or, after [`Handle::drain`], until no session
    /// is left.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.handle.stop.load(Ordering::SeqCst) {
            if self.handle.drain.load(Ordering::SeqCst) {
                self.begin_drain();
                if self.io.sessions.is_empty() && self.io.handshaking == 0 {
                    break;
                }
            }
            let timeout = self.io.timers.timeout(Instant::now());
            self.turn(timeout)?;
        }
        Ok(())
    }

    /// Start draining (once): accept what is queued on each listener, close the listeners,
    /// and call `Session::on_drain` on every session. For an embedder driving `turn`
    /// itself; `run` does it on [`Handle::drain`].
    pub fn begin_drain(&mut self) {
        if self.draining {
            return;
        }
        let idxs: Vec<usize> = self.listeners.iter().map(|(i, _)| i).collect();
        for i in idxs {
            // A connection already queued here would be reset by the close: take it.
            self.accept(i);
            let Some(l) = self.listeners.get_mut(i) else {
                continue;
            };
            if let Some(mut socket) = l.socket.take() {
                if let Err(e) = self.poll.registry().deregister(&mut socket) {
                    log::warn!("drain: deregistering the listener on {}: {e}", l.local);
                }
            }
        }
        // From here on a session that starts (its handshake over) is told at once.
        self.draining = true;
        // Handshakes under way finish (a client in one is about to send a request), within
        // a shorter deadline; their sessions start draining (`begin_session`).
        self.hasten_handshakes();
        let sids: Vec<usize> = self.io.sessions.iter().map(|(i, _)| i).collect();
        for sid in sids {
            let Some(slot) = self.io.sessions.get_mut(sid) else {
                continue;
            };
            if slot.closing {
                continue;
            }
            let Some(mut obj) = slot.obj.take() else {
                continue;
            };
            let mut cx = Cx {
                io: &mut self.io,
                sid,
            };
            obj.on_drain(&mut cx);
            self.io.sessions[sid].obj = Some(obj);
            self.io.touch(sid);
        }
        self.settle();
    }

    /// Whether the loop is draining (its listeners are closed).
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// One turn of the loop: wait at most `timeout` for events, handle them, fire timers.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        self.io.now = Instant::now();
        let mut events = std::mem::take(&mut self.ready);
        events.extend(self.events.iter().map(|e| (e.token(), Ready::of(e))));
        for &(token, ready) in &events {
            let idx = token.0 >> KIND_BITS;
            match token.0 & ((1 << KIND_BITS) - 1) {
                KIND_LISTENER => self.accept(idx),
                KIND_CONN => self.conn_event(idx, ready),
                _ => self.deliver_wakes(),
            }
        }
        events.clear();
        self.ready = events;
        while let Some((id, owner)) = self.io.timers.pop_due(self.io.now) {
            match owner {
                Owner::Session { idx, gen, key } => {
                    let idx = idx as usize;
                    if let Some(s) = self.io.sessions.get_mut(idx).filter(|s| s.gen == gen) {
                        s.timers.retain(|t| *t != id);
                        self.io.notices.push_back((idx, gen, Notice::Timer(key)));
                        self.io.touch(idx);
                    }
                }
                Owner::Pooled { idx, gen } => {
                    let idx = idx as usize;
                    // Parked again since this deadline was set: a later timer covers it.
                    let limit = self.io.pool.idle_timeout;
                    let now = self.io.now;
                    let expired = |c: &crate::connection::Connection| {
                        c.gen == gen && now.saturating_duration_since(c.last_active) >= limit
                    };
                    if self.io.conns.get(idx).is_some_and(expired) {
                        self.io.drop_pooled(idx);
                    }
                }
                Owner::Handshake { idx, gen } => self.handshake_timed_out(idx as usize, gen),
                Owner::Listener(idx) => {
                    let idx = idx as usize;
                    if let Some(l) = self.listeners.get_mut(idx) {
                        l.paused = false;
                        self.accept(idx);
                    }
                }
            }
        }
        self.settle();
        self.resume_accepting();
        Ok(())
    }

    /// Queue the wake-ups other threads sent ([`crate::Remote`]) as notices.
    fn deliver_wakes(&mut self) {
        let wakes = match self.io.wakes.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => return,
        };
        for (sid, gen, key) in wakes {
            if self.io.sessions.get(sid).is_some_and(|s| s.gen == gen) {
                self.io.notices.push_back((sid, gen, Notice::Wake(key)));
                self.io.touch(sid);
            }
        }
    }

    /// Start a session with no client connection (a health checker, a poller); it gets
    /// `on_spawn` and lives until it is done like any other.
    pub fn spawn(&mut self, session: Box<dyn Session>) -> SessionId {
        let (sid, gen) = self.io.new_session();
        let mut obj = session;
        let mut cx = Cx {
            io: &mut self.io,
            sid,
        };
        obj.on_spawn(&mut cx);
        self.io.sessions[sid].obj = Some(obj);
        self.io.touch(sid);
        self.settle();
        SessionId { idx: sid, gen }
    }

    /// Give accepted connection `cidx` its session and start it.
    pub(super) fn begin_session(&mut self, cidx: usize, session: Box<dyn Session>) {
        let (sid, _) = self.io.new_session();
        let conn = &mut self.io.conns[cidx];
        conn.session = sid;
        let cgen = conn.gen;
        LoopStats::add(&self.io.stats.open, 1);
        let slot = &mut self.io.sessions[sid];
        slot.conns.push(cidx as u32);
        let mut obj = session;
        let mut cx = Cx {
            io: &mut self.io,
            sid,
        };
        obj.on_start(
            &mut cx,
            ConnId {
                idx: cidx,
                gen: cgen,
            },
        );
        if self.draining {
            // Its handshake ended after the drain began: it serves what the client sends
            // now, as a connection between requests does.
            obj.on_drain(&mut cx);
        }
        self.io.sessions[sid].obj = Some(obj);
        self.io.touch(sid);
    }

    /// Pump dirty pipes and deliver notices until nothing is left to do, then free the
    /// sessions that are done.
    pub(super) fn settle(&mut self) {
        loop {
            if let Some(p) = self.io.dirty.pop() {
                self.io.pump(p);
                continue;
            }
            if let Some((sid, gen, notice)) = self.io.notices.pop_front() {
                self.dispatch(sid, gen, notice);
                continue;
            }
            if let Some(sid) = self.io.touched.pop() {
                self.check_done(sid);
                continue;
            }
            break;
        }
    }

    fn dispatch(&mut self, sid: usize, gen: u64, notice: Notice) {
        let Some(slot) = self.io.sessions.get_mut(sid) else {
            return;
        };
        if slot.gen != gen || slot.closing {
            return;
        }
        let Some(mut obj) = slot.obj.take() else {
            return;
        };
        let mut cx = Cx {
            io: &mut self.io,
            sid,
        };
        deliver(obj.as_mut(), &mut cx, notice);
        self.io.sessions[sid].obj = Some(obj);
        self.io.touch(sid);
    }

    fn check_done(&mut self, sid: usize) {
        let Some(slot) = self.io.sessions.get_mut(sid) else {
            return;
        };
        slot.touched = false;
        let Some(mut obj) = slot.obj.take() else {
            return;
        };
        let closing = slot.closing;
        let mut cx = Cx {
            io: &mut self.io,
            sid,
        };
        if !closing && !obj.is_done(&cx) {
            self.io.sessions[sid].obj = Some(obj);
            return;
        }
        obj.on_close(&mut cx);
        drop(obj);
        let conns = std::mem::take(&mut self.io.sessions[sid].conns);
        for c in conns {
            self.io.drop_conn(c as usize);
        }
        let pipes = std::mem::take(&mut self.io.sessions[sid].pipes);
        for p in pipes.into_iter().map(|p| p as usize) {
            if self.io.pipes.contains(p) {
                self.io.drop_pipe(p);
            }
        }
        let slot = self.io.sessions.remove(sid);
        LoopStats::sub(&self.io.stats.open, 1);
        for t in slot.timers {
            self.io.timers.cancel(t);
        }
    }
}
