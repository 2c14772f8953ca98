//! One HTTP/2 connection to an upstream server, shared by the calls of every client session
//! of the loop that goes to that server (`hub.rs` owns it; docs/architecture.md, "where a
//! frame goes upstream"). Its socket and pipes belong to the hub's session, which alone
//! reads and writes them; client sessions drive the sans-I/O `tether_h2::ClientConn`
//! (open streams, send DATA, give windows back) through the shared `MuxRef`, then ask the
//! hub to write (`flush`). What the server says comes back to each caller as events in its
//! mailbox (`mail`), with a wake. Streams open up to the server's MAX_CONCURRENT_STREAMS
//! (`has_room`; a full mux makes the caller take another). It is never parked in the
//! HTTP/1.1 keep-alive pool (`fresh` connects).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tether_core::{ConnId, Cx, PipeId, PipeOpts, SessionId, Sink, Source};
use tether_h2::{ClientConn, ClientEvent, ClientSettings, StreamId};

/// Bytes of frames the writer pipe holds before request DATA waits.
const WRITE_HIGH: usize = 256 * 1024;
/// Upstream bytes read ahead (the response windows bound what comes).
const READ_AHEAD: usize = 64 * 1024;

/// Who a call belongs to: the client session and its own number for the call (an HTTP/2
/// stream id, or an HTTP/1.1 session's request serial).
pub(crate) type Who = (SessionId, u32);

/// One upstream HTTP/2 connection.
pub(crate) struct UpMux {
    /// The hub's session, which owns the connection (woken by `flush`).
    pub hub: SessionId,
    /// The connection, once the hub started its connect.
    pub conn: Option<ConnId>,
    pub addr: SocketAddr,
    /// The PROXY protocol header sent first, if the pool sends one.
    pub header: Option<Vec<u8>>,
    /// TLS to the server (`protocol = "h2"`: ALPN `h2`).
    pub tls: Option<tether_core::tls::TlsClient>,
    pub h2: ClientConn,
    reader: Option<PipeId>,
    writer: Option<PipeId>,
    /// The TCP connect finished.
    pub connected: bool,
    /// The connection failed or closed: nothing more goes on it.
    pub dead: bool,
    /// The server's SETTINGS came: its MAX_CONCURRENT_STREAMS is known. Until then every
    /// stream waits here (a burst must not open a connection per 100 streams only because
    /// the limit is not known yet); then what does not fit moves to another connection.
    pub settings_seen: bool,
    /// Calls handed over and not opened yet (connecting, or Busy).
    pub waiting: Vec<Who>,
    /// Upstream stream → call.
    pub streams: HashMap<StreamId, Who>,
    /// Events for each caller, taken by its session when woken.
    pub mail: HashMap<SessionId, Vec<ClientEvent>>,
    /// The writer pipe is at its threshold: request DATA waits for the hub's drain.
    pub blocked: bool,
    /// A flush wake is queued for the hub.
    pub flush_queued: bool,
    /// The last time a stream used the connection (for the idle timeout).
    pub last_used: Instant,
    /// A keep-alive PING went out at this time and is not answered yet.
    pub ping_sent: Option<Instant>,
    /// When the connect finished (a server whose SETTINGS do not come fails in time).
    pub connected_at: Option<Instant>,
}

impl UpMux {
    pub fn new(hub: SessionId, addr: SocketAddr, header: Option<Vec<u8>>, now: Instant) -> UpMux {
        UpMux {
            hub,
            conn: None,
            addr,
            header,
            tls: None,
            h2: ClientConn::new(ClientSettings::default()),
            reader: None,
            writer: None,
            connected: false,
            dead: false,
            settings_seen: false,
            waiting: Vec::new(),
            streams: HashMap::new(),
            mail: HashMap::new(),
            blocked: false,
            flush_queued: false,
            last_used: now,
            ping_sent: None,
            connected_at: None,
        }
    }

    /// Another stream may be handed over: any number before the server's SETTINGS came,
    /// then up to its MAX_CONCURRENT_STREAMS.
    pub fn has_room(&self) -> bool {
        !self.dead
            && !self.h2.is_going_away()
            && (!self.settings_seen || self.waiting.len() < self.h2.available_streams())
    }

    /// The calls of session `me` that wait and that this connection will not open soon
    /// (its server's limit reached after its SETTINGS, or it goes away): they belong on
    /// another connection.
    pub fn overflow(&mut self, me: SessionId) -> Vec<u32> {
        let full = self.settings_seen && self.h2.available_streams() == 0;
        if !(full || self.h2.is_going_away() || self.dead) {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.waiting.retain(|&(s, c)| {
            if s == me {
                out.push(c);
            }
            s != me
        });
        out
    }

    pub fn owns_pipe(&self, p: PipeId) -> bool {
        self.reader == Some(p) || self.writer == Some(p)
    }

    /// The connect finished (in the hub's session): the pipes open and the preface goes
    /// first.
    pub fn connected(&mut self, cx: &mut Cx<'_>) {
        let Some(conn) = self.conn else { return };
        self.connected = true;
        self.connected_at = Some(cx.now());
        let write = PipeOpts {
            threshold: WRITE_HIGH,
            ..PipeOpts::default()
        };
        self.writer = Some(cx.pipe_with(Source::Session, Sink::Conn(conn), write));
        let read = PipeOpts {
            threshold: READ_AHEAD,
            ..PipeOpts::default()
        };
        self.reader = Some(cx.pipe_with(Source::Conn(conn), Sink::Session, read));
        self.write(cx);
    }

    /// The writer has room for request DATA.
    pub fn can_write(&self) -> bool {
        self.writer.is_some() && !self.blocked
    }

    /// Write the frames the connection queued (in the hub's session).
    pub fn write(&mut self, cx: &mut Cx<'_>) {
        let Some(w) = self.writer else { return };
        if self.h2.has_output() {
            for b in self.h2.take_output() {
                cx.push(w, b);
            }
        }
        self.blocked = cx.is_full(w);
    }

    /// Ask the hub to write what the client sessions queued (from any session).
    pub fn flush(&mut self, cx: &mut Cx<'_>) {
        if !self.flush_queued && (self.h2.has_output() || self.conn.is_none()) {
            self.flush_queued = cx.wake(self.hub, super::hub::KEY_FLUSH);
        }
    }

    /// The server's bytes, as events (in the hub's session).
    pub fn read(&mut self, cx: &mut Cx<'_>) -> Vec<ClientEvent> {
        let Some(r) = self.reader else {
            return Vec::new();
        };
        let mut events = Vec::new();
        while let Some(b) = cx.take(r) {
            events.extend(self.h2.receive(&b));
        }
        self.settings_seen |= (events.iter()).any(|e| matches!(e, ClientEvent::Settings { .. }));
        events
    }

    /// Open a stream for call `who` (`Err`: not now, see `RequestError`).
    pub fn open(
        &mut self,
        who: Who,
        fields: &[(Bytes, Bytes)],
        end: bool,
    ) -> Result<StreamId, tether_h2::RequestError> {
        let list: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let id = self.h2.send_request(&list, end)?;
        self.streams.insert(id, who);
        Ok(id)
    }

    /// Call `who` no longer wants upstream stream `id` (if any): reset it.
    pub fn cancel(&mut self, cx: &mut Cx<'_>, who: Who, id: Option<StreamId>) {
        self.waiting.retain(|&w| w != who);
        if let Some(id) = id {
            if self.streams.get(&id) == Some(&who) {
                self.streams.remove(&id);
                self.h2.reset(id, tether_h2::ErrorCode::Cancel);
            }
        }
        self.flush(cx);
    }

    /// The events waiting for session `me`.
    pub fn take_mail(&mut self, me: SessionId) -> Vec<ClientEvent> {
        self.mail.remove(&me).unwrap_or_default()
    }

    /// Whether session `me` has a call here (waiting or open).
    pub fn used_by(&self, me: SessionId) -> bool {
        self.waiting.iter().any(|w| w.0 == me) || self.streams.values().any(|w| w.0 == me)
    }

    /// No stream uses the connection and none waits.
    pub fn is_unused(&self) -> bool {
        self.streams.is_empty() && self.waiting.is_empty() && self.h2.is_idle()
    }

    /// Close the connection (its GOAWAY, if one is queued, goes first; in the hub's
    /// session).
    pub fn close(&mut self, cx: &mut Cx<'_>) {
        self.dead = true;
        self.write(cx);
        if let Some(r) = self.reader.take() {
            cx.close_pipe(r);
        }
        match (self.writer.take(), self.conn) {
            (Some(w), _) => cx.end(w),
            (None, Some(c)) => cx.close_conn(c),
            (None, None) => {}
        }
    }
}
