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
//! After Criterion, every case is timed again in 31 interleaved rounds (all cases take
//! turns, so drifting noise on a shared machine hits them alike) and the median per case
//! is printed: Criterion's output is the record, the summary a steadier comparison.
//!
//!     cargo bench -p tether-balance --bench affinity
//!
//! Figures in docs/benchmarks.md ("Affinity").

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::Criterion;
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

/// Everything the cases read, built once.
struct Fixture {
    pools: Vec<(Pool, Vec<ActiveGuard>)>,
    clients: Vec<ClientKey>,
    sealer: Sealer,
    header: String,
    cookie: String,
    tag: String,
    tagged: String,
    now: Instant,
}

const RR: usize = 0;
const LC: usize = 1;
const IP_BOUNDED: usize = 2;
const IP_UNBOUNDED: usize = 3;

fn fixture() -> Fixture {
    let sealer = Sealer::new(&[KEY]).expect("valid key");
    let cookie = sealer.seal_cookie("s3", EXPIRY);
    // The decisions measure the success path: the tokens open.
    assert_eq!(sealer.open_cookie(&cookie, NOW_UNIX).as_deref(), Ok("s3"));
    Fixture {
        pools: vec![
            pool(PolicyKind::RoundRobin),
            pool(PolicyKind::LeastConnections),
            pool(PolicyKind::IpHash {
                balance_factor: Some(1.25),
            }),
            pool(PolicyKind::IpHash {
                balance_factor: None,
            }),
        ],
        // 1024 client addresses scattered over 10.0.0.0/8.
        clients: (0..1024u32)
            .map(|i| {
                let x = i.wrapping_mul(2_654_435_761) & 0x00ff_ffff;
                ClientKey::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | x)))
            })
            .collect(),
        header: format!("_ga=GA1.2.3.4; theme=dark; tether_server={cookie}; lang=en"),
        tag: sealer.tag("s3"),
        tagged: sealer.tag_value("s3", "0f9c2d6e8a7b4c1d9e0f2a3b4c5d6e7f"),
        cookie,
        sealer,
        now: Instant::now(),
    }
}

type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// The cases, each one call of what is measured. `group/name`.
fn cases(fx: &Fixture) -> Vec<Case<'_>> {
    let now = fx.now;
    let select = |i: usize| {
        let p = &fx.pools[i].0;
        move || {
            black_box(p.select(None, now));
        }
    };
    let hashed = |i: usize| {
        let p = &fx.pools[i].0;
        let mut n = 0usize;
        move || {
            n = (n + 1) % fx.clients.len();
            black_box(p.select(Some(fx.clients[n].as_bytes()), now));
        }
    };
    let rr = &fx.pools[RR].0;
    vec![
        ("decide/round_robin", Box::new(select(RR))),
        ("decide/least_connections", Box::new(select(LC))),
        ("decide/ip_hash_bounded", Box::new(hashed(IP_BOUNDED))),
        ("decide/ip_hash_unbounded", Box::new(hashed(IP_UNBOUNDED))),
        (
            "decide/cookie_open_resolve",
            Box::new(move || {
                let value = find_cookie(black_box(&fx.header), "tether_server");
                let id = fx.sealer.open_cookie(value.unwrap_or_default(), NOW_UNIX);
                let id = id.unwrap_or_default();
                black_box(rr.resolve(&id, None, FailoverMode::Repin, now));
            }),
        ),
        (
            "decide/session_id_split_resolve",
            Box::new(move || {
                let split = fx.sealer.split_tagged(black_box(&fx.tagged));
                let (id, original) = split.unwrap_or_default();
                black_box(original);
                black_box(rr.resolve(&id, None, FailoverMode::Repin, now));
            }),
        ),
        (
            "seal/seal_cookie",
            Box::new(|| {
                black_box(fx.sealer.seal_cookie(black_box("s3"), EXPIRY));
            }),
        ),
        (
            "seal/open_cookie",
            Box::new(|| {
                black_box(fx.sealer.open_cookie(black_box(&fx.cookie), NOW_UNIX)).ok();
            }),
        ),
        (
            "seal/tag",
            Box::new(|| {
                black_box(fx.sealer.tag(black_box("s3")));
            }),
        ),
        (
            "seal/open_tag",
            Box::new(|| {
                black_box(fx.sealer.open_tag(black_box(&fx.tag))).ok();
            }),
        ),
        (
            "seal/set_cookie_line",
            Box::new(|| {
                black_box(set_cookie(
                    "tether_server",
                    black_box(&fx.cookie),
                    EXPIRY,
                    NOW_UNIX,
                    false,
                ));
            }),
        ),
    ]
}

/// Every case in turn, `ROUNDS` times; the median ns per call of each.
fn summary(fx: &Fixture) {
    const ROUNDS: usize = 31;
    const TARGET: Duration = Duration::from_millis(20);
    let mut cases = cases(fx);
    // Calls per round: about TARGET of work per case.
    let calls: Vec<u32> = cases
        .iter_mut()
        .map(|(_, f)| {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < TARGET / 4 {
                f();
                n += 1;
            }
            (n * 4).max(1)
        })
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..calls[i] {
                f();
            }
            times[i].push(start.elapsed().as_nanos() as f64 / f64::from(calls[i]));
        }
    }
    println!("summary (median of {ROUNDS} interleaved rounds, ns per call):");
    for ((name, _), mut t) in cases.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!("  {name:34} {:8.0}", t[t.len() / 2]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let benchmarking = has("--bench") && !has("--test") && !has("--list");
    let fx = fixture();
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (name, mut f) in cases(&fx) {
        c.bench_function(name, |b| b.iter(&mut f));
    }
    c.final_summary();
    if benchmarking && !args.iter().any(|x| x.starts_with("--profile-time")) {
        summary(&fx);
    }
}
