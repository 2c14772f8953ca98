//! The Redis-backed affinity store: a local [`MemoryStore`] that answers every read,
//! written through to Redis and kept in step with the other proxy instances.
//!
//! - A put, touch or remove updates the local cache at once and queues the Redis command
//!   (`queue.rs`) for the writer thread (`writer.rs`): `SET <prefix><key> <value> EX <ttl>`
//!   and a `PUBLISH <prefix>affinity` announcement for a put; for a touch the whole entry
//!   again (`SET ... EX`, from the local cache, so a Redis restarted empty is refilled by
//!   use; `EXPIRE` only for a key not cached here); `DEL` and an announcement for a remove.
//! - The subscriber thread (`subscriber.rs`) listens on `<prefix>affinity` with its own
//!   connection and applies the other instances' announcements to the local cache.
//! - `get` answers from the local cache only and never starts a Redis lookup: a miss for
//!   a key nobody has seen would otherwise cost a round trip per request. The caller that
//!   wants Redis consulted on a miss uses `fetch`, which queues a `GET` + `PTTL` for the
//!   writer thread, fills the cache with the answer and calls back from that thread.
//!   `lookup` is the same with a three-way answer (found, missing, down).
//! - `limit` queues a rate-limit check (`limit.rs`) for the writer thread; for a rule
//!   without delays it leases tokens in batches and answers from them (`lease.rs`), and
//!   `limit_now` answers from a lease without a callback.
//!
//! A lookup or a limit check waits at most [`ASK_TIMEOUT`]: past it the timer thread
//! (`reply.rs`) answers `Down`, even if the writer is stuck on a hung server. While Redis
//! is down the local cache keeps serving, lookups and limit checks answer `Down` at once,
//! and writes wait in the bounded queue (merged per key, oldest dropped first, counted);
//! they are sent, with the life they have left, once Redis answers again. `link.rs` logs
//! each outage once.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::{Backend, Target};
use crate::lease::{lease_size, Leases, Spent, Ticket, LEASE_SCRIPT};
use crate::limit::{LimitAnswer, RateRule, SCRIPT};
use crate::link::{Link, Role};
use crate::memory::{expiry, Refreshed};
use crate::queue::{Ask, Queue, Write};
use crate::reply::{Reply, Timer};
use crate::{Done, LimitDone, Listener, Lookup, LookupDone, MemoryStore, Options, Stats, Store};

/// A touch rewrites the entry in Redis once Redis's copy would expire more than
/// `ttl / REFRESH_SLACK` before the local one (a tenth: with a one-hour life, at most one
/// write per session per six minutes).
pub const REFRESH_SLACK: u32 = 10;

/// The longest a lookup or a rate-limit check waits for Redis before it answers `Down`.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// State shared by the store handle and its two helper threads.
pub(crate) struct Shared {
    pub(crate) cache: MemoryStore,
    pub(crate) queue: Queue,
    pub(crate) link: Link,
    pub(crate) listeners: RwLock<Vec<Listener>>,
    /// Where the data lives: one server, a Sentinel group's master, a cluster.
    pub(crate) target: Target,
    /// Prefix of every key in Redis.
    pub(crate) prefix: String,
    /// The pub/sub channel: `<prefix>affinity`.
    pub(crate) channel: String,
    /// This instance's id in pub/sub payloads.
    pub(crate) instance: String,
    /// Writes Redis accepted.
    pub(crate) sent: AtomicU64,
    /// The rate-limit script (its SHA1 for `EVALSHA`).
    pub(crate) script: redis::Script,
    /// The leased rate-limit script (`lease.rs`).
    pub(crate) lease_script: redis::Script,
    /// Rate-limit tokens leased from Redis, per key.
    pub(crate) leases: Arc<Leases>,
    /// Deadlines of the pending asks.
    pub(crate) timer: Timer,
    /// The writer connection's epoch, counted up on each connect: a cache entry written
    /// on an older connection is written again on its next touch (write-behind, see
    /// [`RedisStore::touch`]).
    pub(crate) epoch: AtomicU64,
}

impl Shared {
    /// The current writer connection's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The Redis key for a store key.
    pub(crate) fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether a server error code means "not now" (retry after a pause, reconnecting):
    /// besides `LOADING` and the like, `READONLY` when the target follows failovers (a
    /// demoted master: the sentinels or the cluster name another).
    pub(crate) fn is_transient(&self, code: &str) -> bool {
        crate::pipeline::is_transient(code)
            || (code == "READONLY" && self.target.follows_failover())
    }
}

/// The Redis-backed store. See the module documentation. Dropping it stops both helper
/// threads (after a best-effort flush of queued writes) and waits for them.
pub struct RedisStore {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl RedisStore {
    /// Parses `url` (`redis://[user:password@]host:port/db`) and starts the helper threads.
    /// Does not wait for a connection: an unreachable server is logged and retried.
    pub fn open(url: &str, options: &Options) -> Result<RedisStore, String> {
        RedisStore::open_backend(&Backend::single(url), options)
    }

    /// Like [`RedisStore::open`] for any [`Backend`]: one server, a Sentinel group's
    /// master, or a cluster. Checks the description (and reads the CA file) here; connects
    /// on the helper threads.
    pub fn open_backend(backend: &Backend, options: &Options) -> Result<RedisStore, String> {
        let (target, label) = Target::new(backend)?;
        let shared = Arc::new(Shared {
            cache: MemoryStore::new(options.max_entries),
            queue: Queue::new(options.max_queue),
            link: Link::new(label),
            listeners: RwLock::new(Vec::new()),
            target,
            prefix: options.prefix.clone(),
            channel: format!("{}affinity", options.prefix),
            instance: new_instance_id(),
            sent: AtomicU64::new(0),
            script: redis::Script::new(SCRIPT),
            lease_script: redis::Script::new(LEASE_SCRIPT),
            leases: Arc::new(Leases::new(options.max_entries)),
            timer: Timer::default(),
            epoch: AtomicU64::new(0),
        });
        let mut store = RedisStore {
            shared,
            threads: Vec::new(),
        };
        store.spawn("tether-redis-writer", crate::writer::run)?;
        store.spawn("tether-redis-sub", crate::subscriber::run)?;
        store.spawn("tether-redis-timer", |shared| shared.timer.run())?;
        log::info!(
            "affinity store: redis at {} (keys {}*, channel {}, instance {})",
            store.shared.link.label(),
            store.shared.prefix,
            store.shared.channel,
            store.shared.instance
        );
        Ok(store)
    }

    /// Queues `ask`, or answers it `Down` at once when Redis is down or the queue full.
    fn ask(&self, ask: Ask) {
        if self.shared.link.is_down(Role::Writer) {
            return ask.down();
        }
        if let Err(refused) = self.shared.queue.push_ask(ask) {
            refused.down();
        }
    }

    /// Asks Redis, in the background, for `extra` more tokens of `key`'s lease.
    fn top_up(&self, key: &str, rule: &RateRule, extra: u32, now: Instant) {
        let ticket = Ticket::new(Arc::clone(&self.shared.leases), key.to_string(), 0, extra);
        self.ask(Ask::Limit {
            key: format!("{}limit:{key}", self.shared.prefix),
            rule: *rule,
            reply: Reply::<LimitAnswer>::new(
                Box::new(|_| {}),
                &self.shared.timer,
                now + ASK_TIMEOUT,
            ),
            lease: Some(ticket),
        });
    }

    /// This instance's id, as sent in pub/sub payloads.
    pub fn instance_id(&self) -> &str {
        &self.shared.instance
    }

    /// The pub/sub channel the store publishes on and listens to.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    fn spawn(&mut self, name: &str, body: fn(Arc<Shared>)) -> Result<(), String> {
        let shared = Arc::clone(&self.shared);
        let handle = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(shared))
            .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
        self.threads.push(handle);
        Ok(())
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.shared.queue.stop();
        self.shared.timer.stop();
        let me = thread::current().id();
        for handle in self.threads.drain(..) {
            // The last handle may be dropped inside a callback on a helper thread; that
            // thread cannot wait for itself, and it exits on its own once stopped.
            if handle.thread().id() != me && handle.join().is_err() {
                log::error!("a redis helper thread panicked");
            }
        }
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> Option<String> {
        self.shared.cache.get(key)
    }

    fn put(&self, key: &str, value: &str, ttl: Duration) {
        let now = Instant::now();
        let epoch = self.shared.epoch();
        self.shared.cache.put_synced_at(key, value, ttl, now, epoch);
        self.shared.queue.push_write(Write::Put {
            key: key.to_string(),
            value: value.to_string(),
            expires: expiry(now, ttl),
        });
    }

    /// Extends the local entry and, written behind, the one in Redis: the whole entry
    /// (`SET ... EX`), so a Redis that lost it gets it back, but only when Redis's copy
    /// would expire more than [`REFRESH_SLACK`] of `ttl` before the local one, or was
    /// written on an earlier writer connection (Redis restarted, a failover). A session
    /// used on every request thus costs no Redis write, no queueing and no wake-up of the
    /// writer on most requests. A key not cached here (it may live in Redis only) gets an
    /// `EXPIRE`. Touches of a key already queued are merged into one command.
    fn touch(&self, key: &str, ttl: Duration) {
        let now = Instant::now();
        let slack = ttl / REFRESH_SLACK;
        let epoch = self.shared.epoch();
        let write = match self
            .shared
            .cache
            .refresh_behind_at(key, ttl, now, epoch, slack)
        {
            Refreshed::Local => return,
            Refreshed::Write { value, expires } => Write::Refresh {
                key: key.to_string(),
                value,
                expires,
            },
            Refreshed::Gone => Write::Touch {
                key: key.to_string(),
                expires: expiry(now, ttl),
            },
        };
        self.shared.queue.push_write(write);
    }

    fn remove(&self, key: &str) {
        self.shared.cache.remove_key(key);
        self.shared.queue.push_write(Write::Del {
            key: key.to_string(),
        });
    }

    /// [`Store::lookup`] with `Down` answered as `None`.
    fn fetch(&self, key: &str, done: Done) {
        self.lookup(
            key,
            Box::new(move |answer| {
                done(match answer {
                    Lookup::Found(v) => Some(v),
                    Lookup::Missing | Lookup::Down => None,
                })
            }),
        );
    }

    fn lookup(&self, key: &str, done: LookupDone) {
        if let Some(value) = self.shared.cache.get(key) {
            return done(Lookup::Found(value));
        }
        if self.shared.link.is_down(Role::Writer) {
            return done(Lookup::Down); // no deadline to arm
        }
        let deadline = Instant::now() + ASK_TIMEOUT;
        self.ask(Ask::Get {
            key: key.to_string(),
            reply: Reply::new(done, &self.shared.timer, deadline),
        });
    }

    /// The counter lives at `<prefix>limit:<key>` in Redis. A rule without delays leases
    /// tokens (`lease.rs`): answered at once while this instance holds some.
    fn limit(&self, key: &str, rule: &RateRule, done: LimitDone) {
        if self.shared.link.is_down(Role::Writer) {
            self.shared.leases.clear();
            return done(LimitAnswer::Down);
        }
        let now = Instant::now();
        let size = lease_size(rule);
        let lease = if size > 1 {
            match self.shared.leases.spend(key, size, true, now) {
                Spent::Answer(answer, top_up) => {
                    if let Some(extra) = top_up {
                        self.top_up(key, rule, extra, now);
                    }
                    return done(answer);
                }
                Spent::Ask(extra) => Some(Ticket::new(
                    Arc::clone(&self.shared.leases),
                    key.to_string(),
                    1,
                    extra,
                )),
                Spent::Nothing => None,
            }
        } else {
            None
        };
        self.ask(Ask::Limit {
            key: format!("{}limit:{key}", self.shared.prefix),
            rule: *rule,
            reply: Reply::<LimitAnswer>::new(done, &self.shared.timer, now + ASK_TIMEOUT),
            lease,
        });
    }

    fn limit_now(&self, key: &str, rule: &RateRule) -> Option<LimitAnswer> {
        let size = lease_size(rule);
        if size <= 1 {
            return None;
        }
        if self.shared.link.is_down(Role::Writer) {
            self.shared.leases.clear();
            return None;
        }
        let now = Instant::now();
        match self.shared.leases.spend(key, size, false, now) {
            Spent::Answer(answer, top_up) => {
                if let Some(extra) = top_up {
                    self.top_up(key, rule, extra, now);
                }
                Some(answer)
            }
            Spent::Ask(_) | Spent::Nothing => None,
        }
    }

    fn subscribe(&self, f: Listener) {
        self.shared
            .listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(f);
    }

    fn sweep(&self, now: Instant) -> usize {
        self.shared.cache.sweep(now)
    }

    fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            entries: s.cache.len(),
            evicted: s.cache.evicted(),
            connected: Some(s.link.is_up()),
            up: Some(s.link.is_usable()),
            since_last_answer: s.link.since_last_answer(),
            queued_writes: s.queue.queued_writes(),
            dropped_writes: s.queue.dropped(),
            sent_writes: s.sent.load(Ordering::Relaxed),
            outages: s.link.outages(),
            recoveries: s.link.recoveries(),
        }
    }
}

/// 16 hex digits, different for each store of each process.
fn new_instance_id() -> String {
    let seed = (std::process::id(), SystemTime::now(), Instant::now());
    format!("{:016x}", RandomState::new().hash_one(format!("{seed:?}")))
}
