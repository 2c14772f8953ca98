//! One HTTP/2 stream as a request. Its head is written as the HTTP/1.1 head it stands for
//! (`:authority` as `Host`, cookie crumbs joined by tether-h2, `transfer-encoding: chunked`
//! when a body of unknown length follows) and parsed by `tether_http::parse_request`, so
//! the request goes through the very functions of the HTTP/1.1 session: `phases::route_for`,
//! the route's `Acl`, `static_files::serve`, `local::status_answer`, `affinity::decide`,
//! `forward::upstream_request`; the broker's pages (`mounts::broker_reply`) and
//! `port_rewrite` (`mounts::port_upstream`) too. What takes over a connection (the broker's
//! WebSocket feed, WebSockets under `port_rewrite`) needs HTTP/1.1's Upgrade.

use bytes::Bytes;
use tether_broker::ws;
use tether_core::Cx;
use tether_h2::ErrorCode;
use tether_http::{Limits, RequestHead};

use super::feed::Feed;
use super::reply::{self, FileBody, Out};
use super::upstream::{self, Early, Exchange};
use super::{H2Session, Peer, KEY_STREAM};
use crate::http::affinity::Decision;
use crate::http::conn::{log_done, secure, Current, LogText};
use crate::http::phases::{self, Proxied, StoreAnswer};
use crate::http::{local, mounts, ListenerCtx};
use crate::router::{Action, PortRewrite};
use tether_files::static_files;
use tether_http::reply::{message_page, status_page_ka};

/// One stream's request and answer.
pub(super) struct Stream {
    pub id: u32,
    /// For the metrics and the access log (taken when the stream is logged).
    current: Option<Current>,
    pub head_only: bool,
    pub out: Out,
    pub work: Work,
    /// A gRPC request (`content-type: application/grpc*`): tether's own errors are gRPC
    /// answers (`h2up.rs` `grpc_answer`).
    pub grpc: bool,
}

/// What answers the stream.
pub(super) enum Work {
    /// tether itself: the bytes in `Out`, then this file range if any.
    Local(Option<FileBody>),
    /// A proxied request's urlencoded body is read before its server is picked
    /// (`form.rs`).
    ReadingForm(Box<super::form::FormWait>),
    /// A proxied request waits for the affinity store's answer.
    AwaitingStore(Box<Fetch>),
    /// The request waits in the access gate: basic auth or a limit (`gate.rs`).
    Gated(Box<super::gate::Gated>),
    /// An exchange with the upstream.
    Proxying(Box<Exchange>),
    /// A call on an HTTP/2 upstream connection (`h2up.rs`).
    H2Up(Box<super::h2up::Call>),
    /// The broker's WebSocket feed (RFC 8441).
    Feed(Box<Feed>),
    /// A broker request held until the broker's first polling round (`/session`; `/`
    /// while no server is known available), answered on `KEY_FIRST_ROUND | id`.
    BrokerHeld(Box<BrokerHeld>),
    /// Ended without an answer (reset, failed): nothing more to do.
    Gone,
}

/// `on_wake` key bit: a held broker request's first round settled (`| stream id`).
pub(super) const KEY_FIRST_ROUND: u64 = 1 << 35;

/// A broker request waiting for the first polling round.
pub(super) struct BrokerHeld {
    broker: std::sync::Arc<tether_broker::Broker>,
    rel: String,
    head: RequestHead,
}

/// A proxied request whose learned session is asked of the store.
pub(super) struct Fetch {
    req: Proxied,
    answer: StoreAnswer,
    /// The request body received meanwhile.
    pub early: Early,
}

impl Stream {
    /// Read the body's source again while `Out` has room. `Err(status)`: it failed.
    pub fn fill(&mut self, cx: &mut Cx<'_>) -> Result<(), u16> {
        if !self.out.head_sent || self.out.sent_end {
            return Ok(());
        }
        match &mut self.work {
            Work::Local(Some(f)) => f.fill(&mut self.out).map_err(|e| {
                log::warn!("h2: stream {}: reading a file: {e}", self.id);
                500
            }),
            Work::Proxying(x) => upstream::pull(cx, x, &mut self.out),
            _ => Ok(()),
        }
    }

    /// Send what the windows allow. True if a byte (or the END_STREAM) went out.
    pub fn send(&mut self, h2: &mut tether_h2::Conn, now: std::time::Instant) -> bool {
        let out = &mut self.out;
        if out.sent_end || !out.head_sent {
            return false;
        }
        let mut moved = false;
        loop {
            let last = out.end && out.trailers.is_none() && out.queue.len() == 1;
            let Some(front) = out.queue.front_mut() else {
                break;
            };
            match h2.send_data(self.id, front, last) {
                Ok(n) => {
                    out.queued -= n;
                    moved |= n > 0;
                    if let Some(c) = self.current.as_mut() {
                        c.note_sent(n);
                    }
                    if !front.is_empty() {
                        break; // the window is closed
                    }
                    out.queue.pop_front();
                    if last {
                        out.sent_end = true;
                    }
                }
                Err(_) => {
                    // The stream is gone (reset): what is left is dropped.
                    out.queue.clear();
                    out.queued = 0;
                    out.sent_end = true;
                    return moved;
                }
            }
        }
        if out.queue.is_empty() && out.end && !out.sent_end {
            match out.trailers.take() {
                Some(t) => {
                    let list: Vec<(&[u8], &[u8])> =
                        t.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                    let _ = h2.send_trailers(self.id, &list);
                }
                None => {
                    let _ = h2.send_data(self.id, &mut Bytes::new(), true);
                }
            }
            out.sent_end = true;
            moved = true;
        }
        out.stalled_since = match out.queue.is_empty() {
            true => None,
            false => out.stalled_since.or(Some(now)),
        };
        moved
    }

    /// The answer is out and nothing else runs for this stream.
    pub fn is_over(&self) -> bool {
        self.out.sent_end
            && match &self.work {
                Work::Local(_) | Work::Feed(_) | Work::Gone => true,
                Work::AwaitingStore(_)
                | Work::Gated(_)
                | Work::BrokerHeld(_)
                | Work::ReadingForm(_) => false,
                Work::Proxying(x) => x.settled(),
                Work::H2Up(c) => c.settled(),
            }
    }

    /// Drop the work under way (its upstream connection closes); `status` is logged if
    /// nothing was answered.
    pub fn abandon(&mut self, cx: &mut Cx<'_>, status: u16) {
        match std::mem::replace(&mut self.work, Work::Gone) {
            Work::Proxying(x) => upstream::abandon(cx, x),
            Work::H2Up(c) => super::h2up::abandon(cx, c),
            _ => {}
        }
        if let Some(c) = self.current.as_mut().filter(|c| c.status == 0) {
            c.status = status;
        }
    }

    /// Count the request and write its access-log line; a stream still open our way is
    /// reset.
    pub fn finish(
        mut self,
        cx: &mut Cx<'_>,
        h2: &mut tether_h2::Conn,
        ctx: &ListenerCtx,
        peer: &Peer,
    ) {
        if !self.out.sent_end {
            h2.reset(self.id, ErrorCode::Cancel);
        }
        if let Some(c) = self.current.take() {
            let addr = cx.peer_addr(peer.conn);
            let addr = addr.or_else(|| peer.ip.map(|ip| std::net::SocketAddr::new(ip, 0)));
            log_done(ctx, addr, peer.tls.as_deref(), c, cx.now(), None);
        }
    }

    /// The request's `X-Request-Id`, for its access-log line.
    pub fn note_request_id(&mut self, id: Option<&str>) {
        if let Some(c) = self.current.as_mut() {
            c.note_request_id(id);
        }
    }

    /// Keep what the access gate holds (`limit_conn` permits) until the stream is logged.
    pub fn hold(&mut self, held: crate::access::Held) {
        if let Some(c) = self.current.as_mut() {
            c.held = held;
        }
    }

    /// What the access log notes of the upstream side (`http/conn.rs` `Current`).
    pub fn current_mut(&mut self) -> Option<&mut Current> {
        self.current.as_mut()
    }

    pub fn note_status(&mut self, status: u16) {
        if let Some(c) = self.current.as_mut() {
            c.status = status;
        }
    }
}

/// The request head an HTTP/2 request stands for (`Err`: the status to answer), made from
/// its parts (`tether_http::request_from_parts`: checked as an HTTP/1.1 head is, never
/// written out and parsed back): `:authority` as `Host`, `transfer-encoding: chunked` when
/// a body of unknown length follows.
fn to_h1(
    head: &tether_h2::RequestHead,
    end_stream: bool,
    limits: &Limits,
) -> Result<RequestHead, u16> {
    // An extended CONNECT for a WebSocket (RFC 8441) is the HTTP/1.1 upgrade it stands
    // for (RFC 6455's GET); any other CONNECT is not served.
    let websocket = match (&head.method[..], head.protocol.as_deref()) {
        (b"CONNECT", Some(p)) if p.eq_ignore_ascii_case(b"websocket") => true,
        (b"CONNECT", _) => return Err(501),
        _ => false,
    };
    let method: &[u8] = if websocket { b"GET" } else { &head.method };
    let key;
    let extra: Vec<(&[u8], &[u8])> = if websocket {
        // HTTP/2 has no key; the HTTP/1.1 handshake needs one (its answer is not passed on).
        key = websocket_key();
        vec![
            (b"connection", b"upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-key", key.as_bytes()),
        ]
    } else if !end_stream && head.content_length.is_none() {
        vec![(b"transfer-encoding", b"chunked")]
    } else {
        Vec::new()
    };
    let authority = head.authority.as_deref().map(|a| (&b"host"[..], a));
    // `:authority` wins over a `host` field (RFC 9113 §8.3.1).
    let has_authority = authority.is_some();
    let fields = (head.fields.iter())
        .filter(move |(n, _)| !(has_authority && &n[..] == b"host"))
        .map(|(n, v)| (&n[..], &v[..]));
    let all = authority
        .into_iter()
        .chain(fields)
        .chain(extra.iter().copied());
    tether_http::request_from_parts(method, &head.path, all, limits).map_err(|e| e.status)
}

/// A fresh `Sec-WebSocket-Key`: 16 bytes from the process's random hasher keys and a
/// counter, in base64.
fn websocket_key() -> String {
    use base64::Engine;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let mut key = [0u8; 16];
    for (i, half) in key.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl H2Session {
    /// A new stream's request head.
    pub(super) fn on_request(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        head: tether_h2::RequestHead,
        end_stream: bool,
    ) {
        let h1 = to_h1(&head, end_stream, &self.ctx.limits);
        let log = self.ctx.access_log.is_some().then(|| match &h1 {
            Ok(h) => LogText::of(h, "HTTP/2.0", self.ctx.log_headers()),
            Err(_) => Box::new(LogText {
                line: format!(
                    "{} {} HTTP/2.0",
                    String::from_utf8_lossy(&head.method),
                    String::from_utf8_lossy(&head.path)
                ),
                referer: "-".into(),
                user_agent: "-".into(),
                ..LogText::default()
            }),
        });
        self.begin(cx, id, &head.method[..] == b"HEAD", log);
        let grpc = (head.fields.iter())
            .any(|(n, v)| &n[..] == b"content-type" && crate::h2up::grpc::is_grpc(v));
        if let Some(s) = self.streams.get_mut(&id).filter(|_| grpc) {
            s.grpc = true;
        }
        match h1 {
            Ok(h) => self.serve(cx, id, h, Early::new(end_stream)),
            Err(status) => self.answer_status(cx, id, status, ""),
        }
    }

    /// A request tether-h2 refused before it became one (its head over the limit: 431).
    pub(super) fn refused(&mut self, cx: &mut Cx<'_>, id: u32, status: u16) {
        let log = self.ctx.access_log.is_some().then(|| {
            Box::new(LogText {
                line: "- - HTTP/2.0".into(),
                referer: "-".into(),
                user_agent: "-".into(),
                ..LogText::default()
            })
        });
        self.begin(cx, id, false, log);
        self.answer_status(cx, id, status, "");
    }

    fn begin(&mut self, cx: &Cx<'_>, id: u32, head_only: bool, log: Option<Box<LogText>>) {
        self.ctx.stats.request_started();
        let current = Current {
            started: cx.now(),
            status: 0,
            log,
            held: Default::default(),
            pages: None,
        };
        let s = Stream {
            id,
            current: Some(current),
            head_only,
            out: Out::default(),
            work: Work::Local(None),
            grpc: false,
        };
        self.streams.insert(id, s);
    }

    /// Route, access, module (`http/phases.rs` phases 4 to 7).
    fn serve(&mut self, cx: &mut Cx<'_>, id: u32, head: RequestHead, early: Early) {
        let ctx = self.ctx.clone();
        let sni = self.peer.tls.as_ref().and_then(|t| t.sni.as_deref());
        let Some(route) = phases::route_for(&ctx, sni, &head) else {
            return self.answer_status(cx, id, 404, "");
        };
        if let Some(cur) = self.streams.get_mut(&id).and_then(|s| s.current.as_mut()) {
            cur.pages = crate::http::rewrite::PagesFor::of(route.rules.as_ref(), &head);
            cur.note_route(route.access_log.as_ref());
        }
        if !route.acl.permits(self.peer.ip) {
            log::info!(
                "h2 {}: {} denied for {:?}",
                ctx.spec.listen,
                head.path(),
                self.peer.ip
            );
            return self.answer_status(cx, id, 403, "");
        }
        // Then its basic auth and request limits (`gate.rs`), which may wait.
        if let Some(a) = &route.access {
            return self.gate_start(cx, id, a.clone(), &route.path, head, early);
        }
        self.after_access(cx, id, &ctx, route, head, early)
    }

    /// After the access phase: `port_rewrite`, then the module (`http/phases.rs` 5 to 7).
    pub(super) fn after_access(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        ctx: &ListenerCtx,
        route: &crate::router::Route,
        head: RequestHead,
        early: Early,
    ) {
        // `/<port>/<rest>` under a `port_rewrite` route: proxied to that local port as
        // `/<rest>` (HTTP only: a WebSocket there needs HTTP/1.1's Upgrade).
        let rewrite = route.ports.as_deref().and_then(|ports| {
            PortRewrite::split(&mounts::under_route(&route.path, &head)).map(|p| (ports, p))
        });
        if let Some((ports, (port, target))) = rewrite {
            return match mounts::port_upstream(&ctx.spec.listen, ports, port) {
                Ok(upstream) => {
                    ctx.stats.routed(crate::metrics::ReqKind::Proxy);
                    let req = Proxied {
                        head,
                        upstream,
                        max_body: route.max_body,
                        retarget: Some(target),
                        rules: None,
                        request_id: None,
                        encode: None,
                        form: None,
                    };
                    self.pick(cx, id, req, None, early)
                }
                Err(status) => self.answer_status(cx, id, status, ""),
            };
        }
        ctx.stats.routed(phases::req_kind(&route.action));
        // Over HTTP/2 only an extended CONNECT is an upgrade. A 2xx would say its WebSocket
        // is open: only a proxy and the broker's feed may answer one.
        let feed = matches!(route.action, Action::Broker(_))
            && mounts::relative(&route.path, head.path()) == "/";
        if head.upgrade && !feed && !matches!(route.action, Action::Proxy(_)) {
            return self.answer_message(cx, id, 501, "no WebSocket here");
        }
        match &route.action {
            Action::Files(opts) => {
                let reply = static_files::serve(opts, &head, &ctx.server, true);
                if reply.status >= 400 {
                    if let Some(page) = self.error_page(id, reply.status, "") {
                        return self.answer_h1(cx, id, page.into(), None);
                    }
                }
                let file = reply
                    .body
                    .map(|(file, offset, left)| FileBody { file, offset, left });
                self.answer_h1(cx, id, reply.head, file);
            }
            Action::Status(format) => match local::status_answer(ctx, *format, head.method, true) {
                Ok(bytes) => self.answer_h1(cx, id, bytes.into(), None),
                Err((status, extra)) => self.answer_status(cx, id, status, extra),
            },
            Action::Redirect { status, location } => {
                let location = route
                    .rules
                    .as_deref()
                    .and_then(|r| crate::http::rewrite::redirect_location(r, &head))
                    .unwrap_or_else(|| location.clone());
                self.answer_status(cx, id, *status, &format!("Location: {location}\r\n"))
            }
            Action::NotFound => self.answer_status(cx, id, 404, ""),
            Action::Broker(name) => {
                let rel = mounts::under_route(&route.path, &head);
                if head.upgrade {
                    // An extended CONNECT (`to_h1` made its HTTP/1.1 upgrade): the feed.
                    return match (ctx.brokers.get(name), ws::check_upgrade(head.headers())) {
                        (Some(b), Ok(Some(_))) => self.start_feed(cx, id, b.clone()),
                        (None, _) => self.answer_status(cx, id, 404, ""),
                        (_, Err(e)) => self.answer_status(cx, id, e.status(), ""),
                        (_, Ok(None)) => self.answer_status(cx, id, 400, ""),
                    };
                }
                let Some(b) = ctx.brokers.get(name).cloned() else {
                    return self.answer_status(cx, id, 404, "");
                };
                // Webots polls once before it listens: `/session` during the first round
                // waits for its result (as over HTTP/1.1, `http/mounts.rs`).
                let request = tether_broker::Request {
                    method: head.method_str(),
                    target: &rel,
                    authorization: head.header("authorization"),
                };
                if let Some(remote) = cx.remote() {
                    let wake = KEY_FIRST_ROUND | id as u64;
                    if b.hold(&request, Box::new(move || remote.wake(wake))) {
                        if let Some(s) = self.streams.get_mut(&id) {
                            s.work = Work::BrokerHeld(Box::new(BrokerHeld {
                                broker: b,
                                rel: rel.to_string(),
                                head: head.clone(),
                            }));
                        }
                        return;
                    }
                }
                self.broker_answer(cx, id, &b, &rel, &head);
            }
            Action::Proxy(_) if route.max_body.is_some_and(|m| phases::body_over(&head, m)) => {
                self.answer_status(cx, id, 413, "")
            }
            Action::Proxy(upstream) => {
                let req = Proxied::new(head, upstream.clone(), route);
                self.read_form(cx, id, req, early);
            }
        }
    }

    /// Phase 7, pick: the server the affinity chooses, or the store first.
    pub(super) fn pick(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        mut req: Proxied,
        fetched: Option<Option<String>>,
        mut early: Early,
    ) {
        let ctx = self.ctx.clone();
        match req.decide(&ctx, self.peer.key.as_ref(), cx.now(), fetched) {
            Decision::Go(mut pick) => {
                if let Some(new) = pick.body.take() {
                    early.replace_body(new);
                }
                self.start_upstream(cx, id, req, Decision::pick_of(pick), early)
            }
            Decision::Refuse(status, message) => self.answer_message(cx, id, status, message),
            Decision::Fetch(key) => {
                let Some(remote) = cx.remote() else {
                    return self.pick(cx, id, req, Some(None), early);
                };
                let answer = phases::ask_store(&*ctx.store, &key, remote, KEY_STREAM | id as u64);
                if let Some(s) = self.streams.get_mut(&id) {
                    s.work = Work::AwaitingStore(Box::new(Fetch { req, answer, early }));
                }
            }
        }
    }

    /// The store answered for stream `id`: decide again.
    pub(super) fn fetched(&mut self, cx: &mut Cx<'_>, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return; // the stream ended meanwhile
        };
        let Work::AwaitingStore(f) = std::mem::replace(&mut s.work, Work::Gone) else {
            return;
        };
        match phases::store_answer(&f.answer, self.ctx.on_store_error) {
            Ok(answer) => self.pick(cx, id, f.req, Some(answer), f.early),
            Err((status, message)) => self.answer_message(cx, id, status, message),
        }
    }

    /// The broker's answer to stream `id`'s request under its route.
    fn broker_answer(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        b: &tether_broker::Broker,
        rel: &str,
        head: &RequestHead,
    ) {
        let server = self.ctx.server.clone();
        match mounts::broker_reply(b, &server, rel, head, true) {
            Some((_, bytes)) => self.answer_h1(cx, id, bytes.into(), None),
            None => self.answer_status(cx, id, 404, ""),
        }
    }

    /// `KEY_FIRST_ROUND | id`: the broker's first round settled; answer the held stream.
    pub(super) fn first_round(&mut self, cx: &mut Cx<'_>, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return; // the stream ended meanwhile
        };
        let Work::BrokerHeld(h) = std::mem::replace(&mut s.work, Work::Gone) else {
            return;
        };
        self.broker_answer(cx, id, &h.broker, &h.rel, &h.head);
    }

    /// Answer with HTTP/1.1 bytes made by the shared code (head, maybe the body), then
    /// `file` if any.
    pub(super) fn answer_h1(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        bytes: Bytes,
        file: Option<FileBody>,
    ) {
        let bytes = secure(&self.ctx.spec, bytes);
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let Some(answer) = reply::read_h1(bytes, s.head_only, &self.ctx.limits) else {
            log::error!(
                "h2 {}: stream {id}: an answer not HTTP (a bug)",
                self.listen()
            );
            return self.drop_stream(cx, id, 500);
        };
        s.note_status(answer.status);
        s.out = Out::default();
        let more = file.is_some() && !s.head_only;
        reply::send(&mut self.h2, id, answer, more, &mut s.out);
        s.work = Work::Local(file.filter(|_| more));
    }

    /// The route's own page for `status` on stream `id` (`error_page`), if it has one.
    fn error_page(&self, id: u32, status: u16, extra: &str) -> Option<Vec<u8>> {
        let s = self.streams.get(&id)?;
        let pages = s.current.as_ref()?.pages.as_ref()?;
        pages.page(status, &self.ctx.server, extra, s.head_only, true)
    }

    /// Whether the backend's `status` on stream `id` is replaced by the route's page.
    pub(super) fn intercepts(&self, id: u32, status: u16) -> bool {
        self.streams
            .get(&id)
            .and_then(|s| s.current.as_ref())
            .and_then(|c| c.pages.as_ref())
            .is_some_and(|p| p.intercepts(status))
    }

    /// A status page (`extra`: header lines, each ending in CRLF).
    pub(super) fn answer_status(&mut self, cx: &mut Cx<'_>, id: u32, status: u16, extra: &str) {
        if self.grpc_answer(id, status, "") {
            return;
        }
        let head_only = self.streams.get(&id).is_some_and(|s| s.head_only);
        if let Some(page) = self.error_page(id, status, extra) {
            return self.answer_h1(cx, id, page.into(), None);
        }
        let page = status_page_ka(status, &self.ctx.server, extra, head_only, true);
        self.answer_h1(cx, id, page.into(), None);
    }

    /// `status` with a one-line reason.
    pub(super) fn answer_message(&mut self, cx: &mut Cx<'_>, id: u32, status: u16, msg: &str) {
        if self.grpc_answer(id, status, msg) {
            return;
        }
        let head_only = self.streams.get(&id).is_some_and(|s| s.head_only);
        if let Some(page) = self.error_page(id, status, "") {
            return self.answer_h1(cx, id, page.into(), None);
        }
        let page = message_page(status, &self.ctx.server, msg, head_only, true);
        self.answer_h1(cx, id, page.into(), None);
    }
}
