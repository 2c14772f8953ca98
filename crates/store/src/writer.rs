//! The Redis writer thread: owns one blocking `redis::Connection`, sends the queued writes
//! and asks (`queue.rs`) as pipelines of up to [`BATCH`] items (`pipeline.rs`), and
//! checks the connection with a `PING` whenever it has been idle for [`PING_EVERY`].
//!
//! Every read and write on the connection has a [`TIMEOUT`] (500 ms), so a server that
//! stops answering (SIGSTOP, a full network) is declared down within about
//! `PING_EVERY + TIMEOUT` whatever the traffic, and an ask never waits longer than its
//! deadline (`reply.rs` answers `Down` for a writer stuck in a read).
//!
//! Failures: a connection that breaks (reset, closed: Redis restarted) is replaced at
//! once, and only a failed reconnect is an outage (`link.rs`). A timeout, or an answer
//! saying the server cannot serve now (`LOADING`, `BUSY`, ...), is an outage at once. In
//! every case the batch's writes go back to the head of the queue, to be sent when Redis
//! answers again, and its asks answer `Down`. During an outage queued asks answer `Down`
//! at once, writes wait, and the next attempt comes after the backoff (100 ms doubling to
//! 5 s). Other server errors (a read-only replica) are logged once per streak and the
//! writes dropped, as resending them would fail the same.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::RedisError;

use crate::backend::Conn;

use crate::link::{Backoff, Role};
use crate::pipeline::{self, Applied};
use crate::queue::{Ask, Batch};
use crate::redis_store::Shared;

/// Items (writes, and asks) per pipeline.
pub(crate) const BATCH: usize = 64;
/// Connect, read and write timeout of the helper connections: a server that does not
/// answer within it is down.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(500);
/// An idle connection is pinged this often.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(250);
/// Longest wait while disconnected; the loop re-checks its state after it.
const IDLE: Duration = Duration::from_secs(1);

struct Writer {
    shared: Arc<Shared>,
    con: Option<Conn>,
    /// No command succeeded yet on this connection: a failure now counts as an outage.
    fresh: bool,
    backoff: Backoff,
    next_attempt: Instant,
    /// A server error was logged and no clean batch has followed yet.
    erroring: bool,
    /// When the connection last answered.
    last_ok: Instant,
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
        last_ok: Instant::now(),
    };
    while !w.shared.queue.is_stopped() {
        if w.con.is_none() && Instant::now() >= w.next_attempt {
            w.connect();
        }
        if w.con.is_some() {
            let batch = w.shared.queue.take(BATCH);
            if !batch.writes.is_empty() || !batch.asks.is_empty() {
                w.send(batch);
            } else if w.last_ok.elapsed() >= PING_EVERY {
                w.ping();
            } else {
                w.shared.queue.wait(PING_EVERY - w.last_ok.elapsed());
            }
        } else {
            down(w.shared.queue.take_asks());
            let left = w.next_attempt.saturating_duration_since(Instant::now());
            w.shared.queue.wait_asks(left.min(IDLE));
        }
    }
    w.flush();
}

impl Writer {
    fn connect(&mut self) {
        let opened = self.shared.target.connect(TIMEOUT);
        match opened {
            Ok(c) => {
                self.con = Some(c);
                // Entries written on the previous connection are written again on their
                // next touch: this server may have restarted empty, or be a new master.
                self.shared.epoch.fetch_add(1, Ordering::AcqRel);
                self.fresh = true;
                self.answered();
                self.shared.link.connected(Role::Writer);
            }
            Err(e) => self.fail(&describe(&e)),
        }
    }

    /// Redis answered on this connection.
    fn answered(&mut self) {
        self.last_ok = Instant::now();
        self.shared.link.answered();
    }

    /// The link is down (a failed connect, a timeout, a fresh connection that broke):
    /// outage, retry after the backoff.
    fn fail(&mut self, error: &str) {
        self.con = None;
        self.shared.link.failed(Role::Writer, error);
        let delay = self.backoff.next_delay();
        log::debug!("redis writer: {error}; next attempt in {delay:?}");
        self.next_attempt = Instant::now() + delay;
    }

    /// The connection failed: down at once if Redis stopped answering or the connection
    /// was new, else replaced at once (Redis restarted, say).
    fn trouble(&mut self, e: &RedisError) {
        if e.is_timeout() {
            self.fail(&describe(e));
        } else if self.fresh {
            self.fail(&e.to_string());
        } else {
            self.con = None;
            self.shared.link.lost(Role::Writer, &e.to_string());
            self.next_attempt = Instant::now();
        }
    }

    /// The health check of an idle connection.
    fn ping(&mut self) {
        let Some(con) = self.con.as_mut() else {
            return;
        };
        match con.ping() {
            Ok(_) => {
                self.answered();
                self.fresh = false;
                self.backoff.reset();
            }
            Err(e) if e.code().is_some_and(|c| self.shared.is_transient(c)) => {
                self.fail(&e.to_string())
            }
            Err(e) if e.is_io_error() => self.trouble(&e),
            Err(e) => {
                // An answer, if not PONG (a server that requires AUTH, say): it answers.
                self.answered();
                log::debug!("redis writer: PING answered {e}");
            }
        }
    }

    fn send(&mut self, batch: Batch) {
        let Some(con) = self.con.as_mut() else {
            self.shared.queue.requeue_writes(batch.writes);
            return down(batch.asks);
        };
        let now = Instant::now();
        let (pipe, commands) = pipeline::build(&self.shared, &batch, now);
        if commands == 0 {
            return;
        }
        let result = con.run(&pipe);
        match result {
            Ok(values) if values.len() == commands => {
                self.answered();
                if let Some(e) = pipeline::transient(&self.shared, &values) {
                    self.shared.queue.requeue_writes(batch.writes);
                    down(batch.asks);
                    return self.fail(&e);
                }
                self.fresh = false;
                self.backoff.reset();
                let applied = pipeline::apply(&self.shared, batch, values, now);
                self.applied(applied);
            }
            Ok(values) => {
                self.shared.queue.requeue_writes(batch.writes);
                down(batch.asks);
                let e = format!("{} answers to {commands} commands", values.len());
                self.con = None;
                self.shared.link.lost(Role::Writer, &e);
            }
            Err(e) => {
                self.shared.queue.requeue_writes(batch.writes);
                down(batch.asks);
                self.trouble(&e);
            }
        }
    }

    /// Counts what Redis took, logs what it refused, and resends rate-limit checks whose
    /// script Redis no longer had (a restart, `SCRIPT FLUSH`) with `EVAL`.
    fn applied(&mut self, applied: Applied) {
        self.shared.sent.fetch_add(applied.sent, Ordering::Relaxed);
        if let Some(first) = applied.errors.first() {
            if !self.erroring {
                log::warn!(
                    "redis at {} refused {} write(s): {first}",
                    self.shared.link.label(),
                    applied.errors.len()
                );
            }
            self.erroring = true;
        } else if applied.sent > 0 {
            self.erroring = false;
        }
        if !applied.noscript.is_empty() {
            self.eval(applied.noscript);
        }
    }

    /// Sends rate-limit checks with the script's text (which Redis then caches).
    fn eval(&mut self, asks: Vec<Ask>) {
        let Some(con) = self.con.as_mut() else {
            return down(asks);
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for a in &asks {
            if let Ask::Limit {
                key, rule, lease, ..
            } = a
            {
                let (interval, burst) = crate::limit::args(rule);
                match lease {
                    None => pipe
                        .cmd("EVAL")
                        .arg(crate::limit::SCRIPT)
                        .arg(1)
                        .arg(key)
                        .arg(interval)
                        .arg(burst),
                    Some(t) => pipe
                        .cmd("EVAL")
                        .arg(crate::lease::LEASE_SCRIPT)
                        .arg(1)
                        .arg(key)
                        .arg(interval)
                        .arg(burst)
                        .arg(t.want()),
                };
            }
        }
        match con.run(&pipe) {
            Ok(values) => {
                self.answered();
                let mut values = values.into_iter();
                for a in asks {
                    match a {
                        Ask::Limit {
                            rule, reply, lease, ..
                        } => reply.answer(pipeline::limit_answer(values.next(), &rule, lease)),
                        other => other.down(),
                    }
                }
            }
            Err(e) => {
                down(asks);
                self.trouble(&e);
            }
        }
    }

    /// On stop: one best-effort pass over the queued writes on a live connection.
    fn flush(&mut self) {
        down(self.shared.queue.take_asks());
        self.fresh = false; // a failure now just ends the flush, it is not an outage
        while self.con.is_some() {
            let batch = self.shared.queue.take(BATCH);
            if batch.writes.is_empty() && batch.asks.is_empty() {
                return;
            }
            self.send(batch);
        }
    }
}

/// An error for a log line; a read timeout says what it means.
pub(crate) fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        format!("no answer within {} ms", TIMEOUT.as_millis())
    } else {
        e.to_string()
    }
}

/// Answers asks `Down`: Redis could not be asked.
fn down(asks: Vec<Ask>) {
    for a in asks {
        a.down();
    }
}
