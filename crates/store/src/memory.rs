//! The in-memory affinity store, shared by the worker threads behind an `Arc`.
//!
//! Entries live in a fixed number of shards, each a `Mutex<HashMap>` held only for one map
//! operation, so workers rarely wait on each other. Expiry is lazy (an expired entry is
//! removed when read) plus amortised: every [`SWEEP_EVERY`] puts, one shard is swept in
//! turn; [`MemoryStore::sweep`] sweeps them all. The entry count is bounded: a put into a
//! full shard first drops the shard's expired entries, then, if it is still full, evicts
//! the entries closest to expiry (a sixteenth of the shard at once, so the cost of a full
//! store is amortised too).
//!
//! The `*_at` methods take the current time so tests (and callers with a cached clock)
//! can drive expiry without sleeping.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{Done, Listener, Stats, Store};

/// Shards when the bound allows it.
const SHARDS: usize = 16;
/// Puts between two single-shard sweeps.
const SWEEP_EVERY: usize = 256;

struct Entry {
    value: String,
    expires: Instant,
    /// Write-behind bookkeeping of the Redis store's local cache (`redis_store.rs`): the
    /// expiry Redis was last given (or reported) for this value, and the writer
    /// connection's epoch then. [`NEVER`] for an entry Redis was never told of (and in the
    /// plain memory store, which has no Redis).
    written: Instant,
    epoch: u64,
}

/// The epoch of an entry no Redis write covers.
pub(crate) const NEVER: u64 = u64::MAX;

/// What [`MemoryStore::refresh_behind_at`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// No live entry.
    Gone,
    /// Extended locally; Redis's copy is recent enough, nothing to write.
    Local,
    /// Extended locally; write the entry (`value`) to Redis, it expires at `expires`.
    Write { value: String, expires: Instant },
}

type Shard = HashMap<String, Entry>;

/// Sharded, bounded, expiring `key → server id` map. See the module documentation.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    shard_cap: usize,
    puts: AtomicUsize,
    evicted: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(crate::Options::default().max_entries)
    }
}

impl MemoryStore {
    /// A store holding at most `max_entries` entries (at least 1), in up to 16 shards.
    pub fn new(max_entries: usize) -> Self {
        MemoryStore::with_shards(max_entries, SHARDS)
    }

    /// A store holding at most `max_entries` entries (at least 1) in `shards` shards (at
    /// least 1, at most `max_entries`). Each shard holds `max_entries / shards` entries, so
    /// eviction starts when one shard is full, a little before the whole store is.
    pub fn with_shards(max_entries: usize, shards: usize) -> Self {
        let max_entries = max_entries.max(1);
        let count = shards.clamp(1, max_entries);
        let shard_cap = max_entries / count; // count <= max_entries, so >= 1
        let shards = (0..count).map(|_| Mutex::new(HashMap::new())).collect();
        MemoryStore {
            shards,
            hasher: RandomState::new(),
            shard_cap,
            puts: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key` if it is still alive at `now`; an expired entry is removed.
    pub fn get_at(&self, key: &str, now: Instant) -> Option<String> {
        let mut shard = self.shard(key);
        match shard.get(key) {
            Some(e) if e.expires > now => Some(e.value.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `key → value` until `now + ttl`, evicting if the store is full.
    pub fn put_at(&self, key: &str, value: &str, ttl: Duration, now: Instant) {
        self.put_synced_at(key, value, ttl, now, NEVER);
    }

    /// [`MemoryStore::put_at`], noting that Redis holds (or was sent) the entry with this
    /// expiry on the writer connection of `epoch` ([`NEVER`]: not known to Redis).
    pub(crate) fn put_synced_at(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        now: Instant,
        epoch: u64,
    ) {
        let expires = expiry(now, ttl);
        {
            let mut shard = self.shard(key);
            if let Some(e) = shard.get_mut(key) {
                value.clone_into(&mut e.value);
                e.expires = expires;
                e.written = expires;
                e.epoch = epoch;
            } else {
                if shard.len() >= self.shard_cap {
                    self.make_room(&mut shard, now);
                }
                let entry = Entry {
                    value: value.to_string(),
                    expires,
                    written: expires,
                    epoch,
                };
                shard.insert(key.to_string(), entry);
            }
        }
        let n = self.puts.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let i = (n / SWEEP_EVERY) % self.shards.len();
            sweep_shard(&mut lock(&self.shards[i]), now);
        }
    }

    /// Stores `key → value` unless a live entry is there already (a change that arrived
    /// while the value was being looked up is newer); returns the value now stored.
    /// The entry is noted as held by Redis on the writer connection of `epoch`.
    pub(crate) fn fill_at(
        &self,
        key: &str,
        value: String,
        ttl: Duration,
        now: Instant,
        epoch: u64,
    ) -> String {
        let mut shard = self.shard(key);
        if let Some(e) = shard.get(key).filter(|e| e.expires > now) {
            return e.value.clone();
        }
        if shard.len() >= self.shard_cap && !shard.contains_key(key) {
            self.make_room(&mut shard, now);
        }
        let expires = expiry(now, ttl);
        let entry = Entry {
            value: value.clone(),
            expires,
            written: expires,
            epoch,
        };
        shard.insert(key.to_string(), entry);
        value
    }

    /// Moves the expiry of a live `key` to `now + ttl`. Returns whether the key was alive.
    pub fn touch_at(&self, key: &str, ttl: Duration, now: Instant) -> bool {
        self.refresh_at(key, ttl, now).is_some()
    }

    /// Moves the expiry of a live `key` to `now + ttl` and returns its value.
    pub(crate) fn refresh_at(&self, key: &str, ttl: Duration, now: Instant) -> Option<String> {
        let mut shard = self.shard(key);
        match shard.get_mut(key) {
            Some(e) if e.expires > now => {
                e.expires = expiry(now, ttl);
                Some(e.value.clone())
            }
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Moves the expiry of a live `key` to `now + ttl` and says whether Redis must be
    /// written (write-behind for the Redis store's cache): only when Redis's copy was not
    /// written on the writer connection of `epoch` (a new connection: Redis may have
    /// restarted empty or failed over) or would expire more than `slack` before the local
    /// one (or outlive it by more). So a session used on every request costs one Redis write per `slack`, not one
    /// per request, and Redis's copy lives at least `ttl - slack` past the last use.
    pub(crate) fn refresh_behind_at(
        &self,
        key: &str,
        ttl: Duration,
        now: Instant,
        epoch: u64,
        slack: Duration,
    ) -> Refreshed {
        let mut shard = self.shard(key);
        match shard.get_mut(key) {
            Some(e) if e.expires > now => {
                let expires = expiry(now, ttl);
                e.expires = expires;
                let apart = expires
                    .saturating_duration_since(e.written)
                    .max(e.written.saturating_duration_since(expires));
                if e.epoch == epoch && e.epoch != NEVER && apart <= slack {
                    return Refreshed::Local;
                }
                e.written = expires;
                e.epoch = epoch;
                Refreshed::Write {
                    value: e.value.clone(),
                    expires,
                }
            }
            Some(_) => {
                shard.remove(key);
                Refreshed::Gone
            }
            None => Refreshed::Gone,
        }
    }

    /// Forgets `key`.
    pub fn remove_key(&self, key: &str) {
        self.shard(key).remove(key);
    }

    /// Live entries evicted so far because the store was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // The modulo keeps the index below shards.len(), so indexing cannot fail.
        let i = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        lock(&self.shards[i])
    }

    /// Frees at least one slot in a full shard: expired entries first, then the ones that
    /// expire soonest.
    fn make_room(&self, shard: &mut Shard, now: Instant) {
        if sweep_shard(shard, now) > 0 && shard.len() < self.shard_cap {
            return;
        }
        // Puts never let a shard grow past its cap, so one batch always makes room.
        let k = (self.shard_cap / 16).max(1).min(shard.len());
        if k == 0 {
            return;
        }
        let mut by_expiry: Vec<(Instant, &String)> =
            shard.iter().map(|(key, e)| (e.expires, key)).collect();
        by_expiry.select_nth_unstable_by_key(k - 1, |(t, _)| *t);
        let victims: Vec<String> = by_expiry[..k]
            .iter()
            .map(|(_, key)| (*key).clone())
            .collect();
        for key in &victims {
            shard.remove(key);
        }
        self.evicted
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
    }
}

/// Longest life an entry gets: `Instant + Duration` panics on overflow, so a huge TTL
/// (say `Duration::MAX` from a config) is cut to this.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `now + ttl`, with `ttl` capped at [`MAX_TTL`].
pub(crate) fn expiry(now: Instant, ttl: Duration) -> Instant {
    now + ttl.min(MAX_TTL)
}

/// Removes the shard's entries expired by `now`; returns how many.
fn sweep_shard(shard: &mut Shard, now: Instant) -> usize {
    let before = shard.len();
    shard.retain(|_, e| e.expires > now);
    before - shard.len()
}

/// Locks a shard. A panic while holding the lock cannot leave a map half-updated in a way
/// that matters here (each operation is one map call), so a poisoned lock is used as is.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Option<String> {
        self.get_at(key, Instant::now())
    }

    fn put(&self, key: &str, value: &str, ttl: Duration) {
        self.put_at(key, value, ttl, Instant::now());
    }

    fn touch(&self, key: &str, ttl: Duration) {
        self.touch_at(key, ttl, Instant::now());
    }

    fn remove(&self, key: &str) {
        self.remove_key(key);
    }

    fn fetch(&self, key: &str, done: Done) {
        done(self.get(key));
    }

    /// There are no other instances to hear from: `f` is dropped.
    fn subscribe(&self, f: Listener) {
        drop(f);
    }

    fn sweep(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|s| sweep_shard(&mut lock(s), now))
            .sum()
    }

    fn stats(&self) -> Stats {
        Stats {
            entries: self.len(),
            evicted: self.evicted(),
            ..Stats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_does_not_overwrite_a_newer_live_entry() {
        let store = MemoryStore::with_shards(2, 1);
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        assert_eq!(store.fill_at("k", "old".into(), min, t0, 1), "old");
        store.put_at("k", "new", min, t0);
        assert_eq!(store.fill_at("k", "old".into(), min, t0, 1), "new");
        let later = t0 + 2 * min;
        assert_eq!(store.fill_at("k", "again".into(), min, later, 1), "again");
        store.put_at("j", "s1", min, later);
        store.fill_at("i", "s2".into(), min, later, 1);
        assert_eq!(store.len(), 2, "a fill keeps the bound");
    }

    #[test]
    fn refresh_behind_writes_once_per_slack_and_on_a_new_epoch() {
        let store = MemoryStore::with_shards(8, 1);
        let t0 = Instant::now();
        let (ttl, slack) = (Duration::from_secs(100), Duration::from_secs(10));
        let s = Duration::from_secs(1);
        let write = |at: Instant| Refreshed::Write {
            value: "s1".into(),
            expires: at + ttl,
        };
        assert_eq!(
            store.refresh_behind_at("k", ttl, t0, 1, slack),
            Refreshed::Gone
        );
        store.put_at("k", "s1", ttl, t0);
        assert_eq!(
            store.refresh_behind_at("k", ttl, t0 + s, 1, slack),
            write(t0 + s),
            "a plain put was never written to Redis"
        );
        for i in 2..=11 {
            assert_eq!(
                store.refresh_behind_at("k", ttl, t0 + i * s, 1, slack),
                Refreshed::Local,
                "{i} s: Redis's copy is at most 10 s behind"
            );
        }
        assert_eq!(
            store.refresh_behind_at("k", ttl, t0 + 12 * s, 1, slack),
            write(t0 + 12 * s)
        );
        assert_eq!(
            store.refresh_behind_at("k", ttl, t0 + 13 * s, 2, slack),
            write(t0 + 13 * s),
            "a new writer connection: written again"
        );
        assert_eq!(
            store.refresh_behind_at("k", ttl / 2, t0 + 14 * s, 2, slack),
            Refreshed::Write {
                value: "s1".into(),
                expires: t0 + 14 * s + ttl / 2
            },
            "a much shorter life is written too"
        );
        store.put_synced_at("j", "s2", ttl, t0, 2);
        assert_eq!(
            store.refresh_behind_at("j", ttl, t0 + 5 * s, 2, slack),
            Refreshed::Local,
            "a put sent on this connection"
        );
        assert_eq!(store.get_at("j", t0 + ttl + 4 * s).as_deref(), Some("s2"));
        assert_eq!(
            store.refresh_behind_at("j", ttl, t0 + 2 * ttl, 2, slack),
            Refreshed::Gone,
            "expired"
        );
    }
}
