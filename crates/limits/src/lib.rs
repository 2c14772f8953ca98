//! tether-limits: request limits per key, in memory, shared by the worker threads.
//!
//! - [`RateLimiter`] (`rate_limiter.rs`): nginx's `limit_req` — a rate, a burst, `nodelay`
//!   or delayed — as GCRA (`gcra.rs`) over a bounded map that evicts the least recently
//!   seen key (`lru.rs`). Its rule is [`RateRule`] (`rate.rs`, with the `"10r/s"` parser).
//! - [`ConcurrencyLimiter`] (`concurrency.rs`): nginx's `limit_conn` — requests in flight
//!   per key, each held by a [`Permit`].
//! - [`compose_key`]: one key from several parts (address, header, cookie, route).
//!
//! Pure: no sockets, no threads, no event loop; every call takes a short lock and
//! returns. Times are passed in (`Instant`), so tests inject a clock.
//!
//! In an event loop's access phase:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use tether_limits::*;
//!
//! // Built once from the config, cloned into every worker.
//! let per_client = Arc::new(RateLimiter::new(RateRule::parse("10r/s", 5, false)?, DEFAULT_MAX_KEYS));
//! let in_flight = ConcurrencyLimiter::new(10);
//! let mut key = Vec::with_capacity(64); // one per worker, reused: no allocation per request
//!
//! // Per request: the client address (after the PROXY protocol) and the route.
//! compose_key(&mut key, &[b"192.0.2.7", b"api"]);
//! let now = Instant::now(); // the loop's clock for this turn
//! match per_client.check(&key, now) {
//!     Verdict::Allow => {}                          // go on to the next phase
//!     Verdict::Delay(wait) => { let _ = wait; }     // park the request on a loop timer
//!     Verdict::Reject { retry_after } => {          // 429, Retry-After: whole seconds
//!         let _header = retry_after_secs(retry_after);
//!     }
//! }
//! match in_flight.acquire(&key) {
//!     // Keep the permit in the request's state; dropping it gives the place back.
//!     Some(permit) => drop(permit),
//!     None => {} // refuse: too many requests of this key in flight
//! }
//! assert_eq!(per_client.check(&key, now), Verdict::Delay(std::time::Duration::from_millis(100)));
//! assert_eq!(per_client.stats().delayed, 1);
//! # Ok::<(), RateError>(())
//! ```

mod concurrency;
mod gcra;
mod lru;
mod padded;
mod rate;
mod rate_limiter;

use std::time::Duration;

pub use concurrency::{ConcurrencyLimiter, ConnStats, Permit};
pub use rate::{parse_rate, RateError, RateRule};
pub use rate_limiter::{RateLimiter, RateStats, DEFAULT_MAX_KEYS};

/// What to do with one request, from [`RateLimiter::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it now.
    Allow,
    /// Forward it after this delay (within the burst, without `nodelay`).
    Delay(Duration),
    /// Refuse it (429); a request of the same key would pass after `retry_after`.
    Reject {
        /// Time until the key has a free slot again.
        retry_after: Duration,
    },
}

impl Verdict {
    /// Whether the request goes forward (now or after a delay).
    pub fn passes(&self) -> bool {
        !matches!(self, Verdict::Reject { .. })
    }
}

/// A `Retry-After` value: whole seconds, rounded up (so at least 1 for any wait).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    }
}

/// Writes into `out` (cleared first) one key made of `parts`, each prefixed by its length
/// (4 bytes, big-endian), so that `["ab", "c"]` and `["a", "bc"]` differ. Reuse `out`
/// between requests and the key costs no allocation.
pub fn compose_key(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.clear();
    for part in parts {
        push_key_part(out, part);
    }
}

/// One part of a composed key appended to `out` (what [`compose_key`] does per part).
pub fn push_key_part(out: &mut Vec<u8>, part: &[u8]) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&part[..len as usize]);
}
