//! The `http` listener's HTTP/2 session (`http2 = true`: ALPN `h2` over TLS, h2c with prior
//! knowledge on a plain port). The protocol is `tether_h2::Conn` (sans I/O); this session
//! feeds it the client's bytes and writes what it says, and turns each stream into a
//! request through the same router, access lists, files, pools, affinity, access log and
//! metrics as the HTTP/1.1 session (`crate::http`), whose functions it calls.
//!
//! ```text
//!   client ──reader pipe──> input ──Conn::recv──> events ──> streams (stream.rs)
//!   client <──writer pipe── take_output <── send_headers / send_data <── Out (reply.rs)
//!                                      each stream: Local (bytes, a file) or
//!                                      AwaitingStore or Proxying (upstream.rs, HTTP/1.1)
//!                                      or Feed (feed.rs, the broker's WebSocket)
//! ```
//!
//! - `mod.rs` (this file): the connection: its state (`Serving`, `Draining`, `Closing`),
//!   the core's events, the pump that sends what the windows allow (`flush`), the timers.
//! - `stream.rs`: one stream's request: mapped to an HTTP/1.1 head, then routed.
//! - `reply.rs`: the answers and the body bytes waiting for the windows.
//! - `upstream.rs`: a stream's exchange with an HTTP/1.1 upstream (pooled keep-alive); a
//!   WebSocket by extended CONNECT (RFC 8441) is its HTTP/1.1 upgrade, then a tunnel.
//! - `h2up.rs` (with `h2up/fail.rs`): a stream's exchange with an HTTP/2 upstream
//!   (`protocol = "h2c"`): header lists, not HTTP/1.1 heads, over upstream connections this
//!   session's streams share (`crate::h2up`).
//! - `feed.rs`: the broker's WebSocket feed on a stream.
//!
//! A connection error of the client's (a flood, a broken frame) queues a GOAWAY that is
//! written before the connection closes; nothing the client sends panics the loop.

mod feed;
mod form;
mod gate;
mod h2up;
mod reply;
mod stream;
mod upstream;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tether_balance::ClientKey;
use tether_core::{ConnId, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};
use tether_h2::{ErrorCode, Event};

use crate::http::ListenerCtx;
use crate::idle::{self, KEY_IDLE};
use crate::per_ip::IpSlot;
use stream::{Stream, Work};

/// Bytes the writer pipe holds before DATA waits (frames of control still go).
const WRITE_HIGH: usize = 256 * 1024;
/// Client bytes read ahead.
const READ_AHEAD: usize = 64 * 1024;
/// Timer keys: a stream's connect is `KEY_STREAM | id` (and so is its store wake).
const KEY_STREAM: u64 = 1 << 32;
/// How often the streams of a busy connection are checked (stalled windows, silent
/// upstreams).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Rounds of refill-and-send per event, at most (the loop serves others meanwhile).
const ROUNDS: usize = 16;

/// The client, as every stream sees it.
pub(crate) struct Peer {
    pub conn: ConnId,
    pub ip: Option<IpAddr>,
    pub key: Option<ClientKey>,
    pub ip_text: Box<str>,
    pub tls: Option<Arc<tether_core::tls::TlsInfo>>,
}

/// Where the connection is.
enum State {
    /// Taking new streams.
    Serving,
    /// GOAWAY sent (a drain): the streams under way finish, then the connection closes.
    Draining,
    /// The last frames are going out (after a GOAWAY for an error, or the end of a
    /// drain); nothing more is read.
    Closing,
}

/// One HTTP/2 client connection.
pub struct H2Session {
    ctx: Arc<ListenerCtx>,
    h2: tether_h2::Conn,
    peer: Peer,
    reader: Option<PipeId>,
    writer: Option<PipeId>,
    /// Client bytes not yet made into frames (an incomplete frame).
    input: BytesMut,
    streams: BTreeMap<u32, Stream>,
    state: State,
    _ip_slot: Option<IpSlot>,
    /// Connections to HTTP/2 upstreams, shared by this connection's streams (`h2up.rs`).
    ups: Vec<h2up::MuxRef>,
}

impl H2Session {
    pub fn new(ctx: Arc<ListenerCtx>, ip_slot: Option<IpSlot>) -> H2Session {
        H2Session {
            ctx,
            // RFC 8441: WebSockets over HTTP/2 by extended CONNECT (SETTINGS sent).
            h2: tether_h2::Conn::new(tether_h2::Config {
                connect_protocol: true,
                ..tether_h2::Config::default()
            }),
            peer: Peer {
                conn: ConnId::dangling(),
                ip: None,
                key: None,
                ip_text: Box::from(""),
                tls: None,
            },
            reader: None,
            writer: None,
            input: BytesMut::new(),
            streams: BTreeMap::new(),
            state: State::Serving,
            _ip_slot: ip_slot,
            ups: Vec::new(),
        }
    }

    fn listen(&self) -> std::net::SocketAddr {
        self.ctx.spec.listen
    }

    /// The client's bytes: frames in, events handled.
    fn read_client(&mut self, cx: &mut Cx<'_>) {
        let Some(r) = self.reader else { return };
        while let Some(b) = cx.take(r) {
            self.input.extend_from_slice(&b);
        }
        let mut events = Vec::new();
        let result = self.h2.recv(cx.now(), &mut self.input, &mut events);
        for e in events {
            self.on_event(cx, e);
        }
        if let Err(e) = result {
            log::info!("h2 {}: {:?}: {e}", self.listen(), self.peer.ip);
            self.ctx.stats.conn_error();
            self.shut(cx);
        }
    }

    fn on_event(&mut self, cx: &mut Cx<'_>, e: Event) {
        match e {
            Event::Request {
                stream,
                head,
                end_stream,
            } => self.on_request(cx, stream, head, end_stream),
            Event::Data {
                stream,
                data,
                end_stream,
            } => self.on_data(cx, stream, data, end_stream),
            // Trailers end the body; an HTTP/2 upstream gets them (`h2up.rs`), an HTTP/1.1
            // one does not.
            Event::Trailers { stream, fields } => {
                if !self.h2up_trailers(cx, stream, fields) {
                    self.on_data(cx, stream, Bytes::new(), true);
                }
            }
            Event::Refused { stream, status } => self.refused(cx, stream, status),
            Event::Reset { stream, code } => {
                log::debug!("h2 {}: stream {stream} reset: {code}", self.listen());
                self.drop_stream(cx, stream, 499);
            }
            Event::WindowOpened => {}
            Event::GoAway { .. } => {}
        }
    }

    /// A request body's bytes.
    fn on_data(&mut self, cx: &mut Cx<'_>, id: u32, data: Bytes, end: bool) {
        let n = data.len();
        let mut reading_form = false;
        let taken = match self.streams.get_mut(&id) {
            Some(Stream {
                work: Work::Proxying(x),
                ..
            }) => upstream::client_data(cx, x, data, end),
            Some(Stream {
                work: Work::H2Up(_),
                ..
            }) => {
                self.h2up_data(cx, id, data, end);
                false
            }
            Some(Stream {
                work: Work::AwaitingStore(p),
                ..
            }) => {
                p.early.push(data, end);
                false
            }
            Some(Stream {
                work: Work::Gated(g),
                ..
            }) => {
                g.early.push(data, end);
                false
            }
            Some(Stream {
                work: Work::ReadingForm(f),
                ..
            }) => {
                f.early.push(data, end);
                reading_form = true;
                false
            }
            Some(Stream {
                work: Work::Feed(f),
                out,
                ..
            }) => {
                f.receive(&data, end, out);
                true
            }
            _ => true,
        };
        if taken {
            self.h2.consumed(id, n);
        }
        if reading_form {
            self.form_data(cx, id);
        }
    }

    /// Send what the windows allow, reading sources again as bytes leave, and write the
    /// frames; then retire the streams that are over.
    fn flush(&mut self, cx: &mut Cx<'_>) {
        let Some(w) = self.writer else { return };
        for _ in 0..ROUNDS {
            let mut moved = false;
            let mut failed = Vec::new();
            for (&id, s) in self.streams.iter_mut() {
                if let Err(status) = s.fill(cx) {
                    failed.push((id, status));
                    continue;
                }
                if !cx.is_full(w) {
                    moved |= s.send(&mut self.h2, cx.now());
                }
            }
            for (id, status) in failed {
                self.h2.reset(id, ErrorCode::InternalError);
                self.drop_stream(cx, id, status);
            }
            for b in self.h2.take_output() {
                cx.push(w, b);
            }
            if !moved || cx.is_full(w) {
                break;
            }
        }
        self.h2up_after_send(cx);
        self.retire(cx);
    }

    /// Log and forget the streams that are over; a drain or an error ends with the last.
    fn retire(&mut self, cx: &mut Cx<'_>) {
        let done: Vec<u32> = (self.streams.iter())
            .filter(|(_, s)| s.is_over())
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            if let Some(s) = self.streams.remove(&id) {
                s.finish(cx, &mut self.h2, &self.ctx, &self.peer);
            }
        }
        if self.streams.is_empty() && matches!(self.state, State::Draining) {
            self.shut(cx);
        }
    }

    /// A stream ends without finishing (a reset, an error): its work is dropped.
    fn drop_stream(&mut self, cx: &mut Cx<'_>, id: u32, status: u16) {
        if let Some(mut s) = self.streams.remove(&id) {
            s.abandon(cx, status);
            s.finish(cx, &mut self.h2, &self.ctx, &self.peer);
        }
    }

    /// Stop: no more reading, every stream dropped, the frames queued (a GOAWAY) written,
    /// then the FIN.
    fn shut(&mut self, cx: &mut Cx<'_>) {
        self.state = State::Closing;
        if let Some(r) = self.reader.take() {
            cx.close_pipe(r);
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.drop_stream(cx, id, 499);
        }
        match self.writer {
            Some(w) => {
                for b in self.h2.take_output() {
                    cx.push(w, b);
                }
                cx.end(w);
            }
            None => cx.close(),
        }
    }

    /// `KEY_IDLE`: silent upstreams (`504`), stalled windows (reset), an idle connection
    /// (GOAWAY and close).
    fn idle_check(&mut self, cx: &mut Cx<'_>) {
        let limit = self.ctx.spec.idle_timeout;
        if self.streams.is_empty() {
            if idle::expired(cx, &[self.peer.conn], limit) {
                self.h2.go_away(ErrorCode::NoError);
                self.shut(cx);
            }
            return;
        }
        let now = cx.now();
        let mut late = Vec::new();
        for (&id, s) in self.streams.iter_mut() {
            if s.out.stalled_since.is_some_and(|t| now - t >= limit) {
                late.push((id, None));
            } else if let Work::Proxying(x) = &s.work {
                if !x.response_started() && cx.idle(x.up) >= limit {
                    late.push((id, Some(504)));
                }
            }
        }
        for (id, status) in late {
            match status {
                Some(status) => self.fail_stream(cx, id, status, "upstream response timed out"),
                None => {
                    log::info!("h2 {}: stream {id}: window closed too long", self.listen());
                    self.h2.reset(id, ErrorCode::Cancel);
                    self.drop_stream(cx, id, 0);
                }
            }
        }
        cx.set_timer(limit.min(CHECK_EVERY), KEY_IDLE);
        self.flush(cx);
    }

    /// A stream's work failed before its answer started: answer `status` (with `why` in
    /// the log), or reset it if the answer had started.
    fn fail_stream(&mut self, cx: &mut Cx<'_>, id: u32, status: u16, why: &str) {
        log::warn!("h2 {}: stream {id}: {why}", self.listen());
        self.ctx.stats.conn_timeout();
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.abandon(cx, status);
        if s.out.head_sent {
            self.h2.reset(id, ErrorCode::InternalError);
            self.drop_stream(cx, id, status);
        } else {
            self.answer_status(cx, id, status, "");
        }
    }
}

impl Session for H2Session {
    fn waiting(&self) -> Option<tether_core::Waiting> {
        // No stream open: the connection only waits for the client's next request.
        self.streams
            .is_empty()
            .then_some(tether_core::Waiting::Idle)
    }

    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        let p = &mut self.peer;
        p.conn = client;
        p.ip = cx.peer_addr(client).map(|a| a.ip());
        p.key = p.ip.map(ClientKey::new);
        if let Some(ip) = p.ip {
            p.ip_text = ip.to_string().into();
        }
        p.tls = cx.tls_info(client);
        let read = PipeOpts {
            threshold: READ_AHEAD,
            ..PipeOpts::default()
        };
        self.reader = Some(cx.pipe_with(Source::Conn(client), Sink::Session, read));
        let write = PipeOpts {
            threshold: WRITE_HIGH,
            ..PipeOpts::default()
        };
        let w = cx.pipe_with(Source::Session, Sink::Conn(client), write);
        self.writer = Some(w);
        // Our SETTINGS go first.
        for b in self.h2.take_output() {
            cx.push(w, b);
        }
        idle::arm(cx, self.ctx.spec.idle_timeout);
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if self.reader == Some(pipe) {
            self.read_client(cx);
        } else {
            self.upstream_readable(cx, pipe);
        }
        self.flush(cx);
    }

    fn on_drained(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if self.writer != Some(pipe) {
            self.upstream_drained(cx, pipe);
        }
        self.flush(cx);
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        self.upstream_connected(cx, up, result);
        self.flush(cx);
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if self.reader == Some(pipe) {
            // The client is gone (HTTP/2 has no half-close of its own worth waiting for).
            self.reader = None;
            if end != PipeEnd::Finished {
                self.ctx.stats.conn_error();
            }
            self.shut(cx);
            cx.close();
            return;
        }
        if self.writer == Some(pipe) {
            self.writer = None;
            cx.close();
            return;
        }
        self.upstream_pipe_end(cx, pipe, end);
        self.flush(cx);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        if key == KEY_IDLE {
            self.idle_check(cx);
        } else if key & gate::KEY_GATE != 0 {
            self.gate_resume(cx, (key & 0xffff_ffff) as u32);
            self.flush(cx);
        } else if key & h2up::KEY_DEADLINE != 0 {
            self.h2up_deadline(cx, (key & 0xffff_ffff) as u32);
            self.flush(cx);
        } else if key & KEY_STREAM != 0 {
            self.connect_timeout(cx, (key & 0xffff_ffff) as u32);
            self.flush(cx);
        }
    }

    fn on_wake(&mut self, cx: &mut Cx<'_>, key: u64) {
        if key == crate::h2up::hub::KEY_MAIL {
            self.h2up_mail(cx);
            self.flush(cx);
        } else if key & feed::KEY_FEED != 0 {
            self.feed_wake((key & 0xffff_ffff) as u32);
            self.flush(cx);
        } else if key & stream::KEY_FIRST_ROUND != 0 {
            self.first_round(cx, (key & 0xffff_ffff) as u32);
            self.flush(cx);
        } else if key & gate::KEY_GATE != 0 {
            self.gate_resume(cx, (key & 0xffff_ffff) as u32);
            self.flush(cx);
        } else if key & KEY_STREAM != 0 {
            self.fetched(cx, (key & 0xffff_ffff) as u32);
            self.flush(cx);
        }
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) {
        if matches!(self.state, State::Serving) {
            // The feeds' close frames and END_STREAM go out before the GOAWAY (a client
            // may stop reading streams once it has a GOAWAY).
            self.feeds_going_away();
            self.flush(cx);
            self.h2.go_away(ErrorCode::NoError);
            self.state = State::Draining;
        }
        self.flush(cx);
    }

    fn on_close(&mut self, cx: &mut Cx<'_>) {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.drop_stream(cx, id, 499);
        }
    }
}
