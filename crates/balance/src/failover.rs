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
//! The pool counts its decisions (`counts.rs`, [`Pool::affinity_stats`]): kept (an affinity hit),
//! re-pinned, refused, and the sessions balanced afresh by [`Pool::select`] (for a pool
//! with affinity: requests that carried no usable pin, the misses).

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

impl Pool {
    /// Decide where a session pinned to `target` goes, and count the decision.
    pub fn resolve(
        &self,
        target: &str,
        key: Option<&[u8]>,
        mode: FailoverMode,
        now: Instant,
    ) -> Affinity {
        let decision = self.decide(target, key, mode, now);
        match &decision {
            Affinity::Keep(_) => self.counts.kept(),
            Affinity::Repin(_) => self.counts.repinned(),
            Affinity::Refuse => self.counts.refused(),
        }
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
        if self.sweep_due(now) {
            // A server whose drain time is over is dropped before anyone is sent to it.
            self.sweep(now);
        }
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
