//! Criterion benchmarks of one affinity decision per policy, and of sealing and opening.
//!
//! A pool of 10 servers holding 100 sessions each (the active counts that least connections
//! and the bounded load read), as the proxy sees it for one request:
//!
//! - `decide/round_robin`, `decide/least_connections`: `Pool::select`;
//! - `decide/ip_hash_bounded` (factor 1.25), `decide/ip_hash_unbounded`: `Pool::select`
//!   with the client address, cycling through 1024 scattered addresses;
//! - `decide/cookie_open_resolve`: find the affinity cookie in a `Cookie` header with three
//!   other cookies, open it, `Pool::resolve` (kept);
//! - `decide/session_id_split_resolve`: split a tagged session id, `Pool::resolve`;
//! - `seal/*`: sealing a cookie or a tag (paid once per new session), opening each, and
//!   writing the `Set-Cookie` value.
//!
//! `cargo bench -p tether-balance --bench affinity`; figures in docs/benchmarks.md.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tether_balance::{
    find_cookie, set_cookie, ActiveGuard, ClientKey, FailoverMode, PolicyKind, Pool, PoolOptions,
    Sealer, ServerConfig,
};

const SERVERS: usize = 10;
const HELD: usize = 100;
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const EXPIRY: u64 = 4_000_000_000;
const NOW_UNIX: u64 = 1_800_000_000;

/// 10 servers `s0`..`s9` with `HELD` sessions each; the guards keep them counted.
fn pool(policy: PolicyKind) -> (Pool, Vec<ActiveGuard>) {
    let servers: Vec<ServerConfig> = (0..SERVERS)
        .map(|i| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 9000 + i as u16));
            ServerConfig::new(format!("s{i}"), addr)
        })
        .collect();
    let options = PoolOptions {
        policy,
        ..PoolOptions::default()
    };
    let pool = Pool::new("bench", &servers, options).expect("valid pool");
    let guards = pool
        .servers()
        .iter()
        .flat_map(|s| (0..HELD).map(move |_| s.acquire()))
        .collect();
    (pool, guards)
}

/// 1024 client addresses scattered over 10.0.0.0/8.
fn clients() -> Vec<ClientKey> {
    (0..1024u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761) & 0x00ff_ffff;
            ClientKey::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | x)))
        })
        .collect()
}

fn decide(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("decide");
    for (name, policy) in [
        ("round_robin", PolicyKind::RoundRobin),
        ("least_connections", PolicyKind::LeastConnections),
    ] {
        let (pool, _held) = pool(policy);
        g.bench_function(name, |b| b.iter(|| black_box(pool.select(None, now))));
    }
    let keys = clients();
    for (name, factor) in [("ip_hash_bounded", Some(1.25)), ("ip_hash_unbounded", None)] {
        let (pool, _held) = pool(PolicyKind::IpHash {
            balance_factor: factor,
        });
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(pool.select(Some(keys[i].as_bytes()), now))
            })
        });
    }

    let sealer = Sealer::new(&[KEY]).expect("valid key");
    let (pool, _held) = pool(PolicyKind::RoundRobin);
    let cookie = sealer.seal_cookie("s3", EXPIRY);
    let header = format!("_ga=GA1.2.3.4; theme=dark; tether_server={cookie}; lang=en");
    g.bench_function("cookie_open_resolve", |b| {
        b.iter(|| {
            let value = find_cookie(black_box(&header), "tether_server").expect("present");
            let id = sealer.open_cookie(value, NOW_UNIX).expect("genuine");
            black_box(pool.resolve(&id, None, FailoverMode::Repin, now))
        })
    });
    let tagged = sealer.tag_value("s3", "0f9c2d6e8a7b4c1d9e0f2a3b4c5d6e7f");
    g.bench_function("session_id_split_resolve", |b| {
        b.iter(|| {
            let (id, original) = sealer.split_tagged(black_box(&tagged)).expect("genuine");
            black_box(original);
            black_box(pool.resolve(&id, None, FailoverMode::Repin, now))
        })
    });
    g.finish();
}

fn seal(c: &mut Criterion) {
    let sealer = Sealer::new(&[KEY]).expect("valid key");
    let cookie = sealer.seal_cookie("s3", EXPIRY);
    let tag = sealer.tag("s3");
    let mut g = c.benchmark_group("seal");
    g.bench_function("seal_cookie", |b| {
        b.iter(|| black_box(sealer.seal_cookie(black_box("s3"), EXPIRY)))
    });
    g.bench_function("open_cookie", |b| {
        b.iter(|| black_box(sealer.open_cookie(black_box(&cookie), NOW_UNIX)))
    });
    g.bench_function("tag", |b| b.iter(|| black_box(sealer.tag(black_box("s3")))));
    g.bench_function("open_tag", |b| {
        b.iter(|| black_box(sealer.open_tag(black_box(&tag))))
    });
    g.bench_function("set_cookie_line", |b| {
        b.iter(|| {
            black_box(set_cookie(
                "tether_server",
                black_box(&cookie),
                EXPIRY,
                NOW_UNIX,
                false,
            ))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decide, seal
}
criterion_main!(benches);
