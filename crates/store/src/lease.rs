//! Leased rate-limit tokens: a shared (Redis) limit without a Redis round trip per request.
//!
//! For a rule whose requests are never delayed (`nodelay`, or `burst = 0`), a check that
//! has to ask Redis asks for up to [`lease_size`] tokens at once ([`LEASE_SCRIPT`]: the
//! same GCRA counter as `limit.rs`'s script, advanced by as many requests as fit now). The
//! asking request takes one; the rest are kept here, per key, and spent by the next
//! requests with no round trip ([`Leases::spend`]). When a key's tokens fall to half the
//! lease, one background ask tops them up again, so a steady stream of requests never
//! waits for Redis. A rejection is kept too, until the time Redis said a slot frees: no
//! other instance can make one free sooner, so requests before then are refused here.
//!
//! Every token was counted in Redis when it was leased, so the instances together never
//! lease more than the limit. What a lease changes is *when* a token is spent: a token
//! leased at `t` may be spent up to [`LEASE_LIFE`] later. An instance holds at most
//! `L = lease_size(rule)` unspent tokens of a key (tokens held + tokens asked for), so in
//! any window a fleet of `N` instances admits at most `N × L` requests beyond what the
//! limit allows in that window; unspent tokens expire after [`LEASE_LIFE`] (at most `L` per
//! instance and key per second are lost that way). `L` is the rate's worth of
//! [`LEASE_HORIZON`] (10 ms), at most [`LEASE_MAX`] and at most `burst + 1`: 1 (no lease,
//! one exact round trip per request, as without leases) for rates up to 100 r/s.
//!
//! Rules with delays (`burst > 0` without `nodelay`) keep one round trip per request:
//! each request's delay is its own place in the queue, which a lease cannot give.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::Value;

use crate::limit::{LimitAnswer, RateRule};

/// Most tokens one instance leases for one key.
pub const LEASE_MAX: u32 = 256;
/// A lease holds the rate's worth of this much time.
pub const LEASE_HORIZON: Duration = Duration::from_millis(10);
/// Leased tokens not spent within this time are dropped.
pub const LEASE_LIFE: Duration = Duration::from_secs(1);

/// The lease script. KEYS[1]: the counter (the same as `limit.rs`'s); ARGV[1]: interval in
/// µs; ARGV[2]: burst; ARGV[3]: tokens wanted (at least 1). Returns `{granted, dry_us}`
/// with `granted >= 1` requests counted (each would pass now) and the time until the next
/// one would pass (0 if one would pass now), or `{0, retry_after_us}`.
pub(crate) const LEASE_SCRIPT: &str = r#"
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2]) * interval
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
if now < tat - tau then
  return {0, tat - tau - now}
end
local fit = math.floor((now - tat + tau) / interval) + 1
if fit > want then fit = want end
local next_tat = tat + fit * interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
local dry = next_tat - tau - now
if dry < 0 then dry = 0 end
return {fit, dry}
"#;

/// How many tokens an instance leases for `rule`: 1 means no lease (every request asks).
pub fn lease_size(rule: &RateRule) -> u32 {
    if !rule.nodelay && rule.burst > 0 {
        return 1; // delayed requests: one round trip each
    }
    let interval = rule.interval.as_nanos().max(1);
    let per_horizon = LEASE_HORIZON.as_nanos() / interval;
    let size = u32::try_from(per_horizon).unwrap_or(LEASE_MAX);
    size.min(LEASE_MAX).min(rule.burst.saturating_add(1)).max(1)
}

/// One key's lease.
#[derive(Default)]
struct Lease {
    /// Tokens held, spendable until `expires`.
    tokens: u32,
    expires: Option<Instant>,
    /// Tokens asked for (beyond the askers' own) and not answered yet.
    asked: u32,
    /// Redis refused: no slot before this time.
    refused_until: Option<Instant>,
}

impl Lease {
    fn idle(&self, now: Instant) -> bool {
        self.asked == 0
            && (self.tokens == 0 || self.expires.is_none_or(|e| e <= now))
            && self.refused_until.is_none_or(|r| r <= now)
    }
}

/// What [`Leases::spend`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Spent {
    /// An answer from the lease (a token, or a kept rejection), and maybe a top-up to ask
    /// for (`Some(extra)` tokens, in the background).
    Answer(LimitAnswer, Option<u32>),
    /// Ask Redis, for the request's own token and `extra` more.
    Ask(u32),
    /// Nothing held (only when asked not to register an ask).
    Nothing,
}

/// The leases of one store, shared by the callers and the writer thread.
pub(crate) struct Leases {
    keys: Mutex<HashMap<String, Lease>>,
    max_keys: usize,
}

impl Leases {
    pub(crate) fn new(max_keys: usize) -> Leases {
        Leases {
            keys: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request for `key` under a rule leased `size` tokens at a time (`size > 1`): a
    /// token or a kept rejection, else (with `ask`) how many more tokens its ask to Redis
    /// should lease, counted as asked for.
    pub(crate) fn spend(&self, key: &str, size: u32, ask: bool, now: Instant) -> Spent {
        let mut keys = self.lock();
        if !ask && !keys.contains_key(key) {
            return Spent::Nothing;
        }
        if !keys.contains_key(key) && keys.len() >= self.max_keys {
            keys.retain(|_, l| !l.idle(now));
            if keys.len() >= self.max_keys {
                return Spent::Ask(0); // full of busy keys: no lease, an exact check
            }
        }
        let lease = keys.entry(key.to_string()).or_default();
        if lease.expires.is_some_and(|e| e <= now) {
            lease.tokens = 0;
            lease.expires = None;
        }
        if lease.tokens > 0 {
            lease.tokens -= 1;
            let dry = lease.refused_until.is_some_and(|r| r > now);
            let top_up = (!dry && lease.tokens + lease.asked <= size / 2).then(|| {
                let extra = size - lease.tokens - lease.asked;
                lease.asked += extra;
                extra
            });
            return Spent::Answer(LimitAnswer::Allow, top_up);
        }
        if let Some(until) = lease.refused_until {
            if until > now {
                return Spent::Answer(
                    LimitAnswer::Reject {
                        retry_after: until - now,
                    },
                    None,
                );
            }
            lease.refused_until = None;
        }
        if !ask {
            return Spent::Nothing;
        }
        let extra = (size - 1).saturating_sub(lease.asked);
        lease.asked += extra;
        Spent::Ask(extra)
    }

    /// Redis answered an ask for `key` that wanted `own` (0 or 1) + `extra` tokens:
    /// `granted` tokens, and the next slot frees in `retry_after` (zero: one is free now). Returns the asker's
    /// answer (for a background top-up, what it would have been).
    pub(crate) fn settle(
        &self,
        key: &str,
        own: u32,
        extra: u32,
        granted: u32,
        retry_after: Duration,
        now: Instant,
    ) -> LimitAnswer {
        let mut keys = self.lock();
        let lease = keys.entry(key.to_string()).or_default();
        lease.asked = lease.asked.saturating_sub(extra);
        if granted == 0 {
            lease.refused_until = Some(now + retry_after);
            return LimitAnswer::Reject { retry_after };
        }
        let kept = granted.saturating_sub(own).min(extra);
        if kept > 0 {
            if lease.expires.is_some_and(|e| e <= now) {
                lease.tokens = 0;
            }
            lease.tokens += kept;
            lease.expires = Some(now + LEASE_LIFE);
        }
        // The bucket is dry until then: later requests, once the tokens are spent, are
        // refused here without asking (Redis would refuse them too).
        lease.refused_until = (!retry_after.is_zero()).then(|| now + retry_after);
        LimitAnswer::Allow
    }

    /// An ask for `key` got no answer (Redis down, slow, the queue full).
    pub(crate) fn release(&self, key: &str, extra: u32) {
        if extra == 0 {
            return;
        }
        if let Some(lease) = self.lock().get_mut(key) {
            lease.asked = lease.asked.saturating_sub(extra);
        }
    }

    /// Drops every lease (Redis went down: checks go back to `on_store_error`).
    pub(crate) fn clear(&self) {
        let mut keys = self.lock();
        if !keys.is_empty() {
            keys.clear();
        }
    }

    #[cfg(test)]
    fn held(&self, key: &str) -> (u32, u32) {
        self.lock().get(key).map_or((0, 0), |l| (l.tokens, l.asked))
    }
}

/// An ask's share of a lease: settled with the script's answer, or released (on drop)
/// when Redis could not answer, so the key's `asked` count never leaks.
pub(crate) struct Ticket {
    pub(crate) leases: Arc<Leases>,
    /// The caller's key (without the Redis prefix).
    pub(crate) key: String,
    /// 1 for a request's own token, 0 for a background top-up.
    pub(crate) own: u32,
    pub(crate) extra: u32,
    settled: bool,
}

impl Ticket {
    pub(crate) fn new(leases: Arc<Leases>, key: String, own: u32, extra: u32) -> Ticket {
        Ticket {
            leases,
            key,
            own,
            extra,
            settled: false,
        }
    }

    /// Tokens to ask Redis for.
    pub(crate) fn want(&self) -> u32 {
        (self.own + self.extra).max(1)
    }

    /// The answer for the asker, from the lease script's reply.
    pub(crate) fn settle(mut self, reply: &Value) -> Result<LimitAnswer, String> {
        let (granted, micros) = match reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(g), Value::Int(us)] => ((*g).max(0), (*us).max(0)),
                _ => return Err(format!("unexpected rate-limit lease reply {reply:?}")),
            },
            _ => return Err(format!("unexpected rate-limit lease reply {reply:?}")),
        };
        self.settled = true;
        let granted = u32::try_from(granted).unwrap_or(u32::MAX);
        Ok(self.leases.settle(
            &self.key,
            self.own,
            self.extra,
            granted,
            Duration::from_micros(micros as u64),
            Instant::now(),
        ))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            self.leases.release(&self.key, self.extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(per_sec: u64, burst: u32, nodelay: bool) -> RateRule {
        RateRule {
            interval: Duration::from_nanos(1_000_000_000 / per_sec),
            burst,
            nodelay,
        }
    }

    #[test]
    fn lease_sizes() {
        assert_eq!(lease_size(&rule(10, 5, true)), 1, "10 r/s: no lease");
        assert_eq!(lease_size(&rule(100, 5, true)), 1);
        assert_eq!(lease_size(&rule(1_000, 50, true)), 10);
        assert_eq!(lease_size(&rule(1_000_000, 100_000, true)), LEASE_MAX);
        assert_eq!(lease_size(&rule(10_000, 1_000, true)), 100);
        assert_eq!(lease_size(&rule(1_000_000, 3, true)), 4, "burst + 1");
        assert_eq!(
            lease_size(&rule(1_000_000, 0, false)),
            1,
            "burst 0: one at a time"
        );
        assert_eq!(
            lease_size(&rule(1_000_000, 10, false)),
            1,
            "delayed: no lease"
        );
        let zero = RateRule {
            interval: Duration::ZERO,
            burst: u32::MAX,
            nodelay: true,
        };
        assert_eq!(lease_size(&zero), LEASE_MAX);
    }

    #[test]
    fn spend_ask_settle_and_top_up() {
        let leases = Leases::new(10);
        let now = Instant::now();
        // Nothing held: ask for one's own + 7.
        assert_eq!(leases.spend("k", 8, true, now), Spent::Ask(7));
        // A second request meanwhile asks only for its own.
        assert_eq!(leases.spend("k", 8, true, now), Spent::Ask(0));
        assert_eq!(
            leases.settle("k", 1, 0, 1, Duration::ZERO, now),
            LimitAnswer::Allow
        );
        assert_eq!(
            leases.settle("k", 1, 7, 8, Duration::ZERO, now),
            LimitAnswer::Allow
        );
        assert_eq!(leases.held("k"), (7, 0));
        // Spending down to half the lease asks for a top-up, once.
        for _ in 0..2 {
            assert_eq!(
                leases.spend("k", 8, true, now),
                Spent::Answer(LimitAnswer::Allow, None)
            );
        }
        assert_eq!(
            leases.spend("k", 8, true, now),
            Spent::Answer(LimitAnswer::Allow, Some(4))
        );
        assert_eq!(leases.held("k"), (4, 4));
        assert_eq!(
            leases.spend("k", 8, true, now),
            Spent::Answer(LimitAnswer::Allow, None)
        );
        // The top-up gets fewer tokens than asked: never more held than the lease.
        leases.settle("k", 0, 4, 2, Duration::ZERO, now);
        assert_eq!(leases.held("k"), (5, 0));
        // Tokens expire.
        let later = now + LEASE_LIFE;
        assert_eq!(leases.spend("k", 8, true, later), Spent::Ask(7));
        leases.release("k", 7);
        assert_eq!(leases.held("k"), (0, 0));
        assert_eq!(leases.spend("k", 8, false, later), Spent::Nothing);
        assert_eq!(leases.spend("x", 8, false, later), Spent::Nothing);
        assert_eq!(leases.held("k"), (0, 0));
    }

    #[test]
    fn a_rejection_is_kept_until_a_slot_frees() {
        let leases = Leases::new(10);
        let now = Instant::now();
        assert_eq!(leases.spend("k", 4, true, now), Spent::Ask(3));
        let wait = Duration::from_millis(30);
        assert_eq!(
            leases.settle("k", 1, 3, 0, wait, now),
            LimitAnswer::Reject { retry_after: wait }
        );
        let soon = now + Duration::from_millis(10);
        assert_eq!(
            leases.spend("k", 4, true, soon),
            Spent::Answer(
                LimitAnswer::Reject {
                    retry_after: Duration::from_millis(20)
                },
                None
            )
        );
        assert_eq!(leases.spend("k", 4, true, now + wait), Spent::Ask(3));
        // Two tokens granted of four, the bucket dry for 4 ms: the one kept is spent, then
        // refusals until the bucket has a slot again.
        let t = now + wait;
        let dry = Duration::from_millis(4);
        assert_eq!(leases.settle("k", 1, 3, 2, dry, t), LimitAnswer::Allow);
        assert_eq!(
            leases.spend("k", 4, true, t),
            Spent::Answer(LimitAnswer::Allow, None),
            "no top-up from a dry bucket"
        );
        assert_eq!(
            leases.spend("k", 4, true, t),
            Spent::Answer(LimitAnswer::Reject { retry_after: dry }, None)
        );
        assert_eq!(leases.spend("k", 4, true, t + dry), Spent::Ask(3));
    }

    #[test]
    fn bounded_keys() {
        let leases = Leases::new(2);
        let now = Instant::now();
        assert_eq!(leases.spend("a", 4, true, now), Spent::Ask(3));
        assert_eq!(leases.spend("b", 4, true, now), Spent::Ask(3));
        assert_eq!(
            leases.spend("c", 4, true, now),
            Spent::Ask(0),
            "full of busy keys"
        );
        leases.release("a", 3);
        assert_eq!(
            leases.spend("c", 4, true, now),
            Spent::Ask(3),
            "idle 'a' swept"
        );
    }
}
