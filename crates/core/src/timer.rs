//! Timers in the loop: a binary heap of deadlines. Cancelled timers are dropped from the
//! table and skipped when their deadline comes up, so cancelling costs O(1).

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
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, Owner>,
    next: u64,
}

impl Timers {
    pub fn add(&mut self, at: Instant, owner: Owner) -> u64 {
        self.next += 1;
        let id = self.next;
        self.heap.push(Reverse((at, id)));
        self.live.insert(id, owner);
        id
    }

    pub fn cancel(&mut self, id: u64) {
        self.live.remove(&id);
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

    /// The next timer due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Owner> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(owner) = self.live.remove(&id) {
                return Some(owner);
            }
        }
        None
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live.len()
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
            .map(|o| match o {
                Owner::Listener(i) => i,
                Owner::Session { .. } => 0,
            })
            .collect();
        assert_eq!(fired, vec![2, 3]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.timeout(later), None);
    }
}
