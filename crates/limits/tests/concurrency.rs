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
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let l = ConcurrencyLimiter::new(3);
    // Permits alive, as the threads count them (not as the limiter reports).
    let alive = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (l, alive) = (Arc::clone(&l), Arc::clone(&alive));
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    // Four tries per round: alone, a thread is refused once a round.
                    let mut mine = Vec::new();
                    for _ in 0..4 {
                        if let Some(p) = l.acquire(b"k") {
                            let now_alive = alive.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now_alive <= 3, "{now_alive} permits alive");
                            mine.push(p);
                        }
                    }
                    for p in mine {
                        alive.fetch_sub(1, Ordering::SeqCst);
                        drop(p);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    let s = l.stats();
    assert_eq!((s.held, s.keys), (0, 0));
    assert_eq!(s.acquired + s.rejected, 2 * 5_000 * 4);
    assert!(
        s.rejected >= 2 * 5_000,
        "each round of four is refused at least once"
    );
}

#[test]
fn limiters_are_shared_between_threads_and_permits_move() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<tether_limits::RateLimiter>();
    send_sync::<ConcurrencyLimiter>();
    send::<tether_limits::Permit>();
}
