//! Draining an `http` connection (graceful shutdown, reload: `Session::on_drain`), as nginx
//! does, without failing a request a client already sent:
//!
//! - a request whose answer has not started is answered with `Connection: close`;
//! - an answer already on its way with keep-alive finishes; then, like a connection that was
//!   between requests, the client gets `DRAIN_IDLE` (counted from the last byte) to send its
//!   next request, which is served with `Connection: close`; a connection idle for longer
//!   is closed;
//! - tunnels go on until they end or the drain deadline cuts them.

use std::time::Duration;

use tether_core::Cx;

use super::{HttpSession, Phase};

/// A draining connection silent this long between requests is closed.
pub(super) const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// The timer key of the check (next to `idle.rs`'s keys).
pub(super) const KEY_DRAIN: u64 = 4;

pub(super) fn drain(s: &mut HttpSession, cx: &mut Cx<'_>) {
    s.draining = true;
    match s.phase {
        Phase::Head(_) => idle_check(s, cx),
        Phase::Busy => {
            if s.xchg.as_ref().is_some_and(|x| !x.response_started) {
                s.keep_alive = false;
            }
        }
        Phase::Feed => super::mounts::feed_going_away(s, cx),
        Phase::Tunnel | Phase::Closing => {}
    }
}

/// Between requests while draining: close the connection if it has been silent for
/// `DRAIN_IDLE`, else look again when that time is up. A request arriving meanwhile is
/// served (and closes the connection).
pub(super) fn idle_check(s: &mut HttpSession, cx: &mut Cx<'_>) {
    if !s.draining || !matches!(s.phase, Phase::Head(_)) {
        return;
    }
    s.gather(cx);
    if !s.buf.is_empty() {
        return;
    }
    let Some(client) = s.client else {
        return cx.close();
    };
    let idle = cx.idle(client);
    if idle >= DRAIN_IDLE {
        cx.close();
    } else {
        cx.set_timer(DRAIN_IDLE - idle, KEY_DRAIN);
    }
}
