//! ns per `RateLimiter::check` with 1, 1,000 and 100,000 keys, on one thread and on two,
//! against `governor`'s keyed limiter (DashMap state) doing the same work; and
//! `ConcurrencyLimiter::acquire` + drop.
//!
//! Run: `cargo bench -p tether-limits --bench check`.

use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use governor::{DefaultKeyedRateLimiter, Quota};
use tether_limits::{ConcurrencyLimiter, RateLimiter, RateRule};

const SIZES: [usize; 3] = [1, 1_000, 100_000];

/// Keys shaped like client addresses.
fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255).into_bytes())
        .collect()
}

fn rule() -> RateRule {
    RateRule::per_second(1000, 100, true)
}

fn governor() -> DefaultKeyedRateLimiter<Vec<u8>> {
    let quota = Quota::per_second(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(101).unwrap_or(NonZeroU32::MIN));
    governor::RateLimiter::keyed(quota)
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_1_thread");
    for n in SIZES {
        let keys = keys(n);
        let ours = RateLimiter::new(rule(), 200_000);
        let theirs = governor();
        for k in &keys {
            ours.check(k, Instant::now());
            let _ = theirs.check_key(k);
        }
        group.bench_with_input(BenchmarkId::new("tether", n), &keys, |b, keys| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                ours.check(&keys[i], Instant::now())
            })
        });
        let now = Instant::now();
        group.bench_with_input(BenchmarkId::new("tether_now_given", n), &keys, |b, keys| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                ours.check(&keys[i], now)
            })
        });
        group.bench_with_input(BenchmarkId::new("governor", n), &keys, |b, keys| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                theirs.check_key(&keys[i]).is_ok()
            })
        });
    }
    group.finish();
}

/// Wall time for `iters` checks on each of two threads at once.
fn two_threads<F>(iters: u64, keys: &Arc<Vec<Vec<u8>>>, check: Arc<F>) -> Duration
where
    F: Fn(&Vec<u8>) -> bool + Send + Sync + 'static,
{
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (keys, check, barrier) =
                (Arc::clone(keys), Arc::clone(&check), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut i = t * keys.len() / 2;
                for _ in 0..iters {
                    i = (i + 1) % keys.len();
                    std::hint::black_box(check(&keys[i]));
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        let _ = t.join();
    }
    start.elapsed()
}

fn two_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_2_threads");
    for n in SIZES {
        let keys = Arc::new(keys(n));
        let ours = Arc::new(RateLimiter::new(rule(), 200_000));
        let theirs = Arc::new(governor());
        for k in keys.iter() {
            ours.check(k, Instant::now());
            let _ = theirs.check_key(k);
        }
        // As in the proxy, the loop's clock of this turn; governor reads its TSC clock.
        let now = Instant::now();
        let f = {
            let ours = Arc::clone(&ours);
            Arc::new(move |k: &Vec<u8>| ours.check(k, now).passes())
        };
        group.bench_function(BenchmarkId::new("tether_now_given", n), |b| {
            b.iter_custom(|iters| two_threads(iters, &keys, Arc::clone(&f)))
        });
        let g = {
            let theirs = Arc::clone(&theirs);
            Arc::new(move |k: &Vec<u8>| theirs.check_key(k).is_ok())
        };
        group.bench_function(BenchmarkId::new("governor", n), |b| {
            b.iter_custom(|iters| two_threads(iters, &keys, Arc::clone(&g)))
        });
    }
    group.finish();
}

fn concurrency(c: &mut Criterion) {
    let limiter = ConcurrencyLimiter::new(1000);
    let held = limiter.acquire(b"10.0.0.1");
    c.bench_function("acquire_release_existing_key", |b| {
        b.iter(|| limiter.acquire(b"10.0.0.1").is_some())
    });
    c.bench_function("acquire_release_new_key", |b| {
        b.iter(|| limiter.acquire(b"10.0.0.2").is_some())
    });
    drop(held);
}

criterion_group!(benches, single_thread, two_thread, concurrency);
criterion_main!(benches);
