//! Timers in the loop: a binary heap of deadlines. Cancelled timers are dropped from the
//! table and skipped when their deadline comes up, so cancelling costs O(1); when cancelled
//! entries outnumber live ones the heap is rebuilt, so a stream of short sessions with long
//! timeouts cannot grow it without bound.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Who a timer belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner {
    /// A session (slab index, generation) and the key it chose.
    Session { idx: usize, gen: u64, key: u64 },
    /// A listener whose accept should be retried (after EMFILE and the like).
    Listener(usize),
    /// A parked upstream connection's idle deadline.
    Pooled { idx: usize, gen: u64 },
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, (Instant, Owner)>,
    next: u64,
}

/// Cancelled entries tolerated in the heap before it is rebuilt (if also above the live count).
const COMPACT_AFTER: usize = 4096;

impl Timers {
    pub fn add(&mut self, at: Instant, owner: Owner) -> u64 {
        self.next += 1;
        let id = self.next;
        self.heap.push(Reverse((at, id)));
        self.live.insert(id, (at, owner));
        id
    }

    pub fn cancel(&mut self, id: u64) {
        if self.live.remove(&id).is_some() {
            let dead = self.heap.len() - self.live.len();
            if dead > COMPACT_AFTER && dead > self.live.len() {
                self.heap = self
                    .live
                    .iter()
                    .map(|(&id, &(at, _))| Reverse((at, id)))
                    .collect();
            }
        }
    }

    /// How long the poll may sleep: until the earliest live deadline.
    pub fn timeout(&mut self, now: Instant) -> Option<Duration> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.live.contains_key(&id) {
                return Some(at.saturating_duration_since(now));
            }
            self.heap.pop();
        }
        None
    }

    /// The next timer due at `now`, if any, with its id.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, Owner)> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some((_, owner)) = self.live.remove(&id) {
                return Some((id, owner));
            }
        }
        None
    }

    /// Timers armed and neither fired nor cancelled.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    #[cfg(test)]
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_skips_cancelled() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.add(now + Duration::from_millis(20), Owner::Listener(1));
        t.add(now + Duration::from_millis(10), Owner::Listener(2));
        t.add(now + Duration::from_millis(30), Owner::Listener(3));
        t.cancel(a);
        assert_eq!(t.timeout(now), Some(Duration::from_millis(10)));
        let later = now + Duration::from_millis(40);
        let fired: Vec<usize> = std::iter::from_fn(|| t.pop_due(later))
            .map(|(_, o)| match o {
                Owner::Listener(i) => i,
                _ => 0,
            })
            .collect();
        assert_eq!(fired, vec![2, 3]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.timeout(later), None);
    }

    #[test]
    fn cancelled_entries_do_not_pile_up() {
        let mut t = Timers::default();
        let now = Instant::now();
        for _ in 0..100_000 {
            let id = t.add(now + Duration::from_secs(600), Owner::Listener(0));
            t.cancel(id);
        }
        assert_eq!(t.len(), 0);
        assert!(
            t.heap_len() <= 2 * COMPACT_AFTER,
            "heap holds {}",
            t.heap_len()
        );
    }
}
