//! The Redis store against a real `redis-server`: sharing between instances through
//! pub/sub, fetch after a restart, TTLs and key format in Redis, an outage and the
//! recovery, and a server that is down from the start.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, wait_connected, wait_for, RedisServer};
use tether_store::{Options, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);

fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), &Options::default()).expect("open the redis store")
}

/// Asks `store.fetch(key)` and waits (at most `limit`) for the answer and the name of the
/// thread that gave it.
fn fetch(store: &dyn Store, key: &str, limit: Duration) -> (Option<String>, String) {
    let (tx, rx) = mpsc::channel();
    store.fetch(
        key,
        Box::new(move |answer| {
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            let _ = tx.send((answer, thread));
        }),
    );
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("fetch({key}) not answered within {limit:?}"))
}

/// Keys the store's listener was called with.
fn listen(store: &dyn Store) -> Arc<Mutex<Vec<String>>> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    store.subscribe(Box::new(move |key| {
        sink.lock().expect("listener log").push(key.to_string())
    }));
    heard
}

#[test]
fn a_put_on_one_instance_reaches_another_within_a_second() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (open(&server), open(&server));
    wait_connected(&a);
    wait_connected(&b);
    let (heard_a, heard_b) = (listen(&a), listen(&b));
    let second = Duration::from_secs(1);

    a.put("cookie:abc", "s2", MINUTE);
    wait_for("B learns A's put", second, || {
        b.get("cookie:abc").as_deref() == Some("s2")
    });
    a.put("cookie:abc", "s3", MINUTE); // a re-pin after failover
    wait_for("B learns A's re-pin", second, || {
        b.get("cookie:abc").as_deref() == Some("s3")
    });
    a.remove("cookie:abc");
    wait_for("B learns A's remove", second, || {
        b.get("cookie:abc").is_none()
    });
    wait_for("B's listener heard all three", second, || {
        heard_b.lock().expect("log").len() == 3
    });
    assert!(heard_b
        .lock()
        .expect("log")
        .iter()
        .all(|k| k == "cookie:abc"));

    // B's announcement reaches A after A's own three (one channel, in order), so once A
    // has it, A has read and skipped its own.
    b.put("key with spaces", "s 1", MINUTE);
    wait_for("A learns B's put", second, || {
        a.get("key with spaces").as_deref() == Some("s 1")
    });
    wait_for("A's listener heard B", second, || {
        !heard_a.lock().expect("log").is_empty()
    });
    assert_eq!(*heard_a.lock().expect("log"), ["key with spaces"]);

    // An operator's announcement, as the README shows it with redis-cli.
    let _: i64 = redis::cmd("PUBLISH")
        .arg("tether:affinity")
        .arg("del cli 0 15 key with spaces")
        .query(&mut server.raw())
        .expect("PUBLISH");
    wait_for("both forget the key", second, || {
        a.get("key with spaces").is_none() && b.get("key with spaces").is_none()
    });
    assert_eq!(a.stats().outages, 0);
}

#[test]
fn a_restarted_instance_fetches_what_another_wrote() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = open(&server);
    let b = open(&server);
    wait_connected(&b);
    drop(b); // B goes away ...
    a.put("cookie:xyz", "s1", MINUTE);
    wait_for("A's put is in redis", Duration::from_secs(2), || {
        server.get("tether:cookie:xyz").as_deref() == Some("s1")
    });

    let b = open(&server); // ... and comes back with an empty cache
    assert_eq!(b.get("cookie:xyz"), None, "get answers from memory only");
    let (answer, thread) = fetch(&b, "cookie:xyz", Duration::from_secs(3));
    assert_eq!(answer.as_deref(), Some("s1"));
    assert_eq!(
        thread, "tether-redis-writer",
        "answered from the helper thread"
    );
    assert_eq!(
        b.get("cookie:xyz").as_deref(),
        Some("s1"),
        "fetch filled the cache"
    );
    assert_eq!(b.stats().entries, 1);

    let (answer, thread) = fetch(&b, "cookie:xyz", Duration::from_secs(1));
    assert_eq!(answer.as_deref(), Some("s1"));
    assert_ne!(
        thread, "tether-redis-writer",
        "a cached key is answered at once"
    );

    let (answer, _) = fetch(&b, "cookie:nobody", Duration::from_secs(3));
    assert_eq!(answer, None);

    // A key of another type: redis answers WRONGTYPE, the fetch answers None, and the
    // connection keeps working.
    let _: () = redis::cmd("HSET")
        .arg("tether:hash")
        .arg("f")
        .arg("v")
        .query(&mut server.raw())
        .expect("HSET");
    let (answer, _) = fetch(&b, "hash", Duration::from_secs(3));
    assert_eq!(answer, None);
    let (answer, _) = fetch(&a, "cookie:xyz", Duration::from_secs(3));
    assert_eq!(answer.as_deref(), Some("s1"));
    a.remove("cookie:xyz");
    let (answer, _) = fetch(&a, "cookie:xyz", Duration::from_secs(3));
    assert_eq!(answer, None, "removed from the cache and from redis");
    assert_eq!(b.stats().outages, 0);
}

#[test]
fn keys_ttls_and_announcements_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = Options {
        prefix: "app1:".into(),
        ..Options::default()
    };
    let store = RedisStore::open(&server.url(), &options).expect("open");
    wait_connected(&store);
    assert_eq!(store.channel(), "app1:affinity");
    let mut watcher = server.raw();
    let mut pubsub = watcher.as_pubsub();
    pubsub.subscribe("app1:affinity").expect("subscribe");

    let limit = Duration::from_secs(2);
    store.put("k", "s1", MINUTE);
    wait_for("SET app1:k", limit, || server.get("app1:k").is_some());
    assert!((55..=60).contains(&server.ttl("app1:k")), "EX 60");
    assert_eq!(server.ttl("tether:k"), -2, "the default prefix is not used");
    let msg = pubsub.get_message().expect("the put announcement");
    let payload: String = msg.get_payload().expect("text payload");
    let head = format!("put {} ", store.instance_id());
    assert!(payload.starts_with(&head), "{payload}");
    assert!(payload.ends_with(" 1 k s1"), "{payload}");

    store.touch("k", Duration::from_secs(120));
    wait_for("EXPIRE app1:k 120", limit, || server.ttl("app1:k") > 60);
    assert!(server.ttl("app1:k") <= 120);

    store.remove("k");
    wait_for("DEL app1:k", limit, || server.ttl("app1:k") == -2);
    let msg = pubsub.get_message().expect("the del announcement");
    let payload: String = msg.get_payload().expect("text payload");
    assert_eq!(payload, format!("del {} 0 1 k", store.instance_id()));

    store.put("forever", "s1", Duration::MAX); // capped, not an overflow panic
    wait_for("SET app1:forever", limit, || {
        server.get("app1:forever").is_some()
    });
    let ten_years = 10 * 365 * 24 * 3600;
    assert!((ten_years - 5..=ten_years).contains(&server.ttl("app1:forever")));
    // Counted once Redis has answered, which may be just after Redis shows the key.
    wait_for("four writes counted", limit, || {
        store.stats().sent_writes >= 4
    });
    assert_eq!(store.stats().sent_writes, 4);
}

#[test]
fn an_outage_is_served_from_the_cache_warned_once_and_recovered() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store: Arc<dyn Store> = tether_store::from_url(&server.url()).expect("from_url");
    wait_connected(&*store);
    store.put("before", "s1", MINUTE);
    wait_for("the first put in redis", Duration::from_secs(2), || {
        server.get("tether:before").is_some()
    });

    server.kill();
    let during_at = Instant::now();
    store.put("during", "s2", MINUTE);
    assert_eq!(store.get("before").as_deref(), Some("s1"));
    assert_eq!(store.get("during").as_deref(), Some("s2"));
    wait_for("the outage is noticed", Duration::from_secs(3), || {
        store.stats().outages == 1
    });

    // Keep working through several reconnect attempts (100, 200, 400, 800 ms ...).
    let until = Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while Instant::now() < until {
        store.put(&format!("during{n}"), "s2", MINUTE);
        assert_eq!(store.get(&format!("during{n}")).as_deref(), Some("s2"));
        let start = Instant::now();
        let (answer, _) = fetch(&*store, "unknown", Duration::from_secs(1));
        assert_eq!(answer, None);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "a fetch waits for no retry"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = store.stats();
    assert_eq!((stats.outages, stats.recoveries), (1, 0), "{stats:?}");
    assert_eq!(stats.connected, Some(false));
    // Every write of the outage is queued; one write in flight when redis died may be
    // re-queued as well (it is re-sent after the outage, not lost).
    assert!(
        (n + 1..=n + 2).contains(&stats.queued_writes),
        "n = {n}: {stats:?}"
    );

    let server2 = RedisServer::start_on(server.port);
    wait_for(
        "the outage's writes reach redis",
        Duration::from_secs(10),
        || server2.get("tether:during").as_deref() == Some("s2"),
    );
    wait_for("the store is back", Duration::from_secs(10), || {
        store.stats().connected == Some(true)
    });
    let last = format!("tether:during{}", n - 1);
    wait_for("all queued writes sent", Duration::from_secs(2), || {
        server2.get(&last).is_some()
    });
    // Sent with the life it had left, not a fresh minute.
    let elapsed = during_at.elapsed().as_secs() as i64;
    let ttl = server2.ttl("tether:during");
    assert!(
        (60 - elapsed - 2..=60 - elapsed + 1).contains(&ttl),
        "TTL {ttl} after {elapsed} s"
    );
    store.put("after", "s3", MINUTE);
    wait_for("a new put reaches redis", Duration::from_secs(2), || {
        server2.get("tether:after").is_some()
    });
    let stats = store.stats();
    assert_eq!((stats.outages, stats.recoveries), (1, 1), "{stats:?}");
    assert_eq!((stats.queued_writes, stats.dropped_writes), (0, 0));
}

#[test]
fn unreachable_from_the_start_serves_memory_and_bounds_the_queue() {
    // No redis-server needed: nothing listens on this port.
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let options = Options {
        max_queue: 5,
        ..Options::default()
    };
    let store = RedisStore::open(&url, &options).expect("open does not connect");
    wait_for("the outage is noticed", Duration::from_secs(3), || {
        store.stats().outages == 1
    });
    for i in 0..8 {
        store.put(&format!("k{i}"), "s1", MINUTE);
    }
    assert_eq!(store.get("k0").as_deref(), Some("s1"));
    assert_eq!(store.get("k7").as_deref(), Some("s1"));
    let (answer, _) = fetch(&store, "k7", Duration::from_secs(1));
    assert_eq!(answer.as_deref(), Some("s1"), "a cached key needs no redis");
    let (answer, _) = fetch(&store, "nope", Duration::from_secs(1));
    assert_eq!(answer, None);

    std::thread::sleep(Duration::from_millis(800)); // several retries
    let stats = store.stats();
    assert_eq!(
        (stats.queued_writes, stats.dropped_writes),
        (5, 3),
        "{stats:?}"
    );
    assert_eq!(
        (stats.outages, stats.recoveries, stats.sent_writes),
        (1, 0, 0)
    );

    let start = Instant::now();
    drop(store);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "dropping stops the threads"
    );
}

#[test]
fn from_url_builds_a_working_redis_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = tether_store::from_url(&server.url()).expect("redis store");
    wait_connected(&*store);
    store.put("k", "s9", MINUTE);
    assert_eq!(store.get("k").as_deref(), Some("s9"));
    wait_for("the put in redis", Duration::from_secs(2), || {
        server.get("tether:k").as_deref() == Some("s9")
    });
    let err = tether_store::from_url("redis:/127.0.0.1")
        .err()
        .expect("an error");
    assert!(err.contains("expected \"memory\""), "{err}");
}
