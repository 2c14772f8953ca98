//! The request-head deadline (against slowloris): a head has the listener's
//! `header_timeout` from its first byte to be complete. Bytes arriving do not extend it, so a
//! client trickling a head one byte at a time gets `408` and a close at the deadline, like
//! one that sends half a head and stops.
//!
//! Who owns which wait (all per listener):
//! - before a request's first byte (a new connection, or between keep-alive requests):
//!   `idle_timeout`, then a silent close — there is no request to answer, and a `408` sent
//!   on an idle keep-alive connection could be read as the answer to a request the client
//!   is sending at that moment (nginx closes silently too);
//! - from the first byte of a head until it is complete: `header_timeout` (this file);
//! - a request body, a proxied exchange: `idle_timeout` again (silence, not total time).
//!
//! The deadline lives in `State::ReadingHead`: it starts when a partial head is first seen
//! and ends when the head is parsed (complete or rejected).

use std::time::Instant;

use tether_core::{Cx, TimerId};

use super::conn::Conn;
use super::{phases, State};
use crate::idle::{KEY_LINGER, LINGER};

/// The timer key of the deadline (next to `idle.rs`'s keys and `drain.rs`'s).
pub(super) const KEY_HEADER: u64 = 5;

/// A head under way: when it must be complete, and the timer that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeadDeadline {
    at: Instant,
    timer: TimerId,
}

impl HeadDeadline {
    /// When the head's first byte came, for a listener whose `header_timeout` is `timeout`
    /// (the connection limit sheds the oldest head; not stored: `HttpSession` stays small).
    pub(super) fn since(&self, timeout: std::time::Duration) -> Instant {
        self.at.checked_sub(timeout).unwrap_or(self.at)
    }
}

/// A partial head is buffered: start its deadline, unless it already runs.
pub(super) fn start(
    c: &Conn,
    cx: &mut Cx<'_>,
    deadline: Option<HeadDeadline>,
) -> Option<HeadDeadline> {
    if deadline.is_some() || c.buf.is_empty() {
        return deadline;
    }
    let timeout = c.spec().header_timeout;
    let timer = cx.set_timer(timeout, KEY_HEADER);
    Some(HeadDeadline {
        at: cx.now() + timeout,
        timer,
    })
}

/// The head is parsed (or the connection gives up on it): its deadline no longer applies.
pub(super) fn stop(cx: &mut Cx<'_>, deadline: &mut Option<HeadDeadline>) {
    if let Some(d) = deadline.take() {
        cx.cancel_timer(d.timer);
    }
}

/// On `KEY_HEADER`: past the deadline with the head still partial, answer `408` and close.
pub(super) fn expired(c: &mut Conn, cx: &mut Cx<'_>, d: HeadDeadline) -> State {
    let now = cx.now();
    if now < d.at {
        let timer = cx.set_timer(d.at - now, KEY_HEADER);
        let deadline = Some(HeadDeadline { timer, ..d });
        return State::ReadingHead { deadline };
    }
    // What came in the meantime may finish the head: serve it rather than refuse it.
    let state = phases::next_request(c, cx, Some(d));
    if !matches!(state, State::ReadingHead { deadline: Some(_) }) {
        return state;
    }
    log::info!(
        "http {}: request head not complete after {} ms ({} bytes): 408",
        c.spec().listen,
        c.spec().header_timeout.as_millis(),
        c.buf.len()
    );
    c.ctx.stats.conn_timeout();
    let state = c.fail(cx, 408);
    cx.set_timer(LINGER, KEY_LINGER);
    state
}
