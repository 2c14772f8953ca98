//! Client-address affinity: the same client always lands on the same server, adding a
//! server moves no more keys than it must, and bounded load is never exceeded.

mod common;

use std::time::Instant;

use common::{client, id, pool, sequential_client, servers};
use tether_balance::{PolicyKind, ServerConfig};

const KEYS: u32 = 10_000;

fn no_bound() -> PolicyKind {
    PolicyKind::IpHash {
        balance_factor: None,
    }
}

fn assignment(configs: &[ServerConfig], policy: PolicyKind) -> Vec<String> {
    let pool = pool(configs, policy);
    let now = Instant::now();
    (0..KEYS)
        .map(|i| id(pool.select(Some(client(i).as_bytes()), now)))
        .collect()
}

#[test]
fn same_client_same_server_across_pools_and_calls() {
    let configs = servers(10);
    let a = pool(&configs, PolicyKind::ip_hash());
    let b = pool(&configs, PolicyKind::ip_hash());
    let now = Instant::now();
    for i in 0..1000 {
        let key = client(i);
        let first = id(a.select(Some(key.as_bytes()), now));
        assert_eq!(first, id(a.select(Some(key.as_bytes()), now)));
        assert_eq!(
            first,
            id(b.select(Some(key.as_bytes()), now)),
            "another worker agrees"
        );
    }
}

#[test]
fn adding_one_server_to_ten_moves_at_most_one_eleventh_plus_one_percent() {
    let ten = servers(10);
    let eleven = servers(11);
    for policy in [no_bound(), PolicyKind::ip_hash()] {
        let before = assignment(&ten, policy);
        let after = assignment(&eleven, policy);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let share = moved as f64 / f64::from(KEYS);
        assert!(
            share <= 1.0 / 11.0 + 0.01,
            "{policy:?}: {share:.4} of keys moved"
        );
        // Every key that moved went to the new server.
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || a == "s10"));
    }
}

#[test]
fn removing_a_server_only_moves_its_own_keys() {
    let ten = servers(10);
    let nine: Vec<ServerConfig> = ten.iter().filter(|s| s.id != "s4").cloned().collect();
    let before = assignment(&ten, no_bound());
    let after = assignment(&nine, no_bound());
    for (b, a) in before.iter().zip(&after) {
        assert!(b == a || b == "s4", "{b} -> {a}");
    }
}

#[test]
fn bounded_load_is_never_exceeded_with_sessions_held() {
    for factor in [1.25, 1.0, 2.0] {
        let policy = PolicyKind::IpHash {
            balance_factor: Some(factor),
        };
        let pool = pool(&servers(10), policy);
        let now = Instant::now();
        let mut guards = Vec::with_capacity(KEYS as usize);
        for i in 0..KEYS {
            let s = pool
                .select(Some(client(i).as_bytes()), now)
                .expect("a server");
            guards.push(s.acquire());
            let total = guards.len() as f64;
            let bound = (factor * total / 10.0).ceil() as usize;
            let max = pool.servers().iter().map(|s| s.active()).max().unwrap_or(0);
            assert!(
                max <= bound,
                "factor {factor}: {max} > {bound} after {total} sessions"
            );
        }
    }
}

#[test]
fn bounded_load_holds_for_clustered_addresses_and_weights() {
    let configs: Vec<ServerConfig> = servers(5)
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.weight(i as u32 + 1))
        .collect();
    let pool = pool(&configs, PolicyKind::ip_hash());
    let now = Instant::now();
    let mut guards = Vec::new();
    for i in 0..3000 {
        let s = pool
            .select(Some(sequential_client(i).as_bytes()), now)
            .expect("a server");
        guards.push(s.acquire());
        let total = guards.len() as f64;
        for s in pool.servers().iter() {
            let bound = (1.25 * total * f64::from(s.weight()) / 15.0).ceil() as usize;
            assert!(
                s.active() <= bound,
                "{} holds {} > {bound}",
                s.id(),
                s.active()
            );
        }
    }
}

#[test]
fn weights_shift_the_share_without_a_bound() {
    let configs = [
        common::server("heavy", 1).weight(3),
        common::server("light", 2),
    ];
    let picks = assignment(&configs, no_bound());
    let heavy = picks.iter().filter(|p| *p == "heavy").count() as f64 / f64::from(KEYS);
    assert!((heavy - 0.75).abs() < 0.02, "heavy share {heavy:.3}");
}

#[test]
fn a_key_moves_only_while_its_server_is_full() {
    let pool = pool(&servers(3), PolicyKind::ip_hash());
    let now = Instant::now();
    let key = client(7);
    let home = pool.select(Some(key.as_bytes()), now).expect("a server");
    // Fill the home server well past the bound.
    let guards: Vec<_> = (0..10).map(|_| home.acquire()).collect();
    let away = pool.select(Some(key.as_bytes()), now).expect("a server");
    assert_ne!(away.id(), home.id(), "a full server sends the key on");
    drop(guards);
    let back = pool.select(Some(key.as_bytes()), now).expect("a server");
    assert_eq!(back.id(), home.id(), "and gets it back once it has room");
}

#[test]
fn without_a_key_ip_hash_falls_back_to_least_connections() {
    let pool = pool(&servers(3), PolicyKind::ip_hash());
    let now = Instant::now();
    let mut guards = Vec::new();
    for _ in 0..30 {
        guards.push(pool.select(None, now).expect("a server").acquire());
    }
    assert!(pool.servers().iter().all(|s| s.active() == 10));
}
