//! `RateLimiter`: one `limit_req` limit, its keys' GCRA state in memory, shared by the
//! worker threads.
//!
//! Keys are spread over shards by a randomly seeded SipHash (keys come from clients, so
//! the hash must not be predictable); each shard is a `Mutex` over an [`Lru`] holding at
//! most `max_keys / shards` keys and the shard's counters, locked for one lookup and a
//! few additions. When a new key arrives, up to two of the shard's least recently seen
//! keys are dropped if they are idle (their state equals a fresh key's, so nothing is
//! lost: counted as `expired`); if the shard is still full, the least recently seen key is
//! evicted (counted as `evicted`). Least recently seen is exact within a shard; across
//! shards it is approximate (a shard fills when it holds `max_keys / shards` keys).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::gcra::Gcra;
use crate::lru::Lru;
use crate::padded::Padded;
use crate::{RateRule, Verdict};

/// Keys a limiter holds by default (nginx's zone is sized in bytes; this is in keys).
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Shards when the bound allows it.
const SHARDS: usize = 16;
/// Idle keys dropped, at most, when a new key arrives.
const EXPIRE_PER_INSERT: usize = 2;

/// A snapshot of one limiter's counters. `allowed + delayed + rejected` is the number of
/// checks; `allowed + delayed` passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateStats {
    /// Checks answered [`Verdict::Allow`].
    pub allowed: u64,
    /// Checks answered [`Verdict::Delay`].
    pub delayed: u64,
    /// Checks answered [`Verdict::Reject`].
    pub rejected: u64,
    /// Keys dropped while they still held state, to make room for a new key.
    pub evicted: u64,
    /// Idle keys dropped (their state was a fresh key's).
    pub expired: u64,
    /// Keys held now.
    pub keys: u64,
}

struct Shard {
    lru: Lru<u64>,
    stats: RateStats,
}

/// One `limit_req` limit. See the module documentation; `Send + Sync`, share it through
/// an `Arc`.
pub struct RateLimiter {
    gcra: Gcra,
    rule: RateRule,
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: RandomState,
    shard_cap: usize,
    epoch: Instant,
}

impl RateLimiter {
    /// A limiter for `rule` holding at most `max_keys` keys (at least 1), in up to 16
    /// shards.
    pub fn new(rule: RateRule, max_keys: usize) -> Self {
        RateLimiter::with_shards(rule, max_keys, SHARDS)
    }

    /// A limiter holding at most `max_keys` keys (at least 1) in `shards` shards (at
    /// least 1, at most `max_keys`). With one shard, eviction follows the least recently
    /// seen key exactly.
    pub fn with_shards(rule: RateRule, max_keys: usize, shards: usize) -> Self {
        let max_keys = max_keys.clamp(1, 1 << 30);
        let count = shards.clamp(1, max_keys);
        let shards = (0..count)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    lru: Lru::new(),
                    stats: RateStats::default(),
                }))
            })
            .collect();
        RateLimiter {
            gcra: Gcra::new(&rule),
            rule,
            shards,
            hasher: RandomState::new(),
            shard_cap: max_keys / count,
            epoch: Instant::now(),
        }
    }

    /// The rule this limiter applies.
    pub fn rule(&self) -> &RateRule {
        &self.rule
    }

    /// The verdict for one request of `key` arriving at `now`, counted. Never blocks
    /// beyond a short shard lock; allocates only when `key` is new.
    ///
    /// `now` earlier than the limiter's creation counts as its creation.
    pub fn check(&self, key: &[u8], now: Instant) -> Verdict {
        let now = self.nanos(now);
        let hash = self.hasher.hash_one(key);
        let mut shard = self.shard(hash);
        let shard = &mut *shard;
        let verdict = match shard.lru.get_mut(hash, key) {
            Some(tat) => {
                let (verdict, next) = self.gcra.decide(*tat, now);
                if let Some(next) = next {
                    *tat = next;
                }
                verdict
            }
            None => {
                let (verdict, next) = self.gcra.decide(now, now);
                self.make_room(shard, now);
                shard.lru.insert(hash, key, next.unwrap_or(now));
                verdict
            }
        };
        match verdict {
            Verdict::Allow => shard.stats.allowed += 1,
            Verdict::Delay(_) => shard.stats.delayed += 1,
            Verdict::Reject { .. } => shard.stats.rejected += 1,
        }
        verdict
    }

    /// The counters, summed over the shards (each shard read under its lock).
    pub fn stats(&self) -> RateStats {
        let mut total = RateStats::default();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            let s = &shard.stats;
            total.allowed += s.allowed;
            total.delayed += s.delayed;
            total.rejected += s.rejected;
            total.evicted += s.evicted;
            total.expired += s.expired;
            total.keys += shard.lru.len() as u64;
        }
        total
    }

    /// Drops idle keys from the old end, then evicts if the shard is still full.
    fn make_room(&self, shard: &mut Shard, now: u64) {
        for _ in 0..EXPIRE_PER_INSERT {
            match shard.lru.oldest() {
                Some(&tat) if tat <= now => {
                    shard.lru.pop_oldest();
                    shard.stats.expired += 1;
                }
                _ => break,
            }
        }
        while shard.lru.len() >= self.shard_cap && shard.lru.pop_oldest().is_some() {
            shard.stats.evicted += 1;
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The high bits pick the shard; the table uses the low ones.
        let i = ((hash >> 32) as usize) % self.shards.len();
        lock(&self.shards[i])
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
