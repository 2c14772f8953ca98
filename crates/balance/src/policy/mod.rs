//! Selection policies: which eligible server takes the next new session.
//!
//! The [`Pool`](crate::Pool) decides which servers are *eligible* for one selection (healthy,
//! not draining, not already tried, primaries before backups) and hands the policy the whole
//! server list with that predicate ([`Candidates`]); the policy returns the index it picks.
//! Nothing is allocated per selection.
//!
//! - [`round_robin`]: smooth weighted round robin, as nginx's default.
//! - [`least_connections`]: fewest active sessions relative to weight.
//! - [`ip_hash`]: weighted rendezvous hashing of the client address with bounded load.

pub mod ip_hash;
pub mod least_connections;
pub mod round_robin;

use crate::server::{Server, ServerRef};

/// A policy as configured.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum PolicyKind {
    /// Smooth weighted round robin (nginx's default, HAProxy's `balance roundrobin`).
    #[default]
    RoundRobin,
    /// Weighted least active sessions (nginx's `least_conn`, HAProxy's `balance leastconn`).
    LeastConnections,
    /// Consistent hashing of the client address (nginx's `hash $remote_addr consistent`,
    /// HAProxy's `balance source` + `hash-type consistent`).
    IpHash {
        /// Bounded load: no server takes more than `factor` × the average active sessions
        /// (rounded up). `None` turns the bound off. At least 1.0; the default is 1.25
        /// (HAProxy's `hash-balance-factor 125`).
        balance_factor: Option<f64>,
    },
}

impl PolicyKind {
    /// `IpHash` with the default balance factor (1.25).
    pub fn ip_hash() -> Self {
        PolicyKind::IpHash {
            balance_factor: Some(ip_hash::DEFAULT_BALANCE_FACTOR),
        }
    }
}

/// The servers one selection may pick from: all of the pool's servers, and a predicate that
/// says which are eligible.
pub struct Candidates<'a> {
    /// Every server of the pool, in configuration order.
    pub servers: &'a [ServerRef],
    /// Whether a server is eligible for this selection.
    pub eligible: &'a dyn Fn(&Server) -> bool,
}

impl Candidates<'_> {
    /// The eligible servers with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ServerRef)> + '_ {
        self.servers
            .iter()
            .enumerate()
            .filter(move |(_, s)| (self.eligible)(s))
    }
}

/// A policy with its run-time state (shared by all worker threads).
#[derive(Debug)]
pub enum Policy {
    /// See [`round_robin::SmoothWeighted`].
    RoundRobin(round_robin::SmoothWeighted),
    /// See [`least_connections::LeastConnections`].
    LeastConnections(least_connections::LeastConnections),
    /// See [`ip_hash::IpHash`].
    IpHash(ip_hash::IpHash),
}

impl Policy {
    /// The state for `kind` over `servers` (the pool's final list).
    pub fn new(kind: PolicyKind, servers: &[ServerRef]) -> Self {
        match kind {
            PolicyKind::RoundRobin => {
                Policy::RoundRobin(round_robin::SmoothWeighted::new(servers.len()))
            }
            PolicyKind::LeastConnections => {
                Policy::LeastConnections(least_connections::LeastConnections::new())
            }
            PolicyKind::IpHash { balance_factor } => {
                Policy::IpHash(ip_hash::IpHash::new(balance_factor, servers))
            }
        }
    }

    /// The member list or a weight changed (servers from DNS or the admin API).
    pub fn members_changed(&self, servers: &[ServerRef]) {
        if let Policy::IpHash(p) = self {
            p.members_changed(servers);
        }
    }

    /// Pick an eligible server; `key` is the client address for `IpHash` (ignored by the
    /// others). `None` when no server is eligible.
    pub fn pick(&self, candidates: &Candidates<'_>, key: Option<&[u8]>) -> Option<usize> {
        match self {
            Policy::RoundRobin(p) => p.pick(candidates),
            Policy::LeastConnections(p) => p.pick(candidates),
            Policy::IpHash(p) => p.pick(candidates, key),
        }
    }
}
