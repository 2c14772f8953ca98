//! The loop's HTTP/2 upstream connections, shared by every client session of the loop: one
//! hub per (server address, PROXY header) per event-loop thread, a session spawned on the
//! loop (`Cx::spawn`) that owns the upstream connections (`UpMux`) — their sockets, pipes,
//! connects, idle timeouts and keep-alive PINGs. Client sessions (HTTP/2 streams in
//! `h2/h2up.rs`, HTTP/1.1 requests in `http/h2up.rs`) find a connection with room through
//! `mux_for`, drive its `ClientConn` through the shared `MuxRef` and wake the hub to write
//! (`UpMux::flush`, `KEY_FLUSH`); the hub reads, puts each event in the mailbox of the
//! session whose call it concerns (`UpMux::mail`) and wakes that session (`KEY_MAIL`).
//! Every hand-over is a queued notice: no session is ever called from inside another.
//! The hubs of a thread are found in a thread-local registry; a hub leaves it when its last
//! connection closed.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tether_core::tls::TlsClient;
use tether_core::{ConnId, ConnectOpts, Cx, PipeEnd, PipeId, Session, SessionId};
use tether_h2::ClientEvent;

use super::mux::UpMux;

pub(crate) type MuxRef = Rc<RefCell<UpMux>>;

/// Wake key of a hub: a client session queued frames, or a new connection waits for its
/// connect.
pub(crate) const KEY_FLUSH: u64 = 1;
/// Timer key of a hub: idle connections and keep-alive PINGs.
const KEY_CHECK: u64 = 2;
/// Wake key of a client session: events wait in the mailboxes of its muxes (or one of
/// its connections changed: connected, lost, room again).
pub(crate) const KEY_MAIL: u64 = 1 << 40;

/// How a hub's connections are kept: closed when no call used them for `idle`; while
/// calls are open, a PING every `ping_every`, and the connection failed when one is not
/// answered within `ping_timeout` (`None`: no PINGs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepAlive {
    pub idle: Duration,
    pub ping_every: Option<Duration>,
    pub ping_timeout: Duration,
}

/// A server's address, the PROXY header sent first, and the TLS client (name and config).
type HubKey = (SocketAddr, Option<Vec<u8>>, Option<String>);

struct Hub {
    sid: Option<SessionId>,
    key: HubKey,
    muxes: Vec<MuxRef>,
    keep: KeepAlive,
    draining: bool,
}

type HubRef = Rc<RefCell<Hub>>;

thread_local! {
    static HUBS: RefCell<HashMap<HubKey, HubRef>> = RefCell::new(HashMap::new());
}

/// A connection to `addr` (with PROXY header `header`, over TLS with `tls`) that has room
/// for one more call: one the loop has, else a new one (the hub, spawned if this is the
/// first, connects it).
pub(crate) fn mux_for(
    cx: &mut Cx<'_>,
    addr: SocketAddr,
    header: Option<Vec<u8>>,
    tls: Option<&TlsClient>,
    keep: KeepAlive,
) -> io::Result<MuxRef> {
    let tls_key = tls.map(|t| format!("{:?} {:p}", t.name, std::sync::Arc::as_ptr(&t.config)));
    let key = (addr, header, tls_key);
    let found = HUBS.with(|h| h.borrow().get(&key).cloned());
    // A hub whose session is gone (its loop ended) is replaced.
    let hub = match found {
        Some(hub) if hub.borrow().sid.is_some_and(|s| cx.alive(s)) => hub,
        _ => {
            let hub = Rc::new(RefCell::new(Hub {
                sid: None,
                key: key.clone(),
                muxes: Vec::new(),
                keep,
                draining: false,
            }));
            let sid = cx.spawn(Box::new(HubSession { hub: hub.clone() }));
            hub.borrow_mut().sid = Some(sid);
            HUBS.with(|h| h.borrow_mut().insert(key.clone(), hub.clone()));
            hub
        }
    };
    let mut h = hub.borrow_mut();
    if let Some(m) = h.muxes.iter().find(|m| m.borrow().has_room()) {
        return Ok(m.clone());
    }
    let Some(sid) = h.sid else {
        return Err(io::Error::other("the HTTP/2 upstream hub did not start"));
    };
    let mut mux = UpMux::new(sid, addr, key.1, cx.now());
    mux.tls = tls.cloned();
    let m = Rc::new(RefCell::new(mux));
    h.muxes.push(m.clone());
    m.borrow_mut().flush(cx);
    Ok(m)
}

/// The session that owns one hub's connections.
struct HubSession {
    hub: HubRef,
}

impl HubSession {
    fn mux_of_conn(&self, c: ConnId) -> Option<MuxRef> {
        let h = self.hub.borrow();
        h.muxes.iter().find(|m| m.borrow().conn == Some(c)).cloned()
    }

    fn mux_of_pipe(&self, p: PipeId) -> Option<MuxRef> {
        let h = self.hub.borrow();
        h.muxes.iter().find(|m| m.borrow().owns_pipe(p)).cloned()
    }

    /// Connect the new connections, write what the client sessions queued.
    fn work(&mut self, cx: &mut Cx<'_>) {
        let muxes = self.hub.borrow().muxes.clone();
        for mux in muxes {
            let mut m = mux.borrow_mut();
            m.flush_queued = false;
            if m.dead {
                continue;
            }
            if m.conn.is_some() {
                m.write(cx);
                continue;
            }
            let opts = ConnectOpts {
                tls: m.tls.as_ref(),
                proxy_header: m.header.as_deref(),
                fresh: true,
            };
            let result = cx.connect_with(m.addr, opts);
            match result {
                Ok(c) => m.conn = Some(c),
                Err(e) => {
                    log::warn!("h2 upstream {}: connect: {e}", m.addr);
                    drop(m);
                    self.lost(cx, &mux);
                }
            }
        }
        self.prune();
    }

    /// The connection is gone: closed, and every session with a call on it told (each
    /// fails or moves its own calls when it sees `dead`).
    fn lost(&mut self, cx: &mut Cx<'_>, mux: &MuxRef) {
        mux.borrow_mut().close(cx);
        wake_users(cx, mux);
    }

    fn prune(&mut self) {
        self.hub.borrow_mut().muxes.retain(|m| !m.borrow().dead);
    }

    /// The server's bytes: each event to the mailbox of the call it concerns.
    fn readable(&mut self, cx: &mut Cx<'_>, mux: &MuxRef) {
        let events = mux.borrow_mut().read(cx);
        let mut broken = false;
        {
            let mut m = mux.borrow_mut();
            for e in events {
                let id = match &e {
                    ClientEvent::Headers { id, .. }
                    | ClientEvent::Data { id, .. }
                    | ClientEvent::Trailers { id, .. }
                    | ClientEvent::Reset { id, .. } => *id,
                    ClientEvent::GoAway {
                        last_stream_id,
                        code,
                        retryable,
                    } => {
                        // Each session hears about its own streams.
                        let mut per: HashMap<SessionId, Vec<_>> = HashMap::new();
                        for id in retryable {
                            if let Some(w) = m.streams.get(id) {
                                per.entry(w.0).or_default().push(*id);
                            }
                        }
                        for (s, ids) in per {
                            m.mail.entry(s).or_default().push(ClientEvent::GoAway {
                                last_stream_id: *last_stream_id,
                                code: *code,
                                retryable: ids,
                            });
                        }
                        continue;
                    }
                    ClientEvent::Error(err) => {
                        log::warn!("h2 upstream {}: {err}", m.addr);
                        broken = true;
                        continue;
                    }
                    ClientEvent::Ping { .. } => {
                        m.ping_sent = None;
                        continue;
                    }
                    ClientEvent::Settings { .. } | ClientEvent::WindowOpened => continue,
                };
                match m.streams.get(&id) {
                    Some(w) => {
                        let s = w.0;
                        m.mail.entry(s).or_default().push(e);
                    }
                    None => {
                        if let ClientEvent::Data { bytes, .. } = &e {
                            m.h2.consumed(id, bytes.len());
                        }
                    }
                }
            }
            m.write(cx);
        }
        if broken {
            self.lost(cx, mux);
            self.prune();
        } else {
            wake_users(cx, mux);
        }
    }

    /// `KEY_CHECK`: idle connections close, busy ones are pinged, a PING unanswered too
    /// long fails its connection.
    fn check(&mut self, cx: &mut Cx<'_>) {
        let (keep, draining) = {
            let h = self.hub.borrow();
            (h.keep, h.draining)
        };
        let now = cx.now();
        let muxes = self.hub.borrow().muxes.clone();
        for mux in muxes {
            let mut m = mux.borrow_mut();
            if !m.connected || m.dead {
                continue;
            }
            let since = |t: Option<std::time::Instant>| t.map(|t| now.saturating_duration_since(t));
            if !m.settings_seen && since(m.connected_at) >= Some(keep.ping_timeout) {
                // Connected, and silent since: the calls waiting for its SETTINGS go
                // elsewhere.
                log::warn!(
                    "h2 upstream {}: no SETTINGS in {} ms: connection failed",
                    m.addr,
                    keep.ping_timeout.as_millis()
                );
                drop(m);
                self.lost(cx, &mux);
                continue;
            }
            if !m.is_unused() {
                m.last_used = now;
            } else if draining || now.saturating_duration_since(m.last_used) >= keep.idle {
                log::debug!("h2 upstream {}: unused, closed (GOAWAY)", m.addr);
                m.h2.go_away();
                m.close(cx);
                continue;
            }
            let Some(every) = keep.ping_every else {
                continue;
            };
            match m.ping_sent {
                Some(t) if now.saturating_duration_since(t) >= keep.ping_timeout => {
                    log::warn!(
                        "h2 upstream {}: no PING answer in {} ms: connection failed",
                        m.addr,
                        keep.ping_timeout.as_millis()
                    );
                    drop(m);
                    self.lost(cx, &mux);
                }
                None if !m.h2.is_idle() && ping_due(cx, &m, every) => {
                    m.h2.ping();
                    m.ping_sent = Some(now);
                    m.write(cx);
                }
                _ => {}
            }
        }
        self.prune();
        self.arm(cx);
    }

    fn arm(&self, cx: &mut Cx<'_>) {
        let keep = self.hub.borrow().keep;
        let mut tick = keep.idle.min(Duration::from_secs(1));
        if let Some(p) = keep.ping_every {
            tick = tick.min(p).min(keep.ping_timeout);
        }
        cx.set_timer(tick.max(Duration::from_millis(10)), KEY_CHECK);
    }
}

/// A PING is due: nothing came from the server for `every`.
fn ping_due(cx: &Cx<'_>, m: &UpMux, every: Duration) -> bool {
    m.conn.is_some_and(|c| cx.idle(c) >= every)
}

/// Wake every session with a call on `mux` or mail in it; a session that is gone loses
/// its streams (reset) and its place in the queue.
fn wake_users(cx: &mut Cx<'_>, mux: &MuxRef) {
    let users: HashSet<SessionId> = {
        let m = mux.borrow();
        (m.mail.keys().copied())
            .chain(m.waiting.iter().map(|w| w.0))
            .chain(m.streams.values().map(|w| w.0))
            .collect()
    };
    let mut gone = Vec::new();
    for s in users {
        if !cx.wake(s, KEY_MAIL) {
            gone.push(s);
        }
    }
    if gone.is_empty() {
        return;
    }
    let mut m = mux.borrow_mut();
    for s in gone {
        m.mail.remove(&s);
        m.waiting.retain(|w| w.0 != s);
        let ids: Vec<_> = (m.streams.iter())
            .filter(|(_, w)| w.0 == s)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            m.streams.remove(&id);
            m.h2.reset(id, tether_h2::ErrorCode::Cancel);
        }
    }
    if !m.dead {
        m.write(cx);
    }
}

impl Session for HubSession {
    fn on_start(&mut self, cx: &mut Cx<'_>, _client: ConnId) {
        cx.close(); // a hub is spawned, never accepted
    }

    fn on_spawn(&mut self, cx: &mut Cx<'_>) {
        self.arm(cx);
    }

    fn on_wake(&mut self, cx: &mut Cx<'_>, key: u64) {
        if key == KEY_FLUSH {
            self.work(cx);
        }
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, conn: ConnId, result: io::Result<()>) {
        let Some(mux) = self.mux_of_conn(conn) else {
            cx.close_conn(conn);
            return;
        };
        if let Err(e) = result {
            log::warn!("h2 upstream {} unreachable: {e}", mux.borrow().addr);
            self.lost(cx, &mux);
            self.prune();
            return;
        }
        let tls = mux.borrow().tls.is_some();
        if tls {
            // Over TLS the server must have agreed to HTTP/2 (ALPN `h2`).
            let alpn = cx.tls_info(conn).and_then(|i| i.alpn.clone());
            let auto = mux.borrow().tls.as_ref().is_some_and(super::auto::is_auto);
            if auto {
                // `protocol = "auto"`: the choice is remembered; after `http/1.1` the
                // calls waiting here are retried as after a failed connect, and the next
                // requests take the HTTP/1.1 path.
                super::auto::remember(mux.borrow().addr, alpn.as_deref() == Some("h2"));
            }
            if alpn.as_deref() != Some("h2") {
                log::warn!(
                    "h2 upstream {}: the server did not agree to HTTP/2 by ALPN ({}): \
                     connection failed (hint: protocol = \"http1\" for this pool)",
                    mux.borrow().addr,
                    alpn.as_deref().unwrap_or("no ALPN")
                );
                self.lost(cx, &mux);
                self.prune();
                return;
            }
        }
        mux.borrow_mut().connected(cx);
        wake_users(cx, &mux);
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if let Some(mux) = self.mux_of_pipe(pipe) {
            self.readable(cx, &mux);
        }
    }

    fn on_drained(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if let Some(mux) = self.mux_of_pipe(pipe) {
            mux.borrow_mut().write(cx);
            wake_users(cx, &mux);
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, _end: PipeEnd) {
        if let Some(mux) = self.mux_of_pipe(pipe) {
            let closing = mux.borrow().dead;
            if !closing {
                self.lost(cx, &mux);
            }
            self.prune();
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        if key == KEY_CHECK {
            self.check(cx);
        }
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) {
        self.hub.borrow_mut().draining = true;
        self.check(cx);
    }

    fn is_done(&self, cx: &Cx<'_>) -> bool {
        self.hub.borrow().muxes.is_empty() && cx.open_pipes() == 0 && cx.pending_connects() == 0
    }

    fn on_close(&mut self, cx: &mut Cx<'_>) {
        let muxes = std::mem::take(&mut self.hub.borrow_mut().muxes);
        for m in muxes {
            m.borrow_mut().dead = true;
            wake_users(cx, &m);
        }
        let key = self.hub.borrow().key.clone();
        HUBS.with(|h| {
            let mut h = h.borrow_mut();
            if h.get(&key).is_some_and(|x| Rc::ptr_eq(x, &self.hub)) {
                h.remove(&key);
            }
        });
    }
}
