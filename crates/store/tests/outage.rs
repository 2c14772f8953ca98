//! The Redis store through outages, against a real `redis-server`: pins learned while it
//! is down reach it (and the other instance) when it returns, a Redis restarted empty is
//! refilled by touches, and a hung Redis (SIGSTOP) is declared down within a bound, never
//! makes a lookup wait longer than that, and is used again after SIGCONT.

mod common;

use std::time::{Duration, Instant};

use common::{limit, lookup, wait_connected, wait_for, RedisServer};
use tether_store::{LimitAnswer, Lookup, Options, RateRule, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), &Options::default()).expect("open the redis store")
}

const RULE: RateRule = RateRule {
    interval: Duration::from_millis(100),
    burst: 0,
    nodelay: true,
};

#[test]
fn pins_learned_during_an_outage_reach_redis_and_the_other_instance() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (open(&server), open(&server));
    wait_connected(&a);
    wait_connected(&b);

    server.kill();
    wait_for("A notices the outage", 3 * SECOND, || {
        a.stats().up == Some(false)
    });
    a.put("cookie:u1", "s1", MINUTE); // learned during the outage
    for _ in 0..500 {
        a.touch("cookie:u1", MINUTE); // every request touches: one queued write in all
    }
    let stats = a.stats();
    // One entry for the key; a second only while the writer holds the first in a batch it
    // is still trying to send (a loaded machine: the retry has not put it back yet).
    assert!(
        (1..=2).contains(&stats.queued_writes) && stats.dropped_writes == 0,
        "{stats:?}"
    );
    let (answer, took) = lookup(&a, "cookie:nobody", SECOND);
    assert_eq!(answer, Lookup::Down, "a lookup tells down from missing");
    assert!(took < Duration::from_millis(100), "at once: {took:?}");
    assert_eq!(
        lookup(&a, "cookie:u1", SECOND).0,
        Lookup::Found("s1".into())
    );
    let (answer, took) = limit(&a, "ip:1", &RULE);
    assert_eq!(answer, LimitAnswer::Down);
    assert!(took < Duration::from_millis(100), "at once: {took:?}");

    let server = RedisServer::start_on(server.port); // back, empty
    wait_for("the pin reaches redis", 10 * SECOND, || {
        server.get("tether:cookie:u1").as_deref() == Some("s1")
    });
    assert!(server.ttl("tether:cookie:u1") > 50, "the life it had left");
    wait_for("B is back", 10 * SECOND, || b.stats().up == Some(true));
    // B learns it from the announcement or, failing that, from a lookup in Redis.
    assert_eq!(
        lookup(&b, "cookie:u1", SECOND).0,
        Lookup::Found("s1".into())
    );
    assert_eq!(
        lookup(&b, "cookie:other", SECOND).0,
        Lookup::Missing,
        "up again: a miss is a miss"
    );
    let stats = a.stats();
    assert_eq!((stats.outages, stats.recoveries), (1, 1), "{stats:?}");
    assert_eq!(stats.queued_writes, 0);
}

#[test]
fn a_redis_restarted_empty_is_refilled_by_touches() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = open(&server);
    wait_connected(&a);
    for i in 0..30 {
        a.put(&format!("cookie:u{i}"), &format!("s{}", i % 3), MINUTE);
    }
    wait_for("the pins in redis", 2 * SECOND, || {
        server.get("tether:cookie:u29").is_some()
    });

    server.kill();
    let server = RedisServer::start_on(server.port);
    assert_eq!(server.get("tether:cookie:u0"), None, "restarted empty");
    wait_for("the store is back", 10 * SECOND, || {
        a.stats().connected == Some(true)
    });
    for i in 0..30 {
        a.touch(&format!("cookie:u{i}"), 2 * MINUTE); // the users come back
    }
    wait_for("every pin is written again", 3 * SECOND, || {
        server.get("tether:cookie:u29").is_some()
    });
    for i in 0..30 {
        let key = format!("tether:cookie:u{i}");
        assert_eq!(server.get(&key), Some(format!("s{}", i % 3)), "{key}");
        assert!((115..=120).contains(&server.ttl(&key)), "{key}: EX 120");
    }
    // A new instance (empty cache) finds every user's server.
    let c = open(&server);
    wait_connected(&c);
    for i in 0..30 {
        let key = format!("cookie:u{i}");
        let found = Lookup::Found(format!("s{}", i % 3));
        assert_eq!(lookup(&c, &key, SECOND).0, found, "{key}");
    }
    // A touch of a key this instance does not hold still extends it in Redis (EXPIRE).
    c.remove("cookie:u0");
    a.put("cookie:only-a", "s1", MINUTE);
    wait_for("only-a in redis", 2 * SECOND, || {
        server.get("tether:cookie:only-a").is_some()
    });
    let d = open(&server);
    wait_connected(&d);
    d.touch("cookie:only-a", 5 * MINUTE);
    wait_for(
        "EXPIRE from an instance without the entry",
        2 * SECOND,
        || server.ttl("tether:cookie:only-a") > 120,
    );
}

#[test]
fn a_hung_redis_is_down_within_a_bound_and_back_after_sigcont() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // No traffic at all (the `cookie` policy): only the health pings can notice.
    let a = open(&server);
    wait_connected(&a);
    a.put("cookie:u1", "s1", MINUTE);
    wait_for("the pin in redis", 2 * SECOND, || {
        server.get("tether:cookie:u1").is_some()
    });
    let fresh = a.stats().since_last_answer.expect("redis answered");
    assert!(fresh < SECOND, "{fresh:?}");

    server.pause();
    let paused = Instant::now();
    // Asked before the hang is noticed: answered by the deadline, not by a read timeout
    // that could come later.
    let (answer, took) = lookup(&a, "cookie:nobody", 2 * SECOND);
    assert_eq!(answer, Lookup::Down);
    assert!(took < Duration::from_millis(600), "lookup waited {took:?}");
    let noticed = wait_for("the hang is noticed", 3 * SECOND, || {
        a.stats().up == Some(false)
    });
    let noticed = noticed.max(paused.elapsed());
    assert!(
        noticed < Duration::from_millis(1500),
        "noticed after {noticed:?}"
    );
    let (answer, took) = lookup(&a, "cookie:nobody", SECOND);
    assert_eq!(answer, Lookup::Down);
    assert!(
        took < Duration::from_millis(100),
        "once down, at once: {took:?}"
    );
    let (answer, took) = limit(&a, "ip:1", &RULE);
    assert_eq!(answer, LimitAnswer::Down);
    assert!(took < Duration::from_millis(600), "limit waited {took:?}");
    assert_eq!(
        a.get("cookie:u1").as_deref(),
        Some("s1"),
        "the cache serves"
    );
    a.put("cookie:u2", "s2", MINUTE); // learned during the hang
    let stats = a.stats();
    assert!(stats.outages >= 1, "{stats:?}");
    assert!(
        stats
            .since_last_answer
            .is_some_and(|d| d >= Duration::from_millis(500)),
        "{stats:?}"
    );

    server.resume();
    wait_for("up after SIGCONT", 10 * SECOND, || {
        a.stats().up == Some(true)
    });
    wait_for("the hang's pin reaches redis", 3 * SECOND, || {
        server.get("tether:cookie:u2").as_deref() == Some("s2")
    });
    assert_eq!(lookup(&a, "cookie:nobody", SECOND).0, Lookup::Missing);
    let stats = a.stats();
    assert_eq!(stats.outages, stats.recoveries, "{stats:?}");
    assert!(
        stats.since_last_answer.is_some_and(|d| d < SECOND),
        "{stats:?}"
    );
}

#[test]
fn a_hung_redis_at_the_first_connect_is_an_outage() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    server.pause(); // the kernel still accepts connections; redis never answers
    let a = open(&server);
    wait_for("the outage is noticed", 3 * SECOND, || {
        a.stats().outages == 1
    });
    assert_eq!(a.stats().up, Some(false));
    assert_eq!(a.stats().since_last_answer, None, "never answered");
    server.resume();
    wait_for("up after SIGCONT", 10 * SECOND, || {
        a.stats().up == Some(true)
    });
}
