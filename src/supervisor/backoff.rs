//! How long the master waits before starting a worker that exited unexpectedly: 100 ms,
//! doubling with each crash up to 30 s; a worker that ran for a minute or more starts the
//! count over, so one crash after a long run is followed by a fast restart.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_millis(100);
pub const MAX: Duration = Duration::from_secs(30);
/// A worker that ran this long resets the backoff.
pub const STABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The wait before restarting a worker that ran for `uptime`.
    pub fn after_crash(&mut self, uptime: Duration) -> Duration {
        if uptime >= STABLE {
            self.next = FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let waits: Vec<u64> = (0..11)
            .map(|_| b.after_crash(quick).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        assert_eq!(b.after_crash(STABLE), FIRST);
        assert_eq!(b.after_crash(quick), FIRST * 2);
    }
}
