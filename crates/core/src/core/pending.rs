//! An accepted connection before its session: the PROXY protocol header a trusted load
//! balancer sends first, then the TLS handshake or (on a plain listener with
//! `ListenerOpts::sniff`) a peek at the client's first bytes, each as the listener asks
//! (`ListenerOpts`). Until both are over the connection belongs to no session
//! (`Connection::session == HANDSHAKE`), counts against the connection limit
//! (`Io::handshaking`) and is bounded by one deadline (`ListenerOpts::handshake_timeout`).
//!
//! The PROXY header is read with `MSG_PEEK` and only its own bytes are then consumed, so
//! what the client sent behind it (a ClientHello, a request) stays in the socket for the
//! next stage. A sender outside the trusted networks, a malformed header, or a peer that
//! closes first: a log line and the connection is closed. The session then sees the
//! client the header names as the connection's peer (`Cx::peer_addr`, `Accepted::peer`),
//! and the balancer's front address as its local one.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;

use super::{Accepted, Core, HANDSHAKE};
use crate::connection::{Awaiting, Connection, PendingAccept, ProxyInfo};
use crate::ids::ListenerId;
use crate::proxy_protocol::{self, Parsed, V2_MAX_PAYLOAD};
use crate::timer::Owner;
use crate::tls::{rustls, Handshake, Tls};

/// How long a handshake under way when a drain begins may still take.
const DRAIN_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(1);

/// Room for the longest header accepted: v2's 16 fixed bytes and its largest payload (v1
/// needs at most 107).
const PEEK_MAX: usize = 16 + V2_MAX_PAYLOAD;

/// What reading the PROXY header came to.
enum HeaderStep {
    /// Not all of it yet: wait for more bytes.
    Waiting,
    /// Read and consumed: the client and the front address it names (`None`: keep the
    /// socket's, for `LOCAL`/`UNKNOWN`).
    Done(Option<(SocketAddr, SocketAddr)>),
    /// Close the connection, with this reason in the log.
    Failed(String),
}

impl Core {
    /// Accept a connection on a listener that wants a PROXY header or TLS first: it waits,
    /// owned by no session, until `finish_pending` (or the deadline, or a failure).
    pub(super) fn start_pending(&mut self, lidx: usize, stream: TcpStream, peer: SocketAddr) {
        let Some(l) = self.listeners.get(lidx) else {
            return;
        };
        let (local, timeout) = (l.local, l.opts.handshake_timeout);
        let awaiting = match &l.opts.proxy_protocol {
            Some(trusted) if !trusted.contains(peer.ip()) => {
                log::warn!(
                    "PROXY protocol on {local}: {peer} is not a trusted sender; connection closed"
                );
                return;
            }
            Some(_) => Awaiting::ProxyHeader,
            None if l.opts.tls.is_some() => Awaiting::Tls,
            None => Awaiting::Sniff,
        };
        let tls = match (awaiting, l.opts.tls.clone()) {
            (Awaiting::Tls, Some(config)) => match new_server(config, peer) {
                Some(t) => Some(t),
                None => return,
            },
            _ => None,
        };
        let Some((cidx, cgen)) = self.add_conn(stream, HANDSHAKE) else {
            return;
        };
        let timer = self.io.timers.add(
            self.io.now + timeout,
            Owner::Handshake {
                idx: cidx as u32,
                gen: cgen,
            },
        );
        let conn = &mut self.io.conns[cidx];
        conn.tls = tls;
        conn.pending = Some(Box::new(PendingAccept {
            listener: lidx,
            peer,
            local,
            timer,
            awaiting,
            sniffed: false,
        }));
        self.io.handshaking += 1;
    }

    /// Readiness on a connection before its session: drive the stage it is in.
    pub(super) fn handshake_event(&mut self, cidx: usize) {
        let Some(conn) = self.io.conns.get_mut(cidx) else {
            return;
        };
        let Some(pending) = conn.pending.as_ref() else {
            return;
        };
        match pending.awaiting {
            Awaiting::ProxyHeader => self.proxy_header_event(cidx),
            Awaiting::Tls => self.tls_handshake_event(cidx),
            Awaiting::Sniff => self.sniff_event(cidx),
        }
    }

    /// A plain listener with `ListenerOpts::sniff`: wait while the client's bytes are a
    /// prefix of it, decide on the first one that differs (or when all of it came).
    fn sniff_event(&mut self, cidx: usize) {
        let Some(conn) = self.io.conns.get_mut(cidx) else {
            return;
        };
        let Some(pending) = conn.pending.as_mut() else {
            return;
        };
        let prefix = self
            .listeners
            .get(pending.listener)
            .and_then(|l| l.opts.sniff)
            .unwrap_or_default();
        let mut buf = [0u8; 64];
        let want = prefix.len().min(buf.len());
        let n = loop {
            match conn.stream.peek(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The session's first read meets the error (or the FIN) itself.
                Err(_) => break 0,
            }
        };
        let closed = n == 0 && want > 0;
        if !closed && buf[..n] == prefix[..n] && n < want {
            return; // a prefix of the prefix so far: wait for more
        }
        pending.sniffed = !closed && buf[..n] == prefix[..n];
        // The bytes are still in the socket: no new edge will say so.
        conn.read_ready = true;
        self.finish_pending(cidx);
    }

    fn proxy_header_event(&mut self, cidx: usize) {
        let Some(conn) = self.io.conns.get_mut(cidx) else {
            return;
        };
        let addrs = match read_proxy_header(&conn.stream) {
            HeaderStep::Waiting => return,
            HeaderStep::Failed(why) => {
                let peer = conn.peer_text();
                log::warn!("PROXY protocol header from {peer}: {why}; connection closed");
                self.drop_handshaking(cidx);
                return;
            }
            HeaderStep::Done(addrs) => addrs,
        };
        let Some(pending) = conn.pending.as_mut() else {
            return;
        };
        if let Some((client, front)) = addrs {
            pending.peer = client;
            pending.local = front;
            conn.peer = crate::connection::Peer::from(Some(client));
            conn.proxy = Some(Box::new(ProxyInfo::Front(front)));
        }
        // What followed the header is in the socket already: no new edge will say so.
        conn.read_ready = true;
        let (lidx, peer) = (pending.listener, pending.peer);
        let config = self.listeners.get(lidx).and_then(|l| l.opts.tls.clone());
        let Some(config) = config else {
            let sniff = self
                .listeners
                .get(lidx)
                .is_some_and(|l| l.opts.sniff.is_some());
            if sniff {
                if let Some(p) = self.io.conns[cidx].pending.as_mut() {
                    p.awaiting = Awaiting::Sniff;
                }
                self.sniff_event(cidx);
            } else {
                self.finish_pending(cidx);
            }
            return;
        };
        let Some(tls) = new_server(config, peer) else {
            self.drop_handshaking(cidx);
            return;
        };
        let conn = &mut self.io.conns[cidx];
        conn.tls = Some(tls);
        if let Some(p) = conn.pending.as_mut() {
            p.awaiting = Awaiting::Tls;
        }
        self.tls_handshake_event(cidx);
    }

    fn tls_handshake_event(&mut self, cidx: usize) {
        let Some(conn) = self.io.conns.get_mut(cidx) else {
            return;
        };
        match conn.handshake() {
            None | Some(Handshake::Pending) => {}
            Some(Handshake::Failed(why)) => {
                log::info!("TLS handshake from {} failed: {why}", conn.peer_text());
                self.drop_handshaking(cidx);
            }
            Some(Handshake::Done) => self.finish_pending(cidx),
        }
    }

    /// Every stage is over: the listener's factory makes the session.
    fn finish_pending(&mut self, cidx: usize) {
        let Some(conn) = self.io.conns.get_mut(cidx) else {
            return;
        };
        let Some(pending) = conn.pending.take() else {
            return;
        };
        let tls = conn.tls.as_ref().and_then(|t| t.info.clone());
        // The handshake's bytes count as activity: the session's idle time starts now.
        conn.last_active = self.io.now;
        self.io.handshaking -= 1;
        self.io.timers.cancel(pending.timer);
        let Some(l) = self.listeners.get_mut(pending.listener) else {
            self.drop_handshaking(cidx);
            return;
        };
        let info = Accepted {
            listener: ListenerId(pending.listener),
            peer: pending.peer,
            local: pending.local,
            tls,
            sniffed: pending.sniffed,
        };
        let session = (l.factory)(&info);
        self.begin_session(cidx, session);
        self.settle();
    }

    /// The deadline of a connection's handshake passed: close it if it is still pending.
    pub(super) fn handshake_timed_out(&mut self, idx: usize, gen: u64) {
        let due = |c: &&Connection| c.gen == gen && c.session == HANDSHAKE;
        let Some(c) = self.io.conns.get(idx).filter(due) else {
            return;
        };
        let what = c
            .pending
            .as_ref()
            .map_or("handshake", |p| p.awaiting.what());
        let peer = c.peer_text();
        log::info!("{what} from {peer} timed out");
        self.drop_handshaking(idx);
    }

    /// Draining: every handshake under way gets `DRAIN_HANDSHAKE` more, and no longer.
    pub(super) fn hasten_handshakes(&mut self) {
        let at = self.io.now + DRAIN_HANDSHAKE;
        let shaking: Vec<(usize, u64)> = (self.io.conns.iter())
            .filter(|(_, c)| c.session == HANDSHAKE)
            .map(|(i, c)| (i, c.gen))
            .collect();
        for (idx, gen) in shaking {
            let timer = self.io.timers.add(
                at,
                Owner::Handshake {
                    idx: idx as u32,
                    gen,
                },
            );
            let Some(p) = self.io.conns.get_mut(idx).and_then(|c| c.pending.as_mut()) else {
                self.io.timers.cancel(timer);
                continue;
            };
            let old = std::mem::replace(&mut p.timer, timer);
            self.io.timers.cancel(old);
        }
    }

    /// Close a connection that failed or abandoned its handshake.
    pub(super) fn drop_handshaking(&mut self, cidx: usize) {
        if !self.io.conns.contains(cidx) {
            return;
        }
        let mut conn = self.io.conns.remove(cidx);
        if let Some(p) = conn.pending.take() {
            self.io.timers.cancel(p.timer);
            self.io.handshaking -= 1;
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
    }
}

fn new_server(config: Arc<rustls::ServerConfig>, peer: SocketAddr) -> Option<Box<Tls>> {
    match Tls::server(config) {
        Ok(t) => Some(Box::new(t)),
        Err(e) => {
            log::warn!("TLS from {peer}: cannot start a handshake: {e}");
            None
        }
    }
}

/// Peek at what the client sent; once a whole header is there, consume exactly its bytes.
fn read_proxy_header(stream: &TcpStream) -> HeaderStep {
    let mut buf = [0u8; PEEK_MAX];
    let n = loop {
        match stream.peek(&mut buf) {
            Ok(0) => return HeaderStep::Failed("closed before a whole header".into()),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HeaderStep::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return HeaderStep::Failed(format!("reading: {e}")),
        }
    };
    let (len, addrs) = match proxy_protocol::parse(&buf[..n]) {
        Ok(Parsed::Incomplete) => return HeaderStep::Waiting,
        Ok(Parsed::Done { header_len, addrs }) => (header_len, addrs),
        Err(e) => return HeaderStep::Failed(e.to_string()),
    };
    // The header's bytes are queued in the socket (just peeked): one read takes them.
    let mut taken = 0;
    while taken < len {
        match io::Read::read(&mut &*stream, &mut buf[taken..len]) {
            Ok(0) => return HeaderStep::Failed("closed inside the header".into()),
            Ok(k) => taken += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return HeaderStep::Failed(format!("reading: {e}")),
        }
    }
    HeaderStep::Done(addrs)
}
