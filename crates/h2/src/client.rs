//! The client side of one HTTP/2 connection (to an upstream), sans I/O, for the loop to
//! drive like every other connection, over TLS (ALPN `h2`) or h2c with prior knowledge:
//!
//! ```text
//! ClientConn::new(settings)            queues the preface + SETTINGS (+ connection window)
//! send_request(fields, end) -> id      HEADERS on a new odd stream (Busy at the server's
//!                                      MAX_CONCURRENT_STREAMS, GoingAway after its GOAWAY)
//! send_data(id, &mut bytes, end)       DATA within the stream's and the connection's
//!                                      windows; what is left stays in `bytes` (`sendable`)
//! send_trailers(id, fields)            trailers, ending our side
//! receive(&[u8]) -> Vec<ClientEvent>   the server's frames: Headers, Data, Trailers, Reset,
//!                                      GoAway (with the retryable streams), Settings,
//!                                      WindowOpened, Ping (our ping answered), Error
//! consumed(id, n)                      the caller passed n body bytes on: WINDOW_UPDATEs
//! ping() / reset(id, code) / go_away()
//! take_output() -> Vec<Bytes>          the frames to write, in order (one `writev`)
//! ```
//!
//! Driven from the loop (the proxy's upstream side; nothing here blocks or reads a clock):
//!
//! - connect (plain for h2c; TLS with ALPN `["h2"]` offered, and `h2` checked as
//!   negotiated), make a `ClientConn`, write `take_output()` (the preface goes first);
//! - on readable: read, `receive(&buf)`, handle the events, then write `take_output()`
//!   (SETTINGS/PING acks, WINDOW_UPDATEs); on writable: write what is left;
//! - a request: `can_open()` picks a pooled connection with room (else `Busy` → queue the
//!   request or open another connection up to a limit); `send_request`, then the body with
//!   `send_data` whenever the client's pipe has bytes *and* `sendable(id) > 0`; keep the
//!   unsent rest in the pipe (a full pipe stops reading the client: that is the end-to-end
//!   backpressure) and retry on `WindowOpened`; `send_trailers` for gRPC;
//! - response body: `Data` goes to the client's sink; call `consumed(id, n)` only when the
//!   sink took the bytes, so a slow client slows the backend through both windows;
//! - `GoAway { retryable, .. }`: send those requests again on another connection (their
//!   bodies must still be at hand: buffer a request body until the response head comes, or
//!   retry only bodiless/replayable requests); `Reset { retryable: true }` likewise;
//! - a timer: `is_idle()` for long → `ping()`; `pings_outstanding() > 0` past a timeout →
//!   close; `is_going_away() && is_idle()` → close; `Error` → write the GOAWAY and close.
//!
//! Files of this module (one concept, so they share the connection's fields): `client.rs`
//! (types, construction, queries), `client/recv.rs` (frames in), `client/send.rs` (frames
//! out). Nothing here panics on a server's bytes.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::error::{ErrorCode, H2Error};
use crate::frame;
use crate::headers::HeaderDecoder;
use crate::hpack_enc::HeaderEncoder;

mod recv;
mod send;
#[cfg(test)]
mod tests;

/// A stream's id (odd: the client opens them).
pub type StreamId = u32;

/// What the client tells the server of itself, and its own limits.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The window each stream starts with for the server's response body (a slow consumer
    /// holds the server to this much per stream).
    pub initial_window: u32,
    /// The connection's window for all response bodies together.
    pub conn_window: u32,
    /// The largest frame accepted from the server.
    pub max_frame_size: u32,
    /// The largest decoded response head or trailers (the stream is reset past it).
    pub max_header_list: usize,
    /// The largest header block (HEADERS + CONTINUATION bytes) before GOAWAY.
    pub max_header_block: usize,
    /// How many streams to open before the server's SETTINGS say how many it takes
    /// (RFC 9113 leaves it unlimited; 100 is what the RFC recommends servers allow).
    pub assumed_max_streams: u32,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings {
            initial_window: 256 * 1024,
            conn_window: 1024 * 1024,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list: 64 * 1024,
            max_header_block: 64 * 1024,
            assumed_max_streams: 100,
        }
    }
}

/// What the server's bytes meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response head: an interim one (`status` 1xx, more heads follow) or the final one.
    /// `fields` are the regular fields (`:status` is taken out).
    Headers {
        id: StreamId,
        status: u16,
        fields: Vec<(Bytes, Bytes)>,
        end: bool,
    },
    /// Response body bytes; give them back with `consumed` once passed on.
    Data {
        id: StreamId,
        bytes: Bytes,
        end: bool,
    },
    /// Trailers: the response is over.
    Trailers {
        id: StreamId,
        fields: Vec<(Bytes, Bytes)>,
    },
    /// The stream is gone (the server reset it, or its response broke the rules and we
    /// reset it). `retryable`: REFUSED_STREAM, the server did no work for it (RFC 9113 §8.7).
    /// NO_ERROR after a complete response means "stop sending the request body".
    Reset {
        id: StreamId,
        code: ErrorCode,
        retryable: bool,
    },
    /// The server goes away: no new streams on this connection. The streams in
    /// `retryable` (ids above `last_stream_id`) were never processed and are closed here:
    /// send them again elsewhere. Streams up to `last_stream_id` go on.
    GoAway {
        last_stream_id: StreamId,
        code: ErrorCode,
        retryable: Vec<StreamId>,
    },
    /// The server's SETTINGS were applied (how many streams it takes now).
    Settings { max_concurrent_streams: u32 },
    /// Windows grew: streams waiting in `send_data` may go on.
    WindowOpened,
    /// The answer to our `ping` (the connection is alive).
    Ping { data: [u8; 8] },
    /// The connection failed (a GOAWAY of ours is queued): flush the output and close.
    /// Every open stream is lost (whether the server processed them is unknown).
    Error(H2Error),
}

/// Why a request could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The server's MAX_CONCURRENT_STREAMS is reached: wait for a stream to end (or use
    /// another connection).
    Busy,
    /// This connection takes no new streams (GOAWAY either way, failed, or stream ids
    /// used up): open another connection.
    GoingAway,
    /// The HPACK encoder failed (the connection is failed with it).
    Compression,
    /// The head is larger than the server's SETTINGS_MAX_HEADER_LIST_SIZE (a proxy
    /// answers 431); nothing was sent.
    TooLarge,
}

/// Why a send on a stream was not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// No such stream open our way (it ended, the server reset it, or it was retried).
    Closed,
    /// The HPACK encoder failed (trailers only; the connection is failed with it).
    Compression,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Preface sent: the server's first frame must be SETTINGS.
    WaitSettings,
    Open,
    /// The server sent GOAWAY, or we did: no new streams.
    Draining,
    /// A connection error: nothing more is read.
    Failed,
}

/// A request stream, while it is open in at least one direction.
#[derive(Debug)]
struct CStream {
    /// We may still send (request body, trailers).
    local_open: bool,
    /// The server may still send.
    remote_open: bool,
    /// The final (non-1xx) response head arrived: the next block is trailers.
    final_head: bool,
    /// Some response head arrived (the server processed the request).
    answered: bool,
    /// What we may still send (the server's window for this stream).
    send_window: i64,
    /// What the server may still send before we give more.
    recv_window: i64,
    /// Body bytes consumed and not given back yet.
    unacked: u32,
    /// A HEAD request: a response's `content-length` promises no body.
    head_request: bool,
    /// The final response's `content-length` (checked against the DATA received).
    content_length: Option<u64>,
    /// Response body bytes received.
    received: u64,
}

/// A header block being received over HEADERS and CONTINUATION frames.
struct Block {
    stream: StreamId,
    buf: BytesMut,
    end_stream: bool,
    kind: BlockKind,
}

/// What a header block being received is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// A response head (interim or final).
    Head,
    Trailers,
    /// A stream we closed or reset: decoded only to keep HPACK in step, then dropped.
    Ignored,
}

/// What the server told us of itself.
struct PeerSettings {
    max_concurrent_streams: u32,
    initial_window: u32,
    max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, if the server gave one.
    max_header_list: Option<u32>,
}

/// One HTTP/2 connection, client side.
pub struct ClientConn {
    cfg: ClientSettings,
    phase: Phase,
    encoder: HeaderEncoder,
    decoder: HeaderDecoder,
    /// Open streams by id (ordered: a GOAWAY's retryable set is a range).
    streams: BTreeMap<StreamId, CStream>,
    /// The id the next request gets.
    next_id: StreamId,
    /// The last-stream-id of the server's GOAWAY, if one came.
    goaway: Option<StreamId>,
    peer: PeerSettings,
    conn_send: i64,
    conn_recv: i64,
    conn_unacked: u32,
    block: Option<Block>,
    /// Bytes received and not yet a whole frame.
    input: BytesMut,
    out: BytesMut,
    queue: Vec<Bytes>,
    /// PINGs sent and not answered yet.
    pings_out: u32,
    ping_seq: u64,
}

impl ClientConn {
    /// A connection that has queued the preface, its SETTINGS and its connection window.
    pub fn new(cfg: ClientSettings) -> ClientConn {
        let mut out = BytesMut::with_capacity(128);
        out.extend_from_slice(frame::PREFACE);
        let max_frame = cfg
            .max_frame_size
            .clamp(frame::DEFAULT_MAX_FRAME_SIZE, frame::MAX_MAX_FRAME_SIZE);
        let initial = cfg.initial_window.min(frame::MAX_WINDOW);
        frame::put_settings(
            &mut out,
            &[
                (frame::SETTINGS_ENABLE_PUSH, 0),
                (frame::SETTINGS_INITIAL_WINDOW_SIZE, initial),
                (frame::SETTINGS_MAX_FRAME_SIZE, max_frame),
                (
                    frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                    cfg.max_header_list.min(u32::MAX as usize) as u32,
                ),
            ],
        );
        let default = frame::DEFAULT_WINDOW;
        let conn_window = cfg.conn_window.clamp(default, frame::MAX_WINDOW);
        if conn_window > default {
            frame::put_window_update(&mut out, 0, conn_window - default);
        }
        let cfg = ClientSettings {
            initial_window: initial,
            conn_window,
            max_frame_size: max_frame,
            ..cfg
        };
        ClientConn {
            phase: Phase::WaitSettings,
            encoder: HeaderEncoder::new(),
            decoder: HeaderDecoder::new(cfg.max_header_list),
            streams: BTreeMap::new(),
            next_id: 1,
            goaway: None,
            peer: PeerSettings {
                max_concurrent_streams: cfg.assumed_max_streams,
                initial_window: default,
                max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
                max_header_list: None,
            },
            conn_send: default as i64,
            conn_recv: conn_window as i64,
            conn_unacked: 0,
            block: None,
            input: BytesMut::new(),
            out,
            queue: Vec::new(),
            pings_out: 0,
            ping_seq: 0,
            cfg,
        }
    }

    /// No stream is open: the connection may be pooled, pinged, or closed when idle long.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.block.is_none()
    }

    /// New requests may be opened now (not Busy, not going away).
    pub fn can_open(&self) -> bool {
        self.takes_new_streams() && self.streams.len() < self.peer.max_concurrent_streams as usize
    }

    /// How many more streams the server takes now.
    pub fn available_streams(&self) -> usize {
        if !self.takes_new_streams() {
            return 0;
        }
        (self.peer.max_concurrent_streams as usize).saturating_sub(self.streams.len())
    }

    /// The streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// No new streams will be taken (GOAWAY received or sent, or failed): once idle, close.
    pub fn is_going_away(&self) -> bool {
        !self.takes_new_streams()
    }

    /// A connection error happened: flush the output and close.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// PINGs sent and not answered (a keep-alive that stays unanswered past its timeout
    /// means a dead connection).
    pub fn pings_outstanding(&self) -> u32 {
        self.pings_out
    }

    /// The server's MAX_CONCURRENT_STREAMS (the assumed value until its SETTINGS came).
    pub fn max_concurrent_streams(&self) -> u32 {
        self.peer.max_concurrent_streams
    }

    /// Frames are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.queue.is_empty()
    }

    /// The bytes to write, in order (for one `writev`); DATA payloads share the caller's
    /// `Bytes`.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        self.flush_control();
        std::mem::take(&mut self.queue)
    }

    fn takes_new_streams(&self) -> bool {
        matches!(self.phase, Phase::WaitSettings | Phase::Open) && self.next_id <= frame::MAX_WINDOW
    }

    /// Move the control frames written so far into the queue, before a DATA payload.
    fn flush_control(&mut self) {
        if !self.out.is_empty() {
            let frames = std::mem::replace(&mut self.out, BytesMut::with_capacity(64));
            self.queue.push(frames.freeze());
        }
    }

    /// A connection error of ours: GOAWAY queued, nothing more is read.
    fn fail(&mut self, e: H2Error, events: &mut Vec<ClientEvent>) {
        if self.phase != Phase::Failed {
            let code = match &e {
                H2Error::Connection(code, _) => *code,
                H2Error::Stream(_, code, _) => *code,
            };
            frame::put_goaway(&mut self.out, 0, code);
            self.phase = Phase::Failed;
            events.push(ClientEvent::Error(e));
        }
    }
}
