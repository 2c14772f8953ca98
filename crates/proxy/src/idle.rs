//! Idle timeouts without a timer per byte: one timer per session, re-armed lazily. When it
//! fires, the session compares the time since its connections last moved a byte with the
//! timeout and either gives up or sleeps for what remains.

use std::time::Duration;

use tether_core::{ConnId, Cx};

/// Timer keys shared by the sessions of this crate: the idle check, an upstream connect,
/// and the end of a lingering close.
pub const KEY_IDLE: u64 = 1;
pub const KEY_CONNECT: u64 = 2;
pub const KEY_LINGER: u64 = 3;

/// How long a closing connection may keep its side open (what it sends is discarded).
pub const LINGER: Duration = Duration::from_secs(5);

/// Arm the idle check.
pub fn arm(cx: &mut Cx<'_>, timeout: Duration) {
    cx.set_timer(timeout, KEY_IDLE);
}

/// On `KEY_IDLE`: true if every connection in `conns` has been silent for `timeout`;
/// otherwise the check is re-armed for the time that remains.
pub fn expired(cx: &mut Cx<'_>, conns: &[ConnId], timeout: Duration) -> bool {
    let idle = conns.iter().map(|&c| cx.idle(c)).min().unwrap_or(timeout);
    if idle >= timeout {
        return true;
    }
    cx.set_timer(timeout - idle, KEY_IDLE);
    false
}
