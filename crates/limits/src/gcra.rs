//! The GCRA decision for one key, with nginx `limit_req` semantics, as pure arithmetic on
//! nanoseconds.
//!
//! A key's state is its TAT (theoretical arrival time): the earliest time its next
//! request would come with no excess. nginx keeps `(last, excess)` instead; the two are
//! the same thing, `tat = last + (excess + 1) × interval`. A request at `now`:
//!
//! - `tat <= now`: no excess; it passes and `tat = now + interval`;
//! - `0 < tat - now <= burst × interval`: an excess of `(tat - now) / interval` requests;
//!   it passes, delayed by `tat - now` (= excess × interval) unless `nodelay`, and
//!   `tat += interval`;
//! - `tat - now > burst × interval`: rejected, the state unchanged; it would pass at
//!   `tat - burst × interval`, so `retry_after = tat - now - burst × interval`.
//!
//! A key not yet seen behaves as `tat = now`.

use std::time::Duration;

use crate::Verdict;

/// A rule in nanoseconds, ready for [`decide`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gcra {
    pub interval: u64,
    /// `burst × interval`, saturated.
    pub tolerance: u64,
    pub nodelay: bool,
}

impl Gcra {
    pub fn new(rule: &crate::RateRule) -> Gcra {
        let interval = u64::try_from(rule.interval.as_nanos()).unwrap_or(u64::MAX);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(rule.burst)),
            nodelay: rule.nodelay,
        }
    }

    /// The verdict for a request at `now` against a key whose TAT is `tat`, and the new
    /// TAT (`None` when rejected: the state does not change).
    pub fn decide(&self, tat: u64, now: u64) -> (Verdict, Option<u64>) {
        let ahead = tat.saturating_sub(now);
        if ahead > self.tolerance {
            let retry_after = Duration::from_nanos(ahead - self.tolerance);
            return (Verdict::Reject { retry_after }, None);
        }
        let next = tat.max(now).saturating_add(self.interval);
        if ahead == 0 || self.nodelay {
            (Verdict::Allow, Some(next))
        } else {
            (Verdict::Delay(Duration::from_nanos(ahead)), Some(next))
        }
    }
}
