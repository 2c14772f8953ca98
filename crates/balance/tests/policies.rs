//! Round robin, least connections, and the pool's tiers: drained and down servers never
//! take new sessions, backups only when every primary is out, fail-open, retries.

mod common;

use std::time::{Duration, Instant};

use common::{id, pool, server, servers};
use tether_balance::{PolicyKind, Pool, PoolOptions};

#[test]
fn smooth_weighted_round_robin_5_1_1() {
    let configs = [server("a", 1).weight(5), server("b", 2), server("c", 3)];
    let pool = pool(&configs, PolicyKind::RoundRobin);
    let now = Instant::now();
    let seq: Vec<String> = (0..14).map(|_| id(pool.select(None, now))).collect();
    let expected = ["a", "a", "b", "a", "c", "a", "a"];
    assert_eq!(seq[..7], expected);
    assert_eq!(seq[7..], expected, "the cycle repeats");
}

#[test]
fn round_robin_equal_weights_takes_turns() {
    let pool = pool(&servers(3), PolicyKind::RoundRobin);
    let now = Instant::now();
    let seq: Vec<String> = (0..6).map(|_| id(pool.select(None, now))).collect();
    assert_eq!(seq, ["s0", "s1", "s2", "s0", "s1", "s2"]);
}

#[test]
fn least_connections_picks_the_least_loaded() {
    let pool = pool(&servers(3), PolicyKind::LeastConnections);
    let now = Instant::now();
    let s0 = pool.server("s0").expect("s0").clone();
    let s1 = pool.server("s1").expect("s1").clone();
    let _held = [s0.acquire(), s0.acquire(), s1.acquire()];
    for _ in 0..5 {
        assert_eq!(id(pool.select(None, now)), "s2", "s2 has no session");
    }
    let _third = pool.server("s2").expect("s2").acquire();
    let _fourth = pool.server("s2").expect("s2").acquire();
    // s0: 2, s1: 1, s2: 2
    assert_eq!(id(pool.select(None, now)), "s1");
}

#[test]
fn least_connections_spreads_held_sessions_evenly_and_by_weight() {
    let configs = [server("a", 1).weight(3), server("b", 2), server("c", 3)];
    let pool = pool(&configs, PolicyKind::LeastConnections);
    let now = Instant::now();
    let mut guards = Vec::new();
    for _ in 0..500 {
        let s = pool.select(None, now).expect("a server");
        guards.push(s.acquire());
    }
    let active: Vec<usize> = pool.servers().iter().map(|s| s.active()).collect();
    assert_eq!(active, [300, 100, 100]);
    drop(guards);
    assert!(pool.servers().iter().all(|s| s.active() == 0));
}

#[test]
fn least_connections_rotates_among_ties() {
    let pool = pool(&servers(3), PolicyKind::LeastConnections);
    let now = Instant::now();
    let mut seen: Vec<String> = (0..3).map(|_| id(pool.select(None, now))).collect();
    seen.sort();
    assert_eq!(seen, ["s0", "s1", "s2"], "idle servers take turns");
}

#[test]
fn drained_and_down_servers_never_take_new_sessions() {
    for policy in [
        PolicyKind::RoundRobin,
        PolicyKind::LeastConnections,
        PolicyKind::ip_hash(),
    ] {
        let pool = pool(&servers(4), policy);
        let now = Instant::now();
        assert!(pool.set_drain("s1", true));
        assert!(!pool.set_drain("nope", true));
        let s2 = pool.server("s2").expect("s2");
        for _ in 0..3 {
            s2.health().record_failure(now);
        }
        let mut guards = Vec::new();
        for i in 0..2000 {
            let key = common::client(i);
            let s = pool.select(Some(key.as_bytes()), now).expect("s0 or s3");
            assert!(
                s.id() == "s0" || s.id() == "s3",
                "{policy:?} picked {}",
                s.id()
            );
            guards.push(s.acquire());
        }
        pool.set_drain("s1", false);
        assert!(
            (0..200).any(|i| id(pool.select(Some(common::client(i).as_bytes()), now)) == "s1"),
            "{policy:?}: undrained server takes sessions again"
        );
    }
}

fn with_backups(fail_open: bool) -> Pool {
    let configs = [
        server("p1", 1),
        server("p2", 2),
        server("b1", 3).backup(),
        server("b2", 4).backup(),
    ];
    let options = PoolOptions {
        fail_open,
        ..PoolOptions::default()
    };
    Pool::new("backups", &configs, options).expect("valid pool")
}

fn take_down(pool: &Pool, id: &str, now: Instant) {
    let s = pool.server(id).expect("known server");
    for _ in 0..3 {
        s.health().record_failure(now);
    }
    assert!(!s.is_available(now));
}

#[test]
fn backups_only_when_every_primary_is_out() {
    let pool = with_backups(false);
    let now = Instant::now();
    let picks: Vec<String> = (0..10).map(|_| id(pool.select(None, now))).collect();
    assert!(picks.iter().all(|p| p == "p1" || p == "p2"), "{picks:?}");

    take_down(&pool, "p1", now);
    let picks: Vec<String> = (0..10).map(|_| id(pool.select(None, now))).collect();
    assert!(picks.iter().all(|p| p == "p2"), "{picks:?}");

    pool.set_drain("p2", true);
    let picks: Vec<String> = (0..10).map(|_| id(pool.select(None, now))).collect();
    assert!(picks.iter().all(|p| p == "b1" || p == "b2"), "{picks:?}");
    assert!(picks.iter().any(|p| p == "b1") && picks.iter().any(|p| p == "b2"));

    take_down(&pool, "b1", now);
    take_down(&pool, "b2", now);
    assert!(
        pool.select(None, now).is_none(),
        "nothing left: the caller answers 503"
    );

    // After the cool-off, the primary is back and the backups idle again.
    let later = now + Duration::from_secs(10);
    let picks: Vec<String> = (0..10).map(|_| id(pool.select(None, later))).collect();
    assert!(picks.iter().all(|p| p == "p1"), "{picks:?}");
}

#[test]
fn fail_open_picks_non_draining_servers_when_all_are_down() {
    let pool = with_backups(true);
    let now = Instant::now();
    for id in ["p1", "p2", "b1", "b2"] {
        take_down(&pool, id, now);
    }
    pool.set_drain("p1", true);
    let picks: Vec<String> = (0..10).map(|_| id(pool.select(None, now))).collect();
    assert!(
        picks.iter().all(|p| p == "p2"),
        "primaries first: {picks:?}"
    );
    pool.set_drain("p2", true);
    let picks: Vec<String> = (0..10).map(|_| id(pool.select(None, now))).collect();
    assert!(picks.iter().all(|p| p == "b1" || p == "b2"), "{picks:?}");
    pool.set_drain("b1", true);
    pool.set_drain("b2", true);
    assert!(pool.select(None, now).is_none(), "drained servers stay out");

    let closed = with_backups(false);
    for id in ["p1", "p2", "b1", "b2"] {
        take_down(&closed, id, now);
    }
    assert!(closed.select(None, now).is_none());
}

#[test]
fn select_excluding_moves_on_to_the_next_server() {
    for policy in [
        PolicyKind::RoundRobin,
        PolicyKind::LeastConnections,
        PolicyKind::ip_hash(),
    ] {
        let pool = pool(&servers(3), policy);
        let now = Instant::now();
        let key = common::client(42);
        let key = Some(key.as_bytes());
        let first = id(pool.select(key, now));
        let second = id(pool.select_excluding(key, &[first.as_str()], now));
        assert_ne!(first, second, "{policy:?}");
        let third = id(pool.select_excluding(key, &[first.clone(), second.clone()], now));
        assert!(
            third != first && third != second && third != "-",
            "{policy:?}"
        );
        let none = pool.select_excluding(key, &[first, second, third], now);
        assert!(none.is_none(), "{policy:?}: every server tried");
    }
}

#[test]
fn active_checks_take_servers_out_and_back() {
    let configs = servers(2);
    let options = PoolOptions {
        check: Some(tether_balance::CheckConfig {
            rise: 2,
            fall: 2,
            ..Default::default()
        }),
        ..PoolOptions::default()
    };
    let pool = Pool::new("checked", &configs, options).expect("valid pool");
    let now = Instant::now();
    let s0 = pool.by_index(0).expect("first server");
    assert_eq!(s0.id(), "s0");
    s0.health().record_check(false);
    assert!(s0.is_available(now), "one failed check is not enough");
    s0.health().record_check(false);
    assert!((0..10).all(|_| id(pool.select(None, now)) == "s1"));
    s0.health().record_check(true);
    s0.health().record_check(true);
    assert!((0..10).any(|_| id(pool.select(None, now)) == "s0"));
}

#[test]
fn pool_configuration_errors() {
    use tether_balance::PoolError;
    let opts = PoolOptions::default;
    assert_eq!(
        Pool::new("p", &[], opts()).err(),
        Some(PoolError::NoServers)
    );
    let dup = [server("a", 1), server("a", 2)];
    assert_eq!(
        Pool::new("p", &dup, opts()).err(),
        Some(PoolError::DuplicateId("a".into()))
    );
    let zero = [server("a", 1).weight(0)];
    assert_eq!(
        Pool::new("p", &zero, opts()).err(),
        Some(PoolError::ZeroWeight("a".into()))
    );
    let bad = PoolOptions {
        policy: PolicyKind::IpHash {
            balance_factor: Some(0.9),
        },
        ..PoolOptions::default()
    };
    assert_eq!(
        Pool::new("p", &servers(2), bad).err(),
        Some(PoolError::BadBalanceFactor(0.9))
    );
}

#[test]
fn shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Pool>();
    shared::<tether_balance::Sealer>();
    shared::<tether_balance::ServerRef>();
    shared::<tether_balance::ActiveGuard>();

    let pool = std::sync::Arc::new(common::pool(&servers(4), PolicyKind::ip_hash()));
    let now = Instant::now();
    let workers: Vec<_> = (0..2u32)
        .map(|w| {
            let pool = std::sync::Arc::clone(&pool);
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for i in 0..5_000 {
                    let key = common::client(w * 100_000 + i);
                    if let Some(s) = pool.select(Some(key.as_bytes()), now) {
                        held.push(s.acquire());
                    }
                    if held.len() > 50 {
                        held.clear();
                    }
                }
                held.len()
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().is_ok(), "a worker panicked");
    }
    assert!(
        pool.servers().iter().all(|s| s.active() == 0),
        "every guard released"
    );
}
