//! Touches written behind, against a real `redis-server`: a session touched on every
//! request costs Redis no command until its copy there would expire a tenth of the TTL
//! early (counted by Redis itself, `INFO commandstats`), and the first touch after the
//! writer reconnects to a Redis restarted empty writes the pin again, TTL unchanged.

mod common;

use std::time::{Duration, Instant};

use common::{wait_connected, wait_for, RedisServer};
use tether_store::{Options, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), &Options::default()).expect("open the redis store")
}

/// How many `SET` and `EXPIRE` commands Redis has run.
fn writes_seen(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.raw())
        .expect("INFO commandstats");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_set:") || l.starts_with("cmdstat_expire:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Puts `key` and waits until Redis has it: every write queued before it was sent.
fn put_and_wait(store: &RedisStore, server: &RedisServer, key: &str, ttl: Duration) {
    store.put(key, "marker", ttl);
    let redis_key = format!("tether:{key}");
    wait_for(&format!("{key} in redis"), 5 * SECOND, || {
        server.get(&redis_key).is_some()
    });
}

#[test]
fn touches_cost_one_write_per_tenth_of_the_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = open(&server);
    wait_connected(&store);
    store.put("cookie:busy", "s1", MINUTE);
    wait_for("the pin in redis", 5 * SECOND, || {
        server.get("tether:cookie:busy").is_some()
    });
    let before = writes_seen(&server);
    for _ in 0..1000 {
        store.touch("cookie:busy", MINUTE); // one user, 1000 requests
    }
    assert_eq!(store.stats().queued_writes, 0, "nothing queued for Redis");
    put_and_wait(&store, &server, "probe:1", MINUTE);
    assert_eq!(
        writes_seen(&server) - before,
        1,
        "only the probe's SET: the 1000 touches sent nothing"
    );
    assert!(server.ttl("tether:cookie:busy") > 50);
    assert_eq!(store.get("cookie:busy").as_deref(), Some("s1"));

    // A 2 s life: Redis's copy may lag the local one by 200 ms, then it is written again.
    let ttl = 2 * SECOND;
    let sent_before = store.stats().sent_writes;
    let start = Instant::now();
    store.put("cookie:short", "s2", ttl);
    // The writer counts a write once Redis has answered it, which may be after Redis
    // shows the key: wait for both, or the put's own count looks like a touch's.
    wait_for("the short pin in redis and counted", 5 * SECOND, || {
        server.get("tether:cookie:short").is_some() && store.stats().sent_writes > sent_before
    });
    let sent = store.stats().sent_writes;
    let took = wait_for("a touch written again", 5 * SECOND, || {
        store.touch("cookie:short", ttl);
        store.stats().sent_writes > sent
    });
    assert!(
        start.elapsed() >= ttl / 10,
        "written after {took:?}: not before a tenth of the TTL"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("tether:cookie:short")
        .query(&mut server.raw())
        .expect("PTTL");
    assert!(pttl > 1500, "the life written again: {pttl} ms");
}

#[test]
fn a_restarted_redis_gets_each_pin_back_at_its_next_touch() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = open(&server);
    wait_connected(&store);
    for i in 0..30 {
        store.put(&format!("cookie:u{i}"), &format!("s{}", i % 3), MINUTE);
    }
    put_and_wait(&store, &server, "probe:1", MINUTE);
    for i in 0..30 {
        store.touch(&format!("cookie:u{i}"), MINUTE); // within the slack: not written
    }

    server.kill();
    let server = RedisServer::start_on(server.port);
    assert_eq!(server.get("tether:cookie:u0"), None, "restarted empty");
    // The writer is on a new connection once a put reaches the new server.
    put_and_wait(&store, &server, "probe:2", MINUTE);
    let before = writes_seen(&server);
    for i in 0..30 {
        store.touch(&format!("cookie:u{i}"), MINUTE); // the users come back, same TTL
    }
    wait_for("every pin written again", 5 * SECOND, || {
        server.get("tether:cookie:u29").is_some()
    });
    for i in 0..30 {
        let key = format!("tether:cookie:u{i}");
        assert_eq!(server.get(&key), Some(format!("s{}", i % 3)), "{key}");
        assert!((55..=60).contains(&server.ttl(&key)), "{key}: EX 60");
    }
    for i in 0..30 {
        store.touch(&format!("cookie:u{i}"), MINUTE); // once written, quiet again
    }
    put_and_wait(&store, &server, "probe:3", MINUTE);
    assert_eq!(writes_seen(&server) - before, 31, "30 pins and the probe");
}
