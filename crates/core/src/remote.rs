//! Waking a session from another thread: a helper thread (a Redis lookup, a poller, a
//! mailer) holds a [`Remote`] and calls [`Remote::wake`] with a key; the loop wakes up and
//! calls the session's `on_wake(key)` on its own thread. A remote of a session that has
//! ended does nothing.

use std::sync::{Arc, Mutex};

use mio::Waker;

/// Wake-ups queued for the loop: (session slot, generation, key).
pub(crate) type WakeQueue = Arc<Mutex<Vec<(usize, u64, u64)>>>;

/// A handle that wakes one session from any thread.
#[derive(Clone)]
pub struct Remote {
    pub(crate) sid: usize,
    pub(crate) gen: u64,
    pub(crate) queue: WakeQueue,
    pub(crate) waker: Arc<Waker>,
}

impl Remote {
    /// Ask the loop to call the session's `on_wake(key)`. Several wakes before the loop runs
    /// are each delivered, in order.
    pub fn wake(&self, key: u64) {
        match self.queue.lock() {
            Ok(mut q) => q.push((self.sid, self.gen, key)),
            Err(_) => return,
        }
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote(session {}#{})", self.sid, self.gen)
    }
}
