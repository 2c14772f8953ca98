//! The Redis writer thread: owns one blocking `redis::Connection` and sends the queued
//! writes and fetches (`queue.rs`) as pipelines of up to [`BATCH`] items each.
//!
//! Per item: a put is `SET <key> <value> EX <seconds left>` + `PUBLISH <channel> <put
//! payload>`; a touch `EXPIRE <key> <seconds left>`; a remove `DEL <key>` + `PUBLISH
//! <channel> <del payload>`; a fetch `GET <key>` + `PTTL <key>`, whose answer fills the
//! local cache before `done` is called. Writes whose life ran out in the queue are skipped.
//!
//! Failures: a connection that breaks is replaced at once (the batch's writes go back to
//! the head of the queue, its fetches answer `None`). A failed connect is an outage
//! (`link.rs`): queued fetches answer `None`, writes wait, and the next attempt comes after
//! the backoff (100 ms doubling to 5 s). Server errors (say a read-only replica) are
//! logged once per streak and the writes dropped, as resending them would fail the same.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Connection, Value};

use crate::link::{Backoff, Role};
use crate::message;
use crate::queue::{Batch, Fetch, Write};
use crate::redis_store::Shared;
use crate::Done;

/// Items (writes, and fetches) per pipeline.
pub(crate) const BATCH: usize = 64;
/// Connect, read and write timeout of the writer's connection.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Local cache life of a fetched key that has no expiry in Redis.
const NO_EXPIRY_TTL: Duration = Duration::from_secs(60);
/// Longest idle wait; the loop re-checks its state after it.
const IDLE: Duration = Duration::from_secs(1);

struct Writer {
    shared: Arc<Shared>,
    con: Option<Connection>,
    /// No batch succeeded yet on this connection: a failure now counts as an outage.
    fresh: bool,
    backoff: Backoff,
    next_attempt: Instant,
    /// A server error was logged and no clean batch has followed yet.
    erroring: bool,
}

/// The thread's body; returns once the queue is stopped.
pub(crate) fn run(shared: Arc<Shared>) {
    let mut w = Writer {
        shared,
        con: None,
        fresh: false,
        backoff: Backoff::new(),
        next_attempt: Instant::now(),
        erroring: false,
    };
    while !w.shared.queue.is_stopped() {
        if w.con.is_none() && Instant::now() >= w.next_attempt {
            w.connect();
        }
        if w.con.is_some() {
            let batch = w.shared.queue.take(BATCH);
            if batch.writes.is_empty() && batch.fetches.is_empty() {
                // Connected with nothing to send: the link is fine, whatever came before.
                w.fresh = false;
                w.backoff.reset();
                w.shared.queue.wait(IDLE);
            } else {
                w.send(batch);
            }
        } else {
            answer_none(w.shared.queue.take_fetches());
            let left = w.next_attempt.saturating_duration_since(Instant::now());
            w.shared.queue.wait_fetches(left.min(IDLE));
        }
    }
    w.flush();
}

impl Writer {
    fn connect(&mut self) {
        let opened = self
            .shared
            .client
            .get_connection_with_timeout(IO_TIMEOUT)
            .and_then(|c| {
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            });
        match opened {
            Ok(c) => {
                self.con = Some(c);
                self.fresh = true;
                self.shared.link.connected(Role::Writer);
            }
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// A connect failed (or a fresh connection broke): outage, retry after the backoff.
    fn fail(&mut self, error: &str) {
        self.con = None;
        self.shared.link.failed(Role::Writer, error);
        let delay = self.backoff.next_delay();
        log::debug!("redis writer: {error}; next attempt in {delay:?}");
        self.next_attempt = Instant::now() + delay;
    }

    fn send(&mut self, batch: Batch) {
        let Some(con) = self.con.as_mut() else {
            self.shared.queue.requeue_writes(batch.writes);
            return answer_none(batch.fetches);
        };
        let now = Instant::now();
        let (pipe, commands) = build(&self.shared, &batch, now);
        if commands == 0 {
            return answer_none(batch.fetches);
        }
        match pipe.query::<Vec<Value>>(con) {
            Ok(values) if values.len() == commands => {
                self.fresh = false;
                self.backoff.reset();
                self.apply(batch, values, now);
            }
            Ok(values) => {
                let e = format!("{} answers to {commands} commands", values.len());
                self.broken(batch, &e);
            }
            Err(e) => self.broken(batch, &e.to_string()),
        }
    }

    /// The connection broke mid-batch: keep the writes for the next connection.
    fn broken(&mut self, batch: Batch, error: &str) {
        self.shared.queue.requeue_writes(batch.writes);
        answer_none(batch.fetches);
        if self.fresh {
            self.fail(error);
        } else {
            self.con = None;
            self.shared.link.lost(Role::Writer, error);
            self.next_attempt = Instant::now();
        }
    }

    /// Counts the writes Redis took and hands fetch answers to their callers.
    fn apply(&mut self, batch: Batch, values: Vec<Value>, now: Instant) {
        let mut values = values.into_iter();
        let (mut sent, mut errors) = (0, Vec::new());
        for w in &batch.writes {
            let n = match w {
                Write::Put { expires, .. } | Write::Touch { expires, .. } if *expires <= now => 0,
                Write::Put { .. } | Write::Del { .. } => 2,
                Write::Touch { .. } => 1,
            };
            let answers: Vec<Value> = values.by_ref().take(n).collect();
            match answers.iter().find(|v| matches!(v, Value::ServerError(_))) {
                Some(Value::ServerError(e)) => errors.push(format!("{e:?}")),
                _ if n > 0 => sent += 1,
                _ => {}
            }
        }
        for Fetch { key, done } in batch.fetches {
            let get = values.next().unwrap_or(Value::Nil);
            let pttl = values.next().unwrap_or(Value::Nil);
            let answer = fetched(get, pttl)
                .map(|(value, ttl)| self.shared.cache.fill_at(&key, value, ttl, now));
            call(done, answer);
        }
        self.shared.sent.fetch_add(sent, Ordering::Relaxed);
        if let Some(first) = errors.first() {
            if !self.erroring {
                log::warn!(
                    "redis at {} refused {} write(s): {first}",
                    self.shared.link.label(),
                    errors.len()
                );
            }
            self.erroring = true;
        } else if sent > 0 {
            self.erroring = false;
        }
    }

    /// On stop: one best-effort pass over the queued writes on a live connection.
    fn flush(&mut self) {
        answer_none(self.shared.queue.take_fetches());
        self.fresh = false; // a failure now just ends the flush, it is not an outage
        while self.con.is_some() {
            let batch = self.shared.queue.take(BATCH);
            if batch.writes.is_empty() && batch.fetches.is_empty() {
                return;
            }
            self.send(batch);
        }
    }
}

/// The pipeline for a batch, and how many commands it holds.
fn build(shared: &Shared, batch: &Batch, now: Instant) -> (redis::Pipeline, usize) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut commands = 0;
    for w in &batch.writes {
        match w {
            Write::Put {
                key,
                value,
                expires,
            } if *expires > now => {
                let left = *expires - now;
                let payload = message::encode_put(&shared.instance, key, value, left);
                pipe.cmd("SET")
                    .arg(shared.redis_key(key))
                    .arg(value)
                    .arg("EX")
                    .arg(whole_seconds(left));
                pipe.cmd("PUBLISH").arg(&shared.channel).arg(payload);
                commands += 2;
            }
            Write::Touch { key, expires } if *expires > now => {
                pipe.cmd("EXPIRE")
                    .arg(shared.redis_key(key))
                    .arg(whole_seconds(*expires - now));
                commands += 1;
            }
            Write::Del { key } => {
                let payload = message::encode_del(&shared.instance, key);
                pipe.cmd("DEL").arg(shared.redis_key(key));
                pipe.cmd("PUBLISH").arg(&shared.channel).arg(payload);
                commands += 2;
            }
            Write::Put { .. } | Write::Touch { .. } => {} // expired while queued
        }
    }
    // After the writes, so a fetch sees this instance's own latest change.
    for f in &batch.fetches {
        let key = shared.redis_key(&f.key);
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        commands += 2;
    }
    (pipe, commands)
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

fn answer_none(fetches: Vec<Fetch>) {
    for f in fetches {
        call(f.done, None);
    }
}

/// Runs a caller's callback; a panic in it is logged and does not stop this thread.
fn call(done: Done, answer: Option<String>) {
    if catch_unwind(AssertUnwindSafe(move || done(answer))).is_err() {
        log::error!("an affinity fetch callback panicked");
    }
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
