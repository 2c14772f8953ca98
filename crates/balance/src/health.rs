//! Health state of one backend server, fed by the caller.
//!
//! Two independent signals decide whether a server may take new sessions:
//!
//! - **Active checks** (the proxy probes the server on a timer, see [`CheckConfig`]) are
//!   reported with [`Health::record_check`]. A server starts *up*; `fall` consecutive failed
//!   checks take it *down*, `rise` consecutive good checks bring it back (HAProxy's
//!   `rise`/`fall`).
//! - **Passive ejection** (the proxy reports what real traffic saw) with
//!   [`Health::record_failure`] and [`Health::record_success`]: `max_fails` consecutive
//!   failures (a refused connect, a 5xx) eject the server for `fail_timeout`, after which it
//!   is eligible again on probation: the next failure ejects it again at once, the next
//!   success clears the count (nginx's `max_fails`/`fail_timeout`). A failure reported
//!   while the server is ejected (a session that was already in flight) restarts the
//!   cool-off.
//!
//! [`Health::is_available`] is read on every selection, so it is two atomic loads in the
//! common case; writers serialize on a short mutex. Each transition is logged once, naming
//! the pool and the server. Nothing here reads a clock: every call that needs the time takes
//! `now`, so tests never sleep.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Passive ejection settings (nginx's `max_fails` and `fail_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassiveConfig {
    /// Consecutive failures that eject the server; `0` turns passive ejection off.
    pub max_fails: u32,
    /// How long an ejected server stays out before it is tried again.
    pub fail_timeout: Duration,
    /// Which answers count as failures (`fail_statuses`, default `5xx`); the others count
    /// as successes.
    pub fail_statuses: crate::StatusSet,
}

impl Default for PassiveConfig {
    /// `max_fails = 3`, `fail_timeout = 10 s`.
    fn default() -> Self {
        PassiveConfig {
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
            fail_statuses: crate::StatusSet::default(),
        }
    }
}

/// Which response statuses count as a passed active check (inclusive range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest accepted status.
    pub min: u16,
    /// Highest accepted status.
    pub max: u16,
}

impl StatusRange {
    /// Whether `status` passes the check.
    pub fn accepts(&self, status: u16) -> bool {
        (self.min..=self.max).contains(&status)
    }
}

impl Default for StatusRange {
    /// `200..=399`, as HAProxy's `option httpchk` accepts 2xx and 3xx.
    fn default() -> Self {
        StatusRange { min: 200, max: 399 }
    }
}

/// An active HTTP health check, as plain data for the proxy to drive from its event loop:
/// every `interval`, send `GET path` to each server, give up after `timeout`, and report the
/// outcome with [`Health::record_check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Request path, e.g. `/health`.
    pub path: String,
    /// `Host` header to send; `None` lets the proxy use the server address.
    pub host: Option<String>,
    /// Time between two checks of one server.
    pub interval: Duration,
    /// How long a check may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive passed checks that bring a down server up.
    pub rise: u32,
    /// Consecutive failed checks that take an up server down.
    pub fall: u32,
    /// Statuses that pass.
    pub expect: StatusRange,
    /// What a probe asks: an HTTP `GET` (the default) or a gRPC health check.
    pub kind: CheckKind,
}

/// The protocol of an active check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CheckKind {
    /// `GET path` over HTTP/1.1; the status decides.
    #[default]
    Http,
    /// `grpc.health.v1.Health/Check` for `service` ("" = the whole server) over h2c
    /// (prior knowledge); only `SERVING` passes.
    Grpc {
        /// The service asked about ("" = the server as a whole).
        service: String,
    },
}

impl Default for CheckConfig {
    /// `GET /` every 2 s, 1 s timeout, `rise 2`, `fall 3`, 2xx/3xx pass (HAProxy's defaults
    /// for `inter`, `rise` and `fall`).
    fn default() -> Self {
        CheckConfig {
            path: "/".to_string(),
            host: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            expect: StatusRange::default(),
            kind: CheckKind::Http,
        }
    }
}

/// What the mutex guards: the counters behind the two published flags.
#[derive(Debug, Default)]
struct Counters {
    /// Consecutive check results that disagree with the current check state.
    streak: u32,
    /// Consecutive passive failures (not reset by an ejection: probation).
    fails: u32,
    /// End of the current ejection, if any.
    ejected_until: Option<Instant>,
}

/// Health state of one server (see the module documentation).
pub struct Health {
    pool: String,
    server: String,
    rise: u32,
    fall: u32,
    passive: PassiveConfig,
    /// `false` once active checks declared the server down.
    check_up: AtomicBool,
    /// `true` while an ejection may be in force (the deadline is in `counters`).
    ejected: AtomicBool,
    counters: Mutex<Counters>,
}

impl Health {
    /// A server that starts up, with the given active `rise`/`fall` (values below 1 count
    /// as 1) and passive settings. `pool` and `server` only name it in log lines.
    pub fn new(pool: &str, server: &str, rise: u32, fall: u32, passive: PassiveConfig) -> Self {
        Health {
            pool: pool.to_string(),
            server: server.to_string(),
            rise: rise.max(1),
            fall: fall.max(1),
            passive,
            check_up: AtomicBool::new(true),
            ejected: AtomicBool::new(false),
            counters: Mutex::new(Counters::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way
        // that matters (they are advisory), so a poisoned lock is simply reused.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the server may take new sessions at `now`: up by active checks and not
    /// ejected. An ejection that has run out is lifted here (and logged once).
    pub fn is_available(&self, now: Instant) -> bool {
        if !self.check_up.load(Ordering::Acquire) {
            return false;
        }
        if !self.ejected.load(Ordering::Acquire) {
            return true;
        }
        let mut c = self.lock();
        match c.ejected_until {
            Some(until) if now < until => false,
            Some(_) => {
                c.ejected_until = None;
                self.ejected.store(false, Ordering::Release);
                log::info!(
                    "pool {} server {}: cool-off over, eligible again",
                    self.pool,
                    self.server
                );
                true
            }
            None => {
                self.ejected.store(false, Ordering::Release);
                true
            }
        }
    }

    /// Whether active checks currently call the server up (ignores passive ejection).
    pub fn is_check_up(&self) -> bool {
        self.check_up.load(Ordering::Acquire)
    }

    /// Report one active check: `ok` if it passed. Returns `true` when this report changed
    /// the up/down state.
    pub fn record_check(&self, ok: bool) -> bool {
        let mut c = self.lock();
        let up = self.check_up.load(Ordering::Acquire);
        if ok == up {
            c.streak = 0;
            return false;
        }
        c.streak += 1;
        let needed = if up { self.fall } else { self.rise };
        if c.streak < needed {
            return false;
        }
        c.streak = 0;
        self.check_up.store(ok, Ordering::Release);
        if ok {
            log::info!(
                "pool {} server {}: up ({} checks passed)",
                self.pool,
                self.server,
                needed
            );
        } else {
            log::warn!(
                "pool {} server {}: down ({} checks failed)",
                self.pool,
                self.server,
                needed
            );
        }
        true
    }

    /// Report a failure seen by real traffic (connect refused or timed out, a 5xx) at
    /// `now`. Returns `true` when this failure ejected the server.
    pub fn record_failure(&self, now: Instant) -> bool {
        if self.passive.max_fails == 0 {
            return false;
        }
        let mut c = self.lock();
        c.fails = c.fails.saturating_add(1);
        if c.fails < self.passive.max_fails {
            return false;
        }
        let was_ejected = matches!(c.ejected_until, Some(until) if now < until);
        c.ejected_until = Some(now + self.passive.fail_timeout);
        self.ejected.store(true, Ordering::Release);
        if !was_ejected {
            log::warn!(
                "pool {} server {}: down for {:?} after {} consecutive failures",
                self.pool,
                self.server,
                self.passive.fail_timeout,
                c.fails
            );
        }
        !was_ejected
    }

    /// An answer with `status` came back: a failure when `fail_statuses` holds it, else a
    /// success.
    pub fn record_answer(&self, status: u16, now: Instant) {
        if self.passive.fail_statuses.contains(status) {
            self.record_failure(now);
        } else {
            self.record_success();
        }
    }

    /// Report a success seen by real traffic: clears the failure count and any ejection.
    pub fn record_success(&self) {
        if self.passive.max_fails == 0 {
            return;
        }
        let mut c = self.lock();
        c.fails = 0;
        if c.ejected_until.take().is_some() && self.ejected.swap(false, Ordering::AcqRel) {
            log::info!(
                "pool {} server {}: up (request succeeded)",
                self.pool,
                self.server
            );
        }
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("check_up", &self.check_up.load(Ordering::Relaxed))
            .field("ejected", &self.ejected.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new("p", "s", 2, 3, PassiveConfig::default())
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let h = health();
        let now = Instant::now();
        assert!(h.is_available(now));
        assert!(!h.record_check(false));
        assert!(!h.record_check(false));
        assert!(!h.record_check(true)); // streak broken
        assert!(!h.record_check(false));
        assert!(!h.record_check(false));
        assert!(h.record_check(false));
        assert!(!h.is_available(now));
        assert!(!h.record_check(true));
        assert!(h.record_check(true));
        assert!(h.is_available(now));
    }

    #[test]
    fn passive_ejection_cools_off_then_probation() {
        let h = health();
        let t0 = Instant::now();
        assert!(!h.record_failure(t0));
        assert!(!h.record_failure(t0));
        assert!(h.record_failure(t0));
        assert!(!h.is_available(t0 + Duration::from_secs(9)));
        assert!(h.is_available(t0 + Duration::from_secs(10)));
        // Probation: one more failure ejects again.
        let t1 = t0 + Duration::from_secs(11);
        assert!(h.record_failure(t1));
        assert!(!h.is_available(t1));
        h.record_success();
        assert!(h.is_available(t1));
        assert!(!h.record_failure(t1));
    }

    #[test]
    fn success_resets_the_failure_count() {
        let h = health();
        let t0 = Instant::now();
        h.record_failure(t0);
        h.record_failure(t0);
        h.record_success();
        assert!(!h.record_failure(t0));
        assert!(h.is_available(t0));
    }

    #[test]
    fn max_fails_zero_disables_passive_ejection() {
        let passive = PassiveConfig {
            max_fails: 0,
            ..PassiveConfig::default()
        };
        let h = Health::new("p", "s", 1, 1, passive);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(!h.record_failure(t0));
        }
        assert!(h.is_available(t0));
    }

    #[test]
    fn status_range() {
        let r = StatusRange::default();
        assert!(r.accepts(200) && r.accepts(302) && !r.accepts(404) && !r.accepts(199));
    }
}
