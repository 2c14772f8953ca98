//! `State::Proxying`: one exchange with the upstream per request (phases "forward" and
//! "respond" of `phases.rs`). Every function takes the exchange by value and returns the
//! session's next state.
//!
//! 1. `start`: rewrite the head (`forward::upstream_request`), `Cx::connect` (an idle pooled
//!    connection when there is one).
//! 2. `connected`: send the head and the body. A `Content-Length` body goes client →
//!    upstream through a pipe limited to its length (the bytes after it stay in the client
//!    socket: the next request); a chunked body passes through the session, which finds its
//!    end with `ChunkedScanner` and forwards the chunked bytes as they are (`relay.rs`).
//! 3. `upstream_readable`: parse the response head (`parse_response`); interim `1xx` heads
//!    are passed on; `101` turns the session into `State::Tunnel`; otherwise the rewritten
//!    head goes to the client and the body follows: straight upstream → client through a
//!    limited pipe when it can, else relayed by the session.
//! 4. When request and response are done (`settle`), a reusable upstream connection goes
//!    back to the pool (`Cx::park`) and the session reads the next request.
//!
//! A pooled connection that fails before any byte of the response, for a request without a
//! body, is retried once on a fresh connection: the server may have closed it just as it was
//! reused. Otherwise a dead upstream is `502`, a silent one `504`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tether_core::{
    ConnId, ConnectOpts, Cx, PipeEnd, PipeId, PipeOpts, ReadNow, Sink, Source, TimerId,
};
use tether_http::{
    parse_response, parse_response_bytes, BodyKind, Method, Parsed, RequestHead, ResponseHead,
};

use super::affinity::{self, Pick};
use super::conn::{secure, Conn};
use super::encode::{self as encoding, Compressor};
use super::phases::Proxied;
use super::relay::{relay, relay_from, Relay};
use super::rules::{Given, Vars};
use super::{forward, State};
use crate::idle::KEY_CONNECT;
use crate::upstream::Upstream;
use tether_config::rules::RouteRules;

/// Bytes of upstream response read ahead while its head is parsed.
const HEAD_READ: usize = 64 * 1024;

/// A body up to this size that came whole with its head is sent with the head, in one chunk.
const WHOLE_MAX: usize = 4096;

/// Where the upstream connection stands.
enum Link {
    /// Asked for; the connect timer runs (none for a pooled connection).
    Connecting(Option<TimerId>),
    Connected,
}

thread_local! {
    /// Exchanges' boxes, for the next request (`spare.rs`).
    static SPARE: crate::spare::Spares<Exchange> = const { crate::spare::Spares::new() };
}

/// One request/response exchange with the upstream.
pub(super) struct Exchange {
    pub up: ConnId,
    link: Link,
    /// The pool, the server picked from it and what its affinity adds to the heads.
    upstream: Arc<Upstream>,
    pick: Pick,
    /// Servers whose connect failed for this request (not tried again).
    tried: Vec<String>,
    /// The request, to rewrite for another server after a failed connect.
    req: RequestHead,
    /// The route's body limit, checked as a chunked request body streams.
    max_body: Option<u64>,
    /// The forwarded request head (kept for a retry).
    head: Bytes,
    /// This request was retried once on a fresh connection.
    retried: bool,
    /// The route's header rules and the request's id (`rules.rs`).
    rules: Option<Arc<RouteRules>>,
    request_id: Option<Box<str>>,
    // The request: the pipe to the upstream, the chunked body being relayed, done.
    to_up: Option<PipeId>,
    req_relay: Option<Relay>,
    req_done: bool,
    // The response: upstream → session while the session reads it, the bytes read and
    // not used yet, the body being relayed, the pipe to the client, done.
    up_reader: Option<PipeId>,
    up_buf: BytesMut,
    pub response_started: bool,
    resp_relay: Option<Relay>,
    to_client: Option<PipeId>,
    resp_done: bool,
    /// The upstream connection may carry another request (it goes back to the pool).
    up_keep_alive: bool,
    /// The route's compression policy, and the answer's compressor once it is chosen.
    encode: Option<Arc<tether_compress::Policy>>,
    compress: Option<Box<Compressor>>,
}

impl Exchange {
    /// A chunked request body is still being relayed from the client.
    pub fn relaying_request(&self) -> bool {
        self.req_relay.is_some()
    }
}

/// The request head for the picked server, with the affinity's edits and the route's rules.
fn head_for(
    c: &Conn,
    cx: &Cx<'_>,
    req: &RequestHead,
    pick: &Pick,
    given: Option<Given<'_>>,
    up: &Upstream,
) -> Bytes {
    let edits = Some(&pick.request).filter(|e| !e.is_empty());
    let addr = pick.server.addr();
    let https = cx.tls_info(c.client).is_some();
    let head = forward::upstream_request(req, &c.client_ip_text(cx), https, addr, edits);
    match given {
        Some(g) => forward::freeze_head(g.request(head, &vars(c, cx, req, g, up, pick))),
        None => forward::freeze_head(head),
    }
}

/// What the rules' placeholders read for this exchange.
fn vars<'a>(
    c: &Conn,
    cx: &Cx<'_>,
    req: &'a RequestHead,
    g: Given<'a>,
    up: &'a Upstream,
    pick: &Pick,
) -> Vars<'a> {
    Vars {
        client: cx.peer_addr(c.client),
        tls: cx.tls_info(c.client),
        req,
        request_id: g.id.unwrap_or(""),
        upstream_name: up.name(),
        upstream_addr: pick.server.addr(),
    }
}

/// Phase 8, forward: send `req` to the server `pick` names.
pub(super) fn start(c: &mut Conn, cx: &mut Cx<'_>, req: Proxied, pick: Pick) -> State {
    if crate::h2up::auto::speaks_h2(&req.upstream, pick.server.addr()) {
        return super::h2up::start(c, cx, req, pick); // an HTTP/2 server (`h2up.rs`)
    }
    if let Some(cur) = c.current.as_mut() {
        cur.note_request_id(req.request_id.as_deref());
        cur.note_upstream(&req.upstream, &pick);
    }
    let given = Given::of(&req.rules, &req.request_id);
    let head = head_for(c, cx, &req.head, &pick, given, &req.upstream);
    c.hold(&pick.server);
    let x = Exchange {
        up: ConnId::dangling(),
        link: Link::Connecting(None),
        upstream: req.upstream,
        pick,
        tried: Vec::new(),
        req: req.head,
        max_body: req.max_body,
        head,
        retried: false,
        rules: req.rules,
        request_id: req.request_id,
        to_up: None,
        req_relay: None,
        req_done: false,
        up_reader: None,
        up_buf: BytesMut::new(),
        response_started: false,
        resp_relay: None,
        to_client: None,
        resp_done: false,
        up_keep_alive: false,
        encode: req.encode,
        compress: None,
    };
    let x = crate::spare::boxed(&SPARE, x);
    connect(c, cx, x, false)
}

fn connect(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>, fresh: bool) -> State {
    let header = x.upstream.send_proxy.map(|v| {
        let client = cx.peer_addr(c.client);
        crate::upstream::proxy_header(v, client, cx.local_addr(c.client))
    });
    let opts = ConnectOpts {
        tls: x.upstream.tls_for(x.pick.server.index()),
        proxy_header: header.as_deref(),
        fresh,
    };
    match cx.connect_with(x.pick.server.addr(), opts) {
        Ok(up) => {
            x.up = up;
            // A pooled connection is already established: no connect to time.
            let timer =
                (!cx.reused(up)).then(|| cx.set_timer(c.spec().connect_timeout, KEY_CONNECT));
            x.link = Link::Connecting(timer);
            State::Proxying(x)
        }
        Err(e) => connect_failed(c, cx, x, &format!("connect: {e}"), 502),
    }
}

/// A connect to the picked server failed (refused, unreachable, timed out): count it
/// against the server, and try another one when the pool and the affinity allow (nothing
/// of the request was sent, so any request may go elsewhere). Else `status`.
fn connect_failed(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut x: Box<Exchange>,
    what: &str,
    status: u16,
) -> State {
    let now = cx.now();
    log::warn!(
        "http {}: upstream {} ({} in {}) {what}",
        c.spec().listen,
        x.pick.server.addr(),
        x.pick.server.id(),
        x.upstream.name()
    );
    x.pick.server.health().record_failure(now);
    x.tried.push(x.pick.server.id().to_string());
    let next = if x.tried.len() as u32 <= x.upstream.retries {
        let key = c.client_key(cx);
        let ctx = c.ctx.affinity(&x.upstream, key.as_ref(), now);
        affinity::repick(&ctx, &x.pick, &x.tried)
    } else {
        None
    };
    let Some(next) = next else {
        let strict = x.pick.pinned && x.upstream.failover == tether_balance::FailoverMode::Strict;
        abandon(cx, x);
        if strict {
            // The session's server is gone and sessions may not move: say so.
            c.keep_alive = false;
            return c.message(cx, 503, affinity::SERVER_GONE, false);
        }
        return c.fail(cx, status);
    };
    x.pick = next;
    x.head = head_for(
        c,
        cx,
        &x.req,
        &x.pick,
        Given::of(&x.rules, &x.request_id),
        &x.upstream,
    );
    x.retried = false;
    c.hold(&x.pick.server);
    if let Some(cur) = c.current.as_mut() {
        cur.note_upstream(&x.upstream, &x.pick);
    }
    connect(c, cx, x, true)
}

/// `on_connect` for the exchange's upstream connection.
pub(super) fn connected(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut x: Box<Exchange>,
    result: std::io::Result<()>,
) -> State {
    if let Link::Connecting(Some(t)) = x.link {
        cx.cancel_timer(t);
    }
    if let Err(e) = result {
        cx.close_conn(x.up);
        return connect_failed(c, cx, x, &format!("unreachable: {e}"), 502);
    }
    if crate::h2up::auto::chose_h2_on_h1_path(cx, &x.upstream, x.up, x.pick.server.addr()) {
        // An `auto` server that chose HTTP/2: nothing was sent, the request moves over.
        cx.close_conn(x.up);
        let x = *x;
        let req = Proxied {
            head: x.req,
            upstream: x.upstream,
            max_body: x.max_body,
            retarget: None,
            rules: x.rules,
            request_id: x.request_id,
            encode: x.encode,
            form: None,
        };
        return super::h2up::start(c, cx, req, x.pick);
    }
    x.link = Link::Connected;
    if let Some(cur) = c.current.as_mut() {
        cur.note_connected(cx.now());
    }
    let keep = PipeOpts {
        fin: false,
        ..PipeOpts::default()
    };
    let up = x.up;
    x.to_up = match x.req.body {
        BodyKind::Length(n) if n > 0 => {
            c.close_reader(cx);
            let have = (c.buf.len() as u64).min(n);
            if have == n {
                let p = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
                cx.push(p, x.head.clone());
                cx.push(p, c.buf.split_to(n as usize).freeze());
                cx.end(p);
                Some(p)
            } else {
                let opts = PipeOpts {
                    limit: Some(n - have),
                    ..keep
                };
                let p = cx.pipe_with(Source::Conn(c.client), Sink::Conn(up), opts);
                cx.push(p, x.head.clone());
                cx.push(p, c.buf.split().freeze());
                Some(p)
            }
        }
        BodyKind::Chunked => {
            let p = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
            cx.push(p, x.head.clone());
            x.req_relay = Some(Relay::Chunked(tether_http::ChunkedScanner::new()));
            Some(p)
        }
        _ => {
            // No body: the head straight to the socket when it takes it whole (no pipe, no
            // pipe end to hear); through a pipe for what it does not take.
            let rest = cx.write_now(up, x.head.clone());
            if rest.is_empty() {
                x.req_done = true;
                None
            } else {
                let p = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
                cx.push(p, rest);
                cx.end(p);
                Some(p)
            }
        }
    };
    if x.upstream.tls_for(x.pick.server.index()).is_some() || !cx.watch_readable(up) {
        open_up_reader(cx, &mut x);
    }
    if x.req_done {
        c.open_reader(cx); // as when the request's pipe ends (`pipe_end`)
    }
    if x.req_relay.is_some() {
        return relay_request(c, cx, x);
    }
    State::Proxying(x)
}

/// The upstream → session pipe that reads the response (head, then a relayed body):
/// opened when a read straight from the socket (`upstream_ready`) does not do, on a TLS
/// connection from the start.
fn open_up_reader(cx: &mut Cx<'_>, x: &mut Exchange) -> PipeId {
    if let Some(p) = x.up_reader {
        return p;
    }
    let opts = PipeOpts {
        threshold: HEAD_READ,
        ..PipeOpts::default()
    };
    let p = cx.pipe_with(Source::Conn(x.up), Sink::Session, opts);
    x.up_reader = Some(p);
    p
}

/// The watched upstream connection is readable: the response, read straight from the
/// socket. A whole final head (the usual case) is answered at once; anything else (an
/// interim or partial head, an answer whose body is read whole first) goes on through the
/// reader pipe, the bytes read here first in it.
pub(super) fn upstream_ready(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>) -> State {
    if x.up_reader.is_some() || x.response_started {
        return State::Proxying(x);
    }
    let b = match cx.read_now(x.up) {
        ReadNow::Data(b) => b,
        ReadNow::Nothing => {
            if !cx.watch_readable(x.up) {
                open_up_reader(cx, &mut x);
            }
            return State::Proxying(x);
        }
        ReadNow::Eof | ReadNow::Failed(_) => {
            x.up_keep_alive = false;
            return upstream_failed(c, cx, x, "closed without a response");
        }
        ReadNow::Unsupported => {
            open_up_reader(cx, &mut x);
            return State::Proxying(x);
        }
    };
    if !x.pick.tag_body {
        let head_request = x.req.method == Method::Head;
        if let Ok(Parsed::Complete(resp)) = parse_response_bytes(&b, head_request, &c.ctx.limits) {
            if !resp.is_informational() {
                let rest = b.slice(resp.len()..);
                return respond(c, cx, x, resp, rest);
            }
        }
    }
    let p = open_up_reader(cx, &mut x);
    cx.push(p, b);
    State::Proxying(x)
}

/// Relay the chunked request body as far as the upstream pipe has room.
fn relay_request(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>) -> State {
    let (Some(how), Some(to)) = (x.req_relay.as_mut(), x.to_up) else {
        return State::Proxying(x); // nothing to relay (any more)
    };
    let reader = c.reader();
    let result = relay(cx, how, &mut c.buf, reader, to).and_then(|done| {
        if how.over(x.max_body) {
            Err(tether_http::HttpError::new(
                413,
                "request body over the route's limit",
            ))
        } else {
            Ok(done)
        }
    });
    match result {
        Ok(true) => {
            x.req_relay = None;
            cx.end(to);
            State::Proxying(x)
        }
        Ok(false) => State::Proxying(x),
        Err(e) => {
            log::debug!("http {}: bad request body: {}", c.spec().listen, e.reason);
            if x.response_started {
                cx.close();
                State::Proxying(x)
            } else {
                abandon(cx, x);
                c.fail(cx, e.status)
            }
        }
    }
}

/// Relay the response body as far as the client pipe has room. `lead`: body bytes read
/// with the head and not in `up_buf` (empty but for the first call).
fn relay_response(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>, lead: Bytes) -> State {
    let Exchange {
        resp_relay,
        up_buf,
        up_reader,
        to_client,
        compress,
        ..
    } = &mut *x;
    let (Some(how), Some(to)) = (resp_relay.as_mut(), *to_client) else {
        return State::Proxying(x); // nothing to relay (any more)
    };
    let result = match compress.as_deref_mut() {
        Some(z) => {
            up_buf.extend_from_slice(&lead);
            encoding::relay(cx, z, up_buf, *up_reader, to).map_err(|e| e.to_string())
        }
        None => relay_from(cx, how, lead, up_buf, *up_reader, to).map_err(|e| e.reason.to_string()),
    };
    match result {
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
                c.spec().listen,
                x.pick.server.addr(),
                e
            );
            cx.close();
        }
    }
    State::Proxying(x)
}

/// Client bytes while an exchange runs: a chunked request body to relay, or pipelined
/// requests left waiting (the reader pipe fills and pushes back).
pub(super) fn client_readable(c: &mut Conn, cx: &mut Cx<'_>, x: Box<Exchange>) -> State {
    if x.req_relay.is_some() {
        return relay_request(c, cx, x);
    }
    State::Proxying(x)
}

/// A session-fed pipe has room again.
pub(super) fn drained(c: &mut Conn, cx: &mut Cx<'_>, x: Box<Exchange>, pipe: PipeId) -> State {
    if Some(pipe) == x.to_up {
        relay_request(c, cx, x)
    } else if Some(pipe) == x.to_client {
        relay_response(c, cx, x, Bytes::new())
    } else {
        State::Proxying(x)
    }
}

/// Upstream bytes: the response head (then its body), or more of a relayed body.
pub(super) fn upstream_readable(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut x: Box<Exchange>,
    pipe: PipeId,
) -> State {
    if x.up_reader != Some(pipe) {
        return State::Proxying(x); // a pipe of a connection already left
    }
    if x.response_started {
        return relay_response(c, cx, x, Bytes::new());
    }
    let head_request = x.req.method == Method::Head;
    // The usual case: the whole head (and the start of the body) came in one read while
    // nothing was buffered: parsed where it lies, the head and the body bytes after it are
    // slices of that read (no copy into `up_buf`). Not for an answer whose body is read
    // whole for a session id first (`tag_body`, `session_body.rs`): that one goes through
    // `up_buf`.
    let mut first = None;
    while let Some(b) = cx.take(pipe) {
        if x.up_buf.is_empty() && first.is_none() && !x.pick.tag_body {
            first = Some(b);
            continue;
        }
        if let Some(f) = first.take() {
            x.up_buf.extend_from_slice(&f);
        }
        x.up_buf.extend_from_slice(&b);
    }
    if let Some(chunk) = first {
        match parse_response_bytes(&chunk, head_request, &c.ctx.limits) {
            Ok(Parsed::Complete(resp)) if !resp.is_informational() => {
                let rest = chunk.slice(resp.len()..);
                return respond(c, cx, x, resp, rest);
            }
            // An interim head, an incomplete one or an error: the general path.
            _ => x.up_buf.extend_from_slice(&chunk),
        }
    }
    loop {
        let mut resp = match parse_response(&x.up_buf, head_request, &c.ctx.limits) {
            Ok(Parsed::Partial) => return State::Proxying(x),
            Ok(Parsed::Complete(r)) => r,
            Err(e) => {
                log::warn!(
                    "http {}: bad response head from {}: {}",
                    c.spec().listen,
                    x.pick.server.addr(),
                    e.reason
                );
                abandon(cx, x);
                return c.fail(cx, 502);
            }
        };
        if x.pick.tag_body && !(100..200).contains(&resp.status) {
            // An answer that may hold a new session id: its body whole first.
            let Exchange {
                upstream,
                pick,
                up_buf,
                ..
            } = &mut *x;
            let at = resp.len();
            if !super::session_body::answer(upstream, pick, &mut resp, up_buf, at) {
                return State::Proxying(x);
            }
        }
        let _ = x.up_buf.split_to(resp.len());
        if (100..200).contains(&resp.status) && !(resp.status == 101 && x.req.upgrade) {
            // Interim response (100 Continue...): pass it on, then read the final one.
            let head = forward::client_response(&resp, &c.ctx.server, true, None);
            let to = client_pipe(c, cx, &mut x);
            cx.push(to, secure(c.spec(), forward::freeze_head(head)));
            continue;
        }
        return respond(c, cx, x, resp, Bytes::new());
    }
}

/// The session-fed pipe to the client, opened on first use.
fn client_pipe(c: &Conn, cx: &mut Cx<'_>, x: &mut Exchange) -> PipeId {
    if let Some(p) = x.to_client {
        return p;
    }
    let opts = PipeOpts {
        fin: !c.keep_alive,
        ..PipeOpts::default()
    };
    let p = cx.pipe_with(Source::Session, Sink::Conn(c.client), opts);
    x.to_client = Some(p);
    p
}

/// Phase 9, respond: the final response head arrived; send it on, then its body. `rest`:
/// body bytes read with the head and not in `up_buf` (they come before it).
fn respond(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut x: Box<Exchange>,
    resp: ResponseHead,
    rest: Bytes,
) -> State {
    c.note_status(resp.status);
    x.response_started = true;
    learn_from(c, cx, &mut x, &resp);
    let intercept = c.current.as_ref().and_then(|cur| cur.pages.as_ref());
    // (Not after an interim answer went out on the client pipe: the page would race it.)
    if intercept.is_some_and(|p| p.intercepts(resp.status)) && x.to_client.is_none() {
        // `intercept_errors`: the route's page instead of the backend's answer (whose
        // connection is not reused: its body is not read).
        if !x.req_done {
            c.keep_alive = false;
        }
        let head_only = x.req.method == Method::Head;
        abandon(cx, x);
        return c.status(cx, resp.status, head_only);
    }
    debug_assert!(
        rest.is_empty() || x.up_buf.is_empty(),
        "rest comes before up_buf"
    );
    if resp.status == 101 {
        x.up_buf.extend_from_slice(&rest);
        let next = tunnel(c, cx, x, &resp);
        c.log_request(cx);
        return next;
    }
    if resp.body == BodyKind::UntilClose {
        c.keep_alive = false;
    }
    x.up_keep_alive = resp.keep_alive;
    let plan = (x.encode.as_deref()).map(|p| (p, encoding::plan(p, &x.req, &resp)));
    let chunked_out = x.req.version != tether_http::Version::Http10;
    if let Some((policy, plan)) = plan {
        if let Some(coding) = plan.coding {
            match Compressor::new(policy, coding, resp.body, chunked_out) {
                Ok(z) => x.compress = Some(Box::new(z)),
                Err(e) => log::warn!("http {}: no {coding} encoder: {e}", c.spec().listen),
            }
        }
    }
    if x.compress.is_some() && !chunked_out {
        c.keep_alive = false; // an HTTP/1.0 client: the compressed body ends with the connection
    }
    let edits = Some(&x.pick.response).filter(|e| !e.is_empty());
    let head = forward::client_response(&resp, &c.ctx.server, c.keep_alive, edits);
    let head = response_rules(c, cx, &x, head);
    let head = match plan {
        Some((_, mut plan)) if !plan.is_noop() => {
            if x.compress.is_none() {
                plan.coding = None;
            }
            encoding::rewrite_head(&head, &plan, chunked_out)
        }
        _ => head,
    };
    // A small body that came whole with the head goes out with it, as one chunk (one
    // buffer in the client pipe, one iovec) instead of two.
    let whole = x.compress.is_none()
        && x.to_client.is_none()
        && x.up_buf.is_empty()
        && rest.len() <= WHOLE_MAX
        && resp.body == BodyKind::Length(rest.len() as u64);
    let mut head = head;
    let body_len = if whole {
        head.extend_from_slice(&rest);
        rest.len()
    } else {
        0
    };
    let head = secure(c.spec(), forward::freeze_head(head));
    if let Some(cur) = c.current.as_mut() {
        cur.note_upstream_head(resp.status, cx.now(), head.len() - body_len);
    }
    if whole {
        // Straight to the client's socket when it takes it all (a kept-alive connection:
        // a closing one needs the pipe's FIN); what it does not take goes through the pipe.
        let head = if c.keep_alive && x.to_client.is_none() {
            let rest = cx.write_now(c.client, head);
            if rest.is_empty() {
                x.resp_done = true;
                return settle(c, cx, x);
            }
            log::debug!(
                "http {}: client socket full; {} bytes of the answer through a pipe",
                c.spec().listen,
                rest.len()
            );
            rest
        } else {
            head
        };
        let to = client_pipe(c, cx, &mut x);
        cx.push(to, head);
        cx.end(to);
        if !c.keep_alive {
            c.start_closing(cx);
        }
        return State::Proxying(x);
    }
    let interim_sent = x.to_client.is_some();
    let buffered = (x.up_buf.len() + rest.len()) as u64;
    let direct = match resp.body {
        _ if x.compress.is_some() => None,
        BodyKind::Length(n) if n > buffered => Some(Some(n - buffered)),
        BodyKind::UntilClose => Some(None),
        _ => None,
    };
    let next = match direct {
        Some(limit) if !interim_sent => {
            // Fast path: the rest of the body goes upstream → client without the session.
            if let Some(r) = x.up_reader.take() {
                cx.close_pipe(r);
            }
            let opts = PipeOpts {
                limit,
                fin: !c.keep_alive,
                ..PipeOpts::default()
            };
            let p = cx.pipe_with(Source::Conn(x.up), Sink::Conn(c.client), opts);
            cx.push(p, head);
            if !rest.is_empty() {
                cx.push(p, rest);
            } else if !x.up_buf.is_empty() {
                cx.push(p, x.up_buf.split().freeze());
            }
            x.to_client = Some(p);
            State::Proxying(x)
        }
        _ => {
            let to = client_pipe(c, cx, &mut x);
            cx.push(to, head);
            open_up_reader(cx, &mut x); // the body's rest comes through it
            x.resp_relay = Some(Relay::of(resp.body));
            relay_response(c, cx, x, rest)
        }
    };
    if !c.keep_alive {
        c.start_closing(cx);
    }
    next
}

/// The client's response head with the route's response rules applied.
fn response_rules(c: &Conn, cx: &Cx<'_>, x: &Exchange, head: BytesMut) -> BytesMut {
    match Given::of(&x.rules, &x.request_id) {
        Some(g) => g.response(head, &vars(c, cx, &x.req, g, &x.upstream, &x.pick)),
        None => head,
    }
}

/// The final response head arrived: a 5xx counts against the server (passive health),
/// anything else for it; the affinity tags or learns what the response creates.
fn learn_from(c: &Conn, cx: &Cx<'_>, x: &mut Exchange, resp: &ResponseHead) {
    let now = cx.now();
    x.pick.server.health().record_answer(resp.status, now);
    let key = c.client_key(cx);
    let ctx = c.ctx.affinity(&x.upstream, key.as_ref(), now);
    affinity::on_response(&ctx, &mut x.pick, resp);
}

/// `101 Switching Protocols`: from now on bytes flow both ways untouched.
fn tunnel(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>, resp: &ResponseHead) -> State {
    let edits = Some(&x.pick.response).filter(|e| !e.is_empty());
    let head = forward::client_response(resp, &c.ctx.server, true, edits);
    let head = response_rules(c, cx, &x, head);
    let head = secure(c.spec(), forward::freeze_head(head));
    c.close_reader(cx);
    for p in [x.up_reader.take(), x.to_up.take()].into_iter().flatten() {
        cx.close_pipe(p);
    }
    let c2u = cx.pipe(Source::Conn(c.client), Sink::Conn(x.up));
    cx.push(c2u, c.buf.split().freeze());
    let u2c = cx.pipe(Source::Conn(x.up), Sink::Conn(c.client));
    cx.push(u2c, head);
    cx.push(u2c, x.up_buf.split().freeze());
    State::Tunnel { up: x.up }
}

/// One of the exchange's pipes ended.
pub(super) fn pipe_end(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut x: Box<Exchange>,
    pipe: PipeId,
    end: PipeEnd,
) -> State {
    if Some(pipe) == x.to_up {
        x.to_up = None;
        match end {
            PipeEnd::Finished => {
                x.req_done = true;
                c.open_reader(cx);
                settle(c, cx, x)
            }
            PipeEnd::SourceError(_) => {
                cx.close(); // the client went away mid-body
                State::Proxying(x)
            }
            PipeEnd::SinkError(_) => upstream_failed(c, cx, x, "reset while receiving the request"),
        }
    } else if Some(pipe) == x.up_reader {
        x.up_reader = None;
        x.up_keep_alive = false;
        if !x.response_started {
            return upstream_failed(c, cx, x, "closed without a response");
        }
        match (&x.resp_relay, end) {
            (Some(Relay::UntilClose), PipeEnd::Finished) => {
                x.resp_relay = None;
                if let Some(to) = x.to_client {
                    if let Some(z) = x.compress.as_deref_mut() {
                        match z.finish() {
                            Ok(b) if !b.is_empty() => {
                                cx.push(to, b);
                            }
                            Ok(_) => {}
                            Err(_) => {
                                cx.close();
                                return State::Proxying(x);
                            }
                        }
                    }
                    cx.end(to);
                }
            }
            (None, _) => {}
            _ => cx.close(), // the body was cut short
        }
        State::Proxying(x)
    } else if Some(pipe) == x.to_client {
        x.to_client = None;
        match end {
            PipeEnd::Finished => {
                x.resp_done = true;
                settle(c, cx, x)
            }
            PipeEnd::SourceError(_) if !x.response_started => upstream_failed(c, cx, x, "reset"),
            _ => {
                cx.close();
                State::Proxying(x)
            }
        }
    } else {
        State::Proxying(x) // a pipe of a connection already left
    }
}

/// The upstream failed before the response started: retry a reused connection once for a
/// request without a body, else `502`.
fn upstream_failed(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>, what: &str) -> State {
    if x.response_started {
        cx.close();
        return State::Proxying(x);
    }
    if x.req.body.is_empty() && !x.retried && cx.reused(x.up) && x.up_buf.is_empty() {
        log::debug!(
            "http {}: pooled connection to {} {what}; retrying",
            c.spec().listen,
            x.pick.server.addr()
        );
        for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
            cx.close_pipe(p);
        }
        cx.close_conn(x.up);
        x.retried = true;
        x.req_done = false;
        return connect(c, cx, x, true);
    }
    log::warn!(
        "http {}: upstream {} {what}",
        c.spec().listen,
        x.pick.server.addr()
    );
    abandon(cx, x);
    c.fail(cx, 502)
}

/// Both directions done? Then return the upstream connection and move on.
fn settle(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<Exchange>) -> State {
    if !x.resp_done {
        return State::Proxying(x);
    }
    if !x.req_done {
        // The upstream answered before taking the whole request: this connection and the
        // client's are out of step; neither can carry another message.
        c.keep_alive = false;
        x.up_keep_alive = false;
    }
    for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
        cx.close_pipe(p);
    }
    if !(x.up_keep_alive && x.up_buf.is_empty() && cx.park(x.up)) {
        cx.close_conn(x.up);
    }
    let next = super::phases::finish(c, cx);
    crate::spare::recycle(&SPARE, x);
    next
}

/// `KEY_CONNECT`: the connect took longer than `connect_timeout`.
pub(super) fn connect_timeout(c: &mut Conn, cx: &mut Cx<'_>, x: Box<Exchange>) -> State {
    match x.link {
        Link::Connecting(_) => {
            cx.close_conn(x.up);
            connect_failed(c, cx, x, "connect timed out", 504)
        }
        Link::Connected => State::Proxying(x), // the timer crossed the connect
    }
}

/// Drop the exchange and its upstream connection.
pub(super) fn abandon(cx: &mut Cx<'_>, mut x: Box<Exchange>) {
    for p in [x.to_up.take(), x.up_reader.take(), x.to_client.take()]
        .into_iter()
        .flatten()
    {
        cx.close_pipe(p);
    }
    cx.close_conn(x.up);
}
