//! The affinity store stops answering (a hung Redis: SIGSTOP), end to end with the real
//! binary, `redis-server`, curl and the stateful python apps: a request whose session must
//! be looked up in the store gets its answer within a bounded time — under
//! `on_store_error = "open"` (the default) a `200` from a server of the pool, under
//! `"closed"` a `503` — and `/metrics` and `/api` say the store is down, then up again.

mod affinity_support;
mod common;

use std::time::{Duration, Instant};

use affinity_support::*;
use common::*;

/// One instance with a `learn` pool over two apps, Redis as the store, the metrics listener.
fn instance(dir: &TempDir, port: u16, metrics: u16, ports: &[u16], top: &str) -> Proc {
    let extra = "balance = \"learn\"\nsession_cookie = \"SID\"";
    let cfg = format!("{top}\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n")
        + &config(port, ports, extra, "");
    tether(dir, &cfg, &[port, metrics])
}

#[test]
fn a_hung_store_is_declared_down_and_lookups_answer_open_or_closed() {
    let Some(redis) = Redis::start_new() else {
        return;
    };
    let (_apps, ports) = apps(&["a", "b"]);
    let (open_port, open_metrics) = (free_port(), free_port());
    let (closed_port, closed_metrics) = (free_port(), free_port());
    let store = format!("store = \"{}\"", redis.url());
    let (d1, d2) = (TempDir::new("store-open"), TempDir::new("store-closed"));
    let _open = instance(&d1, open_port, open_metrics, &ports, &store);
    let status = free_port();
    let closed_top = format!(
        "{store}\non_store_error = \"closed\"\n\n[[server]]\nlisten = [\"127.0.0.1:{status}\"]\n\n\
         [[server.route]]\npath = \"/\"\nstatus_page = \"html\"\n"
    );
    let _closed = instance(&d2, closed_port, closed_metrics, &ports, &closed_top);

    // Redis answers: an unknown session is balanced (the store said it knows nothing).
    for port in [open_port, closed_port] {
        let r = with_cookie(&format!("http://127.0.0.1:{port}/whoami"), "SID=nobody-1");
        assert_eq!(r.status, 200, "store up, port {port}: {}", r.head);
        assert!(
            eventually(Duration::from_secs(5), || metric(
                if port == open_port {
                    open_metrics
                } else {
                    closed_metrics
                },
                "tether_store_up"
            ) == Some(1.0)),
            "the store is up"
        );
    }

    redis.signal("STOP");
    // Declared down within a bounded time, whatever the traffic (none here).
    for m in [open_metrics, closed_metrics] {
        assert!(
            eventually(Duration::from_secs(3), || metric(m, "tether_store_up")
                == Some(0.0)),
            "a hung store is declared down"
        );
    }
    let (_, api) = get(&format!("http://127.0.0.1:{open_metrics}/api"));
    let api: serde_json::Value = serde_json::from_slice(&api).expect("/api is JSON");
    assert_eq!(api["store"]["up"], false, "{api}");
    assert_eq!(api["store"]["kind"], "redis", "{api}");
    let (_, page) = get(&format!("http://127.0.0.1:{status}/"));
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("<td class='down'>down</td>"),
        "the status page says the store is down: {page}"
    );

    // A session unknown here must be looked up: "open" balances it, "closed" refuses it;
    // neither waits long for the hung store.
    let t = Instant::now();
    let r = with_cookie(
        &format!("http://127.0.0.1:{open_port}/whoami"),
        "SID=nobody-2",
    );
    assert_eq!(r.status, 200, "open: {}", r.head);
    let r = with_cookie(
        &format!("http://127.0.0.1:{closed_port}/whoami"),
        "SID=nobody-3",
    );
    assert_eq!(r.status, 503, "closed: {}{}", r.head, r.body);
    assert!(r.body.contains("session store"), "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A request that needs no lookup (no session yet) is served in either mode.
    let r = fetch(&format!("http://127.0.0.1:{closed_port}/whoami"), &[]);
    assert_eq!(r.status, 200, "closed, no session: {}", r.head);

    redis.signal("CONT");
    for m in [open_metrics, closed_metrics] {
        assert!(
            eventually(Duration::from_secs(15), || metric(m, "tether_store_up")
                == Some(1.0)),
            "the store is up again after SIGCONT"
        );
    }
    let r = with_cookie(
        &format!("http://127.0.0.1:{closed_port}/whoami"),
        "SID=nobody-4",
    );
    assert_eq!(r.status, 200, "closed, store back: {}", r.head);
}

/// `/session` with `SID=sid` through `port`: 200 only on the server that holds it.
fn at_home(port: u16, sid: &str) -> bool {
    with_cookie(
        &format!("http://127.0.0.1:{port}/session"),
        &format!("SID={sid}"),
    )
    .status
        == 200
}

#[test]
fn sessions_learned_during_an_outage_or_before_a_restart_empty_stay_home() {
    // The reproduction: two instances under `learn`, Redis dies and comes back
    // empty. Sessions learned during the outage are written when it ends, and sessions
    // learned before it are written again by use (a refresh is a whole SET, not EXPIRE), so
    // another instance — or one started afterwards — sends every user home.
    let Some(mut redis) = Redis::start_new() else {
        return;
    };
    let (_apps, ports) = apps(&["a", "b", "c"]);
    let store = format!("store = \"{}\"", redis.url());
    let (pa, ma, pb, mb) = (free_port(), free_port(), free_port(), free_port());
    let (da, db) = (TempDir::new("outage-a"), TempDir::new("outage-b"));
    let _a = instance(&da, pa, ma, &ports, &store);
    let _b = instance(&db, pb, mb, &ports, &store);

    let login = |port: u16| {
        let r = fetch(&format!("http://127.0.0.1:{port}/login"), &[]);
        assert_eq!(r.status, 200, "{}", r.head);
        r.set_cookie("SID").expect("SID")
    };
    let before: Vec<String> = (0..6).map(|_| login(pa)).collect();
    for sid in &before {
        assert!(
            eventually(Duration::from_secs(5), || at_home(pb, sid)),
            "B knows {sid} through Redis"
        );
    }

    redis.stop();
    assert!(
        eventually(Duration::from_secs(5), || metric(ma, "tether_store_up")
            == Some(0.0)),
        "A sees the outage"
    );
    // Learned during the outage, on A; every request served meanwhile.
    let during: Vec<String> = (0..6).map(|_| login(pa)).collect();
    for sid in before.iter().chain(&during) {
        assert!(at_home(pa, sid), "A serves {sid} during the outage");
    }

    redis.start(); // empty
    assert!(
        eventually(Duration::from_secs(15), || metric(ma, "tether_store_up")
            == Some(1.0)),
        "A is back on Redis"
    );
    // The users keep clicking on A: each refresh writes its pin whole.
    for sid in &before {
        assert!(at_home(pa, sid));
    }
    // A third instance, started now, knows nothing but what Redis holds.
    let (pc, mc) = (free_port(), free_port());
    let dc = TempDir::new("outage-c");
    let _c = instance(&dc, pc, mc, &ports, &store);
    for sid in before.iter().chain(&during) {
        assert!(
            eventually(Duration::from_secs(5), || at_home(pc, sid)),
            "a new instance sends {sid} home after the outage"
        );
    }
}

#[test]
fn a_sentinel_group_as_the_store_shares_learned_sessions() {
    // `store = { sentinels = [...], master = "..." }`: the instances find the master through
    // a real redis-sentinel and share their pins there (failover itself: crates/store).
    let Some(redis) = Redis::start_new() else {
        return;
    };
    let sentinel_port = free_port();
    let dir = TempDir::new("store-sentinel");
    let conf = dir.write(
        "sentinel.conf",
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds mymaster 1000\n",
            dir.path().display(),
            redis.port
        )
        .as_bytes(),
    );
    let child = std::process::Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server --sentinel");
    let _sentinel = Proc { child, log: None };
    wait_port(sentinel_port);

    let (_apps, ports) = apps(&["a", "b"]);
    let top =
        format!("store = {{ sentinels = [\"127.0.0.1:{sentinel_port}\"], master = \"mymaster\" }}");
    let (pa, ma, pb, mb) = (free_port(), free_port(), free_port(), free_port());
    let (da, db) = (TempDir::new("sentinel-a"), TempDir::new("sentinel-b"));
    let _a = instance(&da, pa, ma, &ports, &top);
    let _b = instance(&db, pb, mb, &ports, &top);
    for m in [ma, mb] {
        assert!(
            eventually(Duration::from_secs(10), || metric(m, "tether_store_up")
                == Some(1.0)),
            "the store is reached through the sentinel"
        );
    }
    for _ in 0..4 {
        let r = fetch(&format!("http://127.0.0.1:{pa}/login"), &[]);
        let sid = r.set_cookie("SID").expect("SID");
        assert!(
            eventually(Duration::from_secs(5), || at_home(pb, &sid)),
            "B knows {sid} through the Sentinel-found master"
        );
    }
}
