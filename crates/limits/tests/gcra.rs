//! The GCRA arithmetic of `RateLimiter::check` with an injected clock: nginx `limit_req`
//! semantics for burst, nodelay, delay values and retry_after.

use std::time::{Duration, Instant};

use tether_limits::{RateLimiter, RateRule, RateStats, Verdict};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn reject(retry_ms: u64) -> Verdict {
    Verdict::Reject {
        retry_after: ms(retry_ms),
    }
}

fn limiter(burst: u32, nodelay: bool) -> (RateLimiter, Instant) {
    let l = RateLimiter::new(RateRule::parse("10r/s", burst, nodelay).unwrap(), 1000);
    (l, Instant::now())
}

#[test]
fn no_burst_one_request_per_interval() {
    let (l, t0) = limiter(0, false);
    assert_eq!(l.check(b"k", t0), Verdict::Allow);
    assert_eq!(l.check(b"k", t0), reject(100));
    assert_eq!(l.check(b"k", t0 + ms(50)), reject(50));
    assert_eq!(l.check(b"k", t0 + ms(100)), Verdict::Allow);
    assert_eq!(l.check(b"k", t0 + ms(150)), reject(50));
    assert_eq!(l.check(b"k", t0 + ms(199)), reject(1));
    assert_eq!(l.check(b"k", t0 + ms(200)), Verdict::Allow);
    // A long pause earns nothing beyond the (zero) burst.
    assert_eq!(l.check(b"k", t0 + ms(10_000)), Verdict::Allow);
    assert_eq!(l.check(b"k", t0 + ms(10_000)), reject(100));
}

#[test]
fn burst_without_nodelay_delays_by_excess_times_interval() {
    let (l, t0) = limiter(3, false);
    assert_eq!(l.check(b"k", t0), Verdict::Allow);
    assert_eq!(l.check(b"k", t0), Verdict::Delay(ms(100)));
    assert_eq!(l.check(b"k", t0), Verdict::Delay(ms(200)));
    assert_eq!(l.check(b"k", t0), Verdict::Delay(ms(300)));
    // The queue holds 3: the fifth waits for the first queued one to leave.
    assert_eq!(l.check(b"k", t0), reject(100));
    assert_eq!(l.check(b"k", t0 + ms(40)), reject(60));
    assert_eq!(l.check(b"k", t0 + ms(100)), Verdict::Delay(ms(300)));
    assert_eq!(l.check(b"k", t0 + ms(100)), reject(100));
    // Idle long enough for the queue to drain: a fresh start.
    assert_eq!(l.check(b"k", t0 + ms(500)), Verdict::Allow);
}

#[test]
fn a_request_early_by_less_than_an_interval_is_delayed_by_that_much() {
    // nginx: excess = 0 - 10 r/s * 50 ms + 1 = 0.5 -> delay 0.5 * 100 ms.
    let (l, t0) = limiter(5, false);
    assert_eq!(l.check(b"k", t0), Verdict::Allow);
    assert_eq!(l.check(b"k", t0 + ms(50)), Verdict::Delay(ms(50)));
    assert_eq!(l.check(b"k", t0 + ms(60)), Verdict::Delay(ms(140)));
}

#[test]
fn burst_with_nodelay_passes_at_once_and_refills_one_per_interval() {
    let (l, t0) = limiter(3, true);
    for _ in 0..4 {
        assert_eq!(l.check(b"k", t0), Verdict::Allow);
    }
    assert_eq!(l.check(b"k", t0), reject(100));
    assert_eq!(l.check(b"k", t0 + ms(99)), reject(1));
    assert_eq!(l.check(b"k", t0 + ms(100)), Verdict::Allow);
    assert_eq!(l.check(b"k", t0 + ms(100)), reject(100));
    assert_eq!(l.check(b"k", t0 + ms(250)), Verdict::Allow);
    assert_eq!(l.check(b"k", t0 + ms(250)), reject(50));
    // After 400 ms idle the whole burst is back, no more.
    let t = t0 + ms(250 + 400);
    for _ in 0..4 {
        assert_eq!(l.check(b"k", t), Verdict::Allow);
    }
    assert_eq!(l.check(b"k", t), reject(100));
}

#[test]
fn a_rejection_leaves_the_state_as_it_was() {
    let (l, t0) = limiter(1, true);
    assert_eq!(l.check(b"k", t0), Verdict::Allow);
    assert_eq!(l.check(b"k", t0), Verdict::Allow);
    let Verdict::Reject { retry_after } = l.check(b"k", t0 + ms(30)) else {
        panic!("the third request within the burst must be refused");
    };
    assert_eq!(retry_after, ms(70));
    for _ in 0..100 {
        assert!(!l.check(b"k", t0 + ms(30)).passes());
    }
    assert_eq!(l.check(b"k", t0 + ms(30) + retry_after), Verdict::Allow);
}

#[test]
fn uneven_rates_and_keys_are_independent() {
    let l = RateLimiter::new(RateRule::parse("3r/s", 0, false).unwrap(), 1000);
    let t0 = Instant::now();
    let third = Duration::from_nanos(333_333_333);
    assert_eq!(l.check(b"a", t0), Verdict::Allow);
    assert_eq!(l.check(b"b", t0), Verdict::Allow);
    assert_eq!(l.check(b"a", t0), Verdict::Reject { retry_after: third });
    assert_eq!(l.check(b"a", t0 + third), Verdict::Allow);
    assert_eq!(l.check(b"b", t0 + third), Verdict::Allow);
    assert_eq!(l.check(b"", t0), Verdict::Allow, "an empty key is a key");
}

#[test]
fn counters_count_each_verdict() {
    let (l, t0) = limiter(1, false);
    l.check(b"a", t0); // allow
    l.check(b"a", t0); // delay
    l.check(b"a", t0); // reject
    l.check(b"b", t0); // allow
    assert_eq!(
        l.stats(),
        RateStats {
            allowed: 2,
            delayed: 1,
            rejected: 1,
            evicted: 0,
            expired: 0,
            keys: 2,
        }
    );
}

#[test]
fn two_threads_on_one_key_share_its_burst_exactly() {
    let l = std::sync::Arc::new(RateLimiter::new(RateRule::per_second(1, 9, true), 1000));
    let now = Instant::now();
    let passed: usize = (0..2)
        .map(|_| {
            let l = std::sync::Arc::clone(&l);
            std::thread::spawn(move || (0..1000).filter(|_| l.check(b"k", now).passes()).count())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("checking thread"))
        .sum();
    assert_eq!(passed, 10);
    assert_eq!(l.stats().rejected, 1990);
}

#[test]
fn retry_after_header_rounds_up_to_whole_seconds() {
    use tether_limits::retry_after_secs;
    assert_eq!(retry_after_secs(ms(1)), 1);
    assert_eq!(retry_after_secs(ms(1000)), 1);
    assert_eq!(retry_after_secs(ms(1001)), 2);
    assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    assert_eq!(retry_after_secs(Duration::ZERO), 0);
}
