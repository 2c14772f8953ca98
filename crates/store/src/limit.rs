//! Shared rate limits: the rule ([`RateRule`]), the answer ([`LimitAnswer`]) and the Lua
//! script that decides in Redis, atomically, with Redis's own clock.
//!
//! The algorithm is GCRA (the generic cell rate algorithm), which gives nginx `limit_req`
//! semantics with one number per key: the *theoretical arrival time* (TAT) of the next
//! request, in microseconds of Redis's `TIME`. With `T` the interval and `tau = burst * T`:
//!
//! - `tat = max(stored, now)`; the request fits if `now >= tat - tau`, that is when fewer
//!   than `burst` excess requests are ahead of it;
//! - if it fits, the stored TAT becomes `tat + T` (the key expires when that time has
//!   passed: an idle key costs nothing), and the request is delayed by `tat - now`
//!   (excess × interval) unless `nodelay`;
//! - if not, it is rejected, and one slot frees in `tat - tau - now`.
//!
//! Using Redis's clock (not the caller's) lets instances with skewed clocks share a key.

use std::time::Duration;

use redis::Value;

/// A rate limit: one request per `interval` (the rate is `1 / interval`), with up to
/// `burst` requests in excess, as nginx's `limit_req zone=... rate=... burst=... [nodelay]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateRule {
    /// Time between two requests at the allowed rate (100 ms for 10 r/s). At least 1 µs.
    pub interval: Duration,
    /// Requests allowed in excess of the rate (queued by delay, or at once with `nodelay`).
    pub burst: u32,
    /// Excess requests within `burst` pass at once instead of being delayed.
    pub nodelay: bool,
}

/// The decision for one request under a [`RateRule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitAnswer {
    /// Pass now.
    Allow,
    /// Pass after this delay (an excess request within `burst`, without `nodelay`).
    Delay(Duration),
    /// Over the limit: refuse (nginx answers 503, or `limit_req_status`); one slot frees
    /// after `retry_after`.
    Reject { retry_after: Duration },
    /// The store could not decide (down, slow, queue full, no shared store): the caller
    /// applies its own local limiter or its `on_store_error` policy.
    Down,
}

/// The GCRA script. KEYS[1]: the counter; ARGV[1]: interval in µs; ARGV[2]: burst.
/// Returns `{0, delay_us}` (allowed) or `{1, retry_after_us}` (rejected).
pub(crate) const SCRIPT: &str = r#"
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
if now < tat - tau then
  return {1, tat - tau - now}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {0, tat - now}
"#;

/// The script's arguments for `rule`: interval in µs (at least 1) and burst.
pub(crate) fn args(rule: &RateRule) -> (u64, u32) {
    let micros = u64::try_from(rule.interval.as_micros()).unwrap_or(u64::MAX / 4);
    // Lua numbers are doubles: keep products with `burst` far below 2^53.
    (micros.clamp(1, 1 << 40), rule.burst)
}

/// The decision from the script's reply, or what is wrong with it.
pub(crate) fn decide(reply: &Value, rule: &RateRule) -> Result<LimitAnswer, String> {
    let Value::Array(items) = reply else {
        return Err(format!("unexpected rate-limit reply {reply:?}"));
    };
    let (code, micros) = match items.as_slice() {
        [Value::Int(code), Value::Int(us)] => (*code, (*us).max(0) as u64),
        _ => return Err(format!("unexpected rate-limit reply {reply:?}")),
    };
    let wait = Duration::from_micros(micros);
    Ok(match code {
        0 if rule.nodelay || wait.is_zero() => LimitAnswer::Allow,
        0 => LimitAnswer::Delay(wait),
        _ => LimitAnswer::Reject { retry_after: wait },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: RateRule = RateRule {
        interval: Duration::from_millis(100),
        burst: 2,
        nodelay: false,
    };

    fn reply(code: i64, us: i64) -> Value {
        Value::Array(vec![Value::Int(code), Value::Int(us)])
    }

    #[test]
    fn replies_become_answers() {
        assert_eq!(decide(&reply(0, 0), &RULE), Ok(LimitAnswer::Allow));
        let delayed = decide(&reply(0, 150_000), &RULE);
        assert_eq!(delayed, Ok(LimitAnswer::Delay(Duration::from_millis(150))));
        let nodelay = RateRule {
            nodelay: true,
            ..RULE
        };
        assert_eq!(decide(&reply(0, 150_000), &nodelay), Ok(LimitAnswer::Allow));
        assert_eq!(
            decide(&reply(1, 30_000), &nodelay),
            Ok(LimitAnswer::Reject {
                retry_after: Duration::from_millis(30)
            })
        );
        assert!(decide(&Value::Nil, &RULE).is_err());
        assert!(decide(&Value::Array(vec![Value::Int(0)]), &RULE).is_err());
    }

    #[test]
    fn args_are_bounded() {
        assert_eq!(args(&RULE), (100_000, 2));
        let zero = RateRule {
            interval: Duration::ZERO,
            ..RULE
        };
        assert_eq!(args(&zero).0, 1);
        let huge = RateRule {
            interval: Duration::MAX,
            ..RULE
        };
        assert_eq!(args(&huge).0, 1 << 40);
    }
}
