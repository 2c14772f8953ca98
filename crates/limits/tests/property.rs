//! Property-style checks of `RateLimiter` over simulated time: the count that passes
//! under overload, and the GCRA bounds under random arrivals.

use std::time::{Duration, Instant};

use tether_limits::{RateLimiter, RateRule, Verdict};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn forty_per_second_offered_for_ten_seconds_against_ten_per_second() {
    for burst in [0, 1, 5, 20] {
        for nodelay in [true, false] {
            let l = RateLimiter::new(RateRule::parse("10r/s", burst, nodelay).unwrap(), 100);
            let t0 = Instant::now();
            let passed = (0..400u64)
                .filter(|i| {
                    l.check(b"client", t0 + Duration::from_millis(25 * i))
                        .passes()
                })
                .count();
            assert_eq!(
                passed,
                100 + burst as usize,
                "burst {burst}, nodelay {nodelay}"
            );
            let s = l.stats();
            assert_eq!(s.rejected, 400 - passed as u64);
            if nodelay || burst == 0 {
                assert_eq!(s.delayed, 0);
            } else {
                assert!(s.delayed > 0);
            }
        }
    }
}

#[test]
fn random_arrivals_nodelay_never_pass_more_than_burst_plus_rate() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20 {
        let burst = rng.below(8) as u32;
        let interval = Duration::from_millis(10 + rng.below(90));
        let rule = RateRule {
            interval,
            burst,
            nodelay: true,
        };
        let l = RateLimiter::new(rule, 10);
        let t0 = Instant::now();
        let mut at = Duration::ZERO;
        let mut passes = Vec::new();
        let mut last_reject_retry = None;
        for _ in 0..2000 {
            at += Duration::from_micros(rng.below(2 * interval.as_micros() as u64 / 3));
            match l.check(b"k", t0 + at) {
                Verdict::Allow => passes.push(at),
                Verdict::Delay(d) => panic!("nodelay delayed by {d:?}"),
                Verdict::Reject { retry_after } => {
                    assert!(retry_after > Duration::ZERO && retry_after <= interval);
                    last_reject_retry = Some(retry_after);
                }
            }
        }
        assert!(
            last_reject_retry.is_some(),
            "round {round}: overload expected"
        );
        // In any window of length w, at most burst + 1 + w / interval pass.
        for (i, &start) in passes.iter().enumerate() {
            for (j, &end) in passes.iter().enumerate().skip(i) {
                let allowed = burst as u128 + 1 + (end - start).as_nanos() / interval.as_nanos();
                assert!(
                    (j - i + 1) as u128 <= allowed,
                    "round {round}: {} passes in {:?}",
                    j - i + 1,
                    end - start
                );
            }
        }
    }
}

#[test]
fn random_arrivals_delayed_leave_at_least_one_interval_apart() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for round in 0..20 {
        let burst = 1 + rng.below(8) as u32;
        let interval = Duration::from_millis(10 + rng.below(90));
        let rule = RateRule {
            interval,
            burst,
            nodelay: false,
        };
        let l = RateLimiter::new(rule, 10);
        let t0 = Instant::now();
        let mut at = Duration::ZERO;
        let mut last_release: Option<Duration> = None;
        let (mut delayed, mut rejected) = (0, 0);
        for _ in 0..2000 {
            at += Duration::from_micros(rng.below(2 * interval.as_micros() as u64 / 3));
            let release = match l.check(b"k", t0 + at) {
                Verdict::Allow => at,
                Verdict::Delay(d) => {
                    assert!(
                        d <= interval * burst,
                        "round {round}: delay {d:?} beyond the burst"
                    );
                    delayed += 1;
                    at + d
                }
                Verdict::Reject { .. } => {
                    rejected += 1;
                    continue;
                }
            };
            if let Some(last) = last_release {
                assert!(
                    release >= last + interval,
                    "round {round}: {release:?} after {last:?}"
                );
            }
            last_release = Some(release);
        }
        assert!(
            delayed > 0 && rejected > 0,
            "round {round}: both paths taken"
        );
    }
}
