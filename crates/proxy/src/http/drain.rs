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

use super::conn::Conn;
use super::{mounts, State};

/// A draining connection silent this long between requests is closed.
pub(super) const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// The timer key of the check (next to `idle.rs`'s keys).
pub(super) const KEY_DRAIN: u64 = 4;

/// `Session::on_drain`.
pub(super) fn drain(c: &mut Conn, cx: &mut Cx<'_>, mut state: State) -> State {
    c.draining = true;
    match state {
        State::ReadingHead { .. } => idle_check(c, cx, &state),
        State::Proxying(ref x) if !x.response_started => c.keep_alive = false,
        State::ReadingForm(_) => c.keep_alive = false,
        State::Feed(ref mut f) => mounts::feed_going_away(cx, f),
        _ => {}
    }
    state
}

/// Between requests while draining: close the connection if it has been silent for
/// `DRAIN_IDLE`, else look again when that time is up. A request arriving meanwhile is
/// served (and closes the connection).
pub(super) fn idle_check(c: &mut Conn, cx: &mut Cx<'_>, state: &State) {
    if !c.draining || !matches!(state, State::ReadingHead { .. }) {
        return;
    }
    c.gather(cx);
    if !c.buf.is_empty() {
        return;
    }
    let idle = cx.idle(c.client);
    if idle >= DRAIN_IDLE {
        cx.close();
    } else {
        cx.set_timer(DRAIN_IDLE - idle, KEY_DRAIN);
    }
}
