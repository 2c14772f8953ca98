//! `State::H2Up`: an HTTP/1.1 request proxied to an HTTP/2 pool (`protocol = "h2c"`). The
//! request goes to one of the loop's shared upstream connections (`crate::h2up::hub`) as a
//! header list (`h2up::fields::request_fields`: `Host` → `:authority`, connection-specific
//! fields dropped), never as an HTTP/1.1 head; its body (Content-Length or chunked, the
//! chunk framing taken off) is streamed as DATA as the upstream windows allow, and read
//! from the client only while little of it waits (`BODY_HIGH`: a stalled upstream stops
//! the client through TCP). The answer is written as an HTTP/1.1 head and body: its
//! `content-length` when it has one, else chunked, with its trailers as chunked trailers
//! when the client said `TE: trailers`. Response DATA is given back to the upstream's
//! windows once the client pipe has room (a slow client slows the server).
//!
//! One call at a time per connection (HTTP/1.1 answers in order); what the hub says
//! arrives in the mux's mailbox with a `hub::KEY_MAIL` wake (`mail`).

use std::cell::Cell;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tether_balance::ActiveGuard;
use tether_core::{Cx, PipeEnd, PipeId, PipeOpts, Sink, Source, TimerId};
use tether_h2::{ClientEvent, ErrorCode, RequestError, StreamId};
use tether_http::{BodyKind, ChunkedDecoder, Method, Version};

use super::affinity::{self, Pick};
use super::conn::{secure, Conn};
use super::phases::{self, Proxied};
use super::State;
use crate::h2up::body::UpBody;
use crate::h2up::encode::CallEncode;
use crate::h2up::fields;
use crate::h2up::hub::{self, MuxRef};
use crate::h2up::rules::CallRules;
use crate::http::encode::Compressor;
use crate::upstream::Upstream;

/// Timer key of the call's deadline (no response head by then: 504).
pub(super) const KEY_DEADLINE: u64 = 8;

/// Request body bytes read from the client and not sent upstream yet, at most (then the
/// client's bytes wait in its socket).
const BODY_HIGH: usize = 256 * 1024;
/// Retries of a call the server did not process (GOAWAY, REFUSED_STREAM), at most.
const MAX_RETRIES: u8 = 8;

thread_local! {
    /// Numbers calls of this thread's HTTP/1.1 sessions (a call's `Who` in its mux).
    static SERIAL: Cell<u32> = const { Cell::new(0) };
}

/// How much of the request body is still to be read from the client.
enum Reading {
    Length(u64),
    Chunked(Box<ChunkedDecoder>, u64),
    Done,
}

/// One HTTP/1.1 request's exchange with an HTTP/2 upstream.
pub(super) struct H1Call {
    mux: MuxRef,
    serial: u32,
    up: Option<StreamId>,
    fields: Vec<(Bytes, Bytes)>,
    reading: Reading,
    max_body: Option<u64>,
    /// The body read: not sent yet, and sent, kept for a replay until the response head
    /// (`crate::h2up::body`).
    body: UpBody,
    head_seen: bool,
    resp_done: bool,
    /// HEAD request: the answer has no body.
    head_only: bool,
    /// The client may have its answer chunked (HTTP/1.1).
    http11: bool,
    /// The client said `TE: trailers`: response trailers go out as chunked trailers.
    trailers_ok: bool,
    /// The answer is framed chunked.
    chunked: bool,
    to_client: Option<PipeId>,
    /// Response body bytes pushed to the client and not given back upstream yet.
    unacked: usize,
    pick: Pick,
    upstream: Arc<Upstream>,
    tried: Vec<String>,
    _active: ActiveGuard,
    deadline: Option<TimerId>,
    /// The route's header rules and request id (`h2up/rules.rs`).
    rules: Option<Box<CallRules>>,
    /// The route's compression (`h2up/encode.rs`), and the answer's compressor.
    encode: Option<Box<CallEncode>>,
    compress: Option<Box<Compressor>>,
}

/// Phase 8, forward, to an HTTP/2 pool: the call waits in a shared connection's queue.
pub(super) fn start(c: &mut Conn, cx: &mut Cx<'_>, req: Proxied, pick: Pick) -> State {
    if let Some(cur) = c.current.as_mut() {
        cur.note_request_id(req.request_id.as_deref());
        cur.note_upstream(&req.upstream, &pick);
    }
    c.hold(&pick.server);
    let addr = pick.server.addr();
    let edits = Some(&pick.request).filter(|e| !e.is_empty());
    let https = cx.tls_info(c.client).is_some();
    let ip = c.client_ip_text(cx);
    let mut list = fields::request_fields(&req.head, &ip, https, &addr.to_string(), edits);
    let rules = CallRules::of(&req, cx.peer_addr(c.client), cx.tls_info(c.client));
    let encode = CallEncode::of(&req);
    if let Some(r) = &rules {
        r.request(&mut list, &req.upstream, &pick);
    }
    let mux = match mux_for(c, cx, &req.upstream, &pick) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("http {}: upstream {addr}: {e}", c.spec().listen);
            pick.server.health().record_failure(cx.now());
            return c.fail(cx, 502);
        }
    };
    let reading = match req.head.body {
        BodyKind::Length(n) if n > 0 => Reading::Length(n),
        BodyKind::Chunked => Reading::Chunked(Box::default(), 0),
        _ => Reading::Done,
    };
    let trailers_ok = (req.head.header("te")).is_some_and(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("trailers")
    });
    let serial = SERIAL.with(|s| {
        s.set(s.get().wrapping_add(1));
        s.get()
    });
    let mut x = Box::new(H1Call {
        mux,
        serial,
        up: None,
        fields: list,
        body: UpBody::new(matches!(reading, Reading::Done)),
        reading,
        max_body: req.max_body,
        head_seen: false,
        resp_done: false,
        head_only: req.head.method == Method::Head,
        http11: req.head.version == Version::Http11,
        trailers_ok,
        chunked: false,
        to_client: None,
        unacked: 0,
        _active: pick.server.acquire(),
        pick,
        upstream: req.upstream,
        tried: Vec::new(),
        deadline: Some(cx.set_timer(c.spec().idle_timeout, KEY_DEADLINE)),
        rules,
        encode,
        compress: None,
    });
    x.mux.borrow_mut().waiting.push((cx.id(), serial));
    if req.head.expect_continue && !matches!(x.reading, Reading::Done) {
        // The body is wanted: say so at once (an HTTP/2 server has no `100` to give).
        let opts = PipeOpts {
            fin: false,
            ..PipeOpts::default()
        };
        let p = cx.pipe_with(Source::Session, Sink::Conn(c.client), opts);
        cx.push(p, Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        x.to_client = Some(p);
    }
    if let Err(status) = read_body(c, cx, &mut x) {
        abandon(cx, x);
        return c.fail(cx, status);
    }
    go(c, cx, x)
}

/// A shared connection to the picked server with room for the call.
fn mux_for(c: &Conn, cx: &mut Cx<'_>, up: &Upstream, pick: &Pick) -> std::io::Result<MuxRef> {
    let header = up.send_proxy.map(|v| {
        let client = cx.peer_addr(c.client);
        crate::upstream::proxy_header(v, client, cx.local_addr(c.client))
    });
    let keep = crate::h2up::keep_alive(up);
    let tls = up.tls_for(pick.server.index());
    hub::mux_for(cx, pick.server.addr(), header, tls, keep)
}

/// Read request body bytes from the client while little of the body waits (`Err`: the
/// status for a bad or too large body).
fn read_body(c: &mut Conn, cx: &mut Cx<'_>, x: &mut H1Call) -> Result<(), u16> {
    while x.body.queued < BODY_HIGH && !matches!(x.reading, Reading::Done) {
        let chunk = if !c.buf.is_empty() {
            c.buf.split().freeze()
        } else {
            match c.reader().and_then(|r| cx.take(r)) {
                Some(b) => b,
                None => break,
            }
        };
        let (used, data, done) = match &mut x.reading {
            Reading::Length(left) => {
                let n = (*left).min(chunk.len() as u64) as usize;
                *left -= n as u64;
                (n, chunk.slice(..n), *left == 0)
            }
            Reading::Chunked(d, total) => {
                let mut out = Vec::new();
                let (used, done) = d.decode(&chunk, &mut out).map_err(|e| e.status)?;
                *total += out.len() as u64;
                if x.max_body.is_some_and(|m| *total > m) {
                    return Err(413);
                }
                (used, Bytes::from(out), done)
            }
            Reading::Done => break,
        };
        if used < chunk.len() {
            // The next request's bytes (pipelined): kept for it.
            let mut rest = BytesMut::from(&chunk[used..]);
            rest.extend_from_slice(&c.buf);
            c.buf = rest;
        }
        x.body.push(data);
        if done {
            x.reading = Reading::Done;
            x.body.ended = true;
        }
    }
    Ok(())
}

/// Open the stream when the connection lets it, send what the windows allow of the body,
/// and ask the hub to write; a full or departing connection moves the call to another.
fn pump(c: &Conn, cx: &mut Cx<'_>, x: &mut H1Call) -> Result<(), u16> {
    let who = (cx.id(), x.serial);
    let mux = x.mux.clone();
    let mut m = mux.borrow_mut();
    if !m.connected || m.dead {
        return Ok(());
    }
    if !m.settings_seen {
        m.flush(cx);
        return Ok(());
    }
    if x.up.is_none() && m.waiting.contains(&who) {
        let end = x.body.ends_with_head();
        match m.open(who, &x.fields, end) {
            Ok(id) => {
                m.waiting.retain(|w| *w != who);
                x.up = Some(id);
                x.body.sent_end = end;
                m.last_used = cx.now();
            }
            Err(RequestError::Busy | RequestError::GoingAway) => {}
            Err(RequestError::TooLarge) => return Err(431),
            Err(_) => return Err(502),
        }
    }
    if let Some(up) = x.up {
        x.body.send(&mut m, up);
    }
    m.flush(cx);
    let moved = m.overflow(who.0).contains(&x.serial);
    drop(m);
    if moved {
        let next = mux_for(c, cx, &x.upstream, &x.pick).map_err(|_| 502u16)?;
        next.borrow_mut().waiting.push(who);
        x.mux = next;
        return pump(c, cx, x);
    }
    Ok(())
}

/// Read more of the body, pump, and stay in the state (or fail the request).
fn go(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<H1Call>) -> State {
    let result = read_body(c, cx, &mut x).and_then(|()| pump(c, cx, &mut x));
    match result {
        Ok(()) => State::H2Up(x),
        Err(status) => fail(c, cx, x, status),
    }
}

/// The call failed: `status` before the answer's head, else the connection closes (the
/// answer cannot be completed).
fn fail(c: &mut Conn, cx: &mut Cx<'_>, x: Box<H1Call>, status: u16) -> State {
    let started = x.head_seen;
    abandon(cx, x);
    if started {
        cx.close();
        return State::Closing;
    }
    c.fail(cx, status)
}

/// Drop the call: its upstream stream is reset if still open, its pipe to the client
/// closed.
pub(super) fn abandon(cx: &mut Cx<'_>, mut x: Box<H1Call>) {
    if let Some(t) = x.deadline.take() {
        cx.cancel_timer(t);
    }
    if let (Some(up), true) = (x.up, x.unacked > 0) {
        let mut m = x.mux.borrow_mut();
        m.h2.consumed(up, x.unacked);
        m.flush(cx);
        x.unacked = 0;
    }
    if !x.resp_done {
        let who = (cx.id(), x.serial);
        x.mux.borrow_mut().cancel(cx, who, x.up);
    }
    if let Some(p) = x.to_client.take() {
        cx.close_pipe(p);
    }
}

/// Client bytes: more of the request body (pipelined requests wait in the pipe).
pub(super) fn client_readable(c: &mut Conn, cx: &mut Cx<'_>, x: Box<H1Call>) -> State {
    go(c, cx, x)
}

/// The pipe to the client drained: give the upstream its windows back.
pub(super) fn drained(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<H1Call>, pipe: PipeId) -> State {
    if x.to_client == Some(pipe) {
        give_back(cx, &mut x);
    }
    go(c, cx, x)
}

/// Response bytes the client pipe took go back to the upstream's windows.
fn give_back(cx: &mut Cx<'_>, x: &mut H1Call) {
    let (Some(up), Some(p)) = (x.up, x.to_client) else {
        return;
    };
    if x.unacked > 0 && !cx.is_full(p) {
        let mut m = x.mux.borrow_mut();
        m.h2.consumed(up, x.unacked);
        m.flush(cx);
        x.unacked = 0;
    }
}

/// `KEY_DEADLINE`: no response head in time: 504.
pub(super) fn deadline(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<H1Call>) -> State {
    x.deadline = None;
    if x.head_seen {
        return State::H2Up(x);
    }
    c.ctx.stats.conn_timeout();
    log::warn!("http {}: upstream response timed out", c.spec().listen);
    fail(c, cx, x, 504)
}

/// The pipe to the client ended: the answer is out (the next request), or the client is
/// gone.
pub(super) fn pipe_end(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    x: Box<H1Call>,
    pipe: PipeId,
    end: PipeEnd,
) -> State {
    if x.to_client != Some(pipe) {
        return State::H2Up(x);
    }
    if end != PipeEnd::Finished || !x.resp_done {
        abandon(cx, x);
        cx.close();
        return State::Closing;
    }
    if !matches!(x.reading, Reading::Done) {
        c.keep_alive = false; // the rest of the body was never read
    }
    let mut x = x;
    x.to_client = None;
    abandon(cx, x);
    phases::finish(c, cx)
}

/// `hub::KEY_MAIL`: what the upstream said, and news of the connection.
pub(super) fn mail(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<H1Call>) -> State {
    let me = cx.id();
    let events = x.mux.borrow_mut().take_mail(me);
    for e in events {
        let ours = |id: &StreamId| x.up == Some(*id);
        match e {
            ClientEvent::Headers {
                id,
                status,
                fields: f,
                end,
            } if ours(&id) && status >= 200 && !x.head_seen => {
                let pages = c.current.as_ref().and_then(|cur| cur.pages.as_ref());
                if pages.is_some_and(|p| p.intercepts(status)) && x.to_client.is_none() {
                    // `intercept_errors`: the route's page instead of the answer (its
                    // stream reset as the call is dropped).
                    x.pick.server.health().record_answer(status, cx.now());
                    if !matches!(x.reading, Reading::Done) {
                        c.keep_alive = false; // the rest of the body is not read
                    }
                    let head_only = x.head_only;
                    abandon(cx, x);
                    return c.status(cx, status, head_only);
                }
                head(c, cx, &mut x, status, f, end);
            }
            ClientEvent::Data { id, bytes, end } if ours(&id) => {
                if !body(cx, &mut x, bytes) {
                    x.resp_done = true;
                    abandon(cx, x);
                    cx.close();
                    return State::Closing;
                }
                if end {
                    finish_body(cx, &mut x, None);
                }
            }
            ClientEvent::Trailers { id, fields: f } if ours(&id) => {
                finish_body(cx, &mut x, Some(f));
            }
            ClientEvent::Reset {
                id,
                code,
                retryable,
            } if ours(&id) => {
                x.mux.borrow_mut().streams.remove(&id);
                if x.resp_done {
                    continue;
                }
                if retryable && replay(&mut x) {
                    return retry(c, cx, x);
                }
                log::info!("http {}: upstream stream reset: {code}", c.spec().listen);
                x.resp_done = true;
                return fail(c, cx, x, 502);
            }
            ClientEvent::GoAway { retryable, .. } => {
                let Some(up) = x.up.filter(|u| retryable.contains(u)) else {
                    continue;
                };
                x.mux.borrow_mut().streams.remove(&up);
                if replay(&mut x) {
                    return retry(c, cx, x);
                }
                x.resp_done = true;
                return fail(c, cx, x, 503);
            }
            _ => {}
        }
    }
    flush_compressed(cx, &mut x);
    if x.resp_done {
        if let Some(up) = x.up.take() {
            let mut m = x.mux.borrow_mut();
            // The whole answer came: what the client pipe still holds is given back now
            // (the connection's window is shared; it would shrink for good otherwise).
            if x.unacked > 0 {
                m.h2.consumed(up, x.unacked);
                x.unacked = 0;
            }
            if m.streams.remove(&up).is_some() && !x.body.sent_end {
                // Answered before the request ended: the upstream stream is cut.
                m.h2.reset(up, ErrorCode::Cancel);
                c.keep_alive = false;
            }
            m.flush(cx);
        }
        return State::H2Up(x);
    }
    if x.mux.borrow().dead {
        return lost(c, cx, x);
    }
    give_back(cx, &mut x);
    go(c, cx, x)
}

/// The call's connection is gone: never sent → another connection or server; else 502.
fn lost(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<H1Call>) -> State {
    let now = cx.now();
    x.pick.server.health().record_failure(now);
    if x.up.is_some() || x.head_seen {
        x.resp_done = true;
        return fail(c, cx, x, 502);
    }
    x.tried.push(x.pick.server.id().to_string());
    let next = if x.tried.len() as u32 <= x.upstream.retries {
        let key = c.client_key(cx);
        let ctx = c.ctx.affinity(&x.upstream, key.as_ref(), now);
        affinity::repick(&ctx, &x.pick, &x.tried)
    } else {
        None
    };
    let Some(next) = next else {
        x.resp_done = true;
        return fail(c, cx, x, 502);
    };
    x._active = next.server.acquire();
    x.pick = next;
    c.hold(&x.pick.server);
    retry(c, cx, x)
}

/// The call was not processed: make it ready to open anew with its whole body.
fn replay(x: &mut H1Call) -> bool {
    if !x.body.replay(MAX_RETRIES) {
        return false;
    }
    x.up = None;
    true
}

/// Queue the call on a connection with room (to the server picked now).
fn retry(c: &mut Conn, cx: &mut Cx<'_>, mut x: Box<H1Call>) -> State {
    match mux_for(c, cx, &x.upstream, &x.pick) {
        Ok(m) => {
            m.borrow_mut().waiting.push((cx.id(), x.serial));
            x.mux = m;
            go(c, cx, x)
        }
        Err(_) => {
            x.resp_done = true;
            fail(c, cx, x, 502)
        }
    }
}

/// The final response head, written as an HTTP/1.1 head.
fn head(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    x: &mut H1Call,
    status: u16,
    f: Vec<(Bytes, Bytes)>,
    end: bool,
) {
    let now = cx.now();
    x.head_seen = true;
    x.body.processed();
    if let Some(t) = x.deadline.take() {
        cx.cancel_timer(t);
    }
    x.pick.server.health().record_answer(status, now);
    let mut f = fields::response_fields(f);
    {
        let key = c.client_key(cx);
        let ctx = c.ctx.affinity(&x.upstream, key.as_ref(), now);
        let named =
            (f.iter()).filter_map(|(n, v)| std::str::from_utf8(n).ok().map(|n| (n, &v[..])));
        affinity::on_response_fields(&ctx, &mut x.pick, named);
    }
    fields::apply_edits(&mut f, &x.pick.response);
    if let Some(r) = &x.rules {
        r.response(&mut f, &x.upstream, &x.pick);
    }
    let no_body = x.head_only || status == 204 || status == 304;
    if let (Some(e), false) = (&x.encode, no_body || end) {
        x.compress = e.start(status, &mut f, x.http11, &c.spec().listen);
    }
    let has_len = f
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"content-length"));
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(
        format!(
            "HTTP/1.1 {status} {}\r\n",
            tether_http::reply::reason(status)
        )
        .as_bytes(),
    );
    for (n, v) in &f {
        if n.starts_with(b":") {
            continue;
        }
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    if x.compress.is_some() {
        // The compressor frames the body (chunks for HTTP/1.1; HTTP/1.0: until close).
        if !x.http11 {
            c.keep_alive = false;
        }
    } else if !no_body && !has_len {
        if end {
            out.put_slice(b"content-length: 0\r\n");
        } else if x.http11 {
            out.put_slice(b"transfer-encoding: chunked\r\n");
            x.chunked = true;
        } else {
            c.keep_alive = false; // HTTP/1.0: the body ends with the connection
        }
    }
    if !c.keep_alive {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
    let head = secure(c.spec(), out.freeze());
    c.note_status(status);
    if let Some(cur) = c.current.as_mut() {
        cur.note_upstream_head(status, now, head.len());
    }
    if !c.keep_alive {
        c.start_closing(cx);
    }
    let opts = PipeOpts {
        fin: !c.keep_alive,
        ..PipeOpts::default()
    };
    let p = match x.to_client {
        Some(p) => p, // the `100 Continue` went out on it
        None => cx.pipe_with(Source::Session, Sink::Conn(c.client), opts),
    };
    cx.push(p, head);
    x.to_client = Some(p);
    if end {
        finish_body(cx, x, None);
    }
}

/// Response body bytes (chunk-framed when the answer is chunked, compressed when the
/// route compresses it); false when the compressor failed (the answer cannot go on).
fn body(cx: &mut Cx<'_>, x: &mut H1Call, bytes: Bytes) -> bool {
    let Some(p) = x.to_client else {
        return true;
    };
    x.unacked += bytes.len();
    if bytes.is_empty() || x.head_only {
        return true;
    }
    if let Some(z) = x.compress.as_deref_mut() {
        return match z.feed(&bytes) {
            Ok(step) => {
                if !step.out.is_empty() {
                    cx.push(p, step.out);
                }
                true
            }
            Err(e) => {
                log::warn!("h2 upstream call: compression: {e}");
                false
            }
        };
    }
    if x.chunked {
        cx.push(p, Bytes::from(format!("{:x}\r\n", bytes.len())));
        cx.push(p, bytes);
        cx.push(p, Bytes::from_static(b"\r\n"));
    } else {
        cx.push(p, bytes);
    }
    true
}

/// What the compressor holds of the bytes fed so far goes to the client (after each batch
/// of the server's frames: the first compressed bytes leave before the server's last).
fn flush_compressed(cx: &mut Cx<'_>, x: &mut H1Call) {
    let (Some(z), Some(p)) = (x.compress.as_deref_mut(), x.to_client) else {
        return;
    };
    match z.flush() {
        Ok(out) if !out.is_empty() => {
            cx.push(p, out);
        }
        Ok(_) => {}
        Err(e) => log::warn!("h2 upstream call: compression: {e}"),
    }
}

/// The answer ended (with `trailers`, if it had some): the last chunk, then the pipe ends.
fn finish_body(cx: &mut Cx<'_>, x: &mut H1Call, trailers: Option<Vec<(Bytes, Bytes)>>) {
    x.resp_done = true;
    let Some(p) = x.to_client else {
        return;
    };
    if let Some(mut z) = x.compress.take() {
        // The compressed body's end (and the last chunk); the server's trailers, if any,
        // are not passed on with a compressed answer.
        match z.finish() {
            Ok(out) => {
                cx.push(p, out);
            }
            Err(e) => log::warn!("h2 upstream call: compression: {e}"),
        }
    } else if x.chunked {
        let mut out = BytesMut::from(&b"0\r\n"[..]);
        if x.trailers_ok {
            for (n, v) in fields::response_fields(trailers.unwrap_or_default()) {
                out.put_slice(&n);
                out.put_slice(b": ");
                out.put_slice(&v);
                out.put_slice(b"\r\n");
            }
        }
        out.put_slice(b"\r\n");
        cx.push(p, out.freeze());
    }
    cx.end(p);
}
