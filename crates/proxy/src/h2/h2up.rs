//! A stream proxied to an HTTP/2 upstream (`protocol = "h2c"`): its request goes to a
//! shared upstream connection (`crate::h2up::mux::UpMux`, one per server while it has room
//! under the server's MAX_CONCURRENT_STREAMS, another when full) as a header list, never
//! as an HTTP/1.1 head; request DATA goes upstream as the upstream windows allow and is
//! given back to the client's window only once sent (a stalled upstream stops the client);
//! response HEADERS, DATA and trailers come back as this stream's HEADERS, DATA and
//! trailing HEADERS, and response DATA is given back to the upstream's windows only once
//! the client's windows took it (`after_send`): a slow client slows the server through
//! both windows, never through tether's memory. Both directions move at once (bidi gRPC).
//!
//! The upstream connections belong to the loop's hub (`crate::h2up::hub`), shared with
//! every other client session; the session keeps the ones its calls use (`H2Session::ups`)
//! and a stream holds its `Call`, which names its mux. What the upstream says arrives in
//! the mux's mailbox for this session, with a wake (`mail`).

use std::rc::Rc;

use bytes::Bytes;
use tether_balance::ActiveGuard;
use tether_core::{Cx, TimerId};
use tether_h2::{ClientEvent, ErrorCode, RequestError, StreamId};

use super::stream::{Stream, Work};
use super::upstream::Early;
use super::H2Session;
use crate::h2up::body::UpBody;
use crate::h2up::encode::CallEncode;
use crate::h2up::fields;
use crate::h2up::grpc;
use crate::h2up::hub;
use crate::h2up::rules::CallRules;
use crate::http::affinity::Pick;
use crate::http::encode::Compressor;
use crate::http::phases::Proxied;

mod fail;

pub(super) type MuxRef = hub::MuxRef;

/// Timer key of a call's deadline (`| stream id`).
pub(super) const KEY_DEADLINE: u64 = 1 << 36;

/// Retries of a call the server did not process (GOAWAY), at most.
const MAX_RETRIES: u8 = 2;
/// Retries of a call refused (REFUSED_STREAM), at most.
const MAX_REFUSALS: u8 = 32;

/// One stream's exchange with an HTTP/2 upstream.
pub(super) struct Call {
    /// The client stream.
    client: u32,
    mux: MuxRef,
    /// The upstream stream, once opened.
    up: Option<StreamId>,
    /// The request head (kept for a retry).
    fields: Vec<(Bytes, Bytes)>,
    /// The request body: not sent yet (bounded by the client's window), and sent, kept
    /// for a retry until the response head comes (`crate::h2up::body`).
    body: UpBody,
    /// The final response head came.
    pub head_seen: bool,
    /// The response ended (END_STREAM, trailers, or a reset).
    resp_done: bool,
    /// Response body bytes in the stream's `Out`, not yet given back upstream.
    in_out: usize,
    pick: Pick,
    /// The pool (another server after a failed connect) and the servers tried.
    upstream: std::sync::Arc<crate::upstream::Upstream>,
    tried: Vec<String>,
    _active: ActiveGuard,
    /// The connect time went to the access log.
    connect_noted: bool,
    /// No final response head by then: 504 (gRPC: DEADLINE_EXCEEDED). `grpc-timeout`
    /// when the request has one, else the listener's `idle_timeout` (`KEY_DEADLINE`).
    deadline: Option<TimerId>,
    /// The route's header rules and request id (`crate::h2up::rules`).
    rules: Option<Box<CallRules>>,
    /// The route's compression (`crate::h2up::encode`), and the answer's compressor.
    encode: Option<Box<CallEncode>>,
    compress: Option<Box<Compressor>>,
}

impl Call {
    pub fn settled(&self) -> bool {
        self.resp_done
    }
}

/// Drop a call: its upstream stream is reset (if still open).
pub(super) fn abandon(cx: &mut Cx<'_>, c: Box<Call>) {
    if let Some(t) = c.deadline {
        cx.cancel_timer(t);
    }
    let mut m = c.mux.borrow_mut();
    if let (true, Some(up)) = (c.in_out > 0, c.up) {
        // Read from the server and never sent on: the connection's window gets it back
        // (shared with other calls, it would shrink for good otherwise).
        m.h2.consumed(up, c.in_out);
    }
    if !c.resp_done {
        let who = (cx.id(), c.client);
        m.cancel(cx, who, c.up);
    } else {
        m.flush(cx);
    }
}

/// The call of stream `s`, if it has one.
fn call_of(s: Option<&mut Stream>) -> Option<&mut Call> {
    match s.map(|s| &mut s.work) {
        Some(Work::H2Up(c)) => Some(c),
        _ => None,
    }
}

impl H2Session {
    /// Phase 8, forward, to an HTTP/2 upstream.
    pub(super) fn start_h2up(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        req: Proxied,
        pick: Pick,
        early: Early,
    ) {
        let addr = pick.server.addr();
        let edits = Some(&pick.request).filter(|e| !e.is_empty());
        let https = self.peer.tls.is_some();
        let authority = addr.to_string();
        let mut list =
            fields::request_fields(&req.head, &self.peer.ip_text, https, &authority, edits);
        let rules = CallRules::of(&req, cx.peer_addr(self.peer.conn), self.peer.tls.clone());
        let encode = CallEncode::of(&req);
        if let Some(r) = &rules {
            r.request(&mut list, &req.upstream, &pick);
        }
        let wait = (req.head.header("grpc-timeout"))
            .and_then(grpc::timeout)
            .unwrap_or(self.ctx.spec.idle_timeout);
        let (bytes, len, ended) = early.into_parts();
        if len > 0 {
            self.h2.consumed(id, len);
        }
        let mux = match self.mux_for(cx, addr, &req.upstream, pick.server.index()) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("h2 {}: upstream {addr}: connect: {e}", self.listen());
                pick.server.health().record_failure(cx.now());
                return self.answer_status(cx, id, 502, "");
            }
        };
        mux.borrow_mut().waiting.push((cx.id(), id));
        let connected = mux.borrow().connected;
        if connected {
            if let Some(c) = self.streams.get_mut(&id).and_then(|s| s.current_mut()) {
                c.note_connected(cx.now());
            }
        }
        let call = Call {
            client: id,
            mux: mux.clone(),
            up: None,
            fields: list,
            body: {
                let mut body = UpBody::new(ended);
                bytes.into_iter().for_each(|b| body.push(b));
                body
            },
            head_seen: false,
            resp_done: false,
            in_out: 0,
            _active: pick.server.acquire(),
            pick,
            upstream: req.upstream.clone(),
            tried: Vec::new(),
            deadline: Some(cx.set_timer(wait, KEY_DEADLINE | id as u64)),
            rules,
            encode,
            compress: None,
            connect_noted: connected,
        };
        match self.streams.get_mut(&id) {
            Some(s) => s.work = Work::H2Up(Box::new(call)),
            None => return abandon(cx, Box::new(call)),
        }
        self.pump(cx, &mux);
    }

    /// A connection to `addr` with room for a stream, from the loop's hub (shared with the
    /// other client sessions; a pool that sends a PROXY header shares only between
    /// connections of the same client address).
    fn mux_for(
        &mut self,
        cx: &mut Cx<'_>,
        addr: std::net::SocketAddr,
        up: &crate::upstream::Upstream,
        index: usize,
    ) -> std::io::Result<MuxRef> {
        let client = self.peer.conn;
        let header = (up.send_proxy)
            .map(|v| crate::upstream::proxy_header(v, cx.peer_addr(client), cx.local_addr(client)));
        let keep = crate::h2up::keep_alive(up);
        let tls = up.tls_for(index);
        let m = hub::mux_for(cx, addr, header, tls, keep)?;
        if !self.ups.iter().any(|x| Rc::ptr_eq(x, &m)) {
            self.ups.push(m.clone());
        }
        Ok(m)
    }

    /// Request body bytes of a stream proxied to an HTTP/2 upstream.
    pub(super) fn h2up_data(&mut self, cx: &mut Cx<'_>, id: u32, data: Bytes, end: bool) {
        let Some(c) = call_of(self.streams.get_mut(&id)) else {
            return;
        };
        if c.body.sent_end {
            // The upstream stream was cut (answered early): the rest is dropped, and the
            // client's window given back.
            self.h2.consumed(id, data.len());
            return;
        }
        c.body.push(data);
        c.body.ended |= end;
        let mux = c.mux.clone();
        self.pump(cx, &mux);
    }

    /// Request trailers of a stream proxied to an HTTP/2 upstream (false: not such a
    /// stream): they end the request, after its body.
    pub(super) fn h2up_trailers(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        fields: Vec<(Bytes, Bytes)>,
    ) -> bool {
        let Some(c) = call_of(self.streams.get_mut(&id)) else {
            return false;
        };
        c.body.set_trailers(fields);
        let mux = c.mux.clone();
        self.pump(cx, &mux);
        true
    }

    /// Open the streams waiting on `mux`, send what the windows allow of every request body,
    /// and write the frames.
    fn pump(&mut self, cx: &mut Cx<'_>, mux: &MuxRef) {
        let me = cx.id();
        let mut m = mux.borrow_mut();
        if !m.connected || m.dead {
            return;
        }
        if !m.settings_seen {
            // Streams open once the server said how many it takes (one round trip per
            // connection): opened before, those above its limit would be refused.
            m.flush(cx);
            return;
        }
        let mut failed = Vec::new();
        let mine: Vec<u32> = (m.waiting.iter())
            .filter(|w| w.0 == me)
            .map(|w| w.1)
            .collect();
        m.waiting.retain(|w| w.0 != me);
        for cid in mine {
            let Some(c) = call_of(self.streams.get_mut(&cid)) else {
                continue;
            };
            let end = c.body.ends_with_head();
            match m.open((me, cid), &c.fields, end) {
                Ok(up) => {
                    c.up = Some(up);
                    c.body.sent_end = end;
                    m.last_used = cx.now();
                }
                Err(RequestError::Busy | RequestError::GoingAway) => m.waiting.push((me, cid)),
                Err(RequestError::TooLarge) => failed.push((cid, 431)),
                Err(_) => failed.push((cid, 502)),
            }
        }
        let open: Vec<(StreamId, u32)> = (m.streams.iter())
            .filter(|(_, w)| w.0 == me)
            .map(|(&u, w)| (u, w.1))
            .collect();
        for (up, cid) in open {
            let Some(c) = call_of(self.streams.get_mut(&cid)) else {
                continue;
            };
            let given = c.body.send(&mut m, up);
            if given > 0 {
                self.h2.consumed(cid, given);
            }
        }
        m.flush(cx);
        let overflow = m.overflow(me);
        drop(m);
        for (cid, status) in failed {
            self.fail_call(cx, cid, status);
        }
        if !overflow.is_empty() {
            self.rehome(cx, mux, overflow);
        }
    }

    /// `hub::KEY_MAIL`: the hub has news for this session — events in the mailboxes of its
    /// muxes, a connection up (streams may open), lost, or with room again.
    pub(super) fn h2up_mail(&mut self, cx: &mut Cx<'_>) {
        let me = cx.id();
        for mux in self.ups.clone() {
            let events = mux.borrow_mut().take_mail(me);
            if !events.is_empty() {
                self.h2up_events(cx, &mux, events);
            }
            let (dead, connected) = {
                let m = mux.borrow();
                (m.dead, m.connected)
            };
            if dead {
                self.mux_lost(cx, &mux);
                continue;
            }
            if connected {
                self.note_connected(cx, &mux);
            }
            self.pump(cx, &mux);
        }
        self.ups.retain(|m| {
            let m = m.borrow();
            !m.dead && m.used_by(me)
        });
    }

    /// What the upstream said about this session's calls on `mux`.
    fn h2up_events(&mut self, cx: &mut Cx<'_>, mux: &MuxRef, events: Vec<ClientEvent>) {
        let now = cx.now();
        let mut failed: Vec<(u32, u16)> = Vec::new();
        let mut resets: Vec<u32> = Vec::new();
        let mut retry: Vec<u32> = Vec::new();
        // Responses that ended: a request still sending is cut (its stream's slot freed).
        let mut ended: Vec<(StreamId, u32)> = Vec::new();
        let mut broken = false;
        // Streams whose compressor was fed: flushed after the batch.
        let mut squeezed: Vec<u32> = Vec::new();
        {
            let mut m = mux.borrow_mut();
            for e in events {
                match e {
                    ClientEvent::Headers {
                        id,
                        status,
                        fields: f,
                        end,
                    } => {
                        let Some(&(_, cid)) = m.streams.get(&id) else {
                            continue;
                        };
                        if status < 200 {
                            continue; // interim: not passed on
                        }
                        if self.intercepts(cid, status) {
                            // `intercept_errors`: the route's page instead of the answer
                            // (its stream is reset when the call is dropped).
                            if let Some(c) = call_of(self.streams.get_mut(&cid)) {
                                c.pick.server.health().record_answer(status, now);
                            }
                            m.streams.remove(&id);
                            failed.push((cid, status));
                            continue;
                        }
                        let Some(s) = self.streams.get_mut(&cid) else {
                            continue;
                        };
                        let mut f = fields::response_fields(f);
                        if let Work::H2Up(c) = &mut s.work {
                            // Affinity learns from the answer and edits it as for HTTP/1.1
                            // (a session cookie, a tagged session id in a header).
                            let ctx = self.ctx.affinity(&c.upstream, self.peer.key.as_ref(), now);
                            let named = f.iter().filter_map(|(n, v)| {
                                std::str::from_utf8(n).ok().map(|n| (n, &v[..]))
                            });
                            crate::http::affinity::on_response_fields(&ctx, &mut c.pick, named);
                            fields::apply_edits(&mut f, &c.pick.response);
                            if let Some(r) = &c.rules {
                                r.response(&mut f, &c.upstream, &c.pick);
                            }
                            if let (Some(e), false) = (&c.encode, end || s.head_only) {
                                c.compress = e.start(status, &mut f, false, &"h2");
                            }
                        }
                        let list: Vec<(&[u8], &[u8])> =
                            f.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                        if let Work::H2Up(c) = &mut s.work {
                            c.head_seen = true;
                            c.body.processed(); // never sent again
                            if let Some(t) = c.deadline.take() {
                                cx.cancel_timer(t);
                            }
                            c.pick.server.health().record_answer(status, now);
                            if end {
                                c.resp_done = true;
                            }
                        }
                        s.note_status(status);
                        if let Some(cur) = s.current_mut() {
                            // For the access log: the upstream's status and time to head
                            // (its size as header-list bytes).
                            let size = list.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
                            cur.note_upstream_head(status, now, size);
                        }
                        if self.h2.send_headers(cid, status, &list, end).is_ok() {
                            s.out.head_sent = true;
                            s.out.end = end;
                            s.out.sent_end = end;
                        }
                        if end {
                            m.streams.remove(&id);
                            ended.push((id, cid));
                        }
                    }
                    ClientEvent::Data { id, bytes, end } => {
                        let Some(&(_, cid)) = m.streams.get(&id) else {
                            m.h2.consumed(id, bytes.len());
                            continue;
                        };
                        let Some(s) = self.streams.get_mut(&cid) else {
                            continue;
                        };
                        let mut bytes = bytes;
                        if let Work::H2Up(c) = &mut s.work {
                            c.in_out += bytes.len();
                            c.resp_done |= end;
                            if let Some(z) = c.compress.as_deref_mut() {
                                // Compressed as it comes; flushed after this batch.
                                let out = z.feed(&bytes).and_then(|step| {
                                    let mut out = bytes::BytesMut::from(&step.out[..]);
                                    if end {
                                        out.extend_from_slice(&z.finish()?);
                                    }
                                    Ok(out.freeze())
                                });
                                match out {
                                    Ok(out) => bytes = out,
                                    Err(e) => {
                                        log::warn!("h2 upstream {}: compression: {e}", m.addr);
                                        m.streams.remove(&id);
                                        c.resp_done = true;
                                        resets.push(cid);
                                        continue;
                                    }
                                }
                                if !end {
                                    squeezed.push(cid);
                                }
                            }
                        }
                        s.out.push(bytes);
                        s.out.end |= end;
                        if end {
                            m.streams.remove(&id);
                            ended.push((id, cid));
                        }
                    }
                    ClientEvent::Trailers { id, fields: f } => {
                        let Some((_, cid)) = m.streams.remove(&id) else {
                            continue;
                        };
                        let Some(s) = self.streams.get_mut(&cid) else {
                            continue;
                        };
                        if let Work::H2Up(c) = &mut s.work {
                            c.resp_done = true;
                            if let Some(mut z) = c.compress.take() {
                                match z.finish() {
                                    Ok(out) => s.out.push(out),
                                    Err(e) => log::warn!("h2 upstream: compression: {e}"),
                                }
                            }
                        }
                        s.out.trailers = Some(fields::response_fields(f));
                        s.out.end = true;
                        ended.push((id, cid));
                    }
                    ClientEvent::Reset {
                        id,
                        code,
                        retryable,
                    } => {
                        let Some((_, cid)) = m.streams.remove(&id) else {
                            continue;
                        };
                        if retryable && Self::replayable(self.streams.get_mut(&cid), true) {
                            retry.push(cid);
                            continue;
                        }
                        log::info!("h2 upstream {}: stream {id} reset: {code}", m.addr);
                        let head = call_of(self.streams.get_mut(&cid)).map(|c| {
                            c.resp_done = true;
                            c.head_seen
                        });
                        match head {
                            Some(false) => failed.push((cid, 502)),
                            Some(true) => resets.push(cid),
                            None => {}
                        }
                    }
                    ClientEvent::GoAway { retryable, .. } => {
                        for id in retryable {
                            if let Some((_, cid)) = m.streams.remove(&id) {
                                if Self::replayable(self.streams.get_mut(&cid), false) {
                                    retry.push(cid);
                                    continue;
                                }
                                if let Some(c) = call_of(self.streams.get_mut(&cid)) {
                                    c.resp_done = true;
                                }
                                failed.push((cid, 503));
                            }
                        }
                    }
                    ClientEvent::Error(_) => broken = true,
                    ClientEvent::Settings { .. }
                    | ClientEvent::WindowOpened
                    | ClientEvent::Ping { .. } => {}
                }
            }
        }
        squeezed.dedup();
        for cid in squeezed {
            let Some(s) = self.streams.get_mut(&cid) else {
                continue;
            };
            let Work::H2Up(c) = &mut s.work else { continue };
            let Some(z) = c.compress.as_deref_mut() else {
                continue;
            };
            match z.flush() {
                Ok(out) => s.out.push(out),
                Err(e) => log::warn!("h2 upstream: compression: {e}"),
            }
        }
        for (up, cid) in ended {
            if let Some(c) = call_of(self.streams.get_mut(&cid)).filter(|c| !c.body.sent_end) {
                c.body.cut();
                mux.borrow_mut().h2.reset(up, ErrorCode::Cancel);
            }
        }
        if broken {
            self.mux_lost(cx, mux);
        }
        for cid in resets {
            self.h2.reset(cid, ErrorCode::InternalError);
            self.drop_stream(cx, cid, 502);
        }
        for (cid, status) in failed {
            self.fail_call(cx, cid, status);
        }
        if !retry.is_empty() {
            log::info!(
                "h2 {}: upstream {}: {} stream(s) not processed, sent again",
                self.listen(),
                mux.borrow().addr,
                retry.len()
            );
            self.rehome(cx, mux, retry);
        }
        mux.borrow_mut().flush(cx);
    }

    /// The calls of this session waiting on `mux`, which is connected now: their access
    /// log notes the connect time (once).
    fn note_connected(&mut self, cx: &mut Cx<'_>, mux: &MuxRef) {
        let (me, now) = (cx.id(), cx.now());
        let waiting: Vec<u32> = (mux.borrow().waiting.iter())
            .filter(|w| w.0 == me)
            .map(|w| w.1)
            .collect();
        for cid in waiting {
            let Some(s) = self.streams.get_mut(&cid) else {
                continue;
            };
            let fresh = match &mut s.work {
                Work::H2Up(c) => !std::mem::replace(&mut c.connect_noted, true),
                _ => false,
            };
            if let (true, Some(cur)) = (fresh, s.current_mut()) {
                cur.note_connected(now);
            }
        }
    }

    /// After the client's windows took bytes: give the upstream windows back as much.
    /// A call whose response has ended no longer keeps its mux in `ups`, yet the bytes it
    /// still sends are given back: the connection's window is shared by every call on it.
    pub(super) fn h2up_after_send(&mut self, cx: &mut Cx<'_>) {
        let mut gave: Vec<MuxRef> = Vec::new();
        for s in self.streams.values_mut() {
            let queued = s.out.queued;
            if let Work::H2Up(c) = &mut s.work {
                let sent = c.in_out.saturating_sub(queued);
                if let (true, Some(up)) = (sent > 0, c.up) {
                    c.in_out -= sent;
                    c.mux.borrow_mut().h2.consumed(up, sent);
                    if !gave.iter().any(|m| Rc::ptr_eq(m, &c.mux)) {
                        gave.push(c.mux.clone());
                    }
                }
            }
        }
        for m in gave.iter().chain(&self.ups) {
            m.borrow_mut().flush(cx);
        }
    }

    /// `KEY_DEADLINE | id`: no response head by the call's deadline: 504 (gRPC:
    /// DEADLINE_EXCEEDED), the upstream stream reset.
    pub(super) fn h2up_deadline(&mut self, cx: &mut Cx<'_>, id: u32) {
        let Some(c) = call_of(self.streams.get_mut(&id)) else {
            return;
        };
        c.deadline = None;
        if !c.head_seen {
            self.fail_stream(cx, id, 504, "upstream deadline passed");
        }
    }

    /// The gRPC answer for tether's own error `status` on stream `id`, if the request is
    /// gRPC (true: answered).
    pub(super) fn grpc_answer(&mut self, id: u32, status: u16, detail: &str) -> bool {
        let Some(s) = self
            .streams
            .get_mut(&id)
            .filter(|s| s.grpc && !s.out.head_sent)
        else {
            return false;
        };
        let f = grpc::error_fields(status, detail);
        let list: Vec<(&[u8], &[u8])> = f.iter().map(|(n, v)| (*n, &v[..])).collect();
        s.note_status(status);
        s.out = super::reply::Out::default();
        if self.h2.send_headers(id, 200, &list, true).is_ok() {
            s.out.head_sent = true;
        }
        s.out.end = true;
        s.out.sent_end = true;
        s.work = Work::Local(None);
        true
    }
}
