//! The in-memory store: expiry (with injected time, and with a real short TTL), touch,
//! sweeping, the bound on entries, sharing between threads, and `fetch`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wait_for;
use tether_store::{MemoryStore, Store};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn entries_expire_at_their_ttl() {
    let store = MemoryStore::default();
    let t0 = Instant::now();
    store.put_at("k", "s1", 10 * SEC, t0);
    assert_eq!(store.get_at("k", t0 + 9 * SEC).as_deref(), Some("s1"));
    assert_eq!(store.len(), 1);
    assert_eq!(store.get_at("k", t0 + 10 * SEC), None);
    assert_eq!(store.len(), 0, "an expired entry is removed when read");
}

#[test]
fn a_short_ttl_expires_in_real_time() {
    let store = MemoryStore::default();
    store.put("k", "s1", Duration::from_millis(50));
    assert_eq!(store.get("k").as_deref(), Some("s1"));
    let took = wait_for("the entry expires", 2 * SEC, || store.get("k").is_none());
    assert!(
        took >= Duration::from_millis(40),
        "expired too early: {took:?}"
    );
}

#[test]
fn put_replaces_and_touch_extends() {
    let store = MemoryStore::default();
    let t0 = Instant::now();
    store.put_at("k", "s1", 10 * SEC, t0);
    store.put_at("k", "s2", 10 * SEC, t0 + SEC); // re-pin
    assert_eq!(store.get_at("k", t0 + 2 * SEC).as_deref(), Some("s2"));
    assert!(store.touch_at("k", 10 * SEC, t0 + 8 * SEC));
    assert_eq!(store.get_at("k", t0 + 17 * SEC).as_deref(), Some("s2"));
    assert_eq!(store.get_at("k", t0 + 18 * SEC), None);
    assert!(
        !store.touch_at("k", 10 * SEC, t0 + 19 * SEC),
        "nothing to touch"
    );
    assert!(!store.touch_at("never", 10 * SEC, t0));
    store.put("forever", "s1", Duration::MAX); // capped, no overflow panic
    assert!(store.get("forever").is_some());
    store.put("gone", "s1", 10 * SEC);
    store.remove("gone");
    assert_eq!(store.get("gone"), None);
}

#[test]
fn sweep_drops_expired_entries() {
    let store = MemoryStore::default();
    let t0 = Instant::now();
    for i in 0..10 {
        store.put_at(&format!("short{i}"), "s1", SEC, t0);
        store.put_at(&format!("long{i}"), "s1", 60 * SEC, t0);
    }
    assert_eq!(store.sweep(t0 + SEC / 2), 0);
    assert_eq!(store.sweep(t0 + 2 * SEC), 10);
    assert_eq!(store.len(), 10);
}

#[test]
fn puts_sweep_the_shards_in_turn() {
    let store = MemoryStore::default();
    let t0 = Instant::now();
    for i in 0..100 {
        store.put_at(&format!("old{i}"), "s1", SEC, t0);
    }
    // One shard is swept every 256 puts: 16 shards, 4096 puts.
    let t1 = t0 + 2 * SEC;
    for i in 0..4096 {
        store.put_at(&format!("new{i}"), "s1", 60 * SEC, t1);
    }
    assert_eq!(store.len(), 4096, "the 100 expired entries were swept");
}

#[test]
fn a_full_store_evicts_expired_entries_first_then_the_soonest_to_expire() {
    let store = MemoryStore::with_shards(4, 1);
    let t0 = Instant::now();
    store.put_at("a", "s1", SEC, t0);
    store.put_at("b", "s1", 100 * SEC, t0);
    store.put_at("c", "s1", 50 * SEC, t0);
    store.put_at("d", "s1", 100 * SEC, t0);
    let t1 = t0 + 2 * SEC;
    store.put_at("e", "s1", 100 * SEC, t1);
    assert_eq!(store.evicted(), 0, "a was expired: no live entry evicted");
    assert_eq!(store.len(), 4);
    store.put_at("f", "s1", 100 * SEC, t1);
    assert_eq!(store.evicted(), 1);
    assert_eq!(store.get_at("c", t1), None, "c expires soonest");
    for k in ["b", "d", "e", "f"] {
        assert!(store.get_at(k, t1).is_some(), "{k} kept");
    }
    store.put_at("b", "s2", 100 * SEC, t1);
    assert_eq!(store.evicted(), 1, "replacing a key needs no room");
}

#[test]
fn the_bound_holds_under_many_keys() {
    let store = MemoryStore::new(1000);
    for i in 0..10_000 {
        store.put(&format!("k{i}"), "s1", 60 * SEC);
    }
    let stats = store.stats();
    assert!(stats.entries <= 1000, "{stats:?}");
    assert!(stats.entries >= 900, "evicts in small batches: {stats:?}");
    assert_eq!(stats.evicted as usize, 10_000 - stats.entries);
    assert!(store.get("k9999").is_some(), "the newest key is kept");
}

#[test]
fn workers_share_one_store() {
    let store: Arc<dyn Store> = tether_store::from_url("memory").expect("memory store");
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    store.put(&format!("w{w}k{i}"), &format!("s{w}"), 60 * SEC);
                    assert!(store.get(&format!("w{w}k{i}")).is_some());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(store.stats().entries, 4000);
    assert_eq!(store.get("w3k999").as_deref(), Some("s3"));
}

#[test]
fn fetch_answers_at_once_and_subscribe_is_never_called() {
    let store = MemoryStore::default();
    let called = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&called);
    store.subscribe(Box::new(move |_| flag.store(true, Ordering::SeqCst)));
    store.put("k", "s1", 60 * SEC);

    let answered = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&answered);
    store.fetch(
        "k",
        Box::new(move |v| {
            assert_eq!(v.as_deref(), Some("s1"));
            seen.store(true, Ordering::SeqCst);
        }),
    );
    assert!(
        answered.load(Ordering::SeqCst),
        "done ran before fetch returned"
    );
    let missed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&missed);
    store.fetch(
        "nope",
        Box::new(move |v| seen.store(v.is_none(), Ordering::SeqCst)),
    );
    assert!(missed.load(Ordering::SeqCst));
    assert!(!called.load(Ordering::SeqCst));
    assert_eq!(store.stats().connected, None);
}

#[test]
fn lookup_answers_found_or_missing_at_once() {
    use std::sync::mpsc;
    use tether_store::Lookup;
    let store = MemoryStore::default();
    store.put("k", "s1", SEC);
    for (key, expected) in [("k", Lookup::Found("s1".into())), ("x", Lookup::Missing)] {
        let (tx, rx) = mpsc::channel();
        store.lookup(key, Box::new(move |a| drop(tx.send(a))));
        assert_eq!(
            rx.try_recv().ok(),
            Some(expected),
            "answered before lookup returns"
        );
    }
    let stats = store.stats();
    assert_eq!((stats.up, stats.since_last_answer), (None, None));
}
