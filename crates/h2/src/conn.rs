//! The server side of one HTTP/2 connection, sans I/O: bytes from the client go in
//! (`Conn::recv`), events come out (a request, body data, trailers, a reset), and the
//! application answers with `send_headers` / `send_data` / `reset`; the frames to write are
//! taken with `take_output`. Flow control is kept both ways: the client never gets more
//! window than the application has consumed (`consumed`), and `send_data` never sends past
//! the client's windows. The limits of `Config` make the known attacks cost the client:
//! rapid reset (resets per second, then GOAWAY ENHANCE_YOUR_CALM), CONTINUATION floods
//! (block bytes and frames), HPACK bombs (decoded size), SETTINGS/PING/PRIORITY floods
//! (control frames per second), and stream-id misuse (PROTOCOL_ERROR).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{ErrorCode, H2Error};
use crate::frame::{self, Frame, FrameHeader};
use crate::headers::{HeaderDecoder, RequestHead};
use crate::stream::{RateLimit, Stream, StreamState};

mod blocks;
mod send;

pub use send::SendError;

/// The limits and windows of a connection.
#[derive(Clone, Debug)]
pub struct Config {
    pub max_concurrent_streams: u32,
    /// The window each stream starts with for the client's body.
    pub initial_window: u32,
    /// The connection's window for all bodies together.
    pub conn_window: u32,
    /// The largest frame accepted.
    pub max_frame_size: u32,
    /// The largest decoded header list (431 past it).
    pub max_header_list: usize,
    /// The largest header block (HEADERS + CONTINUATION bytes) before GOAWAY.
    pub max_header_block: usize,
    /// The most frames in one header block before GOAWAY.
    pub max_block_frames: u32,
    /// Resets (received, or caused by the client's errors) per second before GOAWAY.
    pub max_resets_per_sec: u32,
    /// SETTINGS, PING, PRIORITY, WINDOW_UPDATE and empty DATA frames per second.
    pub max_control_per_sec: u32,
    /// RFC 8441 extended CONNECT (`:protocol`).
    pub connect_protocol: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_streams: 128,
            initial_window: 256 * 1024,
            conn_window: 1024 * 1024,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list: 64 * 1024,
            max_header_block: 64 * 1024,
            max_block_frames: 64,
            max_resets_per_sec: 100,
            max_control_per_sec: 1000,
            connect_protocol: false,
        }
    }
}

/// What the client's bytes meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Request {
        stream: u32,
        head: RequestHead,
        end_stream: bool,
    },
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    Trailers {
        stream: u32,
        fields: Vec<(Bytes, Bytes)>,
    },
    /// A request refused before it became one: answer it with this status (431).
    Refused { stream: u32, status: u16 },
    /// The stream is gone (the client reset it, or broke its rules): drop its work.
    Reset { stream: u32, code: ErrorCode },
    /// The client's windows grew: streams waiting to send may go on.
    WindowOpened,
    /// The client is going away: no stream above `last_stream` will be answered.
    GoAway { last_stream: u32, code: ErrorCode },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the 24-byte preface.
    Preface,
    /// Preface read: the next frame must be SETTINGS.
    FirstSettings,
    Open,
    /// GOAWAY sent: streams up to `last_stream` finish, later ones are refused.
    Draining,
}

/// A header block being received over HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    buf: BytesMut,
    end_stream: bool,
    frames: u32,
    kind: BlockKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Request,
    Trailers,
    /// Decoded only to keep HPACK in step, then dropped (a refused or closed stream).
    Ignored,
}

/// What the client told us of itself.
struct PeerSettings {
    initial_window: u32,
    max_frame_size: u32,
}

/// One HTTP/2 connection, server side.
pub struct Conn {
    cfg: Config,
    phase: Phase,
    decoder: HeaderDecoder,
    streams: HashMap<u32, Stream>,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// Streams we reset recently: frames in flight for them are dropped quietly.
    reset_recently: VecDeque<u32>,
    /// Stream ids the client skipped (never opened), as ranges of odd ids.
    skipped: VecDeque<std::ops::RangeInclusive<u32>>,
    peer: PeerSettings,
    conn_send: i64,
    /// The largest connection send window granted so far (see `Stream::send_high`).
    conn_send_high: i64,
    conn_recv: i64,
    conn_unacked: u32,
    block: Option<Block>,
    out: BytesMut,
    queue: Vec<Bytes>,
    resets: RateLimit,
    control: RateLimit,
}

const RESET_MEMORY: usize = 64;

impl Conn {
    /// A connection that has sent its SETTINGS (and the connection window) already.
    pub fn new(cfg: Config) -> Conn {
        let mut out = BytesMut::with_capacity(64);
        let mut settings = vec![
            (
                frame::SETTINGS_MAX_CONCURRENT_STREAMS,
                cfg.max_concurrent_streams,
            ),
            (frame::SETTINGS_INITIAL_WINDOW_SIZE, cfg.initial_window),
            (frame::SETTINGS_MAX_FRAME_SIZE, cfg.max_frame_size),
            (
                frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                cfg.max_header_list as u32,
            ),
            (frame::SETTINGS_ENABLE_PUSH, 0),
        ];
        if cfg.connect_protocol {
            settings.push((frame::SETTINGS_ENABLE_CONNECT_PROTOCOL, 1));
        }
        frame::put_settings(&mut out, &settings);
        let default = frame::DEFAULT_WINDOW;
        if cfg.conn_window > default {
            frame::put_window_update(&mut out, 0, cfg.conn_window - default);
        }
        Conn {
            decoder: HeaderDecoder::new(cfg.max_header_list),
            phase: Phase::Preface,
            streams: HashMap::new(),
            last_stream: 0,
            reset_recently: VecDeque::new(),
            skipped: VecDeque::new(),
            peer: PeerSettings {
                initial_window: default,
                max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            },
            conn_send: default as i64,
            conn_send_high: default as i64,
            conn_recv: cfg.conn_window.max(default) as i64,
            conn_unacked: 0,
            block: None,
            out,
            queue: Vec::new(),
            resets: RateLimit::new(cfg.max_resets_per_sec),
            control: RateLimit::new(cfg.max_control_per_sec),
            cfg,
        }
    }

    /// Read every whole frame at the front of `input` (what is left is an incomplete
    /// frame). A connection error has queued its GOAWAY: flush the output and close.
    pub fn recv(
        &mut self,
        now: Instant,
        input: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        let r = self.recv_frames(now, input, events);
        if let Err(H2Error::Connection(code, _)) = &r {
            frame::put_goaway(&mut self.out, self.last_stream, *code);
            self.phase = Phase::Draining;
        }
        r
    }

    fn recv_frames(
        &mut self,
        now: Instant,
        input: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        if self.phase == Phase::Preface {
            let n = input.len().min(frame::PREFACE.len());
            if input[..n] != frame::PREFACE[..n] {
                return Err(H2Error::protocol("not the HTTP/2 connection preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(());
            }
            input.advance(frame::PREFACE.len());
            self.phase = Phase::FirstSettings;
        }
        while let Some(h) = FrameHeader::peek(input) {
            if h.len > self.cfg.max_frame_size {
                return Err(H2Error::conn(
                    ErrorCode::FrameSizeError,
                    "a frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            let total = frame::HEADER_LEN + h.len as usize;
            if input.len() < total {
                break;
            }
            if self.phase == Phase::FirstSettings {
                if h.kind != frame::SETTINGS || h.flags & frame::FLAG_ACK != 0 {
                    return Err(H2Error::protocol("the first frame is not SETTINGS"));
                }
                self.phase = Phase::Open;
            }
            let bytes = input.split_to(total).freeze();
            if let Some(b) = &self.block {
                if h.kind != frame::CONTINUATION || h.stream != b.stream {
                    return Err(H2Error::protocol("a header block interrupted"));
                }
            }
            match frame::decode(h, bytes).and_then(|f| self.on_frame(now, f, events)) {
                Ok(()) => {}
                Err(H2Error::Stream(id, code, _)) => {
                    self.reset_stream(id, code, events);
                    if self.resets.hit(now) {
                        return Err(H2Error::conn(
                            ErrorCode::EnhanceYourCalm,
                            "too many stream errors",
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, now: Instant, f: Frame, events: &mut Vec<Event>) -> Result<(), H2Error> {
        match f {
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => {
                if data.is_empty() && !end_stream {
                    self.count_control(now)?;
                }
                self.on_data(stream, data, end_stream, flow_len, events)
            }
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => self.on_headers(stream, fragment, end_stream, end_headers, events),
            Frame::Continuation {
                stream: _,
                fragment,
                end_headers,
            } => self.on_continuation(fragment, end_headers, events),
            Frame::Priority { .. } => self.count_control(now),
            Frame::RstStream { stream, code } => {
                if stream > self.last_stream {
                    return Err(H2Error::protocol("RST_STREAM on an idle stream"));
                }
                if self.streams.remove(&stream).is_some() {
                    events.push(Event::Reset { stream, code });
                }
                if self.resets.hit(now) {
                    return Err(H2Error::conn(
                        ErrorCode::EnhanceYourCalm,
                        "too many stream resets (rapid reset)",
                    ));
                }
                Ok(())
            }
            Frame::Settings { ack, params } => {
                self.count_control(now)?;
                if !ack {
                    self.apply_settings(&params, events)?;
                    frame::put_settings_ack(&mut self.out);
                }
                Ok(())
            }
            Frame::Ping { ack, data } => {
                self.count_control(now)?;
                if !ack {
                    frame::put_ping_ack(&mut self.out, data);
                }
                Ok(())
            }
            Frame::GoAway { last_stream, code } => {
                events.push(Event::GoAway { last_stream, code });
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                // An update that gives back what our DATA used is flow control doing its
                // work (a fast download with small windows sends thousands a second); only
                // updates nothing asked for count as a flood.
                let inc = increment as i64;
                let replenishes = match stream {
                    0 => self.conn_send + inc <= self.conn_send_high,
                    id => {
                        (self.streams.get(&id)).is_some_and(|s| s.send_window + inc <= s.send_high)
                    }
                };
                if !replenishes {
                    self.count_control(now)?;
                }
                self.on_window_update(stream, increment, events)
            }
            Frame::Unknown { .. } => Ok(()),
        }
    }

    fn count_control(&mut self, now: Instant) -> Result<(), H2Error> {
        if self.control.hit(now) {
            return Err(H2Error::conn(
                ErrorCode::EnhanceYourCalm,
                "too many control frames (flood)",
            ));
        }
        Ok(())
    }

    fn apply_settings(
        &mut self,
        params: &[(u16, u32)],
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        for &(id, v) in params {
            match id {
                frame::SETTINGS_ENABLE_PUSH | frame::SETTINGS_ENABLE_CONNECT_PROTOCOL if v > 1 => {
                    return Err(H2Error::protocol("a boolean setting above 1"));
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    if v > frame::MAX_WINDOW {
                        return Err(H2Error::conn(
                            ErrorCode::FlowControlError,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    let delta = v as i64 - self.peer.initial_window as i64;
                    self.peer.initial_window = v;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        s.send_high = s.send_high.max(s.send_window);
                        if s.send_window > frame::MAX_WINDOW as i64 {
                            return Err(H2Error::conn(
                                ErrorCode::FlowControlError,
                                "a stream window above 2^31-1",
                            ));
                        }
                    }
                    if delta > 0 {
                        events.push(Event::WindowOpened);
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&v) {
                        return Err(H2Error::protocol("SETTINGS_MAX_FRAME_SIZE out of range"));
                    }
                    self.peer.max_frame_size = v;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn on_window_update(
        &mut self,
        stream: u32,
        inc: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        if stream == 0 {
            self.conn_send += inc as i64;
            self.conn_send_high = self.conn_send_high.max(self.conn_send);
            if self.conn_send > frame::MAX_WINDOW as i64 {
                return Err(H2Error::conn(
                    ErrorCode::FlowControlError,
                    "the connection window above 2^31-1",
                ));
            }
            events.push(Event::WindowOpened);
            return Ok(());
        }
        if stream > self.last_stream {
            return Err(H2Error::protocol("WINDOW_UPDATE on an idle stream"));
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        s.send_window += inc as i64;
        s.send_high = s.send_high.max(s.send_window);
        if s.send_window > frame::MAX_WINDOW as i64 {
            return Err(H2Error::Stream(
                stream,
                ErrorCode::FlowControlError,
                "a stream window above 2^31-1",
            ));
        }
        events.push(Event::WindowOpened);
        Ok(())
    }

    fn on_data(
        &mut self,
        stream: u32,
        data: Bytes,
        end_stream: bool,
        flow_len: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        self.conn_recv -= flow_len as i64;
        if self.conn_recv < 0 {
            return Err(H2Error::conn(
                ErrorCode::FlowControlError,
                "DATA past the connection window",
            ));
        }
        if stream > self.last_stream {
            return Err(H2Error::protocol("DATA on an idle stream"));
        }
        // Padding (and whatever is dropped below) is given back at once.
        let padding = flow_len - data.len() as u32;
        self.give_back_conn(padding);
        let recently_reset = self.reset_recently.contains(&stream);
        let Some(s) = self.streams.get_mut(&stream).filter(|s| s.remote_open()) else {
            self.give_back_conn(data.len() as u32);
            if recently_reset {
                return Ok(());
            }
            return Err(H2Error::Stream(
                stream,
                ErrorCode::StreamClosed,
                "DATA on a closed stream",
            ));
        };
        s.recv_window -= flow_len as i64;
        if s.recv_window < 0 {
            return Err(H2Error::Stream(
                stream,
                ErrorCode::FlowControlError,
                "DATA past the stream window",
            ));
        }
        s.recv_window += padding as i64;
        s.received += data.len() as u64;
        if s.content_length
            .is_some_and(|cl| s.received > cl || (end_stream && s.received != cl))
        {
            return Err(H2Error::Stream(
                stream,
                ErrorCode::ProtocolError,
                "DATA that does not match content-length",
            ));
        }
        let discarding = matches!(s.state, StreamState::Discarding { .. });
        let closed = end_stream && s.close_remote();
        if closed {
            self.streams.remove(&stream);
        }
        if discarding {
            self.consumed(stream, data.len());
            return Ok(());
        }
        if !data.is_empty() || end_stream {
            events.push(Event::Data {
                stream,
                data,
                end_stream,
            });
        }
        Ok(())
    }

    /// Refuse a new stream (over the concurrency limit, or draining).
    fn refuse(&mut self, stream: u32) {
        frame::put_rst(&mut self.out, stream, ErrorCode::RefusedStream);
        self.remember_reset(stream);
    }

    fn remember_reset(&mut self, stream: u32) {
        if self.reset_recently.len() == RESET_MEMORY {
            self.reset_recently.pop_front();
        }
        self.reset_recently.push_back(stream);
    }

    fn reset_stream(&mut self, stream: u32, code: ErrorCode, events: &mut Vec<Event>) {
        frame::put_rst(&mut self.out, stream, code);
        self.remember_reset(stream);
        if self.streams.remove(&stream).is_some() {
            events.push(Event::Reset { stream, code });
        }
    }

    fn give_back_conn(&mut self, n: u32) {
        self.conn_unacked += n;
        let window = self.cfg.conn_window.max(frame::DEFAULT_WINDOW);
        if self.conn_unacked >= window / 2 {
            frame::put_window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_recv += self.conn_unacked as i64;
            self.conn_unacked = 0;
        }
    }
}
