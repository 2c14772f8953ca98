//! One HTTP/2 connection to an upstream server, shared by the streams of a client session:
//! a `tether_h2::ClientConn` driven by the loop through two pipes (writer: session → socket,
//! reader: socket → session), like every other connection. Streams are handed to it as
//! header lists; it opens them up to the server's MAX_CONCURRENT_STREAMS (`has_room`; a full
//! mux makes the caller open another), and says which client stream an upstream stream
//! stands for. It is never parked in the HTTP/1.1 keep-alive pool (`fresh` connects).

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use tether_core::{ConnId, Cx, PipeId, PipeOpts, Sink, Source};
use tether_h2::{ClientConn, ClientEvent, ClientSettings, StreamId};

/// Bytes of frames the writer pipe holds before request DATA waits.
const WRITE_HIGH: usize = 256 * 1024;
/// Upstream bytes read ahead (the response windows bound what comes).
const READ_AHEAD: usize = 64 * 1024;

/// One upstream HTTP/2 connection.
pub(crate) struct UpMux {
    pub conn: ConnId,
    pub addr: SocketAddr,
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
    /// Client streams handed over and not opened yet (connecting, or Busy).
    pub waiting: Vec<u32>,
    /// Upstream stream → client stream.
    pub streams: HashMap<StreamId, u32>,
}

impl UpMux {
    pub fn new(conn: ConnId, addr: SocketAddr) -> UpMux {
        UpMux {
            conn,
            addr,
            h2: ClientConn::new(ClientSettings::default()),
            reader: None,
            writer: None,
            connected: false,
            dead: false,
            settings_seen: false,
            waiting: Vec::new(),
            streams: HashMap::new(),
        }
    }

    /// Another stream may be handed over: any number before the server's SETTINGS came,
    /// then up to its MAX_CONCURRENT_STREAMS.
    pub fn has_room(&self) -> bool {
        !self.dead
            && !self.h2.is_going_away()
            && (!self.settings_seen || self.waiting.len() < self.h2.available_streams())
    }

    /// Streams wait that this connection will not open soon (its server's limit reached
    /// after its SETTINGS, or it goes away): they belong on another connection.
    pub fn overflow(&mut self) -> Vec<u32> {
        let full = self.settings_seen && self.h2.available_streams() == 0;
        if (full || self.h2.is_going_away() || self.dead) && !self.waiting.is_empty() {
            std::mem::take(&mut self.waiting)
        } else {
            Vec::new()
        }
    }

    pub fn owns_pipe(&self, p: PipeId) -> bool {
        self.reader == Some(p) || self.writer == Some(p)
    }

    /// The connect finished: the pipes open and the preface goes first.
    pub fn connected(&mut self, cx: &mut Cx<'_>) {
        self.connected = true;
        let write = PipeOpts {
            threshold: WRITE_HIGH,
            ..PipeOpts::default()
        };
        self.writer = Some(cx.pipe_with(Source::Session, Sink::Conn(self.conn), write));
        let read = PipeOpts {
            threshold: READ_AHEAD,
            ..PipeOpts::default()
        };
        self.reader = Some(cx.pipe_with(Source::Conn(self.conn), Sink::Session, read));
        self.write(cx);
    }

    /// The writer has room for request DATA.
    pub fn can_write(&self, cx: &Cx<'_>) -> bool {
        self.writer.is_some_and(|w| !cx.is_full(w))
    }

    /// Write the frames the connection queued.
    pub fn write(&mut self, cx: &mut Cx<'_>) {
        let Some(w) = self.writer else { return };
        if self.h2.has_output() {
            for b in self.h2.take_output() {
                cx.push(w, b);
            }
        }
    }

    /// The server's bytes, as events.
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

    /// Open a stream for client stream `client` (`Err`: not now, see `RequestError`).
    pub fn open(
        &mut self,
        client: u32,
        fields: &[(Bytes, Bytes)],
        end: bool,
    ) -> Result<StreamId, tether_h2::RequestError> {
        let list: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let id = self.h2.send_request(&list, end)?;
        self.streams.insert(id, client);
        Ok(id)
    }

    /// Client stream `client` no longer wants upstream stream `id` (if any): reset it.
    pub fn cancel(&mut self, cx: &mut Cx<'_>, client: u32, id: Option<StreamId>) {
        self.waiting.retain(|&c| c != client);
        if let Some(id) = id {
            if self.streams.remove(&id).is_some() {
                self.h2.reset(id, tether_h2::ErrorCode::Cancel);
            }
        }
        self.write(cx);
    }

    /// No stream uses the connection and none waits.
    pub fn is_unused(&self) -> bool {
        self.streams.is_empty() && self.waiting.is_empty() && self.h2.is_idle()
    }

    /// Close the connection (its GOAWAY, if one is queued, goes first).
    pub fn close(&mut self, cx: &mut Cx<'_>) {
        self.dead = true;
        self.write(cx);
        if let Some(r) = self.reader.take() {
            cx.close_pipe(r);
        }
        match self.writer.take() {
            Some(w) => cx.end(w),
            None => cx.close_conn(self.conn),
        }
    }
}
