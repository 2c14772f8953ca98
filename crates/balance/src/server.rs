//! One backend server of a pool: its identity, its settings, and the state that worker
//! threads share about it (active sessions, drain flag, health).
//!
//! A [`Server`] lives in an `Arc` ([`ServerRef`]) owned by its [`Pool`](crate::Pool); the
//! proxy keeps clones of that `Arc` in its sessions. Counting a session is done with an
//! [`ActiveGuard`] from [`Server::acquire`]: the count goes down when the guard is dropped,
//! so an early return or a panic cannot leak it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::health::Health;
use crate::membership::{from_ticks, to_ticks, Origin};

/// A shared handle on a server; cheap to clone.
pub type ServerRef = Arc<Server>;

/// How a server is declared in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Stable identity, sealed into affinity cookies and tags: the name given in the
    /// configuration, or `host:port`. It must not change when the address does, or sessions
    /// pinned to it are lost.
    pub id: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative share of new sessions (at least 1).
    pub weight: u32,
    /// Only used when no non-backup server is available.
    pub backup: bool,
    /// Start draining: no new sessions, existing affinities honoured.
    pub drain: bool,
}

impl ServerConfig {
    /// A server with weight 1, not a backup, not draining.
    pub fn new(id: impl Into<String>, addr: SocketAddr) -> Self {
        ServerConfig {
            id: id.into(),
            addr,
            weight: 1,
            backup: false,
            drain: false,
        }
    }

    /// The same server with another weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same server, marked as a backup.
    pub fn backup(mut self) -> Self {
        self.backup = true;
        self
    }
}

/// A backend server and its shared state (see the module documentation).
pub struct Server {
    id: String,
    addr: SocketAddr,
    weight: AtomicU32,
    backup: bool,
    index: usize,
    origin: Origin,
    /// When a server that left the pool (gone from DNS, removed by the admin API) is
    /// dropped from it (`membership::to_ticks`); 0 while it is a member.
    leaving: AtomicU64,
    /// xxh3 of the id: the per-server seed of rendezvous hashing.
    pub(crate) seed: u64,
    pool: String,
    drain: AtomicBool,
    active: AtomicUsize,
    health: Health,
}

impl Server {
    pub(crate) fn new(
        pool: &str,
        index: usize,
        config: &ServerConfig,
        health: Health,
        origin: Origin,
    ) -> Self {
        Server {
            seed: xxhash_rust::xxh3::xxh3_64(config.id.as_bytes()),
            id: config.id.clone(),
            addr: config.addr,
            weight: AtomicU32::new(config.weight.max(1)),
            backup: config.backup,
            index,
            origin,
            leaving: AtomicU64::new(0),
            pool: pool.to_string(),
            drain: AtomicBool::new(config.drain),
            active: AtomicUsize::new(0),
            health,
        }
    }

    /// The stable id (see [`ServerConfig::id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Relative share of new sessions.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Acquire)
    }

    /// Change the weight (at least 1); the pool tells its policy (`Pool::set_weight`).
    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Release);
    }

    /// Where the server comes from: the config file, DNS, the admin API.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// When the server, which left the pool and is draining, will be dropped from it;
    /// `None` while it is a member.
    pub fn leaving(&self) -> Option<Instant> {
        from_ticks(self.leaving.load(Ordering::Acquire))
    }

    /// Whether the server left and its drain time is over at `now` (it is as good as
    /// dropped, whether or not the sweep has run).
    pub fn is_gone(&self, now: Instant) -> bool {
        let t = self.leaving.load(Ordering::Acquire);
        t != 0 && t <= to_ticks(now)
    }

    pub(crate) fn set_leaving(&self, at: Option<Instant>) {
        self.leaving
            .store(at.map_or(0, to_ticks), Ordering::Release);
    }

    /// Whether this is a backup server.
    pub fn is_backup(&self) -> bool {
        self.backup
    }

    /// Position in the pool as configured, for [`Pool::by_index`](crate::Pool::by_index);
    /// servers added at run time get the next numbers, never reused.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the server is draining: it takes no new sessions, but the affinities that
    /// already point at it are honoured.
    pub fn is_draining(&self) -> bool {
        self.drain.load(Ordering::Acquire)
    }

    /// Start (`true`) or stop draining; logged when it changes.
    pub fn set_drain(&self, drain: bool) {
        if self.drain.swap(drain, Ordering::AcqRel) != drain {
            let what = if drain {
                "draining"
            } else {
                "no longer draining"
            };
            log::info!("pool {} server {}: {}", self.pool, self.id, what);
        }
    }

    /// Sessions (or connections, as the caller counts them) currently held on this server.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Count one more active session until the returned guard is dropped.
    pub fn acquire(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveGuard {
            server: Arc::clone(self),
        }
    }

    /// The health state, to report checks and traffic outcomes.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Healthy at `now` (up by checks, not ejected). Draining does not count here.
    pub fn is_available(&self, now: Instant) -> bool {
        self.health.is_available(now)
    }

    /// Healthy and not draining: may take a new session at `now`.
    pub fn accepts_new(&self, now: Instant) -> bool {
        !self.is_draining() && self.is_available(now)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("weight", &self.weight())
            .field("origin", &self.origin)
            .field("backup", &self.backup)
            .field("drain", &self.is_draining())
            .field("active", &self.active())
            .field("health", &self.health)
            .finish()
    }
}

/// One active session on a server; dropping it releases the count.
#[derive(Debug)]
pub struct ActiveGuard {
    server: ServerRef,
}

impl ActiveGuard {
    /// The server this session is counted on.
    pub fn server(&self) -> &ServerRef {
        &self.server
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.server.active.fetch_sub(1, Ordering::AcqRel);
    }
}
