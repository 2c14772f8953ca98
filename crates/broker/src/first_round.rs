//! The first round's gate: until the broker's first polling round has an answer (or a
//! timeout) from every server, "no server" is not an answer yet — the Webots session server
//! polls once before it listens, so its first feed frame and its first `/session` already
//! know the loads. This file owns the "settled" flag and the one-shot wakes of requests
//! held until it is set (`Broker::hold`); `broker.rs` settles it when the last server's
//! first result is recorded, when a round ends, or when the broker stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A one-shot wake for a held request (called once, from the poller thread, or from the
/// thread that stops the broker).
pub(crate) type Wake = Box<dyn FnOnce() + Send>;

/// The flag and the held requests' wakes.
pub(crate) struct FirstRound {
    settled: AtomicBool,
    /// The wakes of requests held so far; emptied (and never filled again) on settling.
    held: Mutex<Vec<Wake>>,
}

fn lock(m: &Mutex<Vec<Wake>>) -> MutexGuard<'_, Vec<Wake>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FirstRound {
    /// Settled from the start when there is nothing to wait for (no server, or every
    /// server already has a result).
    pub(crate) fn new(settled: bool) -> FirstRound {
        FirstRound {
            settled: AtomicBool::new(settled),
            held: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }

    /// Keep `wake` if the round has not settled (true: the caller waits for it); else
    /// drop it (false: answer now). Checked under the same lock `settle` takes, so a wake
    /// is never kept after the last call.
    pub(crate) fn hold(&self, wake: Wake) -> bool {
        let mut held = lock(&self.held);
        if self.is_settled() {
            return false;
        }
        held.push(wake);
        true
    }

    /// Mark the first round settled and call every held wake (outside the lock). True
    /// for the call that settled it, false if it was already settled.
    pub(crate) fn settle(&self) -> bool {
        let wakes = {
            let mut held = lock(&self.held);
            if self.settled.swap(true, Ordering::SeqCst) {
                return false;
            }
            std::mem::take(&mut *held)
        };
        for w in wakes {
            w();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn wakes_once_and_holds_nothing_after() {
        let gate = FirstRound::new(false);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let c = Arc::clone(&calls);
            assert!(gate.hold(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            })));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert!(gate.settle());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(!gate.settle(), "settles once");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "each wake runs once");
        let c = Arc::clone(&calls);
        assert!(!gate.hold(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "a late wake is dropped, not run"
        );
        assert!(FirstRound::new(true).is_settled());
    }
}
