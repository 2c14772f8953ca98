//! The work handed from the callers' threads to the Redis writer thread: writes (put,
//! touch, remove) and fetches (a local miss to look up in Redis).
//!
//! Both lists are bounded. A write past the bound drops the oldest write and counts it;
//! a fetch past the bound is handed back to the caller, who answers it `None`. Callbacks
//! never run under the queue's lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Done;

/// A change to send to Redis. Expiry is absolute, so a write that waited in the queue
/// (during an outage) is sent with the life it has left, not the one it started with.
pub(crate) enum Write {
    Put {
        key: String,
        value: String,
        expires: Instant,
    },
    Touch {
        key: String,
        expires: Instant,
    },
    Del {
        key: String,
    },
}

/// A key to look up in Redis, and who to tell.
pub(crate) struct Fetch {
    pub(crate) key: String,
    pub(crate) done: Done,
}

/// What the writer takes in one go.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) writes: Vec<Write>,
    pub(crate) fetches: Vec<Fetch>,
}

#[derive(Default)]
struct Lists {
    writes: VecDeque<Write>,
    fetches: VecDeque<Fetch>,
    stopped: bool,
}

/// The bounded queue between callers and the writer thread.
pub(crate) struct Queue {
    lists: Mutex<Lists>,
    ready: Condvar,
    max: usize,
    dropped: AtomicU64,
}

impl Queue {
    pub(crate) fn new(max: usize) -> Self {
        Queue {
            lists: Mutex::new(Lists::default()),
            ready: Condvar::new(),
            max: max.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a write, dropping the oldest one if the queue is full.
    pub(crate) fn push_write(&self, w: Write) {
        let mut lists = self.lock();
        if lists.writes.len() >= self.max {
            lists.writes.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        lists.writes.push_back(w);
        drop(lists);
        self.ready.notify_one();
    }

    /// Puts writes that could not be sent back at the head of the queue, in their order,
    /// keeping the bound (the oldest go first).
    pub(crate) fn requeue_writes(&self, writes: Vec<Write>) {
        let mut lists = self.lock();
        for w in writes.into_iter().rev() {
            if lists.writes.len() >= self.max {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue; // `w` is older than everything queued: it is the one to drop
            }
            lists.writes.push_front(w);
        }
    }

    /// Queues a fetch; hands it back if the queue is full or stopped.
    pub(crate) fn push_fetch(&self, f: Fetch) -> Result<(), Fetch> {
        let mut lists = self.lock();
        if lists.stopped || lists.fetches.len() >= self.max {
            return Err(f);
        }
        lists.fetches.push_back(f);
        drop(lists);
        self.ready.notify_one();
        Ok(())
    }

    /// Takes up to `max` writes and, once no write is left behind, up to `max` fetches,
    /// without waiting. Sent writes first, a fetch sees every write queued before it.
    pub(crate) fn take(&self, max: usize) -> Batch {
        let mut lists = self.lock();
        let w = lists.writes.len().min(max);
        let f = if w == lists.writes.len() {
            lists.fetches.len().min(max)
        } else {
            0
        };
        Batch {
            writes: lists.writes.drain(..w).collect(),
            fetches: lists.fetches.drain(..f).collect(),
        }
    }

    /// Takes every queued fetch (to answer `None` while Redis is down).
    pub(crate) fn take_fetches(&self) -> Vec<Fetch> {
        self.lock().fetches.drain(..).collect()
    }

    /// Waits until there is work, the queue is stopped, or `timeout` passed.
    pub(crate) fn wait(&self, timeout: Duration) {
        self.wait_until(timeout, |lists| {
            !lists.writes.is_empty() || !lists.fetches.is_empty()
        });
    }

    /// Waits until a fetch is queued, the queue is stopped, or `timeout` passed; queued
    /// writes do not end the wait (they wait for a connection).
    pub(crate) fn wait_fetches(&self, timeout: Duration) {
        self.wait_until(timeout, |lists| !lists.fetches.is_empty());
    }

    /// Waits until the queue is stopped or `timeout` passed, whatever is queued.
    pub(crate) fn sleep(&self, timeout: Duration) {
        self.wait_until(timeout, |_| false);
    }

    fn wait_until(&self, timeout: Duration, ready: impl Fn(&Lists) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut lists = self.lock();
        while !lists.stopped && !ready(&lists) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            lists = self
                .ready
                .wait_timeout(lists, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Refuses new fetches and wakes the writer so it can finish.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.ready.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    pub(crate) fn queued_writes(&self) -> usize {
        self.lock().writes.len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn del(key: &str) -> Write {
        Write::Del { key: key.into() }
    }

    fn keys(ws: &[Write]) -> Vec<&str> {
        ws.iter()
            .map(|w| match w {
                Write::Put { key, .. } | Write::Touch { key, .. } | Write::Del { key } => {
                    key.as_str()
                }
            })
            .collect()
    }

    #[test]
    fn full_queue_drops_the_oldest_write() {
        let q = Queue::new(3);
        for k in ["a", "b", "c", "d", "e"] {
            q.push_write(del(k));
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(keys(&q.take(10).writes), ["c", "d", "e"]);
    }

    #[test]
    fn requeued_writes_go_first_and_keep_the_bound() {
        let q = Queue::new(3);
        q.push_write(del("c"));
        q.push_write(del("d"));
        q.requeue_writes(vec![del("a"), del("b")]);
        assert_eq!(q.dropped(), 1, "a, the oldest, is dropped");
        assert_eq!(keys(&q.take(10).writes), ["b", "c", "d"]);
    }

    #[test]
    fn fetches_wait_for_the_writes_queued_before_them() {
        let q = Queue::new(10);
        for k in ["a", "b", "c"] {
            q.push_write(del(k));
        }
        let fetch = Fetch {
            key: "a".into(),
            done: Box::new(|_| {}),
        };
        assert!(q.push_fetch(fetch).is_ok());
        let first = q.take(2);
        assert_eq!((first.writes.len(), first.fetches.len()), (2, 0));
        let second = q.take(2);
        assert_eq!((second.writes.len(), second.fetches.len()), (1, 1));
    }

    #[test]
    fn fetches_are_handed_back_when_full_or_stopped() {
        let q = Queue::new(1);
        let f = |k: &str| Fetch {
            key: k.into(),
            done: Box::new(|_| {}),
        };
        assert!(q.push_fetch(f("a")).is_ok());
        assert_eq!(q.push_fetch(f("b")).err().map(|f| f.key), Some("b".into()));
        assert_eq!(q.take_fetches().len(), 1);
        q.stop();
        assert!(q.push_fetch(f("c")).is_err());
    }
}
