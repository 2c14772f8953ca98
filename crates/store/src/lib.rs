//! tether-store: the affinity store. It maps a key (a session cookie value, a client
//! address, ...) to a server id, each entry with a time to live.
//!
//! One trait, [`Store`], and two stores behind it:
//!
//! - [`MemoryStore`] (`memory.rs`, the default): sharded `Mutex<HashMap>`s shared by the
//!   worker threads, expiry on read plus an amortised sweep, a bound on the entry count.
//! - [`RedisStore`] (`redis_store.rs`): the same in-memory map as a local cache, written
//!   through to Redis by a helper thread (`writer.rs`) and kept in step with the other
//!   proxy instances by a second helper thread subscribed to a pub/sub channel
//!   (`subscriber.rs`, payload format in `message.rs`). Outages are tracked in `link.rs`.
//!
//! No method of [`Store`] touches the network on the caller's thread: the event loop may
//! call any of them. Redis answers that are not in the local cache come back through
//! [`Store::fetch`]'s callback, which the proxy turns into a `mio::Waker` wake-up.
//!
//! Besides affinity, a shared store keeps rate-limit counters ([`Store::limit`], GCRA in
//! one Lua script, `limit.rs`) so several proxy instances enforce one limit together; for
//! fast rules without delays each instance leases tokens in batches (`lease.rs`).
//!
//! Build a store from the configuration string with [`from_url`] or [`open`].

mod backend;
mod lease;
mod limit;
mod link;
mod memory;
mod message;
mod pipeline;
mod queue;
mod redis_store;
mod reply;
mod subscriber;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use backend::{Access, Backend};
pub use lease::{lease_size, LEASE_HORIZON, LEASE_LIFE, LEASE_MAX};
pub use limit::{LimitAnswer, RateRule};
pub use memory::MemoryStore;
pub use redis_store::{RedisStore, ASK_TIMEOUT};

/// Called with a key whose entry another proxy instance changed (see [`Store::subscribe`]).
pub type Listener = Box<dyn Fn(&str) + Send + Sync>;

/// Called once with the answer to [`Store::fetch`].
pub type Done = Box<dyn FnOnce(Option<String>) + Send>;

/// Called once with the answer to [`Store::lookup`].
pub type LookupDone = Box<dyn FnOnce(Lookup) + Send>;

/// Called once with the answer to [`Store::limit`].
pub type LimitDone = Box<dyn FnOnce(LimitAnswer) + Send>;

/// The answer to [`Store::lookup`]: unlike [`Store::fetch`]'s `Option`, it tells a key
/// nobody stored from a store that could not be asked (so `on_store_error = "closed"` can
/// refuse the request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The server id stored for the key.
    Found(String),
    /// The store answered: no entry.
    Missing,
    /// The store is down, did not answer within its bound, or its queue is full.
    Down,
}

/// An affinity store: `key → server id`, each entry with a time to live.
///
/// Every method returns without waiting on the network.
pub trait Store: Send + Sync {
    /// The server id stored for `key`, from memory only. An expired entry is `None`.
    fn get(&self, key: &str) -> Option<String>;

    /// Stores `key → value` for `ttl`, replacing any earlier value (a re-pin).
    fn put(&self, key: &str, value: &str, ttl: Duration);

    /// Extends the life of `key` to `ttl` from now, if the entry exists.
    fn touch(&self, key: &str, ttl: Duration);

    /// Forgets `key`.
    fn remove(&self, key: &str);

    /// Like [`Store::get`], but on a local miss a shared store asks its backend on a helper
    /// thread and calls `done` from that thread (the writer with the answer, or the timer
    /// thread with `None` when Redis did not answer within [`ASK_TIMEOUT`]). When the
    /// answer is known at once (a local hit, the memory store, Redis unreachable, a full
    /// queue) `done` runs before `fetch` returns, on the caller's thread. `done` is called
    /// exactly once in every case.
    fn fetch(&self, key: &str, done: Done);

    /// Like [`Store::fetch`], but the answer says whether the store could be asked:
    /// [`Lookup::Down`] when it is down, did not answer within its bound (500 ms for
    /// Redis), or its queue is full. Same threading as `fetch`: `done` runs exactly once,
    /// maybe before `lookup` returns. The default (the memory store) never answers `Down`.
    fn lookup(&self, key: &str, done: LookupDone) {
        self.fetch(
            key,
            Box::new(move |answer| {
                done(match answer {
                    Some(v) => Lookup::Found(v),
                    None => Lookup::Missing,
                })
            }),
        );
    }

    /// Counts one request against the shared rate limit `rule` for `key` (nginx
    /// `limit_req` semantics, see [`RateRule`]) and calls `done` once with the decision,
    /// on a helper thread or, when the answer is known at once, before `limit` returns.
    /// The default (the memory store) answers [`LimitAnswer::Down`] at once: the proxy
    /// keeps its own local limiter for a store that is not shared.
    fn limit(&self, key: &str, rule: &RateRule, done: LimitDone) {
        let _ = (key, rule);
        done(LimitAnswer::Down);
    }

    /// Like [`Store::limit`], but only when the answer is known here and now (a token this
    /// instance leased from the shared store, or a refusal it was given until a slot
    /// frees): `None` means "call `limit`". Never waits, never calls back. The default
    /// (the memory store) is always `None`.
    fn limit_now(&self, key: &str, rule: &RateRule) -> Option<LimitAnswer> {
        let _ = (key, rule);
        None
    }

    /// Registers `f`, called with the key of every entry that another proxy instance put or
    /// removed, after the local view has been updated. It runs on a helper thread and must
    /// be quick (queue the key and wake the loop). Changes made through this store do not
    /// call it, and the memory store, which has no other instances, never does.
    fn subscribe(&self, f: Listener);

    /// Drops the entries that expired by `now`; returns how many. Optional: expired entries
    /// are never returned, and each store also sweeps on its own, a little at a time.
    fn sweep(&self, now: Instant) -> usize;

    /// Counters for logs and status pages.
    fn stats(&self) -> Stats;
}

/// A snapshot of a store's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries held in memory (expired ones not yet swept included).
    pub entries: usize,
    /// Live entries evicted because the store was full.
    pub evicted: u64,
    /// `None` for the memory store; for Redis, whether both helper connections are up.
    pub connected: Option<bool>,
    /// `None` for the memory store; for Redis, whether it is usable: the writer's
    /// connection is up and answers its health pings, and no outage is on.
    pub up: Option<bool>,
    /// `None` for the memory store, and for Redis before its first answer; else the time
    /// since Redis last answered anything (a reply or a pub/sub message).
    pub since_last_answer: Option<Duration>,
    /// Writes waiting for the Redis writer thread.
    pub queued_writes: usize,
    /// Writes dropped (oldest first) because the queue was full during an outage. Writes
    /// to a key that already has one queued are merged into it, not queued again.
    pub dropped_writes: u64,
    /// Writes Redis accepted.
    pub sent_writes: u64,
    /// Outages seen (one "redis unreachable" warning each).
    pub outages: u64,
    /// Recoveries seen (one "redis back" line each).
    pub recoveries: u64,
}

/// Settings shared by both stores; the Redis ones are ignored by the memory store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most entries held in memory (the local cache, for Redis). At least 1.
    pub max_entries: usize,
    /// Prefix of every Redis key and of the pub/sub channel (`<prefix>affinity`).
    pub prefix: String,
    /// Most writes queued for Redis; past it the oldest is dropped. At least 1.
    pub max_queue: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_entries: 100_000,
            prefix: "tether:".to_string(),
            max_queue: 10_000,
        }
    }
}

/// [`open`] with the default [`Options`].
pub fn from_url(url: &str) -> Result<Arc<dyn Store>, String> {
    open(url, &Options::default())
}

/// Builds the store a configuration names: `""` or `"memory"` for the in-memory store,
/// `redis://host:port/db` (`rediss://` for TLS) for Redis; [`open_backend`] for Sentinel
/// and Cluster. Anything else is an error that says what is accepted.
/// Opening a Redis store does not connect on this thread: an unreachable server is
/// reported (and retried) by the helper threads, not here.
pub fn open(url: &str, options: &Options) -> Result<Arc<dyn Store>, String> {
    let url = url.trim();
    if url.is_empty() || url == "memory" {
        return Ok(Arc::new(MemoryStore::new(options.max_entries)));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Arc::new(RedisStore::open(url, options)?));
    }
    Err(format!(
        "unknown affinity store {url:?}: expected \"memory\" (or empty) or a redis://host:port/db (rediss:// for TLS) URL"
    ))
}

/// Builds a Redis store for `backend` (one server, a Sentinel group's master, or a
/// cluster; see [`Backend`]). Like [`open`], it checks the description here and connects
/// on the helper threads.
pub fn open_backend(backend: &Backend, options: &Options) -> Result<Arc<dyn Store>, String> {
    Ok(Arc::new(RedisStore::open_backend(backend, options)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_names() {
        for url in ["", "memory", " memory "] {
            let store = from_url(url).expect("memory store");
            let stats = store.stats();
            assert_eq!((stats.connected, stats.up), (None, None), "{url:?}");
        }
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        for url in ["mem", "http://127.0.0.1:6379", "127.0.0.1:6379"] {
            let err = from_url(url).err().expect("an error");
            assert!(err.contains("expected \"memory\""), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn malformed_redis_urls_are_errors() {
        for url in [
            "redis://127.0.0.1:notaport/0",
            "redis://127.0.0.1:6379/notadb",
        ] {
            let err = from_url(url).err().expect("an error");
            assert!(err.contains("bad redis URL"), "{url}: {err}");
        }
    }
}
