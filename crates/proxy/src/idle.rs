//! Idle timeouts without a timer per byte: one timer per session, re-armed lazily. When it
//! fires, the session compares the time since its connections last moved a byte with the
//! timeout and either gives up or sleeps for what remains.

use std::time::Duration;

use tether_core::{ConnId, Cx};

/// Timer key used by the sessions of this crate for their idle check.
pub const KEY_IDLE: u64 = 1;

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
