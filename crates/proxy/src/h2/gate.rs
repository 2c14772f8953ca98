//! The access gate of an HTTP/2 stream (`crate::access`, as `http/gate.rs` for HTTP/1.1):
//! a stream waiting for a verification or a Redis rate check, or delayed by a limit, is
//! `Work::Gated` (its body bytes kept as they come, not acknowledged) until the `Remote`
//! wake or the delay timer, both `KEY_GATE | stream id`.

use std::sync::Arc;

use tether_core::Cx;
use tether_http::RequestHead;

use super::stream::Work;
use super::upstream::Early;
use super::H2Session;
use crate::access::{self, Access, Env, Gate, Outcome};
use crate::http::phases;

/// Wake and timer key of a stream's gate: `KEY_GATE | id`.
pub(super) const KEY_GATE: u64 = 1 << 34;

/// A stream in the gate.
pub(super) struct Gated {
    gate: Box<Gate>,
    head: RequestHead,
    /// The request body received meanwhile.
    pub early: Early,
}

impl H2Session {
    /// Start the gate of `route`'s `access` for stream `id`.
    pub(super) fn gate_start(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        access: Arc<Access>,
        route: &str,
        head: RequestHead,
        early: Early,
    ) {
        let gate = Gate::new(access, route);
        self.gate_run(cx, id, gate, head, early);
    }

    /// The gate of stream `id` was woken (an answer, or its delay is over).
    pub(super) fn gate_resume(&mut self, cx: &mut Cx<'_>, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return; // the stream ended meanwhile
        };
        if !matches!(s.work, Work::Gated(_)) {
            return;
        }
        let Work::Gated(g) = std::mem::replace(&mut s.work, Work::Gone) else {
            return;
        };
        let Gated { gate, head, early } = *g;
        self.gate_run(cx, id, gate, head, early);
    }

    fn gate_run(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        gate: Box<Gate>,
        head: RequestHead,
        early: Early,
    ) {
        let ctx = self.ctx.clone();
        let env = Env {
            head: &head,
            ip: self.peer.ip,
            store: &*ctx.store,
            shared: ctx.store_shared,
            on_store_error: ctx.on_store_error,
            remote: cx.remote(),
            wake: KEY_GATE | id as u64,
            now: cx.now(),
        };
        let park = |this: &mut H2Session, gate, head, early| {
            if let Some(s) = this.streams.get_mut(&id) {
                s.work = Work::Gated(Box::new(Gated { gate, head, early }));
            }
        };
        match gate.run(&env) {
            Outcome::Pass(held, strip) => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.hold(held);
                }
                let head = match strip {
                    false => head,
                    true => match access::without_authorization(head, &ctx.limits) {
                        Some(h) => h,
                        None => return self.answer_status(cx, id, 500, ""),
                    },
                };
                let sni = self.peer.tls.as_ref().and_then(|t| t.sni.as_deref());
                let Some(route) = phases::route_for(&ctx, sni, &head) else {
                    return self.answer_status(cx, id, 404, "");
                };
                self.after_access(cx, id, &ctx, route, head, early);
            }
            Outcome::Refuse(r) => {
                log::info!(
                    "h2 {}: {} refused by the access gate: {}",
                    ctx.spec.listen,
                    head.path(),
                    r.status
                );
                if self.grpc_answer(id, r.status, "refused by the access gate") {
                    return; // a gRPC call gets a gRPC status (429: RESOURCE_EXHAUSTED)
                }
                let head_only = self.streams.get(&id).is_some_and(|s| s.head_only);
                let bytes = r.bytes(&ctx.server, head_only, true);
                self.answer_h1(cx, id, bytes.into(), None);
            }
            Outcome::Park(gate) => park(self, gate, head, early),
            Outcome::Sleep(gate, d) => {
                cx.set_timer(d, KEY_GATE | id as u64);
                park(self, gate, head, early);
            }
        }
    }
}
