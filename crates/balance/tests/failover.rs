//! Pinned sessions whose server is gone: keep, re-pin, or refuse.

mod common;

use std::time::{Duration, Instant};

use common::{client, servers};
use tether_balance::{Affinity, FailoverMode, PolicyKind, Pool, PoolOptions};

fn pool(fail_open: bool) -> Pool {
    let options = PoolOptions {
        policy: PolicyKind::ip_hash(),
        fail_open,
        ..PoolOptions::default()
    };
    Pool::new("pinned", &servers(3), options).expect("valid pool")
}

fn down(pool: &Pool, id: &str, now: Instant) {
    let s = pool.server(id).expect("known server");
    for _ in 0..3 {
        s.health().record_failure(now);
    }
}

fn which(a: &Affinity) -> String {
    match a {
        Affinity::Keep(s) => format!("keep {}", s.id()),
        Affinity::Repin(s) => format!("repin {}", s.id()),
        Affinity::Refuse => "refuse".into(),
    }
}

#[test]
fn healthy_and_draining_targets_are_kept() {
    let pool = pool(false);
    let now = Instant::now();
    let key = client(1);
    let key = Some(key.as_bytes());
    assert_eq!(
        which(&pool.resolve("s1", key, FailoverMode::Strict, now)),
        "keep s1"
    );
    pool.set_drain("s1", true);
    assert_eq!(
        which(&pool.resolve("s1", key, FailoverMode::Strict, now)),
        "keep s1",
        "draining servers keep their sessions"
    );
}

#[test]
fn repin_picks_another_server_strict_refuses() {
    let pool = pool(false);
    let now = Instant::now();
    let key = client(1);
    let key = Some(key.as_bytes());
    down(&pool, "s1", now);
    let repinned = which(&pool.resolve("s1", key, FailoverMode::Repin, now));
    assert!(
        repinned == "repin s0" || repinned == "repin s2",
        "{repinned}"
    );
    assert_eq!(
        which(&pool.resolve("s1", key, FailoverMode::Strict, now)),
        "refuse"
    );
    // Unknown ids (a server removed from the configuration) too.
    assert!(which(&pool.resolve("gone", key, FailoverMode::Repin, now)).starts_with("repin "));
    assert_eq!(
        which(&pool.resolve("gone", key, FailoverMode::Strict, now)),
        "refuse"
    );
    // Back after the cool-off.
    let later = now + Duration::from_secs(10);
    assert_eq!(
        which(&pool.resolve("s1", key, FailoverMode::Strict, later)),
        "keep s1"
    );
}

#[test]
fn nothing_available() {
    let closed = pool(false);
    let open = pool(true);
    let now = Instant::now();
    for p in [&closed, &open] {
        for id in ["s0", "s1", "s2"] {
            down(p, id, now);
        }
    }
    assert_eq!(
        which(&closed.resolve("s1", None, FailoverMode::Repin, now)),
        "refuse"
    );
    assert_eq!(
        which(&open.resolve("s1", None, FailoverMode::Strict, now)),
        "keep s1"
    );
    assert!(which(&open.resolve("gone", None, FailoverMode::Repin, now)).starts_with("repin "));
    assert_eq!(
        which(&open.resolve("gone", None, FailoverMode::Strict, now)),
        "refuse"
    );
}

#[test]
fn decisions_are_counted() {
    let pool = pool(false);
    let now = Instant::now();
    let key = Some(client(7));
    let key = key.as_ref().map(|k| k.as_bytes());
    assert!(pool.select(key, now).is_some());
    assert_eq!(
        which(&pool.resolve("s1", key, FailoverMode::Repin, now)),
        "keep s1"
    );
    down(&pool, "s1", now);
    assert!(which(&pool.resolve("s1", key, FailoverMode::Repin, now)).starts_with("repin "));
    assert_eq!(
        which(&pool.resolve("s1", key, FailoverMode::Strict, now)),
        "refuse"
    );
    let st = pool.affinity_stats();
    // The re-pin's own pick is not counted as a balanced (new) session.
    assert_eq!(
        (st.balanced, st.kept, st.repinned, st.refused),
        (1, 1, 1, 1),
        "{st:?}"
    );
}
