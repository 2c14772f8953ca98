//! The shared-sessions demo end to end (docs/affinity.md, "Demo: shared sessions"): a real
//! `redis-server`, two `examples/visit_counter/app.py` backends whose sessions live in it,
//! two tether instances running `examples/configs/shared-sessions.toml` (ports rewritten to
//! free ones), and curl with one cookie jar per user. Each user stays on one backend and
//! counts 1, 2, 3 ... whichever instance they hit; killing a user's backend moves them to
//! the other one and the count goes on. Run with the config as shipped (a sealed cookie,
//! shared key) and with its learned-session variant (`balance = "learn"`, Redis store).

mod affinity_support;
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use affinity_support::*;
use common::*;

const USERS: usize = 4;

/// One answer of the visit counter.
#[derive(Debug)]
struct Visit {
    backend: String,
    visits: u64,
    session_id: String,
}

/// GET / through tether on `port` with the cookie jar `jar` (read and written, as a browser).
fn visit(port: u16, jar: &str) -> Visit {
    let url = format!("http://127.0.0.1:{port}/");
    let r = fetch(&url, &["-c", jar, "-b", jar]);
    assert_eq!(r.status, 200, "{}\n{}", r.head, r.body);
    let v: serde_json::Value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body));
    let message = v["message"].as_str().unwrap_or_default();
    let backend = message
        .strip_prefix("Hello from ")
        .and_then(|m| m.strip_suffix('!'))
        .unwrap_or_else(|| panic!("unexpected message: {}", r.body));
    Visit {
        backend: backend.to_string(),
        visits: v["visits"].as_u64().expect("visits is a number"),
        session_id: v["session_id"].as_str().expect("session_id").to_string(),
    }
}

/// `examples/visit_counter/app.py` named `name` on `port`, using Redis on `redis`.
fn backend(port: u16, name: &str, redis: u16) -> Proc {
    let child = std::process::Command::new("python3")
        .arg(repo().join("examples/visit_counter/app.py"))
        .args(["--port", &port.to_string(), "--name", name])
        .args(["--redis", &format!("127.0.0.1:{redis}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn python3");
    let p = Proc { child, log: None };
    wait_port(port);
    p
}

/// The shipped config for an instance listening on `listen`, backends on `alpha`/`beta`;
/// with `learn`, its documented learned-session variant using Redis on `redis`.
fn instance_config(listen: u16, alpha: u16, beta: u16, learn: Option<u16>) -> String {
    let shipped = std::fs::read_to_string(repo().join("examples/configs/shared-sessions.toml"))
        .expect("read examples/configs/shared-sessions.toml");
    for addr in [
        "127.0.0.1:5001",
        "127.0.0.1:5002",
        "127.0.0.1:8080",
        "balance = \"cookie\"",
    ] {
        assert!(
            shipped.contains(addr),
            "the shipped config no longer has {addr}"
        );
    }
    let cfg = shipped
        .replace("127.0.0.1:5001", &format!("127.0.0.1:{alpha}"))
        .replace("127.0.0.1:5002", &format!("127.0.0.1:{beta}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{listen}"));
    let Some(redis) = learn else { return cfg };
    let body: Vec<&str> = cfg
        .lines()
        .filter(|l| !l.starts_with("keys = ") && !l.starts_with("cookie_"))
        .collect();
    format!(
        "store = \"redis://127.0.0.1:{redis}/0\"\n{}\n",
        body.join("\n").replace(
            "balance = \"cookie\"",
            "balance = \"learn\"\nsession_cookie = \"visit_sid\""
        )
    )
}

/// Whether redis on `port` holds `key`.
fn redis_has(port: u16, key: &str) -> bool {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "EXISTS", key])
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim() == "1"
}

fn scenario(learn: bool) {
    let Some(redis) = Redis::start_new() else {
        return;
    };
    let (pa, pb) = (free_port(), free_port());
    let mut backends: HashMap<String, Proc> = HashMap::new();
    backends.insert("alpha".into(), backend(pa, "alpha", redis.port));
    backends.insert("beta".into(), backend(pb, "beta", redis.port));
    let instances = [free_port(), free_port()];
    let dirs = [TempDir::new("visits-a"), TempDir::new("visits-b")];
    let learn_redis = learn.then_some(redis.port);
    let _tethers: Vec<Proc> = instances
        .iter()
        .zip(&dirs)
        .map(|(&port, dir)| tether(dir, &instance_config(port, pa, pb, learn_redis), &[port]))
        .collect();
    let jars: Vec<String> = (0..USERS)
        .map(|u| {
            dirs[0]
                .path()
                .join(format!("user{u}.jar"))
                .display()
                .to_string()
        })
        .collect();

    // Each user hops between the two instances, starting on a different one than the
    // previous user: same backend, same session, visits 1, 2, 3, 4.
    let mut homes: Vec<String> = Vec::new();
    let mut sessions: Vec<String> = Vec::new();
    for round in 1..=4u64 {
        for (u, jar) in jars.iter().enumerate() {
            let v = visit(instances[(u + round as usize) % 2], jar);
            assert_eq!(v.visits, round, "user {u}: {v:?}");
            if round == 1 {
                homes.push(v.backend);
                sessions.push(v.session_id);
            } else {
                assert_eq!(v.backend, homes[u], "user {u} changed backend: {v:?}");
                assert_eq!(v.session_id, sessions[u], "user {u} lost the session");
            }
        }
        // A passer-by without cookies on each instance: a new session (visits 1), and a
        // round-robin turn that shifts which backend an unpinned request would get.
        for &port in &instances {
            let v = visit(
                port,
                &dirs[1].path().join("nobody.jar").display().to_string(),
            );
            assert_eq!(v.visits, 1, "{v:?}");
            let _ = std::fs::remove_file(dirs[1].path().join("nobody.jar"));
        }
        if learn && round == 1 {
            // Learned entries reach the other instance through Redis a few ms after the
            // first response (docs/affinity.md); a sealed cookie has no such window.
            for sid in &sessions {
                let key = format!("tether:learn:visits:{sid}");
                assert!(
                    eventually(Duration::from_secs(5), || redis_has(redis.port, &key)),
                    "{key} never reached redis"
                );
            }
        }
    }
    let used: HashSet<&String> = homes.iter().collect();
    assert_eq!(
        used.len(),
        2,
        "users not spread over both backends: {homes:?}"
    );

    // User 0's backend dies: user 0 moves to the other backend and keeps counting; users on
    // the surviving backend stay where they are. Every request answers 200.
    let dead = homes[0].clone();
    drop(backends.remove(&dead));
    let survivor = backends.keys().next().expect("one backend left").clone();
    for round in 5..=7u64 {
        for (u, jar) in jars.iter().enumerate() {
            let v = visit(instances[(u + round as usize) % 2], jar);
            assert_eq!(v.visits, round, "user {u} after the failover: {v:?}");
            assert_eq!(v.backend, survivor, "user {u}: {v:?}");
            assert_eq!(v.session_id, sessions[u], "user {u} lost the session");
        }
    }
}

#[test]
fn shared_sessions_with_the_sealed_cookie_as_shipped() {
    scenario(false);
}

#[test]
fn shared_sessions_with_learned_sessions_in_redis() {
    scenario(true);
}
