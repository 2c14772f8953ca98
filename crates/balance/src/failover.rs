//! What to do with a session whose affinity points at a server that cannot take it.
//!
//! An affinity (a sealed cookie, a tagged session id, a stored pin) names a server id.
//! [`Pool::resolve`] turns that id into a decision: keep the server while it is healthy
//! (draining servers keep their existing sessions), otherwise follow the pool's
//! [`FailoverMode`]: `Repin` picks a new server with the pool's policy (the caller then
//! re-issues the cookie or tag, so the session sticks to its new home), `Strict` refuses
//! (for backends whose session state cannot move: the caller answers 503 rather than sending
//! the client somewhere its session does not exist).
//!
//! With `fail_open`, when no server at all is available, the pinned server is kept: it is as
//! good a guess as any and it is the one that knows the session.
//!
//! The pool counts its decisions ([`Pool::affinity_stats`]): kept (an affinity hit),
//! re-pinned, refused, and the sessions balanced afresh by [`Pool::select`] (for a pool
//! with affinity: requests that carried no usable pin, the misses).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::pool::Pool;
use crate::server::ServerRef;

/// How a session pinned to an unavailable or unknown server is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailoverMode {
    /// Pick another server and pin the session to it.
    #[default]
    Repin,
    /// Refuse the request; never move a session.
    Strict,
}

/// The decision for one pinned session.
#[derive(Clone, Debug)]
pub enum Affinity {
    /// The pinned server can take it.
    Keep(ServerRef),
    /// The pinned server cannot; this one was picked instead (re-pin the session to it).
    Repin(ServerRef),
    /// No server may take it (answer 503).
    Refuse,
}

/// The pool's running counts, bumped with relaxed atomics (any worker thread).
#[derive(Debug, Default)]
pub(crate) struct AffinityCounts {
    balanced: AtomicU64,
    kept: AtomicU64,
    repinned: AtomicU64,
    refused: AtomicU64,
}

impl AffinityCounts {
    pub(crate) fn balanced(&self) {
        self.balanced.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, decision: &Affinity) {
        let c = match decision {
            Affinity::Keep(_) => &self.kept,
            Affinity::Repin(_) => &self.repinned,
            Affinity::Refuse => &self.refused,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A reading of a pool's counts since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AffinityStats {
    /// New sessions picked by the policy ([`Pool::select`]): for a pool with affinity, the
    /// requests that carried no usable pin (misses).
    pub balanced: u64,
    /// Pinned sessions whose server took them (hits).
    pub kept: u64,
    /// Pinned sessions moved to another server (re-pins).
    pub repinned: u64,
    /// Pinned sessions no server could take (503).
    pub refused: u64,
}

impl Pool {
    /// How sessions found their server since the pool was built.
    pub fn affinity_stats(&self) -> AffinityStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AffinityStats {
            balanced: get(&self.counts.balanced),
            kept: get(&self.counts.kept),
            repinned: get(&self.counts.repinned),
            refused: get(&self.counts.refused),
        }
    }

    /// Decide where a session pinned to `target` goes, and count the decision.
    pub fn resolve(
        &self,
        target: &str,
        key: Option<&[u8]>,
        mode: FailoverMode,
        now: Instant,
    ) -> Affinity {
        let decision = self.decide(target, key, mode, now);
        self.counts.count(&decision);
        decision
    }

    /// Decide where a session pinned to `target` (a server id) goes at `now`. `key` is the
    /// client address, used if a new server must be picked with `IpHash`.
    fn decide(
        &self,
        target: &str,
        key: Option<&[u8]>,
        mode: FailoverMode,
        now: Instant,
    ) -> Affinity {
        let pinned = self.server(target);
        if let Some(server) = pinned {
            if server.is_available(now) {
                return Affinity::Keep(server.clone());
            }
            if self.fail_open() && !self.any_available(now) {
                return Affinity::Keep(server.clone());
            }
        }
        match mode {
            FailoverMode::Strict => Affinity::Refuse,
            FailoverMode::Repin => match self.select_where(key, now, &|_| true) {
                Some(server) => Affinity::Repin(server),
                None => Affinity::Refuse,
            },
        }
    }
}
