//! The work handed from the callers' threads to the Redis writer thread: writes (put,
//! refresh, touch, remove) and asks (a lookup, a rate-limit check) that need an answer.
//!
//! Both lists are bounded. A write to a key that already has a write queued is merged
//! into it (a refresh after a put keeps the put, with the later expiry; a remove replaces
//! what was queued), so an outage costs one slot per key, not one per request. A write
//! past the bound drops the oldest write and counts it; an ask past the bound is handed
//! back to the caller, who answers it `Down`. Callbacks never run under the queue's lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::lease::Ticket;
use crate::limit::{LimitAnswer, RateRule};
use crate::reply::Reply;
use crate::Lookup;

/// A change to send to Redis. Expiry is absolute, so a write that waited in the queue
/// (during an outage) is sent with the life it has left, not the one it started with.
pub(crate) enum Write {
    /// `SET key value EX` and an announcement.
    Put {
        key: String,
        value: String,
        expires: Instant,
    },
    /// `SET key value EX`, not announced: a touch of an entry cached here, written whole
    /// so that a Redis that lost it (restarted empty) gets it back.
    Refresh {
        key: String,
        value: String,
        expires: Instant,
    },
    /// `EXPIRE key`: a touch of an entry not cached here.
    Touch { key: String, expires: Instant },
    /// `DEL key` and an announcement.
    Del { key: String },
}

impl Write {
    pub(crate) fn key(&self) -> &str {
        match self {
            Write::Put { key, .. }
            | Write::Refresh { key, .. }
            | Write::Touch { key, .. }
            | Write::Del { key } => key,
        }
    }

    /// Folds `newer` (same key) into this queued write; hands it back if it cannot be.
    fn merge(&mut self, newer: Write) -> Option<Write> {
        match newer {
            Write::Put { .. } | Write::Del { .. } => *self = newer,
            Write::Refresh {
                key,
                value: v,
                expires: e,
            } => match self {
                Write::Put { value, expires, .. } | Write::Refresh { value, expires, .. } => {
                    (*value, *expires) = (v, e);
                }
                Write::Touch { .. } => {
                    *self = Write::Refresh {
                        key,
                        value: v,
                        expires: e,
                    }
                }
                Write::Del { .. } => {
                    return Some(Write::Refresh {
                        key,
                        value: v,
                        expires: e,
                    })
                }
            },
            Write::Touch { expires: e, .. } => match self {
                Write::Put { expires, .. }
                | Write::Refresh { expires, .. }
                | Write::Touch { expires, .. } => *expires = e,
                Write::Del { .. } => {} // EXPIRE of a deleted key: a no-op
            },
        }
        None
    }
}

/// A question for Redis, and who to tell.
pub(crate) enum Ask {
    /// `GET` + `PTTL`: a lookup (or a fetch) that missed the local cache.
    Get { key: String, reply: Reply<Lookup> },
    /// The rate-limit script for `key` (the full Redis key).
    Limit {
        key: String,
        rule: RateRule,
        reply: Reply<LimitAnswer>,
        /// A leased check (`lease.rs`): the lease script, for this many tokens.
        lease: Option<Ticket>,
    },
}

impl Ask {
    /// Answers `Down` (Redis could not be asked).
    pub(crate) fn down(self) {
        match self {
            Ask::Get { reply, .. } => reply.answer(Lookup::Down),
            Ask::Limit { reply, .. } => reply.answer(LimitAnswer::Down),
        }
    }
}

/// What the writer takes in one go.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) writes: Vec<Write>,
    pub(crate) asks: Vec<Ask>,
}

/// Sequence number of the first write in a fresh queue; requeued writes count down.
const FIRST: u64 = u64::MAX / 2;

struct Lists {
    writes: VecDeque<Write>,
    /// Sequence number of `writes[0]`.
    head: u64,
    /// Sequence number of the newest queued write of each key.
    last: HashMap<String, u64>,
    asks: VecDeque<Ask>,
    stopped: bool,
}

impl Lists {
    /// Forgets `w`, numbered `seq`, in `last` if it was its key's newest write.
    fn forget(&mut self, w: &Write, seq: u64) {
        if self.last.get(w.key()) == Some(&seq) {
            self.last.remove(w.key());
        }
    }

    fn pop_front(&mut self) -> Option<Write> {
        let w = self.writes.pop_front()?;
        self.forget(&w, self.head);
        self.head += 1;
        Some(w)
    }
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
            lists: Mutex::new(Lists {
                writes: VecDeque::new(),
                head: FIRST,
                last: HashMap::new(),
                asks: VecDeque::new(),
                stopped: false,
            }),
            ready: Condvar::new(),
            max: max.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a write: merged into its key's queued write if there is one, else at the
    /// end, dropping the oldest write if the queue is full.
    pub(crate) fn push_write(&self, w: Write) {
        let mut lists = self.lock();
        let mut w = Some(w);
        if let Some(seq) = w.as_ref().and_then(|w| lists.last.get(w.key()).copied()) {
            let i = seq.wrapping_sub(lists.head) as usize;
            if let (Some(queued), Some(newer)) = (lists.writes.get_mut(i), w.take()) {
                w = queued.merge(newer);
            }
        }
        if let Some(w) = w {
            if lists.writes.len() >= self.max && lists.pop_front().is_some() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            let seq = lists.head + lists.writes.len() as u64;
            lists.last.insert(w.key().to_string(), seq);
            lists.writes.push_back(w);
        }
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
            lists.head -= 1;
            let head = lists.head;
            lists.last.entry(w.key().to_string()).or_insert(head);
            lists.writes.push_front(w);
        }
    }

    /// Queues an ask; hands it back if the queue is full or stopped.
    pub(crate) fn push_ask(&self, a: Ask) -> Result<(), Ask> {
        let mut lists = self.lock();
        if lists.stopped || lists.asks.len() >= self.max {
            return Err(a);
        }
        lists.asks.push_back(a);
        drop(lists);
        self.ready.notify_one();
        Ok(())
    }

    /// Takes up to `max` writes and, once no write is left behind, up to `max` asks,
    /// without waiting. Sent writes first, a lookup sees every write queued before it.
    pub(crate) fn take(&self, max: usize) -> Batch {
        let mut lists = self.lock();
        let mut writes = Vec::new();
        while writes.len() < max {
            match lists.pop_front() {
                Some(w) => writes.push(w),
                None => break,
            }
        }
        let a = if lists.writes.is_empty() {
            lists.asks.len().min(max)
        } else {
            0
        };
        Batch {
            writes,
            asks: lists.asks.drain(..a).collect(),
        }
    }

    /// Takes every queued ask (to answer `Down` while Redis is down).
    pub(crate) fn take_asks(&self) -> Vec<Ask> {
        self.lock().asks.drain(..).collect()
    }

    /// Waits until there is work, the queue is stopped, or `timeout` passed.
    pub(crate) fn wait(&self, timeout: Duration) {
        self.wait_until(timeout, |lists| {
            !lists.writes.is_empty() || !lists.asks.is_empty()
        });
    }

    /// Waits until an ask is queued, the queue is stopped, or `timeout` passed; queued
    /// writes do not end the wait (they wait for a connection).
    pub(crate) fn wait_asks(&self, timeout: Duration) {
        self.wait_until(timeout, |lists| !lists.asks.is_empty());
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

    /// Refuses new asks and wakes the writer so it can finish.
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

    fn refresh(key: &str, value: &str, secs: u64) -> Write {
        Write::Refresh {
            key: key.into(),
            value: value.into(),
            expires: Instant::now() + Duration::from_secs(secs),
        }
    }

    fn keys(ws: &[Write]) -> Vec<&str> {
        ws.iter().map(Write::key).collect()
    }

    fn ask(key: &str) -> Ask {
        let timer = crate::reply::Timer::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        Ask::Get {
            key: key.into(),
            reply: Reply::new(Box::new(|_| {}), &timer, deadline),
        }
    }

    fn ask_key(a: &Ask) -> &str {
        match a {
            Ask::Get { key, .. } | Ask::Limit { key, .. } => key,
        }
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
    fn writes_to_a_queued_key_are_merged() {
        let q = Queue::new(4);
        let put = Write::Put {
            key: "a".into(),
            value: "s1".into(),
            expires: Instant::now() + Duration::from_secs(1),
        };
        q.push_write(put);
        q.push_write(refresh("b", "s2", 1));
        for _ in 0..100 {
            q.push_write(refresh("a", "s1", 50));
            q.push_write(refresh("b", "s2", 50));
        }
        q.push_write(refresh("c", "s3", 1));
        assert_eq!((q.queued_writes(), q.dropped()), (3, 0), "one slot per key");
        q.push_write(del("b"));
        let taken = q.take(10).writes;
        assert_eq!(keys(&taken), ["a", "b", "c"]);
        let later = Instant::now() + Duration::from_secs(40);
        assert!(
            matches!(&taken[0], Write::Put { expires, .. } if *expires > later),
            "the put stays a put (announced) with the refreshed expiry"
        );
        assert!(matches!(taken[1], Write::Del { .. }), "the remove wins");

        // Once taken, a key's next write is queued anew; requeued writes stay ahead.
        q.push_write(refresh("a", "s1", 60));
        q.requeue_writes(taken);
        assert_eq!(keys(&q.take(10).writes), ["a", "b", "c", "a"]);
        assert_eq!(q.queued_writes(), 0);
        q.push_write(refresh("a", "s1", 60));
        q.push_write(refresh("a", "s1", 70));
        assert_eq!(
            q.queued_writes(),
            1,
            "the map is in step after requeue and take"
        );
    }

    #[test]
    fn asks_wait_for_the_writes_queued_before_them() {
        let q = Queue::new(10);
        for k in ["a", "b", "c"] {
            q.push_write(del(k));
        }
        assert!(q.push_ask(ask("a")).is_ok());
        let first = q.take(2);
        assert_eq!((first.writes.len(), first.asks.len()), (2, 0));
        let second = q.take(2);
        assert_eq!((second.writes.len(), second.asks.len()), (1, 1));
    }

    #[test]
    fn asks_are_handed_back_when_full_or_stopped() {
        let q = Queue::new(1);
        assert!(q.push_ask(ask("a")).is_ok());
        let refused = q.push_ask(ask("b")).err();
        assert_eq!(refused.as_ref().map(ask_key), Some("b"));
        assert_eq!(q.take_asks().len(), 1);
        q.stop();
        assert!(q.push_ask(ask("c")).is_err());
    }
}
