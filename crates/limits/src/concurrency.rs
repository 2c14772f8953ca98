//! `ConcurrencyLimiter`: one `limit_conn` limit, at most `max_per_key` requests in flight
//! per key, each held by a [`Permit`] that gives its place back when dropped.
//!
//! Keys are spread over 16 shards by a randomly seeded SipHash; each shard is a `Mutex`
//! over a `hashbrown::HashTable` of `(key, holders)` entries, locked for one lookup. A key
//! exists only while someone holds it: the last `Permit` dropped removes it, so the table
//! is bounded by the requests in flight and needs no eviction. A permit remembers its
//! entry by hash and a per-shard serial number, not by key, so acquiring a key that
//! exists allocates nothing but the permit's `Arc` count.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::padded::Padded;

const SHARDS: usize = 16;

/// A snapshot of one `limit_conn` limit's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Permits given.
    pub acquired: u64,
    /// Acquisitions refused because the key had `max_per_key` holders.
    pub rejected: u64,
    /// Keys held now (each by at least one permit).
    pub keys: u64,
    /// Permits alive now.
    pub held: u64,
}

struct Entry {
    key: Box<[u8]>,
    serial: u64,
    holders: u32,
}

struct Shard {
    table: HashTable<Entry>,
    next_serial: u64,
    stats: ConnStats,
}

/// One `limit_conn` limit. See the module documentation; `Send + Sync`, use it through an
/// `Arc`.
pub struct ConcurrencyLimiter {
    max_per_key: u32,
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: RandomState,
}

/// One request's place under a [`ConcurrencyLimiter`]; dropping it gives the place back.
/// `Send`: it may be dropped on any thread.
#[must_use = "the place is given back as soon as the permit is dropped"]
pub struct Permit {
    limiter: Arc<ConcurrencyLimiter>,
    hash: u64,
    serial: u64,
}

impl ConcurrencyLimiter {
    /// A limit of `max_per_key` requests in flight per key (0 refuses every request).
    pub fn new(max_per_key: u32) -> Arc<Self> {
        let shards = (0..SHARDS)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    table: HashTable::new(),
                    next_serial: 0,
                    stats: ConnStats::default(),
                }))
            })
            .collect();
        Arc::new(ConcurrencyLimiter {
            max_per_key,
            shards,
            hasher: RandomState::new(),
        })
    }

    /// The limit per key.
    pub fn max_per_key(&self) -> u32 {
        self.max_per_key
    }

    /// A place for one more request of `key`, or `None` (counted) when `key` already has
    /// `max_per_key` holders.
    pub fn acquire(self: &Arc<Self>, key: &[u8]) -> Option<Permit> {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard(hash);
        let shard = &mut *guard;
        let serial = match shard.table.find_mut(hash, |e| *e.key == *key) {
            Some(entry) if entry.holders >= self.max_per_key => {
                shard.stats.rejected += 1;
                return None;
            }
            Some(entry) => {
                entry.holders += 1;
                entry.serial
            }
            None if self.max_per_key == 0 => {
                shard.stats.rejected += 1;
                return None;
            }
            None => {
                let serial = shard.next_serial;
                shard.next_serial += 1;
                let entry = Entry {
                    key: key.into(),
                    serial,
                    holders: 1,
                };
                let hasher = &self.hasher;
                shard
                    .table
                    .insert_unique(hash, entry, |e| hasher.hash_one(&*e.key));
                shard.stats.keys += 1;
                serial
            }
        };
        shard.stats.acquired += 1;
        shard.stats.held += 1;
        drop(guard);
        Some(Permit {
            limiter: Arc::clone(self),
            hash,
            serial,
        })
    }

    /// Requests of `key` in flight now.
    pub fn holders(&self, key: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        shard
            .table
            .find(hash, |e| *e.key == *key)
            .map_or(0, |e| e.holders)
    }

    /// The counters, summed over the shards.
    pub fn stats(&self) -> ConnStats {
        let mut total = ConnStats::default();
        for shard in self.shards.iter() {
            let s = lock(shard).stats;
            total.acquired += s.acquired;
            total.rejected += s.rejected;
            total.keys += s.keys;
            total.held += s.held;
        }
        total
    }

    fn release(&self, hash: u64, serial: u64) {
        let mut guard = self.shard(hash);
        let shard = &mut *guard;
        if let Ok(mut entry) = shard.table.find_entry(hash, |e| e.serial == serial) {
            let e = entry.get_mut();
            e.holders -= 1;
            shard.stats.held -= 1;
            if e.holders == 0 {
                entry.remove();
                shard.stats.keys -= 1;
            }
        }
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[((hash >> 32) as usize) % self.shards.len()])
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(self.hash, self.serial);
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("serial", &self.serial)
            .finish()
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
