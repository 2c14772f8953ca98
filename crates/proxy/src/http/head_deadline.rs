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
//! The deadline lives in `Phase::Head`: it starts when a partial head is first seen and ends
//! when the head is parsed (complete or rejected).

use std::time::Instant;

use tether_core::{Cx, TimerId};

use super::{HttpSession, Phase};
use crate::idle::{KEY_LINGER, LINGER};

/// The timer key of the deadline (next to `idle.rs`'s keys and `drain.rs`'s).
pub(super) const KEY_HEADER: u64 = 5;

/// A head under way: when it must be complete, and the timer that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeadDeadline {
    at: Instant,
    timer: TimerId,
}

/// A partial head is buffered: start its deadline, unless it already runs.
pub(super) fn start(s: &mut HttpSession, cx: &mut Cx<'_>) {
    if s.phase != Phase::Head(None) || s.buf.is_empty() {
        return;
    }
    let timeout = s.spec.header_timeout;
    let timer = cx.set_timer(timeout, KEY_HEADER);
    s.phase = Phase::Head(Some(HeadDeadline {
        at: cx.now() + timeout,
        timer,
    }));
}

/// The head is parsed (or the connection gives up on it): its deadline no longer applies.
pub(super) fn stop(s: &mut HttpSession, cx: &mut Cx<'_>) {
    if let Phase::Head(Some(d)) = s.phase {
        cx.cancel_timer(d.timer);
        s.phase = Phase::Head(None);
    }
}

/// On `KEY_HEADER`: past the deadline with the head still partial, answer `408` and close.
pub(super) fn expired(s: &mut HttpSession, cx: &mut Cx<'_>) {
    let Phase::Head(Some(d)) = s.phase else {
        return; // the head was complete meanwhile
    };
    let now = cx.now();
    if now < d.at {
        let timer = cx.set_timer(d.at - now, KEY_HEADER);
        s.phase = Phase::Head(Some(HeadDeadline { timer, ..d }));
        return;
    }
    // What came in the meantime may finish the head: serve it rather than refuse it.
    s.next_request(cx);
    if !matches!(s.phase, Phase::Head(Some(_))) {
        return;
    }
    log::info!(
        "http {}: request head not complete after {} ms ({} bytes): 408",
        s.spec.listen,
        s.spec.header_timeout.as_millis(),
        s.buf.len()
    );
    s.phase = Phase::Head(None);
    s.stats.conn_timeout();
    s.fail(cx, 408);
    cx.set_timer(LINGER, KEY_LINGER);
}
