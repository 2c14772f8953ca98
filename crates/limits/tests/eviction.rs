//! `RateLimiter`'s bound: `max_keys`, least recently seen first out, evictions counted;
//! idle keys dropped without loss.

use std::time::{Duration, Instant};

use tether_limits::{RateLimiter, RateRule, Verdict, DEFAULT_MAX_KEYS};

/// One request a minute, no burst: a second request of a key held is refused, of a key
/// evicted (state lost) allowed.
fn per_minute() -> RateRule {
    RateRule::parse("1r/m", 0, false).unwrap()
}

#[test]
fn the_least_recently_seen_key_goes_first() {
    let l = RateLimiter::with_shards(per_minute(), 3, 1);
    let t0 = Instant::now();
    for k in [b"a", b"b", b"c"] {
        assert_eq!(l.check(k, t0), Verdict::Allow);
    }
    // "a" is seen again (and refused): now "b" is the least recently seen.
    assert!(!l.check(b"a", t0).passes());
    assert_eq!(l.check(b"d", t0), Verdict::Allow);
    let s = l.stats();
    assert_eq!((s.keys, s.evicted, s.expired), (3, 1, 0));
    assert!(!l.check(b"a", t0).passes(), "a was kept");
    assert!(!l.check(b"c", t0).passes(), "c was kept");
    assert!(!l.check(b"d", t0).passes(), "d was kept");
    // "b" lost its state: it passes again, as a new key, and pushes out "a" (order: d c a).
    assert_eq!(l.check(b"b", t0), Verdict::Allow);
    assert_eq!(l.stats().evicted, 2);
    assert_eq!(l.check(b"a", t0), Verdict::Allow, "a was evicted by b");
    assert_eq!(l.stats().evicted, 3);
    assert!(!l.check(b"b", t0).passes(), "b is held again");
}

#[test]
fn idle_keys_are_dropped_without_counting_an_eviction() {
    let l = RateLimiter::with_shards(RateRule::per_second(10, 0, false), 10, 1);
    let t0 = Instant::now();
    l.check(b"a", t0);
    l.check(b"b", t0 + Duration::from_millis(50));
    // At 120 ms "a" is idle (its next request would be on time), "b" is not.
    l.check(b"c", t0 + Duration::from_millis(120));
    let s = l.stats();
    assert_eq!((s.keys, s.expired, s.evicted), (2, 1, 0));
    assert!(!l.check(b"b", t0 + Duration::from_millis(120)).passes());
}

#[test]
fn many_keys_stay_within_max_keys_over_all_shards() {
    let l = RateLimiter::new(per_minute(), 1000);
    let t0 = Instant::now();
    for i in 0..10_000u32 {
        assert_eq!(l.check(&i.to_be_bytes(), t0), Verdict::Allow);
    }
    let s = l.stats();
    assert!(s.keys <= 1000 && s.keys > 900, "keys: {}", s.keys);
    assert_eq!(s.evicted, 10_000 - s.keys);
    assert_eq!(s.allowed, 10_000);
    // The most recent keys are still held.
    assert!(!l.check(&9_999u32.to_be_bytes(), t0).passes());
}

#[test]
fn the_default_bound_is_a_hundred_thousand() {
    assert_eq!(DEFAULT_MAX_KEYS, 100_000);
}
