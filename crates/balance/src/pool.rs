//! A pool: a named list of backend servers and the policy that picks among them.
//!
//! [`Pool::select`] is what the proxy calls for every new session. It tries the servers in
//! tiers and hands the first tier that has an eligible server to the policy:
//!
//! 1. primaries (non-backup) that are healthy and not draining;
//! 2. backups that are healthy and not draining;
//! 3. only with `fail_open`: primaries that are not draining, healthy or not;
//! 4. only with `fail_open`: backups that are not draining, healthy or not.
//!
//! `None` means nothing can take the session: the caller answers 503 (or refuses the TCP
//! connection). [`Pool::select_excluding`] is the same with servers already tried for this
//! session left out, for retrying a failed connect on the next server.
//!
//! What changes at run time (drain flags, health, active counts, policy state) lives in
//! atomics and short mutexes, so one `Arc<Pool>` serves every worker thread. The member
//! list itself can change too (servers found in DNS, servers added through the admin API):
//! it is an immutable snapshot behind a lock held only to clone or swap it
//! (`membership.rs`), so a selection works on one consistent list.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::counts::{AffinityCounts, AffinityStats};
use crate::health::{CheckConfig, Health, PassiveConfig};
use crate::membership::{Members, Origin};
use crate::policy::{Candidates, Policy, PolicyKind};
use crate::server::{Server, ServerConfig, ServerRef};

/// Pool-wide settings.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PoolOptions {
    /// How a server is picked for a new session.
    pub policy: PolicyKind,
    /// When no server is healthy, pick among the non-draining ones anyway instead of
    /// returning `None` (a check that is wrong should not take the whole site down).
    pub fail_open: bool,
    /// Passive ejection settings, for every server.
    pub passive: PassiveConfig,
    /// The active health check the proxy should run, if any (its `rise`/`fall` are used
    /// here; without a check, servers are only ever down by passive ejection).
    pub check: Option<CheckConfig>,
}

/// Why a pool could not be built from its configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolError {
    /// The pool has no servers.
    NoServers,
    /// A server id is empty.
    EmptyId,
    /// Two servers share this id.
    DuplicateId(String),
    /// This server has weight 0.
    ZeroWeight(String),
    /// The balance factor is below 1.0 or not a number.
    BadBalanceFactor(f64),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::NoServers => write!(f, "the pool has no servers"),
            PoolError::EmptyId => write!(f, "a server id is empty"),
            PoolError::DuplicateId(id) => write!(f, "two servers have the id {id:?}"),
            PoolError::ZeroWeight(id) => write!(f, "server {id:?} has weight 0 (at least 1)"),
            PoolError::BadBalanceFactor(x) => {
                write!(f, "balance factor {x} is invalid (at least 1.0)")
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// A named pool of servers with its selection policy (see the module documentation).
#[derive(Debug)]
pub struct Pool {
    name: String,
    /// The current member list (see `membership.rs`).
    pub(crate) members: RwLock<Arc<Members>>,
    /// The `index` the next server added at run time gets.
    pub(crate) next_index: AtomicUsize,
    /// Bumped on every change of the member list.
    pub(crate) generation: AtomicU64,
    /// When the next leaving server's drain time ends (`membership::to_ticks`; `u64::MAX`:
    /// none is leaving).
    pub(crate) next_sweep: AtomicU64,
    /// Health settings for servers added at run time.
    pub(crate) passive: PassiveConfig,
    policy: Policy,
    fail_open: bool,
    check: Option<CheckConfig>,
    /// How sessions found their server (`select` and `resolve` count; `affinity_stats`).
    pub(crate) counts: AffinityCounts,
}

impl Pool {
    /// How sessions found their server since the pool was built.
    pub fn affinity_stats(&self) -> AffinityStats {
        self.counts.stats()
    }

    /// Whether `Pool::new` would accept these servers and options, without making the pool
    /// (no counters, no health state): what a config check needs.
    pub fn validate(servers: &[ServerConfig], options: &PoolOptions) -> Result<(), PoolError> {
        if servers.is_empty() {
            return Err(PoolError::NoServers);
        }
        Pool::validate_members(servers, options)
    }

    /// [`validate`](Self::validate) for a pool that may start empty (its servers come from
    /// DNS or the admin API).
    pub fn validate_members(
        servers: &[ServerConfig],
        options: &PoolOptions,
    ) -> Result<(), PoolError> {
        if let PolicyKind::IpHash {
            balance_factor: Some(f),
        } = options.policy
        {
            if f.is_nan() || f < 1.0 {
                return Err(PoolError::BadBalanceFactor(f));
            }
        }
        let mut ids = std::collections::HashSet::with_capacity(servers.len());
        for config in servers {
            if config.id.is_empty() {
                return Err(PoolError::EmptyId);
            }
            if config.weight == 0 {
                return Err(PoolError::ZeroWeight(config.id.clone()));
            }
            if !ids.insert(config.id.as_str()) {
                return Err(PoolError::DuplicateId(config.id.clone()));
            }
        }
        Ok(())
    }

    /// Build the pool `name` from its servers, in configuration order.
    pub fn new(
        name: &str,
        servers: &[ServerConfig],
        options: PoolOptions,
    ) -> Result<Pool, PoolError> {
        Pool::validate(servers, &options)?;
        Ok(Pool::build(name, servers, options))
    }

    /// [`new`](Self::new) for a pool whose servers may all come later (from DNS or the
    /// admin API): no servers is not an error.
    pub fn new_dynamic(
        name: &str,
        servers: &[ServerConfig],
        options: PoolOptions,
    ) -> Result<Pool, PoolError> {
        Pool::validate_members(servers, &options)?;
        Ok(Pool::build(name, servers, options))
    }

    fn build(name: &str, servers: &[ServerConfig], options: PoolOptions) -> Pool {
        let (rise, fall) = options.check.as_ref().map_or((1, 1), |c| (c.rise, c.fall));
        let mut by_id = HashMap::with_capacity(servers.len());
        let mut list = Vec::with_capacity(servers.len());
        for (index, config) in servers.iter().enumerate() {
            by_id.insert(config.id.clone(), index);
            let health = Health::new(name, &config.id, rise, fall, options.passive);
            list.push(Arc::new(Server::new(
                name,
                index,
                config,
                health,
                Origin::Config,
            )));
        }
        Pool {
            name: name.to_string(),
            policy: Policy::new(options.policy, &list),
            next_index: AtomicUsize::new(list.len()),
            members: RwLock::new(Arc::new(Members {
                servers: list.into(),
                by_id,
            })),
            generation: AtomicU64::new(0),
            next_sweep: AtomicU64::new(u64::MAX),
            passive: options.passive,
            fail_open: options.fail_open,
            check: options.check,
            counts: AffinityCounts::default(),
        }
    }

    /// The current member list (a snapshot: later changes make a new one).
    pub(crate) fn snapshot(&self) -> Arc<Members> {
        self.read_members().clone()
    }

    /// The member list, read-locked (no `Arc` count touched: the selection path).
    fn read_members(&self) -> std::sync::RwLockReadGuard<'_, Arc<Members>> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumped whenever servers join or leave (for whoever keeps a per-server list, such
    /// as the health checker).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every server now, in configuration order then in order of arrival (for health
    /// checking and status pages).
    pub fn servers(&self) -> Arc<[ServerRef]> {
        self.snapshot().servers.clone()
    }

    /// The server with this id (a server that left is found until it is dropped: by the
    /// next selection or affinity decision after its drain time, or [`sweep`](Self::sweep)).
    pub fn server(&self, id: &str) -> Option<ServerRef> {
        let members = self.read_members();
        let found = members
            .by_id
            .get(id)
            .and_then(|&i| members.servers.get(i))
            .cloned();
        found
    }

    /// The server whose [`Server::index`] is `index`.
    pub fn by_index(&self, index: usize) -> Option<ServerRef> {
        let members = self.snapshot();
        let found = members.servers.iter().find(|s| s.index() == index).cloned();
        found
    }

    /// Start or stop draining the server `id`; `false` if there is no such server.
    pub fn set_drain(&self, id: &str, drain: bool) -> bool {
        self.server(id).map(|s| s.set_drain(drain)).is_some()
    }

    /// The active health check to run, if configured.
    pub fn check(&self) -> Option<&CheckConfig> {
        self.check.as_ref()
    }

    /// Whether the pool fails open (see [`PoolOptions::fail_open`]).
    pub fn fail_open(&self) -> bool {
        self.fail_open
    }

    /// The policy and its state.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether any server can take a new session at `now` (healthy and not draining).
    pub fn any_available(&self, now: Instant) -> bool {
        self.read_members()
            .servers
            .iter()
            .any(|s| s.accepts_new(now))
    }

    /// Pick a server for a new session. `key` is the client address for the `IpHash`
    /// policy ([`ClientKey`](crate::ClientKey)); the others ignore it. Count the session
    /// at once with [`Server::acquire`]: least connections and bounded load read that count.
    /// Each call counts as a balanced pick in [`affinity_stats`](Self::affinity_stats).
    pub fn select(&self, key: Option<&[u8]>, now: Instant) -> Option<ServerRef> {
        self.counts.balanced();
        self.select_where(key, now, &|_| true)
    }

    /// [`select`](Self::select), leaving out the servers whose ids are in `tried` (the
    /// ones this session already failed to connect to).
    pub fn select_excluding<S: AsRef<str>>(
        &self,
        key: Option<&[u8]>,
        tried: &[S],
        now: Instant,
    ) -> Option<ServerRef> {
        self.select_where(key, now, &|s| tried.iter().all(|t| t.as_ref() != s.id()))
    }

    pub(crate) fn select_where(
        &self,
        key: Option<&[u8]>,
        now: Instant,
        allowed: &dyn Fn(&Server) -> bool,
    ) -> Option<ServerRef> {
        let healthy = |backup: bool| {
            move |s: &Server| s.is_backup() == backup && allowed(s) && s.accepts_new(now)
        };
        let any_health = |backup: bool| {
            move |s: &Server| s.is_backup() == backup && allowed(s) && !s.is_draining()
        };
        let (primary, backup) = (healthy(false), healthy(true));
        let (open_primary, open_backup) = (any_health(false), any_health(true));
        let tiers: [&dyn Fn(&Server) -> bool; 4] = [&primary, &backup, &open_primary, &open_backup];
        let used = if self.fail_open { 4 } else { 2 };
        if self.sweep_due(now) {
            self.sweep(now);
        }
        let members = self.read_members();
        let picked = tiers.into_iter().take(used).find_map(|eligible| {
            let candidates = Candidates {
                servers: &members.servers,
                eligible,
            };
            let index = self.policy.pick(&candidates, key)?;
            members.servers.get(index).cloned()
        });
        picked
    }
}
