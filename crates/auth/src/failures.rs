//! Recent failed verifications per user name, so that a user under a password-guessing
//! attack does not delay everybody else's logins: once a name has `threshold` failures
//! within `window`, its checks go to the back lane of the queue (`pool.rs`), behind the
//! other users' and with at most half the queue's room.
//!
//! Names are counted whether the file knows them or not (an unknown name queues exactly
//! like a known one: no user enumeration by waiting time), and are stored only as a keyed
//! hash (`RandomState`) of `(file load number, name)`, so memory stays bounded whatever the
//! names sent. At most `max_entries` names are tracked; past it, expired ones are dropped
//! and then new names go untracked until room frees up.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Failures {
    threshold: u32,
    window: Duration,
    max_entries: usize,
    keys: RandomState,
    /// Name key → (failures in the window, when the window started).
    counts: Mutex<HashMap<u64, (u32, Instant)>>,
}

impl Failures {
    /// `threshold` 0 turns the back lane off.
    pub(crate) fn new(threshold: u32, window: Duration, max_entries: usize) -> Failures {
        Failures {
            threshold,
            window,
            max_entries,
            keys: RandomState::new(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn key(&self, file_id: u64, user: &str) -> u64 {
        self.keys.hash_one((file_id, user))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (u32, Instant)>> {
        // Plain counters, consistent at every point: keep using them after a panic.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether checks for this name go to the back lane.
    pub(crate) fn is_suspect(&self, key: u64, now: Instant) -> bool {
        if self.threshold == 0 {
            return false;
        }
        self.lock()
            .get(&key)
            .is_some_and(|&(n, since)| n >= self.threshold && now < since + self.window)
    }

    /// Counts one failure of this name.
    pub(crate) fn failed(&self, key: u64, now: Instant) {
        if self.threshold == 0 {
            return;
        }
        let mut counts = self.lock();
        if counts.len() >= self.max_entries && !counts.contains_key(&key) {
            let window = self.window;
            counts.retain(|_, (_, since)| now < *since + window);
            if counts.len() >= self.max_entries {
                return;
            }
        }
        let entry = counts.entry(key).or_insert((0, now));
        if now >= entry.1 + self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// A success clears the name's failures.
    pub(crate) fn succeeded(&self, key: u64) {
        if self.threshold != 0 {
            self.lock().remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspect_after_threshold_within_window() {
        let f = Failures::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let alice = f.key(1, "alice");
        for i in 0..3 {
            assert!(!f.is_suspect(alice, t0), "after {i} failures");
            f.failed(alice, t0 + Duration::from_secs(i));
        }
        assert!(f.is_suspect(alice, t0 + Duration::from_secs(3)));
        assert!(!f.is_suspect(f.key(1, "bob"), t0));
        assert!(!f.is_suspect(f.key(2, "alice"), t0), "another file");
        // The window ends; a new failure starts a new count.
        assert!(!f.is_suspect(alice, t0 + Duration::from_secs(60)));
        f.failed(alice, t0 + Duration::from_secs(61));
        assert!(!f.is_suspect(alice, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn success_clears_and_zero_turns_off() {
        let f = Failures::new(1, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let k = f.key(1, "alice");
        f.failed(k, t0);
        assert!(f.is_suspect(k, t0));
        f.succeeded(k);
        assert!(!f.is_suspect(k, t0));
        let off = Failures::new(0, Duration::from_secs(60), 100);
        off.failed(k, t0);
        assert!(!off.is_suspect(k, t0));
    }

    #[test]
    fn bounded() {
        let f = Failures::new(1, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let (a, b, c) = (f.key(1, "a"), f.key(1, "b"), f.key(1, "c"));
        f.failed(a, t0);
        f.failed(b, t0);
        f.failed(c, t0); // full: untracked
        assert!(f.is_suspect(a, t0) && f.is_suspect(b, t0));
        assert!(!f.is_suspect(c, t0));
        // Once a and b expired, c gets room.
        let later = t0 + Duration::from_secs(61);
        f.failed(c, later);
        assert!(f.is_suspect(c, later));
        assert_eq!(f.lock().len(), 1);
    }
}
