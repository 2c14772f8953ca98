//! One batch as one Redis pipeline: the commands for each queued item ([`build`]), and the
//! answers handed back ([`apply`]). The connection and its failures are `writer.rs`'s.
//!
//! Per item: a put is `SET <key> <value> EX <seconds left>` + `PUBLISH <channel> <put
//! payload>`; a refresh (a touch of a cached entry) `SET <key> <value> EX <seconds left>`,
//! so a Redis restarted empty is refilled by use; a touch of an entry not cached here
//! `EXPIRE <key> <seconds left>`; a remove `DEL <key>` + `PUBLISH <channel> <del
//! payload>`; a lookup `GET <key>` + `PTTL <key>`, whose answer fills the local cache
//! before the caller hears it; a rate-limit check `EVALSHA <gcra> 1 <key> <interval_us>
//! <burst>` (`limit.rs`), or for a leased one the lease script with the tokens wanted
//! (`lease.rs`). Writes whose life ran out in the queue are skipped.

use std::time::{Duration, Instant};

use redis::Value;

use crate::lease::Ticket;
use crate::limit;
use crate::message;
use crate::queue::{Ask, Batch, Write};
use crate::redis_store::Shared;
use crate::Lookup;

/// Local cache life of a fetched key that has no expiry in Redis.
const NO_EXPIRY_TTL: Duration = Duration::from_secs(60);

/// The pipeline for a batch, and how many commands it holds.
pub(crate) fn build(shared: &Shared, batch: &Batch, now: Instant) -> (redis::Pipeline, usize) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut commands = 0;
    for w in &batch.writes {
        commands += match w {
            Write::Put {
                key,
                value,
                expires,
            } if *expires > now => {
                let left = *expires - now;
                let payload = message::encode_put(&shared.instance, key, value, left);
                set(&mut pipe, shared, key, value, left);
                pipe.cmd("PUBLISH").arg(&shared.channel).arg(payload);
                2
            }
            Write::Refresh {
                key,
                value,
                expires,
            } if *expires > now => {
                set(&mut pipe, shared, key, value, *expires - now);
                1
            }
            Write::Touch { key, expires } if *expires > now => {
                pipe.cmd("EXPIRE")
                    .arg(shared.redis_key(key))
                    .arg(whole_seconds(*expires - now));
                1
            }
            Write::Del { key } => {
                let payload = message::encode_del(&shared.instance, key);
                pipe.cmd("DEL").arg(shared.redis_key(key));
                pipe.cmd("PUBLISH").arg(&shared.channel).arg(payload);
                2
            }
            _ => 0, // expired while queued
        };
    }
    // After the writes, so a lookup sees this instance's own latest change.
    for a in &batch.asks {
        match a {
            Ask::Get { key, .. } => {
                let key = shared.redis_key(key);
                pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
                commands += 2;
            }
            Ask::Limit {
                key, rule, lease, ..
            } => {
                let (interval, burst) = limit::args(rule);
                match lease {
                    None => pipe
                        .cmd("EVALSHA")
                        .arg(shared.script.get_hash())
                        .arg(1)
                        .arg(key)
                        .arg(interval)
                        .arg(burst),
                    Some(t) => pipe
                        .cmd("EVALSHA")
                        .arg(shared.lease_script.get_hash())
                        .arg(1)
                        .arg(key)
                        .arg(interval)
                        .arg(burst)
                        .arg(t.want()),
                };
                commands += 1;
            }
        }
    }
    (pipe, commands)
}

fn set(pipe: &mut redis::Pipeline, shared: &Shared, key: &str, value: &str, left: Duration) {
    pipe.cmd("SET")
        .arg(shared.redis_key(key))
        .arg(value)
        .arg("EX")
        .arg(whole_seconds(left));
}

/// The first answer saying the server cannot serve for now (loading its dataset, a busy
/// script, a failover): the batch is to be retried after a pause, not dropped.
pub(crate) fn transient(shared: &Shared, values: &[Value]) -> Option<String> {
    values.iter().find_map(|v| match v {
        Value::ServerError(e) if shared.is_transient(e.code()) => {
            Some(format!("{}: {}", e.code(), e.details().unwrap_or_default()))
        }
        _ => None,
    })
}

/// Whether a server error code means "not now" rather than "never".
pub(crate) fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN"
    )
}

/// What [`apply`] found.
#[derive(Default)]
pub(crate) struct Applied {
    /// Writes Redis took.
    pub(crate) sent: u64,
    /// Server errors that refused writes.
    pub(crate) errors: Vec<String>,
    /// Rate-limit checks Redis answered `NOSCRIPT` to: to resend with `EVAL`.
    pub(crate) noscript: Vec<Ask>,
}

/// Counts the writes Redis took and answers the asks; `values` holds one answer per
/// command of [`build`] for the same batch at the same `now`.
pub(crate) fn apply(shared: &Shared, batch: Batch, values: Vec<Value>, now: Instant) -> Applied {
    let mut values = values.into_iter();
    let mut out = Applied::default();
    for w in &batch.writes {
        let n = match w {
            Write::Put { expires, .. }
            | Write::Refresh { expires, .. }
            | Write::Touch { expires, .. }
                if *expires <= now =>
            {
                0
            }
            Write::Put { .. } | Write::Del { .. } => 2,
            Write::Refresh { .. } | Write::Touch { .. } => 1,
        };
        let answers: Vec<Value> = values.by_ref().take(n).collect();
        match answers.iter().find(|v| matches!(v, Value::ServerError(_))) {
            Some(Value::ServerError(e)) => out.errors.push(format!("{e:?}")),
            _ if n > 0 => out.sent += 1,
            _ => {}
        }
    }
    for ask in batch.asks {
        match ask {
            Ask::Get { key, reply } => {
                let get = values.next().unwrap_or(Value::Nil);
                let pttl = values.next().unwrap_or(Value::Nil);
                let answer = match fetched(get, pttl) {
                    Some((value, ttl)) => {
                        Lookup::Found(shared.cache.fill_at(&key, value, ttl, now, shared.epoch()))
                    }
                    None => Lookup::Missing,
                };
                reply.answer(answer);
            }
            Ask::Limit {
                key,
                rule,
                reply,
                lease,
            } => match values.next() {
                Some(Value::ServerError(e)) if e.code() == "NOSCRIPT" => {
                    out.noscript.push(Ask::Limit {
                        key,
                        rule,
                        reply,
                        lease,
                    });
                }
                v => reply.answer(limit_answer(v, &rule, lease)),
            },
        }
    }
    out
}

/// The decision in the script's answer (the lease script's, for a leased check); `Down`
/// (logged) when it is not one.
pub(crate) fn limit_answer(
    v: Option<Value>,
    rule: &limit::RateRule,
    lease: Option<Ticket>,
) -> limit::LimitAnswer {
    let v = v.unwrap_or(Value::Nil);
    let decided = match lease {
        None => limit::decide(&v, rule),
        Some(t) => t.settle(&v),
    };
    decided.unwrap_or_else(|e| {
        log::warn!("redis rate limit: {e}");
        limit::LimitAnswer::Down
    })
}

/// Seconds for `EX`/`EXPIRE`, rounded up so a short life is not cut to zero.
fn whole_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// The value and remaining life from a `GET` and `PTTL` answer pair.
fn fetched(get: Value, pttl: Value) -> Option<(String, Duration)> {
    let value = match get {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok()?,
        Value::SimpleString(s) => s,
        _ => return None,
    };
    let ttl = match pttl {
        Value::Int(ms) if ms > 0 => Duration::from_millis(ms as u64),
        Value::Int(-1) => NO_EXPIRY_TTL,
        _ => return None, // -2: gone between the two commands
    };
    Some((value, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_answers() {
        let v = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            fetched(v("s1"), Value::Int(1500)),
            Some(("s1".into(), Duration::from_millis(1500)))
        );
        assert_eq!(
            fetched(v("s1"), Value::Int(-1)),
            Some(("s1".into(), NO_EXPIRY_TTL))
        );
        assert_eq!(fetched(v("s1"), Value::Int(-2)), None);
        assert_eq!(fetched(Value::Nil, Value::Int(-2)), None);
        assert_eq!(fetched(Value::BulkString(vec![0xff]), Value::Int(5)), None);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(59_999)), 60);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }
}
