//! The state of the Redis link, as seen by the two helper threads (writer and subscriber),
//! and the reconnect backoff they share the rules of.
//!
//! An outage starts when a helper fails to connect while no helper was down, and ends when
//! no helper is down any more. A broken connection alone is not an outage: its helper
//! reconnects at once, and only a failed connect counts. Each outage logs one warning
//! ("redis unreachable ... (will retry)") and its end one info line ("redis back"),
//! however many retries happen in between; the counters let tests and status pages see
//! the same thing.
//!
//! A connection that stops answering (a read timeout, a failed health ping) is an outage
//! at once, not a lost connection: reconnecting to a hung server would only wait again.
//! Every answer from Redis is stamped ([`Link::answered`]) for status pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which helper thread reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Writer = 0,
    Subscriber = 1,
}

/// The state of one helper's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not connected yet, or reconnecting right after losing a connection.
    Connecting,
    Up,
    /// The last connect attempt failed.
    Down,
}

/// Up/down state of the two connections, with once-per-outage logging.
pub(crate) struct Link {
    /// `host:port/db`, for log lines (never the password).
    label: String,
    states: Mutex<[State; 2]>,
    outages: AtomicU64,
    recoveries: AtomicU64,
    /// The time origin of `last_answer`.
    origin: Instant,
    /// Microseconds from `origin` to Redis's last answer, plus one; 0: never answered.
    last_answer: AtomicU64,
}

impl Link {
    /// Both helpers start `Connecting`; a server unreachable at start-up is reported like
    /// any other outage.
    pub(crate) fn new(label: String) -> Self {
        Link {
            label,
            states: Mutex::new([State::Connecting; 2]),
            outages: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            origin: Instant::now(),
            last_answer: AtomicU64::new(0),
        }
    }

    /// `role` could not connect (or lost a fresh connection): start an outage if none is on.
    pub(crate) fn failed(&self, role: Role, error: &str) {
        let mut states = self.lock();
        let was_down = states.contains(&State::Down);
        states[role as usize] = State::Down;
        if !was_down {
            self.outages.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "redis unreachable at {}: {error}; serving affinity from the local cache (will retry)",
                self.label
            );
        }
    }

    /// `role` lost an established connection and reconnects at once; not an outage yet.
    pub(crate) fn lost(&self, role: Role, error: &str) {
        let mut states = self.lock();
        if states[role as usize] == State::Up {
            states[role as usize] = State::Connecting;
        }
        log::debug!("redis {role:?} connection to {} lost: {error}", self.label);
    }

    /// `role` is connected: end the outage if no helper is down any more.
    pub(crate) fn connected(&self, role: Role) {
        let mut states = self.lock();
        let was_down = states.contains(&State::Down);
        states[role as usize] = State::Up;
        if was_down && !states.contains(&State::Down) {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            log::info!("redis back at {}", self.label);
        } else {
            log::debug!("redis {role:?} connected to {}", self.label);
        }
    }

    /// Whether `role`'s last connect attempt failed.
    pub(crate) fn is_down(&self, role: Role) -> bool {
        self.lock()[role as usize] == State::Down
    }

    /// Redis answered something just now.
    pub(crate) fn answered(&self) {
        let micros = self.origin.elapsed().as_micros().min(u64::MAX as u128 - 1) as u64;
        self.last_answer.store(micros + 1, Ordering::Relaxed);
    }

    /// The time since Redis last answered; `None` if it never did.
    pub(crate) fn since_last_answer(&self) -> Option<Duration> {
        match self.last_answer.load(Ordering::Relaxed) {
            0 => None,
            n => {
                let at = self.origin + Duration::from_micros(n - 1);
                Some(Instant::now().saturating_duration_since(at))
            }
        }
    }

    /// Whether the store is usable: the writer is connected and no outage is on.
    pub(crate) fn is_usable(&self) -> bool {
        let states = self.lock();
        states[Role::Writer as usize] == State::Up && !states.contains(&State::Down)
    }

    /// Whether both helpers are connected.
    pub(crate) fn is_up(&self) -> bool {
        self.lock().iter().all(|s| *s == State::Up)
    }

    pub(crate) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [State; 2]> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Exponential reconnect delay: 100 ms, 200 ms, ... capped at 5 s; reset on success.
pub(crate) struct Backoff {
    next: Duration,
}

pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: BACKOFF_MIN }
    }

    /// The delay before the next attempt; doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_MIN);
    }

    #[test]
    fn one_outage_per_streak_of_failures() {
        let link = Link::new("127.0.0.1:1/0".into());
        assert!(!link.is_up(), "not connected yet");
        link.lost(Role::Writer, "reset");
        assert_eq!(link.outages(), 0, "a lost connection is not an outage");
        link.failed(Role::Subscriber, "refused");
        link.failed(Role::Writer, "refused");
        link.failed(Role::Subscriber, "refused");
        assert_eq!((link.outages(), link.recoveries()), (1, 0));
        link.connected(Role::Subscriber);
        assert!(!link.is_up(), "the writer is still down");
        assert_eq!(link.recoveries(), 0);
        link.connected(Role::Writer);
        assert!(link.is_up());
        assert_eq!((link.outages(), link.recoveries()), (1, 1));
        link.lost(Role::Writer, "reset");
        assert!(!link.is_up() && !link.is_down(Role::Writer));
        link.connected(Role::Writer);
        assert_eq!(link.recoveries(), 1, "no recovery without an outage");
        link.failed(Role::Writer, "refused");
        assert!(link.is_down(Role::Writer));
        assert_eq!(link.outages(), 2);
    }

    #[test]
    fn usable_and_last_answer() {
        let link = Link::new("127.0.0.1:1/0".into());
        assert!(!link.is_usable());
        assert_eq!(link.since_last_answer(), None);
        link.connected(Role::Writer);
        assert!(
            link.is_usable(),
            "the subscriber is still connecting, not down"
        );
        link.answered();
        let since = link.since_last_answer().expect("answered");
        assert!(since < Duration::from_secs(1), "{since:?}");
        link.failed(Role::Subscriber, "timed out");
        assert!(!link.is_usable(), "an outage is on");
    }
}
