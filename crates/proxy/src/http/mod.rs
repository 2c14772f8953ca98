//! The `http` listener's session: HTTP/1.1 with keep-alive and pipelining (requests are
//! answered one after another, in order), proxying to one upstream address (`proxy.rs`)
//! or serving a directory (this file).
//!
//! Life of a connection:
//! 1. `on_start`: a pipe client → session (`reader`); the idle check waits for a request's
//!    first byte (and watches exchanges); `head_deadline.rs` times the head from then on.
//! 2. `next_request`: the bytes gathered so far are parsed by `tether_http::parse_request`.
//!    Partial: wait (the head's deadline starts). An error: a status page, then close
//!    (`fail`). Complete: dispatch to `serve_file` or `proxy::start`.
//! 3. The exchange runs (see `proxy.rs`); when both the request and the response are done,
//!    `finish` either closes (lingering) or goes back to 2 with the bytes already buffered —
//!    a pipelined request is served right away.

mod affinity;
mod drain;
mod forward;
mod head_deadline;
mod mounts;
mod proxy;
mod too_many;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tether_core::{ConnId, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};
use tether_http::{parse_request, BodyKind, Limits, Method, Parsed, RequestHead};

use tether_balance::{ActiveGuard, ClientKey, ServerRef};
use tether_broker::Broker;
use tether_store::Store;

use crate::access_log::{AccessLog, Entry};
use crate::config::ListenerSpec;
use crate::idle::{self, KEY_CONNECT, KEY_LINGER, LINGER};
use crate::metrics::{Registry, ReqKind, WorkerStats};
use crate::per_ip::IpSlot;
use crate::response;
use crate::router::{Action, PortRewrite, Router, StatusFormat};
use crate::static_files::{self, FileOptions};
use crate::upstream::Upstream;
use affinity::{Decision, Env};

pub use forward::with_date;
use proxy::Exchange;
pub use too_many::TooMany;

/// Bytes a client may have buffered (pipelined) in the reader pipe while a response runs.
const READ_AHEAD: usize = 64 * 1024;

#[derive(PartialEq, Eq, Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head; once its first byte came, the time by which
    /// it must be complete (`head_deadline.rs`).
    Head(Option<head_deadline::HeadDeadline>),
    /// Serving a request: a file, or an exchange with the upstream.
    Busy,
    /// Two-way tunnel after `101 Switching Protocols`.
    Tunnel,
    /// A last response is on its way; then the connection closes.
    Closing,
    /// The broker's WebSocket feed (`mounts.rs`).
    Feed,
}

/// One client connection of an `http` listener.
pub struct HttpSession {
    spec: Arc<ListenerSpec>,
    server: Arc<str>,
    router: Arc<Router>,
    limits: Limits,
    phase: Phase,
    client: Option<ConnId>,
    /// Client → session: request heads, chunked request bodies, pipelined bytes.
    reader: Option<PipeId>,
    /// Client bytes taken from `reader` and not used yet.
    buf: BytesMut,
    /// The client connection stays open after the current response.
    keep_alive: bool,
    /// The client sent its FIN: serve what is buffered, then close.
    client_done: bool,
    /// The response tether writes itself (file, status page) for the current request.
    local: Option<PipeId>,
    /// Client → discard, while closing.
    linger: Option<PipeId>,
    /// The exchange with the upstream for the current request.
    xchg: Option<Exchange>,
    /// The upstream connection of a tunnel (after `101`).
    tunnel_up: Option<ConnId>,
    /// The client's address and its text (for `X-Forwarded-For`), read once per connection.
    client_ip: Option<std::net::IpAddr>,
    client_ip_text: String,
    access_log: Option<Arc<AccessLog>>,
    /// The request being answered, for the metrics and the access log.
    current: Option<Current>,
    stats: Arc<WorkerStats>,
    metrics: Option<Arc<Registry>>,
    /// The affinity store, and the client's address as a hashing key.
    env: Env,
    client_key: Option<ClientKey>,
    /// The server this connection's requests are counted on (least connections, bounded
    /// load), while it is the one they go to.
    active: Option<ActiveGuard>,
    /// A request waiting for the store's answer (a learned session held in Redis).
    pending: Option<Pending>,
    /// The simulation-server brokers routes may name, and this client's feed, if any.
    brokers: Arc<HashMap<String, Arc<Broker>>>,
    /// The client's TLS facts (SNI, version, cipher, ALPN) on a TLS listener.
    tls: Option<Arc<tether_core::tls::TlsInfo>>,
    feed: Option<Box<mounts::Feed>>,
    /// The core is draining: no keep-alive after the current request (`drain.rs`).
    draining: bool,
    /// This connection counted on its client address (`max_connections_per_ip`); given
    /// back when the session is dropped.
    _ip_slot: Option<IpSlot>,
}

/// A proxied request whose affinity waits for the store.
struct Pending {
    head: RequestHead,
    upstream: Arc<Upstream>,
    max_body: Option<u64>,
    answer: Arc<Mutex<Option<Option<String>>>>,
    retarget: Option<String>,
}

/// `on_wake` key: the store answered a `fetch`.
const KEY_FETCH: u64 = 1;

/// The request under way: when it started, how it was answered.
struct Current {
    started: Instant,
    status: u16,
    /// What only the access log needs (none when it is off).
    log: Option<Box<LogText>>,
}

struct LogText {
    line: String,
    referer: String,
    user_agent: String,
}

impl HttpSession {
    pub fn new(spec: Arc<ListenerSpec>, server: Arc<str>, router: Arc<Router>) -> HttpSession {
        HttpSession {
            spec,
            server,
            router,
            limits: Limits::default(),
            phase: Phase::Head(None),
            client: None,
            reader: None,
            buf: BytesMut::new(),
            keep_alive: true,
            client_done: false,
            local: None,
            linger: None,
            xchg: None,
            tunnel_up: None,
            client_ip: None,
            client_ip_text: String::new(),
            access_log: None,
            current: None,
            stats: Arc::default(),
            metrics: None,
            env: Env::default(),
            client_key: None,
            active: None,
            pending: None,
            brokers: Arc::default(),
            tls: None,
            feed: None,
            draining: false,
            _ip_slot: None,
        }
    }

    /// Hold `slot` (this connection, counted on its client address) while the session lives.
    pub fn set_ip_slot(&mut self, slot: Option<IpSlot>) {
        self._ip_slot = slot;
    }

    /// The started brokers, by name, for `broker` routes.
    pub fn set_brokers(&mut self, brokers: Arc<HashMap<String, Arc<Broker>>>) {
        self.brokers = brokers;
    }

    /// Use `store` for affinity entries; `shared`: other instances use it too (Redis).
    pub fn set_store(&mut self, store: Arc<dyn Store>, shared: bool) {
        self.env = Env { store, shared };
    }

    /// Count this connection on `server` (and no longer on the previous one).
    fn hold(&mut self, server: &ServerRef) {
        if self
            .active
            .as_ref()
            .is_some_and(|g| Arc::ptr_eq(g.server(), server))
        {
            return;
        }
        self.active = Some(server.acquire());
    }

    /// Send a proxied request to the server its affinity chooses, refuse it, or ask the
    /// store first.
    fn proxy_request(
        &mut self,
        cx: &mut Cx<'_>,
        head: RequestHead,
        upstream: Arc<Upstream>,
        max_body: Option<u64>,
        fetched: Option<Option<String>>,
        retarget: Option<String>,
    ) {
        let env = self.env.clone();
        let key = self.client_key;
        let ctx = env.ctx(&upstream, key.as_ref(), cx.now());
        match affinity::decide(&ctx, &head, fetched) {
            Decision::Go(mut pick) => {
                if retarget.is_some() {
                    pick.request.target = retarget;
                }
                proxy::start(self, cx, head, upstream, *pick, max_body)
            }
            Decision::Refuse(status, message) => {
                if !matches!(head.body, BodyKind::None | BodyKind::Length(0)) {
                    self.keep_alive = false;
                }
                let page = response::message_page(
                    status,
                    &self.server,
                    message,
                    head.method == Method::Head,
                    self.keep_alive,
                );
                self.respond(cx, page.into(), None);
            }
            Decision::Fetch(store_key) => {
                let Some(remote) = cx.remote() else {
                    return self.proxy_request(cx, head, upstream, max_body, Some(None), retarget);
                };
                let answer = Arc::new(Mutex::new(None));
                let slot = answer.clone();
                env.store.fetch(
                    &store_key,
                    Box::new(move |value| {
                        if let Ok(mut a) = slot.lock() {
                            *a = Some(value);
                        }
                        remote.wake(KEY_FETCH);
                    }),
                );
                self.pending = Some(Pending {
                    head,
                    upstream,
                    max_body,
                    answer,
                    retarget,
                });
            }
        }
    }

    /// Count this session's requests in `stats`; `metrics` answers `status_page` routes.
    pub fn set_metrics(&mut self, stats: Arc<WorkerStats>, metrics: Option<Arc<Registry>>) {
        self.stats = stats;
        self.metrics = metrics;
    }

    /// Write one access-log line per request to `log`.
    pub fn set_access_log(&mut self, log: Option<Arc<AccessLog>>) {
        self.access_log = log;
    }

    /// Remember the status of the response under way (for the access log).
    fn note_status(&mut self, status: u16) {
        if let Some(c) = self.current.as_mut() {
            c.status = status;
        }
    }

    /// The request under way is over: count it and write its access-log line, once.
    fn log_request(&mut self, cx: &Cx<'_>) {
        let Some(c) = self.current.take() else {
            return;
        };
        let took = cx.now().saturating_duration_since(c.started);
        self.stats.request_done(c.status, took);
        let (Some(log), Some(text)) = (self.access_log.as_ref(), c.log) else {
            return;
        };
        log.write(&Entry {
            client: self.client_ip,
            request_line: &text.line,
            status: c.status,
            referer: &text.referer,
            user_agent: &text.user_agent,
            duration: took,
            tls: self.tls.as_deref(),
        });
    }

    /// Make sure the client → session pipe is open (it is closed while a body streams
    /// straight to the upstream).
    fn open_reader(&mut self, cx: &mut Cx<'_>) {
        if self.reader.is_some() || self.phase == Phase::Closing {
            return;
        }
        if let Some(c) = self.client {
            if !cx.read_closed(c) {
                let opts = PipeOpts {
                    threshold: READ_AHEAD,
                    ..PipeOpts::default()
                };
                self.reader = Some(cx.pipe_with(Source::Conn(c), Sink::Session, opts));
            }
        }
    }

    /// Move what waits in the reader pipe into `buf`.
    fn gather(&mut self, cx: &mut Cx<'_>) {
        if let Some(r) = self.reader {
            while let Some(b) = cx.take(r) {
                self.buf.extend_from_slice(&b);
            }
        }
    }

    /// Close the reader pipe after gathering what it holds.
    fn close_reader(&mut self, cx: &mut Cx<'_>) {
        self.gather(cx);
        if let Some(r) = self.reader.take() {
            cx.close_pipe(r);
        }
    }

    /// Parse the next request from `buf` and serve it, if complete.
    fn next_request(&mut self, cx: &mut Cx<'_>) {
        if !matches!(self.phase, Phase::Head(_)) {
            return;
        }
        self.gather(cx);
        if self.buf.is_empty() {
            return;
        }
        let parsed = parse_request(&self.buf, &self.limits);
        if !matches!(parsed, Ok(Parsed::Partial)) {
            head_deadline::stop(self, cx);
        }
        let head = match parsed {
            Ok(Parsed::Partial) => return head_deadline::start(self, cx),
            Ok(Parsed::Complete(h)) => h,
            Err(e) => {
                log::debug!(
                    "http {}: bad request: {} {}",
                    self.spec.listen,
                    e.status,
                    e.reason
                );
                self.stats.conn_error();
                // Counted as a request answered with its 4xx (no line for the access log).
                self.stats.request_started();
                self.current = Some(Current {
                    started: cx.now(),
                    status: 0,
                    log: None,
                });
                return self.fail(cx, e.status);
            }
        };
        let _ = self.buf.split_to(head.len());
        self.keep_alive = head.keep_alive && !self.draining;
        let log = self.access_log.is_some().then(|| {
            let text = |name: &str| {
                head.header(name)
                    .map_or("-".into(), |v| String::from_utf8_lossy(v).into_owned())
            };
            Box::new(LogText {
                line: format!(
                    "{} {} {}",
                    head.method_str(),
                    head.target(),
                    head.version.as_str()
                ),
                referer: text("referer"),
                user_agent: text("user-agent"),
            })
        });
        self.stats.request_started();
        self.current = Some(Current {
            started: cx.now(),
            status: 0,
            log,
        });
        self.phase = Phase::Busy;
        let keep = self.keep_alive && matches!(head.body, BodyKind::None | BodyKind::Length(0));
        if let Some(a) = crate::acme::http01_answer(&self.spec.front, &head, &self.server, keep) {
            self.keep_alive = keep;
            return self.respond(cx, a, None);
        }
        if let Some(port) = self.spec.front.redirect_https {
            return self.redirect_https(cx, &head, port);
        }
        let router = self.router.clone();
        // Without a Host (HTTP/1.0), the name the client asked TLS for.
        let host = head
            .host()
            .or(self.tls.as_ref().and_then(|t| t.sni.as_deref()));
        let Some(route) = router.route(host, head.path()) else {
            if !matches!(head.body, BodyKind::None | BodyKind::Length(0)) {
                self.keep_alive = false;
            }
            return self.status(cx, 404, head.method == Method::Head);
        };
        // The path under the route's prefix, with the query (port rewrite, broker).
        let rel = mounts::relative(&route.path, head.path()).to_string() + head.query();
        if let Some(ports) = route.ports.clone() {
            if let Some((port, target)) = PortRewrite::split(&rel) {
                return mounts::port_rewrite(self, cx, head, &ports, port, target, route);
            }
        }
        if !matches!(route.action, Action::Proxy(_))
            && !matches!(head.body, BodyKind::None | BodyKind::Length(0))
        {
            // Only a proxy route reads a request body; elsewhere the body ends the connection.
            self.keep_alive = false;
        }
        let ip = self.client_ip;
        if !route.acl.permits(ip) {
            log::info!(
                "http {}: {} denied for {:?}",
                self.spec.listen,
                head.path(),
                ip
            );
            return self.status(cx, 403, head.method == Method::Head);
        }
        self.stats.routed(match route.action {
            Action::Files(_) => ReqKind::File,
            Action::Proxy(_) => ReqKind::Proxy,
            Action::Redirect { .. } => ReqKind::Redirect,
            Action::Status(_) | Action::Broker(_) | Action::NotFound => ReqKind::Other,
        });
        match &route.action {
            Action::Files(opts) => self.serve_file(cx, opts, &head),
            Action::Broker(name) => mounts::broker(self, cx, name, &rel, &head),
            Action::NotFound => self.status(cx, 404, head.method == Method::Head),
            Action::Status(format) => self.serve_status(cx, *format, &head),
            Action::Proxy(_) if route.max_body.is_some_and(|m| body_over(&head.body, m)) => {
                log::info!(
                    "http {}: {} body over the limit of {} bytes",
                    self.spec.listen,
                    head.path(),
                    route.max_body.unwrap_or(0)
                );
                self.keep_alive = false;
                self.status(cx, 413, head.method == Method::Head)
            }
            Action::Proxy(upstream) => {
                let upstream = upstream.clone();
                self.proxy_request(cx, head, upstream, route.max_body, None, None)
            }
            Action::Redirect { status, location } => {
                let extra = format!("Location: {location}\r\n");
                let head_only = head.method == Method::Head;
                let page = response::status_page_ka(
                    *status,
                    &self.server,
                    &extra,
                    head_only,
                    self.keep_alive,
                );
                self.respond(cx, page.into(), None);
            }
        }
    }

    /// Answer `status` with a one-line reason and close the connection (the request body,
    /// if any, was not read).
    fn refuse(&mut self, cx: &mut Cx<'_>, status: u16, message: &str) {
        self.keep_alive = false;
        let page = response::message_page(status, &self.server, message, false, false);
        self.respond(cx, page.into(), None);
    }

    /// Answer with a status page and close the connection.
    fn fail(&mut self, cx: &mut Cx<'_>, status: u16) {
        let page = response::status_page(status, &self.server, "", false);
        self.keep_alive = false;
        self.respond(cx, page.into(), None);
    }

    /// A status page that keeps the connection if the request allows it (a request body is
    /// not read, so then the connection closes).
    fn status(&mut self, cx: &mut Cx<'_>, status: u16, head_only: bool) {
        let page = response::status_page_ka(status, &self.server, "", head_only, self.keep_alive);
        self.respond(cx, page.into(), None);
    }

    /// Send a response tether wrote itself: `head` (with its body, for a status page), then
    /// `file` if any. With keep-alive the connection carries on afterwards; otherwise it
    /// closes once the response is out.
    /// `redirect_http`: `308` to the same URL over HTTPS (the Host without its port, then
    /// the HTTPS port unless 443).
    fn redirect_https(&mut self, cx: &mut Cx<'_>, head: &RequestHead, port: u16) {
        let host = match head.host() {
            Some(h) => h.to_string(),
            None => match self.client.and_then(|c| cx.local_addr(c)) {
                Some(a) if a.is_ipv6() => format!("[{}]", a.ip()),
                Some(a) => a.ip().to_string(),
                None => return self.status(cx, 400, head.method == Method::Head),
            },
        };
        let name = match host.strip_prefix('[') {
            Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or(v6)),
            None => host.split(':').next().unwrap_or(&host).to_string(),
        };
        let port = if port == 443 {
            String::new()
        } else {
            format!(":{port}")
        };
        let target = if head.target().starts_with('/') {
            head.target()
        } else {
            "/"
        };
        let extra = format!("Location: https://{name}{port}{target}\r\n");
        let head_only = head.method == Method::Head;
        let page = response::status_page_ka(308, &self.server, &extra, head_only, self.keep_alive);
        self.respond(cx, page.into(), None);
    }

    fn respond(&mut self, cx: &mut Cx<'_>, head: Bytes, file: Option<Source>) {
        let Some(client) = self.client else { return };
        let head = secure(&self.spec, head);
        if self.current.is_some() {
            let status = head.get(9..12).and_then(|d| std::str::from_utf8(d).ok());
            self.note_status(status.and_then(|d| d.parse().ok()).unwrap_or(0));
        }
        if !self.keep_alive {
            self.start_closing(cx);
        }
        let opts = PipeOpts {
            fin: !self.keep_alive,
            ..PipeOpts::default()
        };
        let with_file = file.is_some();
        let p = cx.pipe_with(file.unwrap_or(Source::Session), Sink::Conn(client), opts);
        cx.push(p, head);
        if !with_file {
            cx.end(p);
        }
        self.local = Some(p);
    }

    /// No more requests on this connection: what the client still sends is discarded.
    fn start_closing(&mut self, cx: &mut Cx<'_>) {
        self.phase = Phase::Closing;
        self.keep_alive = false;
        if let Some(r) = self.reader.take() {
            cx.close_pipe(r);
        }
        if self.linger.is_none() {
            if let Some(c) = self.client {
                if !cx.read_closed(c) {
                    self.linger = Some(cx.pipe(Source::Conn(c), Sink::Discard));
                }
            }
        }
    }

    /// The current request is answered: keep going or close.
    fn finish(&mut self, cx: &mut Cx<'_>) {
        self.local = None;
        self.log_request(cx);
        if self.phase == Phase::Closing || !self.keep_alive {
            if self.phase != Phase::Closing {
                self.start_closing(cx);
            }
            cx.set_timer(LINGER, KEY_LINGER);
            return;
        }
        self.phase = Phase::Head(None);
        self.open_reader(cx);
        self.next_request(cx);
        if matches!(self.phase, Phase::Head(_)) && self.client_done {
            self.end_of_input(cx);
        }
        drain::idle_check(self, cx);
    }

    /// The client sent its FIN and no complete request is buffered: a partial head is
    /// answered `400`; otherwise the connection simply closes.
    fn end_of_input(&mut self, cx: &mut Cx<'_>) {
        if self.buf.is_empty() {
            cx.close();
        } else {
            self.fail(cx, 400);
        }
    }

    /// A `status_page` route: the metrics as eXpServer's JSON, Prometheus text or an HTML
    /// page (`status_page.rs`).
    fn serve_status(&mut self, cx: &mut Cx<'_>, format: StatusFormat, req: &RequestHead) {
        let Some(registry) = self.metrics.as_ref() else {
            return self.status(cx, 404, req.method == Method::Head);
        };
        if !matches!(req.method, Method::Get | Method::Head) {
            let extra = "Allow: GET, HEAD\r\n";
            let page = response::status_page_ka(405, &self.server, extra, false, self.keep_alive);
            return self.respond(cx, page.into(), None);
        }
        let (body, ctype) = crate::status_page::body(format, registry);
        let mut head = response::head(200, &self.server);
        head.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\n",
            body.len()
        ));
        if !self.keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        if req.method != Method::Head {
            head.push_str(&body);
        }
        self.respond(cx, head.into(), None);
    }

    fn serve_file(&mut self, cx: &mut Cx<'_>, opts: &FileOptions, req: &RequestHead) {
        let reply = static_files::serve(opts, req, &self.server, self.keep_alive);
        self.keep_alive = !reply.close;
        let source = reply.body.map(|(file, offset, len)| Source::File {
            file,
            offset,
            len: Some(len),
        });
        self.respond(cx, reply.head, source);
    }
}

/// A declared body length over `max`.
fn body_over(body: &BodyKind, max: u64) -> bool {
    matches!(body, BodyKind::Length(n) if *n > max)
}

impl Session for HttpSession {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client_ip = cx.peer_addr(client).map(|a| a.ip());
        self.client_key = self.client_ip.map(ClientKey::new);
        self.client_ip_text = self.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        self.client = Some(client);
        self.tls = cx.tls_info(client);
        self.open_reader(cx);
        idle::arm(cx, self.spec.idle_timeout);
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if Some(pipe) == self.reader {
            match self.phase {
                Phase::Head(_) => self.next_request(cx),
                Phase::Busy => proxy::client_readable(self, cx),
                Phase::Feed => mounts::feed_readable(self, cx),
                _ => {}
            }
        } else {
            proxy::upstream_readable(self, cx, pipe);
        }
    }

    fn on_drained(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        proxy::drained(self, cx, pipe);
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        proxy::connected(self, cx, up, result);
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if self.phase == Phase::Feed {
            // The client left, or the feed's closing handshake is written: done.
            if Some(pipe) == self.reader {
                self.reader = None;
            }
            return cx.close();
        }
        if Some(pipe) == self.reader {
            self.reader = None;
            if end == PipeEnd::Finished {
                self.client_done = true;
            }
            match (self.phase, end) {
                // The client stopped sending: serve what is buffered, take no more.
                (Phase::Head(_), PipeEnd::Finished) => {
                    self.next_request(cx);
                    if matches!(self.phase, Phase::Head(_)) {
                        self.end_of_input(cx);
                    }
                }
                // A chunked request body cut short cannot complete.
                (_, PipeEnd::Finished)
                    if self.xchg.as_ref().is_some_and(|x| x.relaying_request()) =>
                {
                    cx.close()
                }
                (_, PipeEnd::Finished) => {}
                _ => {
                    self.stats.conn_error();
                    cx.close()
                }
            }
        } else if Some(pipe) == self.local {
            match end {
                PipeEnd::Finished => self.finish(cx),
                _ => {
                    self.stats.conn_error();
                    cx.close()
                }
            }
        } else if Some(pipe) == self.linger {
            self.linger = None;
        } else {
            proxy::pipe_end(self, cx, pipe, end);
        }
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) {
        drain::drain(self, cx);
    }

    fn on_close(&mut self, cx: &mut Cx<'_>) {
        mounts::feed_closed(self);
        if let Some(c) = self.current.as_mut() {
            if c.status == 0 {
                c.status = 499; // nginx's "client closed request"
            }
        }
        self.log_request(cx);
    }

    fn on_wake(&mut self, cx: &mut Cx<'_>, key: u64) {
        if key == mounts::KEY_FEED {
            return mounts::feed_wake(self, cx);
        }
        if key != KEY_FETCH {
            return;
        }
        let Some(p) = self.pending.take() else { return };
        let answer = p
            .answer
            .lock()
            .ok()
            .and_then(|mut a| a.take())
            .unwrap_or(None);
        self.proxy_request(cx, p.head, p.upstream, p.max_body, Some(answer), p.retarget);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        match key {
            KEY_CONNECT => proxy::connect_timeout(self, cx),
            KEY_LINGER => cx.close(),
            // The feed is the server's to speak on: an idle client is normal there.
            idle::KEY_IDLE if self.phase == Phase::Feed => {}
            drain::KEY_DRAIN => drain::idle_check(self, cx),
            head_deadline::KEY_HEADER => head_deadline::expired(self, cx),
            // A head under way is timed by its deadline, not by silence.
            idle::KEY_IDLE if matches!(self.phase, Phase::Head(Some(_))) => {
                idle::arm(cx, self.spec.idle_timeout)
            }
            idle::KEY_IDLE => {
                let up = self.xchg.as_ref().map(|x| x.up).or(self.tunnel_up);
                let conns: Vec<ConnId> = self.client.into_iter().chain(up).collect();
                let limit = if self.phase == Phase::Tunnel {
                    self.spec.tunnel_timeout
                } else {
                    self.spec.idle_timeout
                };
                if !idle::expired(cx, &conns, limit) {
                    return;
                }
                if !matches!(self.phase, Phase::Head(_)) {
                    // An idle keep-alive connection closing is routine; anything else is not.
                    self.stats.conn_timeout();
                }
                match self.phase {
                    // No byte of a request yet: nothing to answer (`head_deadline.rs`).
                    Phase::Head(_) => cx.close(),
                    Phase::Busy if self.xchg.as_ref().is_some_and(|x| !x.response_started) => {
                        log::warn!("http {}: upstream response timed out", self.spec.listen);
                        proxy::abandon(self, cx);
                        self.fail(cx, 504);
                        cx.set_timer(LINGER, KEY_LINGER);
                    }
                    _ => cx.close(),
                }
            }
            _ => {}
        }
    }
}

/// A response head with the listener's `Strict-Transport-Security`, if it has one.
pub(crate) fn secure(spec: &ListenerSpec, head: Bytes) -> Bytes {
    match &spec.front.hsts {
        Some(v) => forward::with_line(head, &format!("Strict-Transport-Security: {v}\r\n")),
        None => head,
    }
}
