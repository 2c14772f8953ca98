//! The proxy half of the `http` session: one exchange with the upstream per request.
//!
//! 1. `start`: rewrite the head (`forward::upstream_request`), `Cx::connect` (an idle pooled
//!    connection when there is one).
//! 2. `connected`: send the head and the body. A `Content-Length` body goes client →
//!    upstream through a pipe limited to its length (the bytes after it stay in the client
//!    socket: the next request); a chunked body passes through the session, which finds its
//!    end with `ChunkedScanner` and forwards the chunked bytes as they are.
//! 3. `upstream_readable`: parse the response head (`parse_response`); interim `1xx` heads
//!    are passed on; `101` turns the session into a tunnel; otherwise the rewritten head
//!    goes to the client and the body follows: straight upstream → client through a
//!    limited pipe when it can, else relayed by the session (`Relay`).
//! 4. When request and response are done (`settle`), a reusable upstream connection goes
//!    back to the pool (`Cx::park`) and the session reads the next request.
//!
//! A pooled connection that fails before any byte of the response, for a request without a
//! body, is retried once on a fresh connection: the server may have closed it just as it was
//! reused. Otherwise a dead upstream is `502`, a silent one `504`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tether_core::{ConnId, ConnectOpts, Cx, PipeEnd, PipeId, PipeOpts, Sink, Source, TimerId};
use tether_http::{
    parse_response, BodyKind, ChunkedScanner, HttpError, Method, Parsed, RequestHead, ResponseHead,
};

use super::affinity::{self, Pick};
use super::forward;
use super::{HttpSession, Phase};
use crate::idle::KEY_CONNECT;
use crate::upstream::Upstream;

/// Bytes of upstream response read ahead while its head is parsed.
const HEAD_READ: usize = 64 * 1024;

/// How a body relayed through the session ends.
enum Relay {
    Chunked(ChunkedScanner),
    Count(u64),
    UntilClose,
}

/// One request/response exchange with the upstream.
pub(super) struct Exchange {
    pub up: ConnId,
    addr: SocketAddr,
    /// The pool, the server picked from it and what its affinity adds to the heads.
    upstream: Arc<Upstream>,
    pick: Pick,
    /// Servers whose connect failed for this request (not tried again).
    tried: Vec<String>,
    /// The request, to rewrite for another server after a failed connect.
    req: RequestHead,
    connected: bool,
    connect_timer: Option<TimerId>,
    retried: bool,
    /// The forwarded request head (kept for a retry).
    head: Bytes,
    body: BodyKind,
    head_request: bool,
    upgrade: bool,
    to_up: Option<PipeId>,
    req_relay: Option<Relay>,
    /// The route's body limit, checked as a chunked request body streams.
    max_body: Option<u64>,
    req_done: bool,
    up_reader: Option<PipeId>,
    up_buf: BytesMut,
    pub response_started: bool,
    resp_relay: Option<Relay>,
    to_client: Option<PipeId>,
    resp_done: bool,
    up_keep_alive: bool,
}

impl Exchange {
    /// A chunked request body is still being relayed from the client.
    pub fn relaying_request(&self) -> bool {
        self.req_relay.is_some()
    }
}

/// The request head for `addr`, with the affinity's edits.
fn head_for(s: &HttpSession, req: &RequestHead, pick: &Pick) -> Bytes {
    let edits = Some(&pick.request).filter(|e| !e.is_empty());
    forward::upstream_request(
        req,
        &s.client_ip_text,
        s.tls.is_some(),
        pick.server.addr(),
        edits,
    )
    .freeze()
}

pub(super) fn start(
    s: &mut HttpSession,
    cx: &mut Cx<'_>,
    req: RequestHead,
    upstream: Arc<Upstream>,
    pick: Pick,
    max_body: Option<u64>,
) {
    let head = head_for(s, &req, &pick);
    let addr = pick.server.addr();
    s.hold(&pick.server);
    let x = Exchange {
        up: ConnId::dangling(),
        addr,
        upstream,
        pick,
        tried: Vec::new(),
        connected: false,
        connect_timer: None,
        retried: false,
        head,
        body: req.body,
        head_request: req.method == Method::Head,
        upgrade: req.upgrade,
        req,
        to_up: None,
        req_relay: None,
        max_body,
        req_done: false,
        up_reader: None,
        up_buf: BytesMut::new(),
        response_started: false,
        resp_relay: None,
        to_client: None,
        resp_done: false,
        up_keep_alive: false,
    };
    s.xchg = Some(x);
    connect(s, cx, false);
}

fn connect(s: &mut HttpSession, cx: &mut Cx<'_>, fresh: bool) {
    let Some(x) = s.xchg.as_mut() else { return };
    let header = x.upstream.send_proxy.map(|v| {
        let client = s.client.and_then(|c| cx.peer_addr(c));
        v.header(client, s.client.and_then(|c| cx.local_addr(c)))
    });
    let opts = ConnectOpts {
        tls: x.upstream.tls_for(x.pick.server.index()),
        proxy_header: header.as_deref(),
        fresh,
    };
    let r = cx.connect_with(x.addr, opts);
    match r {
        Ok(up) => {
            x.up = up;
            // A pooled connection is already established: no connect to time.
            if !cx.reused(up) {
                x.connect_timer = Some(cx.set_timer(s.spec.connect_timeout, KEY_CONNECT));
            }
        }
        Err(e) => {
            let what = format!("connect: {e}");
            connect_failed(s, cx, &what, 502);
        }
    }
}

/// A connect to the picked server failed (refused, unreachable, timed out): count it
/// against the server, and try another one when the pool and the affinity allow (nothing
/// of the request was sent, so any request may go elsewhere). Else `status`.
fn connect_failed(s: &mut HttpSession, cx: &mut Cx<'_>, what: &str, status: u16) {
    let now = cx.now();
    let Some(x) = s.xchg.as_mut() else { return };
    log::warn!(
        "http {}: upstream {} ({} in {}) {what}",
        s.spec.listen,
        x.addr,
        x.pick.server.id(),
        x.upstream.name()
    );
    x.pick.server.health().record_failure(now);
    x.tried.push(x.pick.server.id().to_string());
    let next = if x.tried.len() as u32 <= x.upstream.retries {
        let upstream = x.upstream.clone();
        let ctx = s.env.ctx(&upstream, s.client_key.as_ref(), now);
        affinity::repick(&ctx, &x.pick, &x.tried)
    } else {
        None
    };
    let Some(next) = next else {
        let strict = s.xchg.as_ref().is_some_and(|x| {
            x.pick.pinned && x.upstream.failover == tether_balance::FailoverMode::Strict
        });
        abandon(s, cx);
        if strict {
            // The session's server is gone and sessions may not move: say so.
            return s.refuse(cx, 503, affinity::SERVER_GONE);
        }
        return s.fail(cx, status);
    };
    let Some(x) = s.xchg.as_mut() else { return };
    x.pick = next;
    let head = {
        let x = s.xchg.as_ref().expect("exchange");
        head_for(s, &x.req, &x.pick)
    };
    let Some(x) = s.xchg.as_mut() else { return };
    x.head = head;
    x.addr = x.pick.server.addr();
    x.connected = false;
    x.retried = false;
    let server = x.pick.server.clone();
    s.hold(&server);
    connect(s, cx, true);
}

pub(super) fn connected(
    s: &mut HttpSession,
    cx: &mut Cx<'_>,
    up: ConnId,
    result: std::io::Result<()>,
) {
    let Some(x) = s.xchg.as_mut().filter(|x| x.up == up) else {
        return cx.close_conn(up);
    };
    if let Some(t) = x.connect_timer.take() {
        cx.cancel_timer(t);
    }
    if let Err(e) = result {
        cx.close_conn(up);
        let what = format!("unreachable: {e}");
        return connect_failed(s, cx, &what, 502);
    }
    x.connected = true;
    let keep = PipeOpts {
        fin: false,
        ..PipeOpts::default()
    };
    let Some(client) = s.client else { return };
    match x.body {
        BodyKind::Length(n) if n > 0 => {
            s.close_reader(cx);
            let Some(x) = s.xchg.as_mut() else { return };
            let have = (s.buf.len() as u64).min(n);
            let to_up = if have == n {
                let p = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
                cx.push(p, x.head.clone());
                cx.push(p, s.buf.split_to(n as usize).freeze());
                cx.end(p);
                p
            } else {
                let opts = PipeOpts {
                    limit: Some(n - have),
                    ..keep
                };
                let p = cx.pipe_with(Source::Conn(client), Sink::Conn(up), opts);
                cx.push(p, x.head.clone());
                cx.push(p, s.buf.split().freeze());
                p
            };
            x.to_up = Some(to_up);
        }
        BodyKind::Chunked => {
            let p = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
            cx.push(p, x.head.clone());
            x.to_up = Some(p);
            x.req_relay = Some(Relay::Chunked(ChunkedScanner::new()));
            relay_request(s, cx);
        }
        _ => {
            let p = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
            cx.push(p, x.head.clone());
            cx.end(p);
            x.to_up = Some(p);
        }
    }
    if let Some(x) = s.xchg.as_mut() {
        let opts = PipeOpts {
            threshold: HEAD_READ,
            ..PipeOpts::default()
        };
        x.up_reader = Some(cx.pipe_with(Source::Conn(up), Sink::Session, opts));
    }
}

/// Move a relayed body from `pending` and then pipe `from` into pipe `to`, as far as `to`
/// has room. True when the body is complete; bytes after its end stay in `pending`.
fn relay(
    cx: &mut Cx<'_>,
    how: &mut Relay,
    pending: &mut BytesMut,
    from: Option<PipeId>,
    to: PipeId,
) -> Result<bool, HttpError> {
    loop {
        if !pending.is_empty() {
            let (n, done) = measure(how, pending)?;
            if n > 0 {
                cx.push(to, pending.split_to(n).freeze());
            }
            if done {
                return Ok(true);
            }
        }
        if cx.is_full(to) {
            return Ok(false);
        }
        let Some(b) = from.and_then(|p| cx.take(p)) else {
            return Ok(false);
        };
        let (n, done) = measure(how, &b)?;
        cx.push(to, b.slice(..n));
        if n < b.len() {
            pending.extend_from_slice(&b[n..]);
        }
        if done {
            return Ok(true);
        }
    }
}

/// How many of `data` belong to the body, and whether it ends there.
fn measure(how: &mut Relay, data: &[u8]) -> Result<(usize, bool), HttpError> {
    match how {
        Relay::Chunked(sc) => sc.scan(data),
        Relay::Count(left) => {
            let n = (*left).min(data.len() as u64);
            *left -= n;
            Ok((n as usize, *left == 0))
        }
        Relay::UntilClose => Ok((data.len(), false)),
    }
}

fn relay_request(s: &mut HttpSession, cx: &mut Cx<'_>) {
    let HttpSession {
        buf, reader, xchg, ..
    } = s;
    let Some(x) = xchg.as_mut() else { return };
    let (Some(how), Some(to)) = (x.req_relay.as_mut(), x.to_up) else {
        return;
    };
    let result = relay(cx, how, buf, *reader, to).and_then(|done| match (&*how, x.max_body) {
        (Relay::Chunked(sc), Some(max)) if sc.body_len() > max => {
            Err(HttpError::new(413, "request body over the route's limit"))
        }
        _ => Ok(done),
    });
    match result {
        Ok(true) => {
            x.req_relay = None;
            cx.end(to);
        }
        Ok(false) => {}
        Err(e) => {
            log::debug!("http {}: bad request body: {}", s.spec.listen, e.reason);
            if x.response_started {
                cx.close();
            } else {
                abandon(s, cx);
                s.fail(cx, e.status);
            }
        }
    }
}

fn relay_response(s: &mut HttpSession, cx: &mut Cx<'_>) {
    let Some(x) = s.xchg.as_mut() else { return };
    let (Some(how), Some(to)) = (x.resp_relay.as_mut(), x.to_client) else {
        return;
    };
    match relay(cx, how, &mut x.up_buf, x.up_reader, to) {
        Ok(true) => {
            x.resp_relay = None;
            if !x.up_buf.is_empty() {
                x.up_keep_alive = false; // bytes after the body: do not trust this connection
            }
            cx.end(to);
        }
        Ok(false) => {}
        Err(e) => {
            log::warn!(
                "http {}: bad response body from {}: {}",
                s.spec.listen,
                x.addr,
                e.reason
            );
            cx.close();
        }
    }
}

/// Client bytes while an exchange runs: a chunked request body to relay, or pipelined
/// requests left waiting (the reader pipe fills and pushes back).
pub(super) fn client_readable(s: &mut HttpSession, cx: &mut Cx<'_>) {
    if s.xchg.as_ref().is_some_and(|x| x.req_relay.is_some()) {
        relay_request(s, cx);
    }
}

pub(super) fn drained(s: &mut HttpSession, cx: &mut Cx<'_>, pipe: PipeId) {
    let Some(x) = s.xchg.as_ref() else { return };
    if Some(pipe) == x.to_up {
        relay_request(s, cx);
    } else if Some(pipe) == x.to_client {
        relay_response(s, cx);
    }
}

pub(super) fn upstream_readable(s: &mut HttpSession, cx: &mut Cx<'_>, pipe: PipeId) {
    let Some(x) = s.xchg.as_mut().filter(|x| x.up_reader == Some(pipe)) else {
        return;
    };
    if x.response_started {
        return relay_response(s, cx);
    }
    while let Some(b) = cx.take(pipe) {
        x.up_buf.extend_from_slice(&b);
    }
    loop {
        let Some(x) = s.xchg.as_mut() else { return };
        let resp = match parse_response(&x.up_buf, x.head_request, &s.limits) {
            Ok(Parsed::Partial) => return,
            Ok(Parsed::Complete(r)) => r,
            Err(e) => {
                log::warn!(
                    "http {}: bad response head from {}: {}",
                    s.spec.listen,
                    x.addr,
                    e.reason
                );
                abandon(s, cx);
                return s.fail(cx, 502);
            }
        };
        let _ = x.up_buf.split_to(resp.len());
        if (100..200).contains(&resp.status) && !(resp.status == 101 && x.upgrade) {
            // Interim response (100 Continue...): pass it on, then read the final one.
            let head = super::secure(
                &s.spec,
                forward::client_response(&resp, &s.server, true, None).freeze(),
            );
            let to = client_pipe(s, cx);
            cx.push(to, head);
            continue;
        }
        return respond(s, cx, resp);
    }
}

/// The session-fed pipe to the client, opened on first use.
fn client_pipe(s: &mut HttpSession, cx: &mut Cx<'_>) -> PipeId {
    let fin = !s.keep_alive;
    let client = s.client;
    let x = s.xchg.as_mut().expect("exchange under way");
    if let Some(p) = x.to_client {
        return p;
    }
    let p = match client {
        Some(c) => cx.pipe_with(
            Source::Session,
            Sink::Conn(c),
            PipeOpts {
                fin,
                ..PipeOpts::default()
            },
        ),
        None => cx.pipe(Source::Session, Sink::Discard),
    };
    x.to_client = Some(p);
    p
}

fn respond(s: &mut HttpSession, cx: &mut Cx<'_>, resp: ResponseHead) {
    s.note_status(resp.status);
    let Some(x) = s.xchg.as_mut() else { return };
    x.response_started = true;
    if resp.status == 101 {
        learn_from(s, cx, &resp);
        tunnel(s, cx, &resp);
        return s.log_request(cx);
    }
    if resp.body == BodyKind::UntilClose {
        s.keep_alive = false;
    }
    learn_from(s, cx, &resp);
    let x = s.xchg.as_mut().expect("exchange");
    x.up_keep_alive = resp.keep_alive;
    let edits = Some(&x.pick.response).filter(|e| !e.is_empty());
    let head = super::secure(
        &s.spec,
        forward::client_response(&resp, &s.server, s.keep_alive, edits).freeze(),
    );
    let interim_sent = x.to_client.is_some();
    let buffered = x.up_buf.len() as u64;
    let direct = match resp.body {
        BodyKind::Length(n) if n > buffered => Some(Some(n - buffered)),
        BodyKind::UntilClose => Some(None),
        _ => None,
    };
    if let (Some(limit), false, Some(client)) = (direct, interim_sent, s.client) {
        // Fast path: the rest of the body goes upstream → client without the session.
        if let Some(r) = x.up_reader.take() {
            cx.close_pipe(r);
        }
        let opts = PipeOpts {
            limit,
            fin: !s.keep_alive,
            ..PipeOpts::default()
        };
        let p = cx.pipe_with(Source::Conn(x.up), Sink::Conn(client), opts);
        cx.push(p, head);
        cx.push(p, x.up_buf.split().freeze());
        x.to_client = Some(p);
    } else {
        let to = client_pipe(s, cx);
        cx.push(to, head);
        let x = s.xchg.as_mut().expect("exchange");
        x.resp_relay = Some(match resp.body {
            BodyKind::None => Relay::Count(0),
            BodyKind::Length(n) => Relay::Count(n),
            BodyKind::Chunked => Relay::Chunked(ChunkedScanner::new()),
            BodyKind::UntilClose => Relay::UntilClose,
        });
        relay_response(s, cx);
    }
    if !s.keep_alive && s.phase != Phase::Closing {
        s.start_closing(cx);
    }
}

/// The final response head arrived: a 5xx counts against the server (passive health),
/// anything else for it; the affinity tags or learns what the response creates.
fn learn_from(s: &mut HttpSession, cx: &mut Cx<'_>, resp: &ResponseHead) {
    let now = cx.now();
    let Some(x) = s.xchg.as_ref() else { return };
    let server = x.pick.server.clone();
    if resp.status >= 500 {
        server.health().record_failure(now);
    } else {
        server.health().record_success();
    }
    let upstream = x.upstream.clone();
    let (env, key) = (s.env.clone(), s.client_key);
    let ctx = env.ctx(&upstream, key.as_ref(), now);
    if let Some(x) = s.xchg.as_mut() {
        affinity::on_response(&ctx, &mut x.pick, resp);
    }
}

/// `101 Switching Protocols`: from now on bytes flow both ways untouched.
fn tunnel(s: &mut HttpSession, cx: &mut Cx<'_>, resp: &ResponseHead) {
    let edits = s.xchg.as_ref().map(|x| x.pick.response.clone());
    let edits = edits.as_ref().filter(|e| !e.is_empty());
    let head = super::secure(
        &s.spec,
        forward::client_response(resp, &s.server, true, edits).freeze(),
    );
    s.close_reader(cx);
    let Some(client) = s.client else { return };
    let Some(mut x) = s.xchg.take() else { return };
    if let Some(r) = x.up_reader.take() {
        cx.close_pipe(r);
    }
    if let Some(p) = x.to_up.take() {
        cx.close_pipe(p);
    }
    s.phase = Phase::Tunnel;
    let c2u = cx.pipe(Source::Conn(client), Sink::Conn(x.up));
    cx.push(c2u, s.buf.split().freeze());
    let u2c = cx.pipe(Source::Conn(x.up), Sink::Conn(client));
    cx.push(u2c, head);
    cx.push(u2c, x.up_buf.split().freeze());
    s.tunnel_up = Some(x.up);
}

pub(super) fn pipe_end(s: &mut HttpSession, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
    if s.phase == Phase::Tunnel {
        if end != PipeEnd::Finished {
            cx.close();
        }
        return;
    }
    let Some(x) = s.xchg.as_mut() else { return };
    if Some(pipe) == x.to_up {
        x.to_up = None;
        match end {
            PipeEnd::Finished => {
                x.req_done = true;
                s.open_reader(cx);
                settle(s, cx);
            }
            PipeEnd::SourceError(_) => cx.close(), // the client went away mid-body
            PipeEnd::SinkError(_) => upstream_failed(s, cx, "reset while receiving the request"),
        }
    } else if Some(pipe) == x.up_reader {
        x.up_reader = None;
        x.up_keep_alive = false;
        if !x.response_started {
            return upstream_failed(s, cx, "closed without a response");
        }
        match (&x.resp_relay, end) {
            (Some(Relay::UntilClose), PipeEnd::Finished) => {
                x.resp_relay = None;
                if let Some(to) = x.to_client {
                    cx.end(to);
                }
            }
            (None, _) => {}
            _ => cx.close(), // the body was cut short
        }
    } else if Some(pipe) == x.to_client {
        x.to_client = None;
        match end {
            PipeEnd::Finished => {
                x.resp_done = true;
                settle(s, cx);
            }
            PipeEnd::SourceError(_) if !x.response_started => upstream_failed(s, cx, "reset"),
            _ => cx.close(),
        }
    }
}

/// The upstream failed before the response started: retry a reused connection once for a
/// request without a body, else `502`.
fn upstream_failed(s: &mut HttpSession, cx: &mut Cx<'_>, what: &str) {
    let Some(x) = s.xchg.as_mut() else { return };
    if x.response_started {
        return cx.close();
    }
    let no_body = matches!(x.body, BodyKind::None | BodyKind::Length(0));
    if no_body && !x.retried && cx.reused(x.up) && x.up_buf.is_empty() {
        log::debug!(
            "http {}: pooled connection to {} {what}; retrying",
            s.spec.listen,
            x.addr
        );
        let old = x.up;
        for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
            cx.close_pipe(p);
        }
        cx.close_conn(old);
        x.retried = true;
        x.connected = false;
        x.req_done = false;
        return connect(s, cx, true);
    }
    log::warn!("http {}: upstream {} {what}", s.spec.listen, x.addr);
    abandon(s, cx);
    s.fail(cx, 502);
}

/// Both directions done? Then return the upstream connection and move on.
fn settle(s: &mut HttpSession, cx: &mut Cx<'_>) {
    let Some(x) = s.xchg.as_mut() else { return };
    if !x.resp_done {
        return;
    }
    if !x.req_done {
        // The upstream answered before taking the whole request: this connection and the
        // client's are out of step; neither can carry another message.
        s.keep_alive = false;
        x.up_keep_alive = false;
    }
    let Some(mut x) = s.xchg.take() else { return };
    for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
        cx.close_pipe(p);
    }
    if !(x.up_keep_alive && x.up_buf.is_empty() && cx.park(x.up)) {
        cx.close_conn(x.up);
    }
    s.finish(cx);
}

pub(super) fn connect_timeout(s: &mut HttpSession, cx: &mut Cx<'_>) {
    if let Some(x) = s.xchg.as_mut().filter(|x| !x.connected) {
        let up = x.up;
        cx.close_conn(up);
        connect_failed(s, cx, "connect timed out", 504);
    }
}

/// Drop the exchange and its upstream connection.
pub(super) fn abandon(s: &mut HttpSession, cx: &mut Cx<'_>) {
    if let Some(mut x) = s.xchg.take() {
        for p in [x.to_up.take(), x.up_reader.take(), x.to_client.take()]
            .into_iter()
            .flatten()
        {
            cx.close_pipe(p);
        }
        cx.close_conn(x.up);
    }
}
