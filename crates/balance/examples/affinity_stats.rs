//! Figures behind `docs/affinity.md`: how many clients move when a server joins, how evenly
//! client addresses spread, and what a selection costs.
//!
//! ```text
//! cargo run --release -p tether-balance --example affinity_stats
//! ```
//!
//! Everything is deterministic (fixed address sets, no randomness) except the timings.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use tether_balance::policy::ip_hash::score_hash;
use tether_balance::{ClientKey, PolicyKind, Pool, PoolOptions, Sealer, ServerConfig};

const REMAP_KEYS: u32 = 100_000;
const LOAD_KEYS: u32 = 10_000;

/// The `i`-th address scattered over 10.0.0.0/8 (a bijection for `i < 2^24`).
fn scattered(i: u32) -> ClientKey {
    let ip = Ipv4Addr::from(0x0a00_0000 | (i.wrapping_mul(2_654_435_761) & 0x00ff_ffff));
    ClientKey::new(IpAddr::V4(ip))
}

/// The `i`-th address of one contiguous block (192.168.0.0 upwards).
fn contiguous(i: u32) -> ClientKey {
    ClientKey::new(IpAddr::V4(Ipv4Addr::from(0xc0a8_0000u32.wrapping_add(i))))
}

/// Like `scattered`, but every fifth session comes from one of 10 busy NAT gateways
/// (203.0.113.0 to .9): 20 % of the sessions on 10 keys.
fn nat_heavy(i: u32) -> ClientKey {
    if i.is_multiple_of(5) {
        ClientKey::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i / 5 % 10) as u8)))
    } else {
        scattered(i)
    }
}

fn servers(n: usize) -> Vec<ServerConfig> {
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8000 + i as u16));
            ServerConfig::new(format!("s{i}"), addr)
        })
        .collect()
}

fn pool(n: usize, policy: PolicyKind) -> Pool {
    let options = PoolOptions {
        policy,
        ..PoolOptions::default()
    };
    match Pool::new("stats", &servers(n), options) {
        Ok(pool) => pool,
        Err(e) => panic!("example pool: {e}"),
    }
}

fn rendezvous(factor: Option<f64>) -> PolicyKind {
    PolicyKind::IpHash {
        balance_factor: factor,
    }
}

/// Index of the server `key` maps to by plain modulo hashing over `n` servers.
fn modulo(key: &ClientKey, n: usize) -> usize {
    (score_hash(key.as_bytes(), 0) % n as u64) as usize
}

fn remap_share(keys: &dyn Fn(u32) -> ClientKey) -> (f64, f64) {
    let (ten, eleven) = (pool(10, rendezvous(None)), pool(11, rendezvous(None)));
    let now = Instant::now();
    let (mut moved_hrw, mut moved_mod) = (0u32, 0u32);
    for i in 0..REMAP_KEYS {
        let key = keys(i);
        let k = Some(key.as_bytes());
        let before = ten.select(k, now).map(|s| s.index());
        let after = eleven.select(k, now).map(|s| s.index());
        moved_hrw += u32::from(before != after);
        moved_mod += u32::from(modulo(&key, 10) != modulo(&key, 11));
    }
    let total = f64::from(REMAP_KEYS);
    (f64::from(moved_hrw) / total, f64::from(moved_mod) / total)
}

/// After `LOAD_KEYS` clients each hold one session: max/avg sessions per server, and the
/// share of clients not on their first (unbounded rendezvous) choice.
fn load_with(policy: PolicyKind, keys: &dyn Fn(u32) -> ClientKey) -> (f64, f64) {
    let pool = pool(10, policy);
    let first_choice = pool_unbounded(10);
    let now = Instant::now();
    let mut guards = Vec::with_capacity(LOAD_KEYS as usize);
    let mut displaced = 0u32;
    for i in 0..LOAD_KEYS {
        let key = keys(i);
        let k = Some(key.as_bytes());
        if let Some(server) = pool.select(k, now) {
            let first = first_choice.select(k, now).map(|s| s.index());
            displaced += u32::from(first != Some(server.index()));
            guards.push(server.acquire());
        }
    }
    let max = pool.servers().iter().map(|s| s.active()).max().unwrap_or(0);
    let avg = f64::from(LOAD_KEYS) / 10.0;
    (
        max as f64 / avg,
        f64::from(displaced) / f64::from(LOAD_KEYS),
    )
}

fn pool_unbounded(n: usize) -> Pool {
    pool(n, rendezvous(None))
}

fn load_modulo(keys: &dyn Fn(u32) -> ClientKey) -> f64 {
    let mut counts = [0u32; 10];
    for i in 0..LOAD_KEYS {
        counts[modulo(&keys(i), 10)] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    f64::from(max) / (f64::from(LOAD_KEYS) / 10.0)
}

/// Nanoseconds per call of `f`, over `n` calls.
fn time_ns(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    type Keys = fn(u32) -> ClientKey;
    let sets: [(&str, Keys); 3] = [
        ("scattered", scattered),
        ("contiguous", contiguous),
        ("nat-heavy", nat_heavy),
    ];

    println!("Remapped keys when an 11th server joins 10 ({REMAP_KEYS} client addresses; ideal 1/11 = 9.09 %)");
    println!("{:<12} {:>12} {:>12}", "addresses", "rendezvous", "modulo");
    for (name, keys) in &sets[..2] {
        let (hrw, m) = remap_share(keys);
        println!("{name:<12} {:>11.2}% {:>11.2}%", hrw * 100.0, m * 100.0);
    }

    println!();
    println!(
        "Max/avg sessions per server, {LOAD_KEYS} clients holding one session each, 10 servers"
    );
    println!("(in brackets: share of clients not on their first-choice server)");
    println!(
        "{:<12} {:>12} {:>20} {:>20} {:>8}",
        "addresses", "rendezvous", "bound 1.25", "bound 1.10", "modulo"
    );
    for (name, keys) in sets {
        let (plain, _) = load_with(rendezvous(None), &keys);
        let (b125, d125) = load_with(rendezvous(Some(1.25)), &keys);
        let (b110, d110) = load_with(rendezvous(Some(1.10)), &keys);
        println!(
            "{name:<12} {plain:>12.3} {b125:>10.3} ({:>5.1} %) {b110:>10.3} ({:>5.1} %) {:>8.3}",
            d125 * 100.0,
            d110 * 100.0,
            load_modulo(&keys),
        );
    }

    println!();
    println!("Cost per call (10 servers, sessions held: 1000 per server)");
    let now = Instant::now();
    let keys: Vec<ClientKey> = (0..LOAD_KEYS).map(scattered).collect();
    let cases = [
        ("ip_hash, bound 1.25", rendezvous(Some(1.25))),
        ("ip_hash, no bound", rendezvous(None)),
        ("round_robin", PolicyKind::RoundRobin),
        ("least_connections", PolicyKind::LeastConnections),
    ];
    for (name, policy) in cases {
        let pool = pool(10, policy);
        let _held: Vec<_> = pool
            .servers()
            .iter()
            .flat_map(|s| (0..1000).map(move |_| s.acquire()))
            .collect();
        let ns = time_ns(1_000_000, |i| {
            let key = &keys[(i % LOAD_KEYS) as usize];
            black_box(pool.select(Some(key.as_bytes()), now));
        });
        println!("{name:<24} {ns:>8.0} ns/select");
    }
    let sealer =
        match Sealer::new(&["000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"]) {
            Ok(s) => s,
            Err(e) => panic!("example key: {e}"),
        };
    let cookie = sealer.seal_cookie("s3", u64::MAX);
    let tagged = sealer.tag_value("s3", "3f9a.e2b1");
    let ns = time_ns(200_000, |_| {
        black_box(sealer.seal_cookie(black_box("s3"), u64::MAX));
    });
    println!("{:<24} {ns:>8.0} ns", "seal_cookie");
    let ns = time_ns(200_000, |_| {
        black_box(sealer.open_cookie(black_box(&cookie), 0).ok());
    });
    println!("{:<24} {ns:>8.0} ns", "open_cookie");
    let ns = time_ns(200_000, |_| {
        black_box(sealer.split_tagged(black_box(&tagged)));
    });
    println!("{:<24} {ns:>8.0} ns", "split_tagged");
}
