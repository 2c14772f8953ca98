//! The availability feed on `/` as WebSocket, without sockets: the proxy owns the
//! connection and its event loop, this module owns the bytes. Built on tungstenite's own
//! protocol code: `derive_accept_key` for the handshake, `Frame` for encoding, and a
//! server-role `WebSocketContext` over in-memory buffers for the client's frames (masked
//! text/binary are logged and ignored, a ping gets its pong, a close gets its reply, a
//! protocol error or an oversized frame gets a close 1002/1009).
//!
//! A feed connection's life, driven by the proxy:
//! 1. `check_upgrade(headers)` → `Some(key)`: write `handshake_response(&key)`.
//! 2. `broker.open_feed(peer, waker)` → (`FeedSocket`, `SubscriptionId`); write
//!    `take_output()`: the `1`/`0`, or nothing yet while the broker's first polling round
//!    still waits for a server (`Broker::feed_value` is `None`: the first frame is held).
//! 3. Bytes from the client → `receive(bytes)`; write `take_output()` (pongs, close reply).
//! 4. The broker's waker fired → `update(broker.feed_value())`; write `take_output()`.
//! 5. `state() == Closed` and the output written → close the connection
//!    (`broker.unsubscribe(id)`).

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Bytes, Error, Message};

use crate::broker::{Broker, SubscriptionId};

/// The largest frame or message a feed client may send (it has nothing to say).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(sec_websocket_key: &str) -> String {
    derive_accept_key(sec_websocket_key.trim().as_bytes())
}

/// Why an upgrade request cannot be accepted; the status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeError {
    /// `Sec-WebSocket-Version` is not 13: answer 426 with `Sec-WebSocket-Version: 13`.
    Version,
    /// No `Sec-WebSocket-Key`: answer 400.
    MissingKey,
}

impl UpgradeError {
    pub fn status(self) -> u16 {
        match self {
            UpgradeError::Version => 426,
            UpgradeError::MissingKey => 400,
        }
    }
}

/// Look at a request's headers (name, value): `Ok(None)` for a plain request (answer the
/// plain `1`/`0`), `Ok(Some(key))` for a WebSocket upgrade to accept, `Err` for a broken one.
pub fn check_upgrade<'h, I>(headers: I) -> Result<Option<String>, UpgradeError>
where
    I: IntoIterator<Item = (&'h str, &'h [u8])>,
{
    let (mut upgrade, mut connection, mut version, mut key) = (false, false, None, None);
    let has_token = |v: &[u8], token: &str| {
        String::from_utf8_lossy(v)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(String::from_utf8_lossy(value).trim().to_string());
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(String::from_utf8_lossy(value).trim().to_string());
        }
    }
    if !(upgrade && connection) {
        return Ok(None);
    }
    if version.as_deref() != Some("13") {
        return Err(UpgradeError::Version);
    }
    match key.filter(|k| !k.is_empty()) {
        Some(k) => Ok(Some(k)),
        None => Err(UpgradeError::MissingKey),
    }
}

/// The `101 Switching Protocols` head for a client's key.
pub fn handshake_response(sec_websocket_key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(sec_websocket_key)
    )
}

fn encode(frame: Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len());
    // Formatting into a Vec cannot fail (its Write never errs).
    if frame.format(&mut out).is_err() {
        out.clear();
    }
    out
}

/// A server text frame (unmasked, final).
pub fn text_frame(text: &str) -> Vec<u8> {
    let payload = Bytes::copy_from_slice(text.as_bytes());
    encode(Frame::message(payload, OpCode::Data(Data::Text), true))
}

/// The feed's message: `1` when some server is available, else `0`.
pub fn availability_frame(available: bool) -> Vec<u8> {
    text_frame(if available { "1" } else { "0" })
}

/// A server close frame with a status code and reason.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    encode(Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })))
}

/// Where a feed connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    Open,
    /// We sent a close; the client's reply is awaited (the proxy may also time out).
    Closing,
    /// Done: write what `take_output` returns, then close the connection.
    Closed,
}

/// In-memory stream under the WebSocket context: reads what the proxy received, collects
/// what it must send. An empty input is `WouldBlock` (not end of stream).
#[derive(Default)]
struct Buffers {
    input: VecDeque<u8>,
    output: Vec<u8>,
}

impl Read for Buffers {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Buffers {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One client of the availability feed, after the 101.
pub struct FeedSocket {
    ctx: WebSocketContext,
    io: Buffers,
    peer: String,
    last_sent: Option<bool>,
    state: FeedState,
}

impl FeedSocket {
    /// A feed for `peer` (named in logs) with the opening `1`/`0` already queued, or
    /// nothing queued for `None` (held: the first `update` with a value sends it).
    /// Takes `broker.feed_value()` (or a plain `bool`).
    pub fn new(peer: &str, available: impl Into<Option<bool>>) -> FeedSocket {
        let config = WebSocketConfig::default()
            .max_frame_size(Some(MAX_CLIENT_MESSAGE))
            .max_message_size(Some(MAX_CLIENT_MESSAGE));
        let mut feed = FeedSocket {
            ctx: WebSocketContext::new(Role::Server, Some(config)),
            io: Buffers::default(),
            peer: peer.to_string(),
            last_sent: None,
            state: FeedState::Open,
        };
        log::info!("[{peer}] New client");
        feed.update(available);
        feed
    }

    pub fn state(&self) -> FeedState {
        self.state
    }

    /// Queue the availability if it differs from what this client last got. True if
    /// queued. `None` (not known yet: `Broker::feed_value` during the first round) queues
    /// nothing.
    pub fn update(&mut self, available: impl Into<Option<bool>>) -> bool {
        let Some(available) = available.into() else {
            return false;
        };
        if self.state != FeedState::Open || self.last_sent == Some(available) {
            return false;
        }
        let text = if available { "1" } else { "0" };
        match self.ctx.write(&mut self.io, Message::text(text)) {
            Ok(()) => {}
            Err(e) => {
                log::warn!("[{}] cannot queue {text}: {e}", self.peer);
                return false;
            }
        }
        self.flush();
        self.last_sent = Some(available);
        true
    }

    /// Take bytes the client sent; parse every complete frame; queue the answers.
    pub fn receive(&mut self, bytes: &[u8]) -> FeedState {
        if self.state == FeedState::Closed {
            return self.state;
        }
        self.io.input.extend(bytes);
        loop {
            match self.ctx.read(&mut self.io) {
                Ok(Message::Text(t)) => {
                    log::info!("[{}] Ignored client message: {}", self.peer, t.as_str());
                }
                Ok(Message::Binary(b)) => {
                    log::info!(
                        "[{}] Ignored binary client message ({} bytes)",
                        self.peer,
                        b.len()
                    );
                }
                Ok(Message::Close(_)) => log::info!("[{}] Client disconnected", self.peer),
                Ok(_) => {} // ping (the pong is queued), pong, raw frame
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(Error::ConnectionClosed) | Err(Error::AlreadyClosed) => {
                    self.state = FeedState::Closed;
                    break;
                }
                Err(e) => {
                    let code = match e {
                        Error::Capacity(_) => 1009,
                        Error::Utf8(_) => 1007,
                        _ => 1002,
                    };
                    log::warn!("[{}] WebSocket error ({e}): closing with {code}", self.peer);
                    self.close(code, "");
                    self.state = FeedState::Closed;
                    break;
                }
            }
        }
        self.flush();
        self.io.input.clear();
        self.state
    }

    /// Start closing from our side (e.g. 1001 when the proxy shuts down).
    pub fn close(&mut self, code: u16, reason: &str) {
        if self.state != FeedState::Open {
            return;
        }
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if let Err(e) = self.ctx.close(&mut self.io, Some(frame)) {
            log::debug!("[{}] close: {e}", self.peer);
        }
        self.flush();
        self.state = FeedState::Closing;
    }

    pub fn has_output(&self) -> bool {
        !self.io.output.is_empty()
    }

    /// The bytes to write to the client now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.io.output)
    }

    fn flush(&mut self) {
        match self.ctx.flush(&mut self.io) {
            Ok(()) | Err(Error::ConnectionClosed) | Err(Error::AlreadyClosed) => {}
            Err(e) => log::debug!("[{}] flush: {e}", self.peer),
        }
    }
}

impl std::fmt::Debug for FeedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSocket")
            .field("peer", &self.peer)
            .field("state", &self.state)
            .field("last_sent", &self.last_sent)
            .field("pending_output", &self.io.output.len())
            .finish()
    }
}

impl Broker {
    /// Start a feed client: subscribe `waker` (called from the poller thread when
    /// `feed_value` changes; keep it short, e.g. `mio::Waker::wake`), then make its
    /// `FeedSocket` from `feed_value()` — in that order, so no change is missed between the
    /// two. Write the socket's `take_output()` (empty while the first frame is held); on
    /// each wake call `socket.update(broker.feed_value())`; `unsubscribe(id)` at the end.
    pub fn open_feed(
        &self,
        peer: &str,
        waker: Box<dyn Fn() + Send + Sync>,
    ) -> (FeedSocket, SubscriptionId) {
        let id = self.subscribe(waker);
        (FeedSocket::new(peer, self.feed_value()), id)
    }
}
