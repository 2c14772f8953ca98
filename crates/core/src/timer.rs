//! Timers in the loop: a binary heap of deadlines over a slab of armed timers.
//!
//! A timer id is its slab index plus a sequence number, so looking one up, cancelling it or
//! moving its deadline later is O(1) with no hashing. The heap holds `(deadline, id)`
//! entries and is cleaned lazily: an entry whose timer was cancelled is skipped when it
//! comes up, and an entry whose timer was postponed ([`Timers::postpone`]) is pushed again
//! at the new deadline. When skipped entries outnumber live ones the heap is rebuilt, so a
//! stream of short sessions with long timeouts cannot grow it without bound.
//!
//! Postponing is what keeps a recurring deadline cheap: a pooled upstream connection parked
//! once per request moves its one idle deadline instead of arming a new timer each time.
//!
//! Every idle connection holds a timer, so an armed one is kept small: deadlines are
//! nanoseconds since the `Timers` were made (a `u64`, not a 16-byte `Instant`) and owners
//! name slab slots with `u32`s. An armed timer is 40 bytes and its heap entry 16.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

/// Who a timer belongs to.
///
/// Slab indices are `u32` here (a slab of 2^32 entries would not fit in memory); the
/// generation tells a stale owner from the slot's present one.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner {
    /// A session (slab index, generation) and the key it chose.
    Session { idx: u32, gen: u64, key: u64 },
    /// A listener whose accept should be retried (after EMFILE and the like).
    Listener(u32),
    /// A parked upstream connection's idle deadline.
    Pooled { idx: u32, gen: u64 },
    /// An accepted connection's TLS handshake deadline.
    Handshake { idx: u32, gen: u64 },
}

struct Armed {
    /// The deadline now, in ticks (may be later than the heap entry that will bring it up).
    at: u64,
    owner: Owner,
    /// The sequence number in the timer's id (a stale id does not match a reused slot).
    seq: u32,
}

pub(crate) struct Timers {
    /// `(deadline in ticks, id)`.
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    armed: Slab<Armed>,
    seq: u32,
    /// Tick 0: deadlines are nanoseconds since this.
    base: Instant,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            armed: Slab::new(),
            seq: 0,
            base: Instant::now(),
        }
    }
}

/// Skipped entries tolerated in the heap before it is rebuilt (if also above the live count).
const COMPACT_AFTER: usize = 4096;

fn id_of(idx: usize, seq: u32) -> u64 {
    (u64::from(seq) << 32) | idx as u64
}

fn split(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

/// What the heap entry `(at, id)` stands for now.
enum Entry {
    /// Cancelled or fired: drop the entry.
    Stale,
    /// Postponed: the timer is due later than this entry says.
    Moved(u64),
    /// Due at the entry's time.
    Due,
}

impl Timers {
    /// `at` in ticks: nanoseconds since `base` (a time before it is tick 0).
    fn tick(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.base).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Arm a timer; the id is never 0.
    pub fn add(&mut self, at: Instant, owner: Owner) -> u64 {
        let at = self.tick(at);
        // Sequence 0 is skipped so that no id is 0 (callers may use 0 for "none").
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let idx = self.armed.insert(Armed { at, owner, seq });
        let id = id_of(idx, seq);
        self.heap.push(Reverse((at, id)));
        id
    }

    fn get(&self, id: u64) -> Option<&Armed> {
        let (idx, seq) = split(id);
        self.armed.get(idx).filter(|a| a.seq == seq)
    }

    /// Whether `id` is armed (neither fired nor cancelled).
    #[cfg(test)]
    pub fn is_live(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    pub fn cancel(&mut self, id: u64) {
        let (idx, seq) = split(id);
        if self.armed.get(idx).is_some_and(|a| a.seq == seq) {
            self.armed.remove(idx);
            self.compact();
        }
    }

    /// Move a live timer's deadline to `at`. Later is O(1) (the heap entry is pushed again
    /// when it comes up); earlier adds a heap entry. False if `id` is not live.
    pub fn postpone(&mut self, id: u64, at: Instant) -> bool {
        let at = self.tick(at);
        let (idx, seq) = split(id);
        let Some(a) = self.armed.get_mut(idx).filter(|a| a.seq == seq) else {
            return false;
        };
        let earlier = at < a.at;
        a.at = at;
        if earlier {
            self.heap.push(Reverse((at, id)));
        }
        true
    }

    fn entry(&self, at: u64, id: u64) -> Entry {
        match self.get(id) {
            None => Entry::Stale,
            Some(a) if a.at > at => Entry::Moved(a.at),
            Some(_) => Entry::Due,
        }
    }

    /// Rebuild the heap from the armed timers when it holds mostly skipped entries.
    fn compact(&mut self) {
        let dead = self.heap.len().saturating_sub(self.armed.len());
        if dead > COMPACT_AFTER && dead > self.armed.len() {
            self.heap = self
                .armed
                .iter()
                .map(|(idx, a)| Reverse((a.at, id_of(idx, a.seq))))
                .collect();
        }
    }

    /// How long the poll may sleep: until the earliest live deadline.
    pub fn timeout(&mut self, now: Instant) -> Option<Duration> {
        let now = self.tick(now);
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            match self.entry(at, id) {
                Entry::Due => return Some(Duration::from_nanos(at.saturating_sub(now))),
                Entry::Moved(later) => {
                    self.heap.pop();
                    self.heap.push(Reverse((later, id)));
                }
                Entry::Stale => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    /// The next timer due at `now`, if any, with its id.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, Owner)> {
        let now = self.tick(now);
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            match self.entry(at, id) {
                Entry::Due => {
                    let owner = self.armed.remove(split(id).0).owner;
                    return Some((id, owner));
                }
                Entry::Moved(later) => self.heap.push(Reverse((later, id))),
                Entry::Stale => {}
            }
        }
        None
    }

    /// Timers armed and neither fired nor cancelled.
    pub fn live(&self) -> usize {
        self.armed.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    #[cfg(test)]
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(o: Owner) -> usize {
        match o {
            Owner::Listener(i) => i as usize,
            _ => usize::MAX,
        }
    }

    /// Each session holds one (its idle check), an idle keep-alive connection's too.
    #[test]
    fn an_armed_timer_stays_small() {
        let armed = std::mem::size_of::<Armed>();
        assert!(armed <= 40, "an armed timer is {armed} bytes");
        assert!(std::mem::size_of::<Reverse<(u64, u64)>>() <= 16);
    }

    #[test]
    fn fires_in_order_and_skips_cancelled() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.add(now + Duration::from_millis(20), Owner::Listener(1));
        t.add(now + Duration::from_millis(10), Owner::Listener(2));
        t.add(now + Duration::from_millis(30), Owner::Listener(3));
        t.cancel(a);
        assert!(!t.is_live(a));
        assert_eq!(t.timeout(now), Some(Duration::from_millis(10)));
        let later = now + Duration::from_millis(40);
        let fired: Vec<usize> = std::iter::from_fn(|| t.pop_due(later))
            .map(|(_, o)| listener(o))
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

    #[test]
    fn a_stale_id_names_no_timer() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.add(now, Owner::Listener(1));
        t.cancel(a);
        // The slot is reused by the next timer; the old id must not reach it.
        let b = t.add(now, Owner::Listener(2));
        assert_eq!(split(a).0, split(b).0);
        assert!(!t.is_live(a) && t.is_live(b));
        t.cancel(a);
        assert!(!t.postpone(a, now + Duration::from_secs(1)));
        assert_eq!(
            t.pop_due(now).map(|(id, o)| (id, listener(o))),
            Some((b, 2))
        );
        assert_ne!(a, 0);
        assert_ne!(b, 0);
    }

    #[test]
    fn postponed_timers_fire_at_their_new_deadline() {
        let mut t = Timers::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        let a = t.add(now + ms(10), Owner::Listener(1));
        let b = t.add(now + ms(20), Owner::Listener(2));
        // Later: lazily. Many times over, as a pooled connection parked per request does.
        let last = now + ms(31);
        for i in (0..1000).rev() {
            assert!(t.postpone(a, last - Duration::from_micros(i)));
        }
        assert_eq!(t.heap_len(), 2, "postponing later adds no heap entry");
        assert_eq!(t.timeout(now), Some(ms(20)));
        assert_eq!(t.pop_due(now + ms(25)).map(|(_, o)| listener(o)), Some(2));
        assert!(t.pop_due(now + ms(30)).is_none(), "a is due at 31 ms now");
        assert!(t.pop_due(last - Duration::from_micros(1)).is_none());
        assert_eq!(t.timeout(now), Some(ms(31)));
        // Earlier: a new heap entry; the old one is skipped.
        let c = t.add(now + ms(100), Owner::Listener(3));
        assert!(t.postpone(c, now + ms(5)));
        let fired: Vec<(u64, usize)> = std::iter::from_fn(|| t.pop_due(now + ms(200)))
            .map(|(id, o)| (id, listener(o)))
            .collect();
        assert_eq!(fired, vec![(c, 3), (a, 1)]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.timeout(now), None);
        assert!(!t.is_live(b));
    }
}
