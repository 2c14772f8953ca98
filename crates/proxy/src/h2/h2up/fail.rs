//! What goes wrong on an HTTP/2 upstream, and what tether does about it (part of
//! `h2up.rs`, whose `Call` it shares): a failed connect tries another server
//! (`repick_call`), a lost connection fails its calls (`mux_lost`: 502 before an answer,
//! UNAVAILABLE trailers for gRPC after), streams the server never processed are sent again
//! (`replayable`, `rehome`).

use std::rc::Rc;

use bytes::Bytes;
use tether_core::Cx;
use tether_h2::ErrorCode;

use super::{abandon, call_of, grpc, MuxRef, MAX_REFUSALS, MAX_RETRIES};
use crate::h2::stream::{Stream, Work};
use crate::h2::H2Session;

impl H2Session {
    /// A call failed before its answer: the status (gRPC: its code) goes to the client.
    pub(super) fn fail_call(&mut self, cx: &mut Cx<'_>, cid: u32, status: u16) {
        let Some(s) = self.streams.get_mut(&cid) else {
            return;
        };
        if let Work::H2Up(c) = std::mem::replace(&mut s.work, Work::Gone) {
            abandon(cx, c);
        }
        if s.out.head_sent {
            if s.grpc && !s.out.end {
                // A gRPC response under way ends with the status in trailers (a dead
                // server mid-stream: UNAVAILABLE), not with a reset the client reads as
                // INTERNAL.
                let f = grpc::error_fields(status, "the upstream stream broke");
                s.out.trailers = Some(
                    (f.into_iter().skip(1))
                        .map(|(n, v)| (Bytes::from_static(n), Bytes::from(v)))
                        .collect(),
                );
                s.out.end = true;
                return;
            }
            self.h2.reset(cid, ErrorCode::InternalError);
            return self.drop_stream(cx, cid, status);
        }
        self.answer_status(cx, cid, status, "");
    }

    /// A call whose connection could not be made goes to another server, as the pool and
    /// the affinity allow (`affinity::repick`, up to the pool's `retries`); false if none.
    pub(super) fn repick_call(&mut self, cx: &mut Cx<'_>, cid: u32) -> bool {
        let now = cx.now();
        let Some(c) = call_of(self.streams.get_mut(&cid)) else {
            return true; // the stream is gone: nothing to answer
        };
        c.tried.push(c.pick.server.id().to_string());
        if c.tried.len() as u32 > c.upstream.retries {
            return false;
        }
        let up = c.upstream.clone();
        let ctx = self.ctx.affinity(&up, self.peer.key.as_ref(), now);
        let Some(next) = crate::http::affinity::repick(&ctx, &c.pick, &c.tried) else {
            return false;
        };
        c._active = next.server.acquire();
        c.pick = next;
        let (addr, up, index) = (
            c.pick.server.addr(),
            c.upstream.clone(),
            c.pick.server.index(),
        );
        let mux = match self.mux_for(cx, addr, &up, index) {
            Ok(m) => m,
            Err(_) => return false,
        };
        mux.borrow_mut().waiting.push((cx.id(), cid));
        if let Some(c) = call_of(self.streams.get_mut(&cid)) {
            c.mux = mux.clone();
        }
        self.pump(cx, &mux);
        true
    }

    /// A mux's connection is gone (the hub closed it): this session's calls on it fail
    /// (502 before an answer, a reset after). Calls never sent on it (a failed connect)
    /// try another server first.
    pub(super) fn mux_lost(&mut self, cx: &mut Cx<'_>, mux: &MuxRef) {
        let me = cx.id();
        let (addr, opened, waiting) = {
            let mut m = mux.borrow_mut();
            let opened: Vec<_> = (m.streams.iter())
                .filter(|(_, w)| w.0 == me)
                .map(|(&id, w)| (id, w.1))
                .collect();
            for (id, _) in &opened {
                m.streams.remove(id);
            }
            let opened: Vec<u32> = opened.into_iter().map(|(_, c)| c).collect();
            let waiting: Vec<u32> = (m.waiting.iter())
                .filter(|w| w.0 == me)
                .map(|w| w.1)
                .collect();
            m.waiting.retain(|w| w.0 != me);
            m.mail.remove(&me);
            (m.addr, opened, waiting)
        };
        self.ups.retain(|m| !Rc::ptr_eq(m, mux));
        let now = cx.now();
        if !opened.is_empty() || !waiting.is_empty() {
            log::warn!(
                "h2 {}: upstream {addr}: connection lost ({} stream(s) under way)",
                self.listen(),
                opened.len()
            );
        }
        for cid in waiting {
            if let Some(c) = call_of(self.streams.get_mut(&cid)) {
                c.pick.server.health().record_failure(now);
            }
            if !self.repick_call(cx, cid) {
                if let Some(c) = call_of(self.streams.get_mut(&cid)) {
                    c.resp_done = true;
                }
                self.fail_call(cx, cid, 502);
            }
        }
        for cid in opened {
            if let Some(c) = call_of(self.streams.get_mut(&cid)) {
                c.pick.server.health().record_failure(now);
                c.resp_done = true;
            }
            self.fail_call(cx, cid, 502);
        }
    }

    /// Whether a call the server did not process can be sent again (its whole body is at
    /// hand, retries left); if so it is made ready to open anew. `refused`: REFUSED_STREAM,
    /// which a server at its stream limit answers (grpcio does while it still counts
    /// streams that ended on the wire): retried more often than after a GOAWAY.
    pub(super) fn replayable(s: Option<&mut Stream>, refused: bool) -> bool {
        let Some(c) = call_of(s) else {
            return false;
        };
        let max = if refused { MAX_REFUSALS } else { MAX_RETRIES };
        if !c.body.replay(max) {
            return false;
        }
        c.up = None;
        true
    }

    /// Move waiting calls to another connection to the same server (theirs is full after
    /// its SETTINGS, or goes away).
    pub(super) fn rehome(&mut self, cx: &mut Cx<'_>, from: &MuxRef, calls: Vec<u32>) {
        let addr = from.borrow().addr;
        let mut touched: Vec<MuxRef> = Vec::new();
        for cid in calls {
            let (up, index) = match call_of(self.streams.get_mut(&cid)) {
                Some(c) => (c.upstream.clone(), c.pick.server.index()),
                None => continue,
            };
            let mux = match self.mux_for(cx, addr, &up, index) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("h2 {}: upstream {addr}: connect: {e}", self.listen());
                    self.fail_call(cx, cid, 502);
                    continue;
                }
            };
            mux.borrow_mut().waiting.push((cx.id(), cid));
            if let Some(c) = call_of(self.streams.get_mut(&cid)) {
                c.mux = mux.clone();
            }
            if !touched.iter().any(|m| Rc::ptr_eq(m, &mux)) {
                touched.push(mux);
            }
        }
        for m in touched {
            self.pump(cx, &m);
        }
    }
}
