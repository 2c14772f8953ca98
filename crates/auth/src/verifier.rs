//! The [`Verifier`]: one per config build, shared (`Arc`) by every worker loop. It answers
//! a request's `Authorization` header against an [`Htpasswd`] without ever hashing on the
//! caller's thread: cheap answers come back from [`Verifier::check`] at once, the rest go
//! to the helper threads (`pool.rs`) and come back through the callback.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{SuccessCache, Tag};
use crate::credentials::parse_basic;
use crate::failures::Failures;
use crate::pool::Pool;
use crate::scheme;
use crate::{AuthResult, Done, Htpasswd};

/// How a [`Verifier`] is sized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Helper threads verifying hashes (at least 1). Default: 1 on a machine with up to
    /// 2 CPUs (the loop keeps a core), else 2.
    pub threads: usize,
    /// Verifications that may wait for a thread; past it `check` answers `Busy` (at least
    /// 1). Default: 64 (about 1.5 s of bcrypt cost 10 on one thread).
    pub queue: usize,
    /// Recent successes remembered; 0 turns the cache off. Default: 10 000.
    pub cache_entries: usize,
    /// How long a success is remembered. Default: 5 minutes.
    pub cache_ttl: Duration,
    /// Failed verifications of one user name within `suspect_window` after which that
    /// name's checks wait in the back lane of the queue, behind other users' logins and
    /// in at most half the queue; 0 turns this off. Default: 3.
    pub suspect_failures: u32,
    /// See `suspect_failures`. Default: 1 minute.
    pub suspect_window: Duration,
}

impl Default for Options {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Options {
            threads: if cpus <= 2 { 1 } else { 2 },
            queue: 64,
            cache_entries: 10_000,
            cache_ttl: Duration::from_secs(300),
            suspect_failures: 3,
            suspect_window: Duration::from_secs(60),
        }
    }
}

/// A snapshot of a verifier's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `check`.
    pub checks: u64,
    /// Answered from the cache of successes.
    pub cache_hits: u64,
    /// Hashes verified on the helper threads (unknown users' dummy ones included).
    pub verifications: u64,
    /// Answered `Ok` (from the cache or after a verification).
    pub accepted: u64,
    /// Answered `Denied` (at once or after a verification).
    pub denied: u64,
    /// Answered `Busy` (the queue, or its back lane, was full).
    pub busy: u64,
    /// Checks for a user name with recent failures: queued in the back lane (or answered
    /// `Busy` when it was full).
    pub back_lane: u64,
    /// Verifications waiting for a thread now.
    pub queued: usize,
    /// Successes in the cache now.
    pub cached: usize,
}

#[derive(Default)]
struct Counters {
    checks: AtomicU64,
    cache_hits: AtomicU64,
    verifications: AtomicU64,
    accepted: AtomicU64,
    denied: AtomicU64,
    busy: AtomicU64,
    back_lane: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One verification for a helper thread.
struct Job {
    file: Arc<Htpasswd>,
    user: String,
    password: Vec<u8>,
    tag: Tag,
    user_key: u64,
    done: Done,
}

/// Most user names whose recent failures are tracked (see `failures.rs`).
const SUSPECTS_TRACKED: usize = 10_000;

/// What the helper threads share with the verifier.
struct Shared {
    cache: SuccessCache,
    failures: Failures,
    counters: Counters,
}

/// Checks `Authorization` headers against htpasswd files: a pool of helper threads with a
/// bounded queue, and a cache of recent successes. `Send + Sync`; share it as
/// `Arc<Verifier>`. Build a new one per config build: the cache starts empty, and the old
/// verifier's threads finish what they were given and exit once it is dropped.
pub struct Verifier {
    shared: Arc<Shared>,
    pool: Pool<Job>,
}

impl Verifier {
    /// Starts the helper threads. Fails only when the OS refuses a thread or randomness.
    pub fn new(options: &Options) -> Result<Verifier, String> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| format!("no randomness for the auth cache key: {e}"))?;
        let shared = Arc::new(Shared {
            cache: SuccessCache::new(&secret, options.cache_entries, options.cache_ttl),
            failures: Failures::new(
                options.suspect_failures,
                options.suspect_window,
                SUSPECTS_TRACKED,
            ),
            counters: Counters::default(),
        });
        let for_threads = Arc::clone(&shared);
        let pool = Pool::start(
            "tether-auth",
            options.threads,
            options.queue,
            Arc::new(move |job| verify(&for_threads, job)),
        )?;
        Ok(Verifier { shared, pool })
    }

    /// Answers whether `authorization` (the raw `Authorization` header value, `None` when
    /// absent) names a user of `file` with the right password.
    ///
    /// Returns `Some(answer)` at once, without calling `done`, when no hashing is needed:
    /// no header, a malformed or non-Basic one (`Denied`), a recent success (`Ok`), a full
    /// queue (`Busy`). Otherwise returns `None` and calls `done` exactly once, later, from a
    /// helper thread. Never blocks and never hashes on the caller's thread: an unknown
    /// user and a wrong password cost a helper thread one verification each, like a right
    /// one.
    #[must_use = "Some(answer) is the answer: done will not be called"]
    pub fn check(
        &self,
        file: &Arc<Htpasswd>,
        authorization: Option<&[u8]>,
        done: Done,
    ) -> Option<AuthResult> {
        let counters = &self.shared.counters;
        bump(&counters.checks);
        let Some(value) = authorization else {
            bump(&counters.denied);
            return Some(AuthResult::Denied);
        };
        let Some(credentials) = parse_basic(value) else {
            bump(&counters.denied);
            return Some(AuthResult::Denied);
        };
        let tag = self.shared.cache.tag(file.id(), value);
        let now = Instant::now();
        if let Some(user) = self.shared.cache.get(&tag, now) {
            bump(&counters.cache_hits);
            bump(&counters.accepted);
            return Some(AuthResult::Ok { user });
        }
        let user_key = self.shared.failures.key(file.id(), &credentials.user);
        let back = self.shared.failures.is_suspect(user_key, now);
        if back {
            bump(&counters.back_lane);
        }
        let job = Job {
            file: Arc::clone(file),
            user: credentials.user,
            password: credentials.password,
            tag,
            user_key,
            done,
        };
        match self.pool.submit(job, back) {
            Ok(()) => None,
            Err(mut job) => {
                job.password.fill(0);
                bump(&counters.busy);
                Some(AuthResult::Busy)
            }
        }
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            checks: load(&c.checks),
            cache_hits: load(&c.cache_hits),
            verifications: load(&c.verifications),
            accepted: load(&c.accepted),
            denied: load(&c.denied),
            busy: load(&c.busy),
            back_lane: load(&c.back_lane),
            queued: self.pool.queued(),
            cached: self.shared.cache.len(),
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Runs on a helper thread: one hash verification, the cache updated on success, then the
/// callback. A panic inside a hash crate is a denial, and the callback still runs.
fn verify(shared: &Shared, job: Job) {
    let Job {
        file,
        user,
        mut password,
        tag,
        user_key,
        done,
    } = job;
    let (entry, known) = file.entry(&user);
    let matched = catch_unwind(AssertUnwindSafe(|| {
        scheme::verify(entry.scheme, &entry.hash, &password)
    }))
    .unwrap_or_else(|_| {
        log::error!("password verification panicked (file {})", file.path());
        false
    });
    password.fill(0);
    bump(&shared.counters.verifications);
    let answer = if matched && known {
        shared.cache.insert(tag, &user, Instant::now());
        shared.failures.succeeded(user_key);
        bump(&shared.counters.accepted);
        AuthResult::Ok { user }
    } else {
        shared.failures.failed(user_key, Instant::now());
        bump(&shared.counters.denied);
        AuthResult::Denied
    };
    done(answer);
}
