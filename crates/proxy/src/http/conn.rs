//! The client side of one `http` connection, whatever state its session is in: the
//! client's socket and how its bytes are read (`Input`), the bytes gathered and not used
//! yet, keep-alive, who the client is, the request under way (for the metrics and the
//! access log), and the responses tether writes itself (`respond`, status pages).
//!
//! Everything here is per connection; what a listener's connections share is in
//! `context.rs`. An idle keep-alive connection holds this and `State::ReadingHead`, and no
//! pipe and no buffer: its reader pipe is closed while the client is silent
//! (`Input::Idle`, woken by `Session::on_conn_readable`), `buf` released when empty, and
//! the client's address is the core's (`client_ip`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tether_balance::{ActiveGuard, ClientKey, ServerRef};
use tether_core::{ConnId, Cx, PipeId, PipeOpts, Sink, Source};

use super::context::ListenerCtx;
use super::{forward, State};
use crate::access_log::{Entry, UpInfo};
use crate::idle::{KEY_LINGER, LINGER};
use crate::per_ip::IpSlot;
use tether_config::ListenerSpec;
use tether_http::reply;

/// Bytes a client may have buffered (pipelined) in the reader pipe while a response runs.
const READ_AHEAD: usize = 64 * 1024;

/// How the client's bytes reach the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Through this pipe (request heads, chunked request bodies, pipelined requests).
    Open(PipeId),
    /// Not now: a request body goes straight to the upstream, or the connection tunnels.
    Paused,
    /// Between requests with nothing buffered: no pipe; the core says when the client
    /// sends again (`Session::on_conn_readable`), and the reader pipe is opened then.
    Idle,
    /// The client sent its FIN: serve what is buffered, take no more.
    Finished,
    /// No more requests on this connection: what the client still sends is discarded
    /// (through this pipe while its socket is open), until the last response is out.
    Discarding(Option<PipeId>),
}

/// One client connection's own state.
pub(super) struct Conn {
    pub ctx: Arc<ListenerCtx>,
    pub client: ConnId,
    pub input: Input,
    /// Client bytes taken from the reader pipe and not used yet.
    pub buf: BytesMut,
    /// The client connection stays open after the current response.
    pub keep_alive: bool,
    /// The request being answered, for the metrics and the access log (boxed: an idle
    /// connection has none, and its session stays one small allocation).
    pub current: Option<Box<Current>>,
    /// The server this connection's requests are counted on (least connections, bounded
    /// load), while it is the one they go to.
    pub active: Option<ActiveGuard>,
    /// The core is draining: no keep-alive after the current request (`drain.rs`).
    pub draining: bool,
    /// This connection counted on its client address (`max_connections_per_ip`); given
    /// back when the session is dropped. Boxed: most listeners have no such limit.
    _ip_slot: Option<Box<IpSlot>>,
}

thread_local! {
    /// `Current`s' boxes, for the next request (`spare.rs`).
    pub(super) static SPARE_CURRENT: crate::spare::Spares<Current> =
        const { crate::spare::Spares::new() };
}

/// The request under way: when it started, how it was answered.
pub(crate) struct Current {
    pub started: Instant,
    pub status: u16,
    /// What only the access log needs (none when it is off).
    pub log: Option<Box<LogText>>,
    /// What the access gate holds until the request is logged (`limit_conn` permits).
    pub held: crate::access::Held,
    /// The route's error pages for this request (`rewrite.rs`), once it is routed.
    pub pages: Option<super::rewrite::PagesFor>,
}

impl Current {
    /// Body bytes sent for this response (HTTP/2 DATA).
    pub fn note_sent(&mut self, n: usize) {
        if let Some(log) = self.log.as_mut() {
            *log.sent.get_or_insert(0) += n as u64;
        }
    }

    /// The route's own access log (or its server's), if it has one.
    pub fn note_route(&mut self, spec: Option<&Arc<tether_config::access_log::AccessLogSpec>>) {
        if let (Some(log), Some(spec)) = (self.log.as_mut(), spec) {
            log.spec = Some(spec.clone());
        }
    }

    /// The server a proxied request goes to (again after a failed connect).
    pub fn note_upstream(&mut self, up: &crate::upstream::Upstream, pick: &super::affinity::Pick) {
        if let Some(log) = self.log.as_mut() {
            log.up = Some(UpInfo {
                name: up.name().into(),
                addr: Some(pick.server.addr()),
                affinity: pick.outcome,
                ..UpInfo::default()
            });
        }
    }

    /// The upstream connection is up (`since`: when the request began to be forwarded).
    pub fn note_connected(&mut self, now: Instant) {
        let started = self.started;
        if let Some(up) = self.log.as_mut().and_then(|l| l.up.as_mut()) {
            up.connect = Some(now.saturating_duration_since(started));
        }
    }

    /// The upstream's final response head arrived (`head_len`: the head sent on).
    pub fn note_upstream_head(&mut self, status: u16, now: Instant, head_len: usize) {
        let started = self.started;
        if let Some(log) = self.log.as_mut() {
            log.head_len = Some(head_len as u64);
            if let Some(up) = log.up.as_mut() {
                up.status = Some(status);
                up.header = Some(now.saturating_duration_since(started));
            }
        }
    }

    /// The request's `X-Request-Id` (`rules.rs`), for its access-log line.
    pub fn note_request_id(&mut self, id: Option<&str>) {
        if let (Some(log), Some(id)) = (self.log.as_mut(), id) {
            log.request_id = Some(id.into());
        }
    }
}

#[derive(Default)]
pub(crate) struct LogText {
    pub line: String,
    pub referer: String,
    pub user_agent: String,
    /// The request id, when the route gives one (`rid=` at the end of the line).
    pub request_id: Option<Box<str>>,
    /// The route's (or its server's) access log, when it has its own.
    pub spec: Option<Arc<tether_config::access_log::AccessLogSpec>>,
    /// The upstream side, for a proxied request.
    pub up: Option<UpInfo>,
    pub host: Option<String>,
    /// Headers the templates name.
    pub headers: Vec<(String, String)>,
    /// The client connection's byte counts when the request began (HTTP/1.1).
    pub bytes_at: Option<(u32, u32)>,
    /// Bytes sent for this response (HTTP/2: its DATA) and its head's length.
    pub sent: Option<u64>,
    pub head_len: Option<u64>,
}

impl LogText {
    /// What the access log will say of `head` (`version`: as the client spoke it; `wanted`:
    /// headers templates name).
    pub fn of(head: &tether_http::RequestHead, version: &str, wanted: &[String]) -> Box<LogText> {
        let text = |name: &str| {
            head.header(name)
                .map_or("-".into(), |v| String::from_utf8_lossy(v).into_owned())
        };
        let headers = wanted
            .iter()
            .filter_map(|h| {
                head.header(h)
                    .map(|v| (h.clone(), String::from_utf8_lossy(v).into_owned()))
            })
            .collect();
        Box::new(LogText {
            line: format!("{} {} {version}", head.method_str(), head.target()),
            referer: text("referer"),
            user_agent: text("user-agent"),
            host: head.host().map(str::to_string),
            headers,
            ..LogText::default()
        })
    }
}

/// A request is over: count it and write its access-log line (HTTP/1.1 and HTTP/2).
/// `bytes`: the client connection's counts now (HTTP/1.1; HTTP/2 counts per stream).
pub(crate) fn log_done(
    ctx: &ListenerCtx,
    client: Option<std::net::SocketAddr>,
    tls: Option<&tether_core::tls::TlsInfo>,
    c: Current,
    now: Instant,
    bytes: Option<(u32, u32)>,
) {
    let took = now.saturating_duration_since(c.started);
    ctx.stats.request_done(c.status, took);
    let (Some(log), Some(text)) = (ctx.access_log.as_ref(), c.log) else {
        return;
    };
    // HTTP/1.1: the connection's counts since the request began (heads included);
    // HTTP/2: the stream's DATA (the body alone, no head to take off).
    let (bytes_in, bytes_out, head_len) = match (text.bytes_at, bytes) {
        (Some((i0, o0)), Some((i1, o1))) => (
            Some(u64::from(i1.wrapping_sub(i0))),
            Some(u64::from(o1.wrapping_sub(o0))),
            text.head_len,
        ),
        _ => (None, Some(text.sent.unwrap_or(0)), None),
    };
    log.write(
        text.spec.as_deref(),
        &Entry {
            client: client.map(|a| a.ip()),
            client_port: client.map(|a| a.port()),
            request_line: &text.line,
            status: c.status,
            referer: &text.referer,
            user_agent: &text.user_agent,
            duration: took,
            tls,
            request_id: text.request_id.as_deref(),
            upstream: text.up.as_ref(),
            bytes_in,
            bytes_out,
            head_len,
            host: text.host.as_deref(),
            headers: &text.headers,
        },
    );
}

impl Conn {
    pub fn new(ctx: Arc<ListenerCtx>, ip_slot: Option<IpSlot>) -> Conn {
        Conn {
            ctx,
            client: ConnId::dangling(),
            input: Input::Paused,
            buf: BytesMut::new(),
            keep_alive: true,
            current: None,
            active: None,
            draining: false,
            _ip_slot: ip_slot.map(Box::new),
        }
    }

    pub fn spec(&self) -> &ListenerSpec {
        &self.ctx.spec
    }

    /// The client's address: the core keeps it with the connection (on a PROXY protocol
    /// listener, the one the header named), so a connection holds no copy here; its
    /// hashing key and its text are made from it when a request needs them.
    pub fn client_ip(&self, cx: &Cx<'_>) -> Option<IpAddr> {
        cx.peer_addr(self.client).map(|a| a.ip())
    }

    /// The client's address as a hashing key (`ip_hash`, the consistent hash).
    pub fn client_key(&self, cx: &Cx<'_>) -> Option<ClientKey> {
        self.client_ip(cx).map(ClientKey::new)
    }

    /// The client's address as text (`X-Forwarded-For`, the broker's feed), written on the
    /// stack.
    pub fn client_ip_text(&self, cx: &Cx<'_>) -> IpText {
        IpText::of(self.client_ip(cx))
    }

    /// The reader pipe, while there is one.
    pub fn reader(&self) -> Option<PipeId> {
        match self.input {
            Input::Open(p) => Some(p),
            _ => None,
        }
    }

    /// No more requests on this connection.
    pub fn closing(&self) -> bool {
        matches!(self.input, Input::Discarding(_))
    }

    /// Count this connection on `server` (and no longer on the previous one).
    pub fn hold(&mut self, server: &ServerRef) {
        if self
            .active
            .as_ref()
            .is_some_and(|g| Arc::ptr_eq(g.server(), server))
        {
            return;
        }
        self.active = Some(server.acquire());
    }

    /// Make sure the client → session pipe is open again after a pause (a request body
    /// streamed straight to the upstream).
    pub fn open_reader(&mut self, cx: &mut Cx<'_>) {
        if self.input == Input::Paused && !cx.read_closed(self.client) {
            let opts = PipeOpts {
                threshold: READ_AHEAD,
                ..PipeOpts::default()
            };
            let p = cx.pipe_with(Source::Conn(self.client), Sink::Session, opts);
            self.input = Input::Open(p);
        }
    }

    /// Nothing from the client waits (between requests, or while tether's own answer goes
    /// out): let the reader pipe go while the client is silent (`Input::Idle`). Kept when
    /// it holds bytes or may still say something: its source ended (the end is on its way
    /// to `on_pipe_end`).
    pub fn rest(&mut self, cx: &mut Cx<'_>) {
        match self.input {
            Input::Open(r) if cx.pipe_open(r) && !cx.source_ended(r) && cx.buffered(r) == 0 => {
                cx.close_pipe(r);
            }
            Input::Paused if !cx.read_closed(self.client) => {}
            _ => return,
        }
        if cx.watch_readable(self.client) {
            self.input = Input::Idle;
        } else {
            self.input = Input::Paused;
            self.open_reader(cx);
        }
    }

    /// The client sent something while `Input::Idle`: read it through a pipe again.
    pub fn wake(&mut self, cx: &mut Cx<'_>) {
        if self.input == Input::Idle {
            self.input = Input::Paused;
            self.open_reader(cx);
        }
    }

    /// Move what waits in the reader pipe into `buf`.
    pub fn gather(&mut self, cx: &mut Cx<'_>) {
        if let Input::Open(r) = self.input {
            while let Some(b) = cx.take(r) {
                self.buf.extend_from_slice(&b);
            }
        }
    }

    /// With nothing in `buf`: the reader pipe's next chunk when it is the only one (to parse
    /// where it lies, `phases::next_request`); anything else is gathered into `buf`.
    pub fn take_single(&mut self, cx: &mut Cx<'_>) -> Option<Bytes> {
        let Input::Open(r) = self.input else {
            return None;
        };
        if !self.buf.is_empty() {
            return None;
        }
        let b = cx.take(r)?;
        if cx.buffered(r) == 0 {
            return Some(b);
        }
        self.buf.extend_from_slice(&b);
        None
    }

    /// Pause the reader pipe after gathering what it holds.
    pub fn close_reader(&mut self, cx: &mut Cx<'_>) {
        if self.input == Input::Idle {
            // The watch ends when a pipe reads the connection (a body, a tunnel).
            self.input = Input::Paused;
        }
        self.gather(cx);
        if let Input::Open(r) = self.input {
            cx.close_pipe(r);
            self.input = Input::Paused;
        }
    }

    /// No more requests on this connection: what the client still sends is discarded.
    pub fn start_closing(&mut self, cx: &mut Cx<'_>) {
        self.keep_alive = false;
        if self.closing() {
            return;
        }
        if let Input::Open(r) = self.input {
            cx.close_pipe(r);
        }
        let linger = (!cx.read_closed(self.client))
            .then(|| cx.pipe(Source::Conn(self.client), Sink::Discard));
        self.input = Input::Discarding(linger);
    }

    /// Remember the status of the response under way (for the access log).
    pub fn note_status(&mut self, status: u16) {
        if let Some(c) = self.current.as_mut() {
            c.status = status;
        }
    }

    /// The request under way is over: count it and write its access-log line, once.
    pub fn log_request(&mut self, cx: &Cx<'_>) {
        let Some(c) = self.current.take() else {
            return; // logged already (a tunnel, a feed), or no request yet
        };
        log_done(
            &self.ctx,
            cx.peer_addr(self.client),
            cx.tls_info(self.client).as_deref(),
            crate::spare::unbox(&SPARE_CURRENT, c),
            cx.now(),
            Some(cx.conn_bytes(self.client)),
        );
    }

    /// Send a response tether wrote itself, answering with `status`: `head` (with its body,
    /// for a status page), then `file` if any. With keep-alive the connection carries on
    /// afterwards; otherwise it closes once the response is out.
    pub fn respond(
        &mut self,
        cx: &mut Cx<'_>,
        status: u16,
        head: Bytes,
        file: Option<Source>,
    ) -> State {
        let head = secure(self.spec(), head);
        self.note_status(status);
        if let Some(log) = self.current.as_mut().and_then(|c| c.log.as_mut()) {
            // The head alone (`head` may carry a body after it), for the body's size.
            let end = head.windows(4).position(|w| w == b"\r\n\r\n");
            log.head_len = end.map(|i| i as u64 + 4);
        }
        if !self.keep_alive {
            self.start_closing(cx);
        }
        let opts = PipeOpts {
            fin: !self.keep_alive,
            ..PipeOpts::default()
        };
        let with_file = file.is_some();
        let p = cx.pipe_with(
            file.unwrap_or(Source::Session),
            Sink::Conn(self.client),
            opts,
        );
        cx.push(p, head);
        if !with_file {
            cx.end(p);
        }
        if self.keep_alive && self.buf.is_empty() {
            // Nothing more from the client yet: no reader pipe while the answer goes out
            // (a client that does not read a large one holds it for long); one is opened
            // again as soon as the client sends (a pipelined request).
            self.rest(cx);
        }
        State::Local { reply: p }
    }

    /// The route's own page for `status` (`error_page`), if it has one.
    pub(super) fn error_page(&self, status: u16, extra: &str, head_only: bool) -> Option<Vec<u8>> {
        let pages = self.current.as_ref()?.pages.as_ref()?;
        pages.page(status, &self.ctx.server, extra, head_only, self.keep_alive)
    }

    /// Answer with a status page and close the connection.
    pub fn fail(&mut self, cx: &mut Cx<'_>, status: u16) -> State {
        self.keep_alive = false;
        if let Some(page) = self.error_page(status, "", false) {
            return self.respond(cx, status, page.into(), None);
        }
        let page = reply::status_page(status, &self.ctx.server, "", false);
        self.respond(cx, status, page.into(), None)
    }

    /// A status page that keeps the connection if the request allows it (a request body is
    /// not read, so then the connection closes).
    pub fn status(&mut self, cx: &mut Cx<'_>, status: u16, head_only: bool) -> State {
        self.status_with(cx, status, "", head_only)
    }

    /// [`Conn::status`] with `extra` header lines (each ending in CRLF).
    pub fn status_with(
        &mut self,
        cx: &mut Cx<'_>,
        status: u16,
        extra: &str,
        head_only: bool,
    ) -> State {
        if let Some(page) = self.error_page(status, extra, head_only) {
            return self.respond(cx, status, page.into(), None);
        }
        let page =
            reply::status_page_ka(status, &self.ctx.server, extra, head_only, self.keep_alive);
        self.respond(cx, status, page.into(), None)
    }

    /// Answer `status` with a one-line reason; `close`: and close the connection (the
    /// request body, if any, was not read).
    pub fn message(
        &mut self,
        cx: &mut Cx<'_>,
        status: u16,
        message: &str,
        head_only: bool,
    ) -> State {
        if let Some(page) = self.error_page(status, "", head_only) {
            return self.respond(cx, status, page.into(), None);
        }
        let page = reply::message_page(
            status,
            &self.ctx.server,
            message,
            head_only,
            self.keep_alive,
        );
        self.respond(cx, status, page.into(), None)
    }

    /// A request whose body tether will not read: the connection cannot carry another one.
    pub fn unread_body(&mut self, body: &tether_http::BodyKind) {
        if !body.is_empty() {
            self.keep_alive = false;
        }
    }

    /// The client sent its FIN and no complete request is buffered: a partial head is
    /// answered `400`; otherwise the connection simply closes.
    pub fn end_of_input(&mut self, cx: &mut Cx<'_>, state: State) -> State {
        if !matches!(state, State::ReadingHead { .. }) {
            return state;
        }
        if self.buf.is_empty() {
            cx.close();
            state
        } else {
            self.fail(cx, 400)
        }
    }

    /// After the last response: linger (what the client sends is discarded) for at most
    /// `LINGER`, then close.
    pub fn linger(&mut self, cx: &mut Cx<'_>) -> State {
        self.start_closing(cx);
        cx.set_timer(LINGER, KEY_LINGER);
        State::Closing
    }
}

/// An IP address as text, on the stack (the longest, an IPv6 address, is 39 bytes); empty
/// when the address is unknown.
pub(crate) struct IpText {
    bytes: [u8; 48],
    len: u8,
}

impl IpText {
    pub fn of(ip: Option<IpAddr>) -> IpText {
        let mut t = IpText {
            bytes: [0; 48],
            len: 0,
        };
        match ip {
            None => {}
            // By hand: `Display` costs ~2,000 instructions per proxied request here.
            Some(IpAddr::V4(v4)) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if o >= 100 {
                        t.push(b'0' + o / 100);
                    }
                    if o >= 10 {
                        t.push(b'0' + o / 10 % 10);
                    }
                    t.push(b'0' + o % 10);
                }
            }
            Some(ip) => {
                use std::io::Write;
                let mut w = &mut t.bytes[..];
                // Cannot fail: the buffer holds any address's text.
                if write!(w, "{ip}").is_ok() {
                    t.len = (48 - w.len()) as u8;
                }
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }
}

impl std::ops::Deref for IpText {
    type Target = str;

    fn deref(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

/// A response head with the listener's `Strict-Transport-Security`, if it has one.
pub(crate) fn secure(spec: &ListenerSpec, head: Bytes) -> Bytes {
    match &spec.front.hsts {
        Some(v) => forward::with_field(head, "Strict-Transport-Security", v),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::IpText;
    use std::net::IpAddr;

    #[test]
    fn ip_text_is_the_display_text() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.199.250",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(&*IpText::of(Some(addr)), addr.to_string());
        }
        assert_eq!(&*IpText::of(None), "");
    }
}
