//! `ConcurrencyLimiter` (`limit_conn`): permits per key, given back on drop.

use tether_limits::{ConcurrencyLimiter, ConnStats};

#[test]
fn at_most_max_per_key_and_a_dropped_permit_frees_its_place() {
    let l = ConcurrencyLimiter::new(2);
    let p1 = l.acquire(b"a").expect("first");
    let p2 = l.acquire(b"a").expect("second");
    assert!(l.acquire(b"a").is_none(), "third over the limit");
    let other = l.acquire(b"b").expect("another key has its own places");
    assert_eq!(l.holders(b"a"), 2);
    drop(p1);
    assert_eq!(l.holders(b"a"), 1);
    let p3 = l.acquire(b"a").expect("a place was given back");
    assert!(l.acquire(b"a").is_none());
    assert_eq!(
        l.stats(),
        ConnStats {
            acquired: 4,
            rejected: 2,
            keys: 2,
            held: 3,
        }
    );
    drop((p2, p3, other));
    assert_eq!(l.holders(b"a"), 0);
    let s = l.stats();
    assert_eq!((s.keys, s.held), (0, 0), "keys with no holder are removed");
}

#[test]
fn permits_may_be_dropped_on_another_thread() {
    let l = ConcurrencyLimiter::new(1);
    let p = l.acquire(b"k").expect("first");
    assert!(l.acquire(b"k").is_none());
    std::thread::spawn(move || drop(p))
        .join()
        .expect("dropping thread");
    assert!(l.acquire(b"k").is_some());
}

#[test]
fn a_key_removed_and_added_again_is_counted_afresh() {
    let l = ConcurrencyLimiter::new(1);
    for _ in 0..3 {
        let p = l.acquire(b"k").expect("free");
        assert!(l.acquire(b"k").is_none());
        drop(p);
    }
    let s = l.stats();
    assert_eq!((s.acquired, s.rejected, s.keys, s.held), (3, 3, 0, 0));
}

#[test]
fn a_zero_limit_refuses_everything() {
    let l = ConcurrencyLimiter::new(0);
    assert!(l.acquire(b"k").is_none());
    assert_eq!(l.stats().rejected, 1);
    assert_eq!(l.stats().keys, 0);
}

#[test]
fn two_threads_never_exceed_the_limit() {
    let l = ConcurrencyLimiter::new(3);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (l, peak) = (std::sync::Arc::clone(&l), std::sync::Arc::clone(&peak));
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..10_000 {
                    if i % 3 == 0 {
                        mine.clear();
                    } else if let Some(p) = l.acquire(b"k") {
                        mine.push(p);
                    }
                    peak.fetch_max(l.holders(b"k"), std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    assert!(peak.load(std::sync::atomic::Ordering::Relaxed) <= 3);
    assert_eq!(l.stats().held, 0);
    assert!(l.stats().rejected > 0, "the threads did contend");
}
