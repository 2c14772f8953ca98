//! The Redis subscriber thread: its own connection, `SUBSCRIBE <prefix>affinity`, and the
//! other instances' announcements (`message.rs`) applied to the local cache, then passed
//! to the listeners registered with `Store::subscribe`. Its own announcements (same
//! instance id) are skipped.
//!
//! It reads with a short timeout ([`POLL`]) so it notices a stop request, and sweeps the
//! cache's expired entries about once a second. When nothing arrived for
//! [`PING_EVERY`](crate::writer::PING_EVERY) it sends a `PING` (allowed while subscribed)
//! and waits [`TIMEOUT`](crate::writer::TIMEOUT) for the answer: a server that stopped
//! answering is an outage at once (`link.rs`), even if this instance sends no writes. A
//! lost connection is replaced at once; a failed connect or a timeout is an outage and
//! the next attempt waits for the backoff.
//! Announcements sent while this instance was disconnected are not replayed: a key that
//! changed meanwhile is corrected when its local entry expires or is fetched again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Value};

use crate::link::{Backoff, Role};
use crate::message::{self, Change};
use crate::redis_store::Shared;
use crate::writer::{describe, PING_EVERY, TIMEOUT};
use crate::Store;

/// Read timeout of the subscription: how soon a stop request is noticed.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// How often the local cache is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A subscription shorter than this does not reset the backoff (a flapping server).
const STABLE: Duration = Duration::from_secs(1);

/// The thread's body; returns once the store's queue is stopped.
pub(crate) fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    let mut last_sweep = Instant::now();
    while !shared.queue.is_stopped() {
        let mut con = match connect(&shared) {
            Ok(con) => con,
            Err(e) => {
                shared.link.failed(Role::Subscriber, &describe(&e));
                sweep(&shared, &mut last_sweep);
                let delay = backoff.next_delay();
                log::debug!("redis subscriber: {e}; next attempt in {delay:?}");
                shared.queue.sleep(delay);
                continue;
            }
        };
        let started = Instant::now();
        match listen(&shared, &mut con, &mut last_sweep) {
            Ok(()) => return, // stopped
            Err(e) if e.is_timeout() => {
                // Not answering: an outage now; the next connect waits for the backoff.
                shared.link.failed(Role::Subscriber, &describe(&e));
                drop(con);
                shared.queue.sleep(backoff.next_delay());
                continue;
            }
            Err(e) => shared.link.lost(Role::Subscriber, &e.to_string()),
        }
        if started.elapsed() >= STABLE {
            backoff.reset();
        } else {
            shared.queue.sleep(backoff.next_delay());
        }
    }
}

fn connect(shared: &Shared) -> RedisResult<Connection> {
    let con = shared.target.connect_one(TIMEOUT)?;
    con.set_write_timeout(Some(TIMEOUT))?;
    con.set_read_timeout(Some(POLL))?;
    Ok(con)
}

/// Subscribes and applies messages until the store stops (`Ok`) or the connection fails.
fn listen(shared: &Shared, con: &mut Connection, last_sweep: &mut Instant) -> RedisResult<()> {
    let mut pubsub = con.as_pubsub();
    pubsub.subscribe(&shared.channel)?;
    shared.link.answered();
    shared.link.connected(Role::Subscriber);
    let mut last_heard = Instant::now();
    while !shared.queue.is_stopped() {
        match pubsub.get_message() {
            Ok(msg) => {
                last_heard = Instant::now();
                shared.link.answered();
                apply(shared, msg.get_payload_bytes());
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
        if last_heard.elapsed() >= PING_EVERY {
            pubsub.set_read_timeout(Some(TIMEOUT))?;
            pubsub.ping::<Value>()?;
            pubsub.set_read_timeout(Some(POLL))?;
            last_heard = Instant::now();
            shared.link.answered();
        }
        sweep(shared, last_sweep);
    }
    Ok(())
}

/// Applies one announcement from another instance.
fn apply(shared: &Shared, payload: &[u8]) {
    let decoded = std::str::from_utf8(payload)
        .map_err(|e| e.to_string())
        .and_then(message::decode);
    let msg = match decoded {
        Ok(msg) => msg,
        Err(e) => {
            log::debug!(
                "redis subscriber: ignoring a message on {}: {e}",
                shared.channel
            );
            return;
        }
    };
    if msg.instance == shared.instance {
        return;
    }
    match &msg.change {
        Change::Put { value, ttl } => {
            let epoch = shared.epoch();
            shared
                .cache
                .put_synced_at(&msg.key, value, *ttl, Instant::now(), epoch)
        }
        Change::Del => shared.cache.remove_key(&msg.key),
    }
    let listeners = shared.listeners.read().unwrap_or_else(|p| p.into_inner());
    for f in listeners.iter() {
        if catch_unwind(AssertUnwindSafe(|| f(&msg.key))).is_err() {
            log::error!("an affinity store listener panicked");
        }
    }
}

fn sweep(shared: &Shared, last_sweep: &mut Instant) {
    if last_sweep.elapsed() >= SWEEP_EVERY {
        *last_sweep = Instant::now();
        let n = shared.cache.sweep(*last_sweep);
        if n > 0 {
            log::debug!("affinity cache: {n} expired entries swept");
        }
    }
}
