//! The access gate of an HTTP/1.1 request (`crate::access`): basic auth and request limits
//! after the allow/deny list. A request waiting for a verification or a Redis rate check, or
//! delayed by a limit, sits in `State::Gated` (its connection is not read meanwhile) until
//! the `Remote` wake (`KEY_GATE`) or the delay timer (`KEY_DELAY`), then goes on where it
//! stood: routed again (the same router) and on to phase 6.

use std::sync::Arc;

use tether_core::Cx;
use tether_http::{Method, RequestHead};

use super::conn::Conn;
use super::{phases, State};
use crate::access::{self, Access, Env, Gate, Outcome};
use crate::router::Route;

/// `on_wake` key: a helper thread answered the gate.
pub(super) const KEY_GATE: u64 = 3;
/// Timer key: a delayed request's time is up.
pub(super) const KEY_DELAY: u64 = 6;

/// A request in the gate.
pub(super) struct Waiting {
    gate: Box<Gate>,
    head: RequestHead,
}

/// Start the gate of `route`'s `access` for `head`.
pub(super) fn start(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    access: Arc<Access>,
    route: &Route,
    head: RequestHead,
) -> State {
    let gate = Gate::new(access, &route.path);
    run(c, cx, gate, head, Some(route))
}

/// The gate was woken (an answer, or the delay is over): go on.
pub(super) fn resume(c: &mut Conn, cx: &mut Cx<'_>, w: Waiting) -> State {
    let Waiting { gate, head } = w;
    run(c, cx, gate, head, None)
}

/// Run the gate; `route`: the request's route when it is still at hand (the gate did not
/// wait), else it is routed again after the gate.
fn run(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    gate: Box<Gate>,
    head: RequestHead,
    route: Option<&Route>,
) -> State {
    let ctx = c.ctx.clone();
    let env = Env {
        head: &head,
        ip: c.client_ip(cx),
        store: &*ctx.store,
        shared: ctx.store_shared,
        on_store_error: ctx.on_store_error,
        remote: cx.remote(),
        wake: KEY_GATE,
        now: cx.now(),
    };
    match gate.run(&env) {
        Outcome::Pass(held, strip) => {
            if let Some(cur) = c.current.as_mut() {
                cur.held = held;
            }
            let head = match strip {
                false => head,
                true => match access::without_authorization(head, &ctx.limits) {
                    Some(h) => h,
                    None => return c.fail(cx, 500),
                },
            };
            let found;
            let route = match route {
                Some(r) => r,
                None => {
                    found = phases::route(c, cx, &ctx, &head);
                    let Some(r) = found else {
                        c.unread_body(&head.body);
                        return c.status(cx, 404, head.method == Method::Head);
                    };
                    r
                }
            };
            phases::after_access(c, cx, route, head)
        }
        Outcome::Refuse(r) => {
            log::info!(
                "http {}: {} refused by the access gate: {}",
                c.spec().listen,
                head.path(),
                r.status
            );
            c.unread_body(&head.body);
            let bytes = r.bytes(&ctx.server, head.method == Method::Head, c.keep_alive);
            c.respond(cx, r.status, bytes.into(), None)
        }
        Outcome::Park(gate) => State::Gated(Box::new(Waiting { gate, head })),
        Outcome::Sleep(gate, d) => {
            cx.set_timer(d, KEY_DELAY);
            State::Gated(Box::new(Waiting { gate, head }))
        }
    }
}
