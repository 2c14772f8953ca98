//! A stream's exchange with an HTTP/1.1 upstream, over the pooled keep-alive connections
//! the HTTP/1.1 session uses (`Cx::connect_with`): the head written by
//! `forward::upstream_request` (hop-by-hop fields out, `X-Forwarded-*` in, the affinity's
//! edits), the body from DATA frames (as they are under a `content-length`, else chunked),
//! the response head parsed by `parse_response` and rewritten by `forward::client_response`
//! (then read back into HTTP/2 fields, `reply.rs`), its body (length, chunked, until close)
//! decoded into the stream's `Out` only while `Out` has room — a closed window leaves the
//! bytes in the upstream pipe, which stops reading the socket: backpressure to the server.
//! A request body is given back to the client's window only as the upstream pipe takes it.
//!
//! A failed connect tries another server as the affinity allows (`affinity::repick`); a
//! pooled connection that dies before any answer to a request without a body is retried
//! once on a fresh one, as HTTP/1.1 does (`http/proxy.rs`). A finished exchange parks its
//! connection (`Cx::park`) when the response allowed it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tether_balance::ActiveGuard;
use tether_core::{ConnId, ConnectOpts, Cx, PipeEnd, PipeId, PipeOpts, Sink, Source, TimerId};
use tether_h2::ErrorCode;
use tether_http::{parse_response, BodyKind, ChunkedDecoder, Method, Parsed, ResponseHead};

use super::reply::{self, Out};
use super::stream::Work;
use super::{H2Session, KEY_STREAM};
use crate::http::affinity::{self, Pick};
use crate::http::encode::{self as encoding, Compressor};
use crate::http::forward;
use crate::http::phases::Proxied;
use crate::http::rules::{Given, Vars};
use crate::upstream::Upstream;

/// Upstream bytes read ahead of the response head (and of the body while `Out` is full).
const UP_READ: usize = 64 * 1024;

/// A request body received before its upstream connection is up.
pub(super) struct Early {
    bytes: Vec<Bytes>,
    len: usize,
    /// END_STREAM came: the body is whole.
    ended: bool,
}

impl Early {
    pub fn new(ended: bool) -> Early {
        Early {
            bytes: Vec::new(),
            len: 0,
            ended,
        }
    }

    pub fn push(&mut self, data: Bytes, end: bool) {
        self.len += data.len();
        if !data.is_empty() {
            self.bytes.push(data);
        }
        self.ended |= end;
    }

    /// Body bytes received.
    pub fn len(&self) -> usize {
        self.len
    }

    /// END_STREAM came.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The first `n` bytes received, in one piece.
    pub fn first(&self, n: usize) -> Bytes {
        let mut out = BytesMut::with_capacity(n);
        for b in &self.bytes {
            let take = (n - out.len()).min(b.len());
            out.extend_from_slice(&b[..take]);
            if out.len() == n {
                break;
            }
        }
        out.freeze()
    }

    /// The bytes received, how many the client sent, and whether END_STREAM came (an
    /// HTTP/2 upstream takes them as they are: `h2up.rs`).
    pub fn into_parts(self) -> (Vec<Bytes>, usize, bool) {
        (self.bytes, self.len, self.ended)
    }

    /// Send `body` instead of the bytes received (a form whose session id tag was
    /// stripped); `len` still counts what the client sent (its window is given back).
    pub fn replace_body(&mut self, body: Bytes) {
        self.bytes = vec![body];
    }
}

enum Link {
    Connecting(Option<TimerId>),
    Connected,
}

/// How the response body ends.
enum Decode {
    Count(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl Decode {
    /// Move the body bytes of `data` into `out`: how many were the body's, and whether it
    /// is complete.
    fn feed(&mut self, data: &Bytes, out: &mut Out) -> Result<(usize, bool), ()> {
        match self {
            Decode::Count(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                out.push(data.slice(..n as usize));
                Ok((n as usize, *left == 0))
            }
            Decode::Chunked(dec) => {
                let mut v = Vec::new();
                let r = dec.decode(data, &mut v).map_err(|_| ())?;
                out.push(v.into());
                Ok(r)
            }
            Decode::UntilClose => {
                out.push(data.clone());
                Ok((data.len(), false))
            }
        }
    }
}

enum Resp {
    /// Waiting for the (final) response head.
    Head,
    Body(Decode),
    Done,
}

/// One stream's request/response with the upstream.
pub(super) struct Exchange {
    pub up: ConnId,
    link: Link,
    upstream: Arc<Upstream>,
    pick: Pick,
    /// The stream counted on its server (least connections, bounded load).
    _active: ActiveGuard,
    tried: Vec<String>,
    req: Proxied,
    head: Bytes,
    retried: bool,
    /// The body goes chunked (no `content-length`).
    chunked: bool,
    early: Early,
    to_up: Option<PipeId>,
    /// Body bytes pushed while `to_up` was full: given back to the client's window when it
    /// drains.
    owed: usize,
    req_done: bool,
    up_reader: Option<PipeId>,
    up_buf: BytesMut,
    resp: Resp,
    up_keep_alive: bool,
    /// The answer's compressor (`http/encode.rs`), when the route's policy chose a coding.
    compress: Option<Box<Compressor>>,
    /// The connection was parked or closed: nothing more runs.
    done: bool,
}

impl Exchange {
    pub fn settled(&self) -> bool {
        self.done
    }

    pub fn response_started(&self) -> bool {
        !matches!(self.resp, Resp::Head)
    }

    fn push_body(&mut self, cx: &mut Cx<'_>, to: PipeId, data: Bytes) {
        if data.is_empty() {
            return;
        }
        if self.chunked {
            cx.push(to, Bytes::from(format!("{:x}\r\n", data.len())));
            cx.push(to, data);
            cx.push(to, Bytes::from_static(b"\r\n"));
        } else {
            cx.push(to, data);
        }
    }

    fn end_body(&mut self, cx: &mut Cx<'_>, to: PipeId) {
        if self.chunked {
            cx.push(to, Bytes::from_static(b"0\r\n\r\n"));
        }
        cx.end(to);
    }
}

/// A request body's bytes for exchange `x`. True when they may be given back to the
/// client's window now.
pub(super) fn client_data(cx: &mut Cx<'_>, x: &mut Exchange, data: Bytes, end: bool) -> bool {
    let (Link::Connected, Some(to)) = (&x.link, x.to_up) else {
        x.early.push(data, end);
        return false;
    };
    let n = data.len();
    x.push_body(cx, to, data);
    if end {
        x.end_body(cx, to);
    }
    if cx.is_full(to) {
        x.owed += n;
        return false;
    }
    true
}

/// Move response body bytes into `out` while it has room (`Err`: a broken body).
pub(super) fn pull(cx: &mut Cx<'_>, x: &mut Exchange, out: &mut Out) -> Result<(), u16> {
    loop {
        let Resp::Body(dec) = &mut x.resp else {
            return Ok(());
        };
        if !out.wants_more() {
            return Ok(());
        }
        let data = if x.up_buf.is_empty() {
            match x.up_reader.and_then(|r| cx.take(r)) {
                Some(b) => b,
                None => {
                    // Nothing more from the upstream for now: what was compressed so far
                    // goes out (a streaming backend is not held back).
                    if let Some(z) = x.compress.as_deref_mut() {
                        out.push(z.flush().map_err(|_| 502u16)?);
                    }
                    return Ok(());
                }
            }
        } else {
            x.up_buf.split().freeze()
        };
        let (used, complete) = match x.compress.as_deref_mut() {
            Some(z) => {
                let step = z.feed(&data).map_err(|_| 502u16)?;
                out.push(step.out);
                (step.used, step.done)
            }
            None => dec.feed(&data, out).map_err(|()| 502u16)?,
        };
        if used < data.len() {
            x.up_buf.extend_from_slice(&data[used..]);
        }
        if complete {
            out.end = true;
            x.resp = Resp::Done;
            settle(cx, x);
        }
    }
}

/// Return the connection (or close it) once both ways are over.
fn settle(cx: &mut Cx<'_>, x: &mut Exchange) {
    if x.done || !matches!(x.resp, Resp::Done) {
        return;
    }
    if !x.req_done {
        // Answered before the whole request: this connection is out of step.
        x.up_keep_alive = false;
    }
    for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
        cx.close_pipe(p);
    }
    if !(x.up_keep_alive && x.up_buf.is_empty() && cx.park(x.up)) {
        cx.close_conn(x.up);
    }
    x.done = true;
}

/// Drop the exchange and its upstream connection.
pub(super) fn abandon(cx: &mut Cx<'_>, mut x: Box<Exchange>) {
    for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
        cx.close_pipe(p);
    }
    if !x.done {
        cx.close_conn(x.up);
    }
}

impl H2Session {
    /// The stream whose exchange `f` picks.
    fn stream_of(&self, f: impl Fn(&Exchange) -> bool) -> Option<u32> {
        self.streams
            .iter()
            .find(|(_, s)| matches!(&s.work, Work::Proxying(x) if f(x)))
            .map(|(&id, _)| id)
    }

    fn take_x(&mut self, id: u32) -> Option<Box<Exchange>> {
        let s = self.streams.get_mut(&id)?;
        match std::mem::replace(&mut s.work, Work::Gone) {
            Work::Proxying(x) => Some(x),
            other => {
                s.work = other;
                None
            }
        }
    }

    fn put_x(&mut self, cx: &mut Cx<'_>, id: u32, x: Box<Exchange>) {
        match self.streams.get_mut(&id) {
            Some(s) => s.work = Work::Proxying(x),
            None => abandon(cx, x), // the stream ended meanwhile
        }
    }

    fn head_for(&self, cx: &Cx<'_>, req: &Proxied, pick: &Pick) -> Bytes {
        let edits = Some(&pick.request).filter(|e| !e.is_empty());
        let (ip, https) = (&self.peer.ip_text, self.peer.tls.is_some());
        let head = forward::upstream_request(&req.head, ip, https, pick.server.addr(), edits);
        match Given::of(&req.rules, &req.request_id) {
            Some(g) => forward::freeze_head(g.request(head, &self.vars(cx, req, g, pick))),
            None => forward::freeze_head(head),
        }
    }

    /// What the rules' placeholders read for this stream's exchange (`http/rules.rs`,
    /// shared with HTTP/1.1).
    fn vars<'a>(&self, cx: &Cx<'_>, req: &'a Proxied, g: Given<'a>, pick: &Pick) -> Vars<'a> {
        Vars {
            client: cx.peer_addr(self.peer.conn),
            tls: self.peer.tls.clone(),
            req: &req.head,
            request_id: g.id.unwrap_or(""),
            upstream_name: req.upstream.name(),
            upstream_addr: pick.server.addr(),
        }
    }

    /// Phase 8, forward: send the request to the server `pick` names.
    pub(super) fn start_upstream(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        req: Proxied,
        pick: Pick,
        early: Early,
    ) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.note_request_id(req.request_id.as_deref());
            if let Some(c) = s.current_mut() {
                c.note_upstream(&req.upstream, &pick);
            }
        }
        if crate::h2up::auto::speaks_h2(&req.upstream, pick.server.addr()) {
            return self.start_h2up(cx, id, req, pick, early);
        }
        let x = Box::new(Exchange {
            up: ConnId::dangling(),
            link: Link::Connecting(None),
            upstream: req.upstream.clone(),
            head: self.head_for(cx, &req, &pick),
            _active: pick.server.acquire(),
            pick,
            tried: Vec::new(),
            chunked: req.head.body == BodyKind::Chunked,
            req,
            retried: false,
            early,
            to_up: None,
            owed: 0,
            req_done: false,
            up_reader: None,
            up_buf: BytesMut::new(),
            resp: Resp::Head,
            up_keep_alive: false,
            compress: None,
            done: false,
        });
        self.connect_up(cx, id, x, false);
    }

    fn connect_up(&mut self, cx: &mut Cx<'_>, id: u32, mut x: Box<Exchange>, fresh: bool) {
        let client = self.peer.conn;
        let header = (x.upstream.send_proxy)
            .map(|v| crate::upstream::proxy_header(v, cx.peer_addr(client), cx.local_addr(client)));
        let upstream = x.upstream.clone();
        let opts = ConnectOpts {
            tls: upstream.tls_for(x.pick.server.index()),
            proxy_header: header.as_deref(),
            fresh,
        };
        match cx.connect_with(x.pick.server.addr(), opts) {
            Ok(up) => {
                x.up = up;
                let after = self.ctx.spec.connect_timeout;
                let timer = (!cx.reused(up)).then(|| cx.set_timer(after, KEY_STREAM | id as u64));
                x.link = Link::Connecting(timer);
                self.put_x(cx, id, x);
            }
            Err(e) => self.connect_failed(cx, id, x, &format!("connect: {e}"), 502),
        }
    }

    /// Try another server as the pool and the affinity allow, else answer `status`.
    fn connect_failed(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        mut x: Box<Exchange>,
        what: &str,
        status: u16,
    ) {
        let now = cx.now();
        let server = &x.pick.server;
        let (addr, name) = (server.addr(), x.upstream.name().to_string());
        log::warn!("h2 {}: upstream {addr} (in {name}) {what}", self.listen());
        server.health().record_failure(now);
        x.tried.push(server.id().to_string());
        let next = if x.tried.len() as u32 <= x.upstream.retries {
            let ctx = self.ctx.affinity(&x.upstream, self.peer.key.as_ref(), now);
            affinity::repick(&ctx, &x.pick, &x.tried)
        } else {
            None
        };
        let Some(next) = next else {
            let strict =
                x.pick.pinned && x.upstream.failover == tether_balance::FailoverMode::Strict;
            abandon(cx, x);
            if strict {
                return self.answer_message(cx, id, 503, affinity::SERVER_GONE);
            }
            return self.answer_status(cx, id, status, "");
        };
        x.head = self.head_for(cx, &x.req, &next);
        x._active = next.server.acquire();
        x.pick = next;
        x.retried = false;
        self.connect_up(cx, id, x, true);
    }

    /// `on_connect` of a stream's upstream connection.
    pub(super) fn upstream_connected(
        &mut self,
        cx: &mut Cx<'_>,
        up: ConnId,
        result: std::io::Result<()>,
    ) {
        let Some(id) = self.stream_of(|x| x.up == up) else {
            cx.close_conn(up); // a connection no stream wants any more
            return;
        };
        let Some(mut x) = self.take_x(id) else { return };
        if let Link::Connecting(Some(t)) = x.link {
            cx.cancel_timer(t);
        }
        if let Err(e) = result {
            cx.close_conn(up);
            return self.connect_failed(cx, id, x, &format!("unreachable: {e}"), 502);
        }
        if crate::h2up::auto::chose_h2_on_h1_path(cx, &x.upstream, up, x.pick.server.addr()) {
            // An `auto` server that chose HTTP/2: nothing was sent, the stream moves over.
            cx.close_conn(up);
            let x = *x;
            return self.start_h2up(cx, id, x.req, x.pick, x.early);
        }
        x.link = Link::Connected;
        let keep = PipeOpts {
            fin: false,
            ..PipeOpts::default()
        };
        let to = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
        cx.push(to, x.head.clone());
        x.to_up = Some(to);
        let early = std::mem::replace(&mut x.early, Early::new(false));
        for b in early.bytes {
            x.push_body(cx, to, b);
        }
        if early.ended {
            x.end_body(cx, to);
        }
        if early.len > 0 {
            self.h2.consumed(id, early.len);
        }
        let read = PipeOpts {
            threshold: UP_READ,
            ..PipeOpts::default()
        };
        x.up_reader = Some(cx.pipe_with(Source::Conn(up), Sink::Session, read));
        self.put_x(cx, id, x);
    }

    /// A stream's connect timer (`KEY_STREAM | id`).
    pub(super) fn connect_timeout(&mut self, cx: &mut Cx<'_>, id: u32) {
        let Some(x) = self.take_x(id) else { return };
        match x.link {
            Link::Connecting(_) => {
                cx.close_conn(x.up);
                self.connect_failed(cx, id, x, "connect timed out", 504);
            }
            Link::Connected => self.put_x(cx, id, x),
        }
    }

    /// The upstream pipe of a request body has room: give the window back.
    pub(super) fn upstream_drained(&mut self, _cx: &mut Cx<'_>, pipe: PipeId) {
        let Some(id) = self.stream_of(|x| x.to_up == Some(pipe)) else {
            return;
        };
        if let Some(Work::Proxying(x)) = self.streams.get_mut(&id).map(|s| &mut s.work) {
            let owed = std::mem::take(&mut x.owed);
            self.h2.consumed(id, owed);
        }
    }

    /// Upstream bytes: the response head (the body is pulled by `flush`).
    pub(super) fn upstream_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        let Some(id) = self.stream_of(|x| x.up_reader == Some(pipe)) else {
            return;
        };
        let Some(mut x) = self.take_x(id) else { return };
        if x.response_started() {
            return self.put_x(cx, id, x);
        }
        while let Some(b) = cx.take(pipe) {
            x.up_buf.extend_from_slice(&b);
        }
        let head_request = x.req.head.method == Method::Head;
        loop {
            match parse_response(&x.up_buf, head_request, &self.ctx.limits) {
                Ok(Parsed::Partial) => return self.put_x(cx, id, x),
                Ok(Parsed::Complete(mut r)) => {
                    if x.pick.tag_body && !(100..200).contains(&r.status) {
                        // An answer that may hold a new session id: its body whole first.
                        let Exchange {
                            upstream,
                            pick,
                            up_buf,
                            ..
                        } = &mut *x;
                        let at = r.len();
                        if !crate::http::session_body::answer(upstream, pick, &mut r, up_buf, at) {
                            return self.put_x(cx, id, x);
                        }
                    }
                    let _ = x.up_buf.split_to(r.len());
                    let tunnel = r.status == 101 && x.req.head.upgrade;
                    if (100..200).contains(&r.status) && !tunnel {
                        continue; // interim: not passed on
                    }
                    if x.req.head.upgrade && (200..300).contains(&r.status) {
                        // A 2xx to an extended CONNECT says the WebSocket is open (RFC
                        // 8441): an upstream that ignored the upgrade must not say so.
                        let addr = x.pick.server.addr();
                        log::warn!(
                            "h2 {}: {addr} answered a WebSocket upgrade with {}: 502",
                            self.listen(),
                            r.status
                        );
                        abandon(cx, x);
                        return self.answer_status(cx, id, 502, "");
                    }
                    return self.respond(cx, id, x, r);
                }
                Err(e) => {
                    let addr = x.pick.server.addr();
                    log::warn!(
                        "h2 {}: bad response head from {addr}: {}",
                        self.listen(),
                        e.reason
                    );
                    abandon(cx, x);
                    return self.answer_status(cx, id, 502, "");
                }
            }
        }
    }

    /// Phase 9, respond: the final head goes to the client; the body follows (`pull`).
    fn respond(&mut self, cx: &mut Cx<'_>, id: u32, mut x: Box<Exchange>, resp: ResponseHead) {
        let now = cx.now();
        x.pick.server.health().record_answer(resp.status, now);
        let ctx = self.ctx.clone();
        affinity::on_response(
            &ctx.affinity(&x.upstream, self.peer.key.as_ref(), now),
            &mut x.pick,
            &resp,
        );
        if self.intercepts(id, resp.status) {
            // `intercept_errors`: the route's page instead of the backend's answer.
            abandon(cx, x);
            return self.answer_status(cx, id, resp.status, "");
        }
        x.up_keep_alive = resp.keep_alive;
        // The answer goes to the client as a header list (never written as an HTTP/1.1
        // head and read back): the fields kept, the affinity's edits, the route's rules,
        // its compression, HSTS.
        let edits = Some(&x.pick.response).filter(|e| !e.is_empty());
        let mut fields = forward::client_response_fields(&resp, &ctx.server, edits);
        if let Some(g) = Given::of(&x.req.rules, &x.req.request_id) {
            let vars = self.vars(cx, &x.req, g, &x.pick);
            crate::http::rules::apply_fields(&mut fields, &g.rules.response, g.id, &vars, false);
        }
        if let (Some(policy), false) = (x.req.encode.clone(), resp.status == 101) {
            let mut plan = encoding::plan(&policy, &x.req.head, &resp);
            if let Some(coding) = plan.coding {
                match Compressor::new(&policy, coding, resp.body, false) {
                    Ok(z) => x.compress = Some(Box::new(z)),
                    Err(e) => {
                        log::warn!("h2 {}: no {coding} encoder: {e}", ctx.spec.listen);
                        plan.coding = None;
                    }
                }
            }
            if !plan.is_noop() {
                encoding::rewrite_fields(&mut fields, &plan, false);
            }
        }
        if let Some(v) = &ctx.spec.front.hsts {
            fields.retain(|(n, _)| !n.eq_ignore_ascii_case(b"strict-transport-security"));
            fields.push((
                Bytes::from_static(b"strict-transport-security"),
                Bytes::copy_from_slice(v.as_bytes()),
            ));
        }
        if let Some(c) = self.streams.get_mut(&id).and_then(|s| s.current_mut()) {
            // For the access log: the head's size as header-list bytes.
            let size = fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
            c.note_upstream_head(resp.status, now, size);
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return abandon(cx, x);
        };
        let mut answer = reply::H1Answer {
            status: resp.status,
            fields,
            body: Bytes::new(),
        };
        // A WebSocket's `101` is RFC 8441's `200`, and then a tunnel: the bytes both ways
        // until either side ends (never parked: `up_keep_alive` is false after a 101).
        let tunnel = resp.status == 101;
        if tunnel {
            x.up_keep_alive = false;
            answer.status = 200;
            (answer.fields).retain(|(n, _)| !n.eq_ignore_ascii_case(b"sec-websocket-accept"));
        }
        s.note_status(answer.status);
        let more = tunnel || !matches!(resp.body, BodyKind::None | BodyKind::Length(0));
        reply::send(&mut self.h2, id, answer, more, &mut s.out);
        x.resp = match resp.body {
            _ if tunnel => Resp::Body(Decode::UntilClose),
            _ if !more => Resp::Done,
            BodyKind::Chunked => Resp::Body(Decode::Chunked(ChunkedDecoder::new())),
            BodyKind::Length(n) => Resp::Body(Decode::Count(n)),
            _ => Resp::Body(Decode::UntilClose),
        };
        settle(cx, &mut x);
        self.put_x(cx, id, x);
    }

    /// One of an exchange's pipes ended.
    pub(super) fn upstream_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        let owner = |x: &Exchange| x.to_up == Some(pipe) || x.up_reader == Some(pipe);
        let Some(id) = self.stream_of(owner) else {
            return; // a pipe of a connection already left
        };
        let Some(mut x) = self.take_x(id) else { return };
        if x.to_up == Some(pipe) {
            x.to_up = None;
            if end != PipeEnd::Finished {
                return self.upstream_failed(cx, id, x, "reset while receiving the request");
            }
            x.req_done = true;
            settle(cx, &mut x);
            return self.put_x(cx, id, x);
        }
        x.up_reader = None;
        x.up_keep_alive = false;
        match (&x.resp, end) {
            (Resp::Head, _) => self.upstream_failed(cx, id, x, "closed without a response"),
            (Resp::Body(Decode::UntilClose), PipeEnd::Finished) => {
                x.resp = Resp::Done;
                let tail = match x.compress.as_deref_mut().map(|z| z.finish()) {
                    Some(Err(e)) => {
                        log::warn!("h2 {}: stream {id}: compression: {e}", self.listen());
                        abandon(cx, x);
                        self.h2.reset(id, ErrorCode::InternalError);
                        return self.drop_stream(cx, id, 0);
                    }
                    Some(Ok(b)) => b,
                    None => Bytes::new(),
                };
                if let Some(s) = self.streams.get_mut(&id) {
                    s.out.push(tail);
                    s.out.end = true;
                }
                settle(cx, &mut x);
                self.put_x(cx, id, x);
            }
            (Resp::Body(_), _) => {
                log::warn!("h2 {}: stream {id}: response body cut short", self.listen());
                abandon(cx, x);
                self.h2.reset(id, ErrorCode::InternalError);
                self.drop_stream(cx, id, 0);
            }
            (Resp::Done, _) => self.put_x(cx, id, x),
        }
    }

    /// The upstream failed before answering: retry a reused connection once for a request
    /// without a body, else `502` (or a reset once the answer started).
    fn upstream_failed(&mut self, cx: &mut Cx<'_>, id: u32, mut x: Box<Exchange>, what: &str) {
        if x.response_started() {
            abandon(cx, x);
            self.h2.reset(id, ErrorCode::InternalError);
            return self.drop_stream(cx, id, 0);
        }
        let no_body = x.req.head.body.is_empty();
        if no_body && !x.retried && cx.reused(x.up) && x.up_buf.is_empty() {
            log::debug!("h2 {}: pooled connection {what}; retrying", self.listen());
            for p in [x.to_up.take(), x.up_reader.take()].into_iter().flatten() {
                cx.close_pipe(p);
            }
            cx.close_conn(x.up);
            x.retried = true;
            x.req_done = false;
            x.early = Early::new(true);
            return self.connect_up(cx, id, x, true);
        }
        let addr = x.pick.server.addr();
        log::warn!("h2 {}: upstream {addr} {what}", self.listen());
        abandon(cx, x);
        self.answer_status(cx, id, 502, "");
    }
}
