//! The affinity store on Redis writes learned sessions behind, end to end with the real
//! binary, `redis-server`, curl (HTTP/1.1 and h2c) and the stateful python apps: a session
//! used on every request is served from tether's local cache and costs Redis no command
//! (counted by Redis itself, `INFO commandstats`), and a Redis restarted empty gets each
//! active user's pin back at their next request, over either protocol, so a fresh
//! instance still sends them home.

mod affinity_support;
mod common;

use std::process::Command;
use std::time::Duration;

use affinity_support::*;
use common::*;

/// `redis-cli -p <port> <args>`, its output trimmed.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Keys in Redis.
fn keys(redis: &Redis) -> usize {
    redis_cli(redis.port, &["dbsize"]).parse().unwrap_or(0)
}

/// `SET` and `EXPIRE` commands Redis has run since it started.
fn writes_seen(redis: &Redis) -> u64 {
    redis_cli(redis.port, &["info", "commandstats"])
        .lines()
        .filter(|l| l.starts_with("cmdstat_set:") || l.starts_with("cmdstat_expire:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// `n` requests for `/session` carrying `SID=<sid>`; each line `<body> <status>
/// <version>`. HTTP/1.1 (`--http1.1`): one curl, one keep-alive connection. h2c
/// (`--http2-prior-knowledge`): one curl per request, as curl 7.88 sends only the first
/// of several URLs over a reused prior-knowledge connection.
fn session_requests(port: u16, proto: &str, sid: &str, n: usize) -> Vec<String> {
    let cookie = format!("Cookie: SID={sid}");
    let run = |url: &str| {
        let out = curl(&[
            "-s",
            proto,
            "-H",
            &cookie,
            "-w",
            " %{http_code} %{http_version}\\n",
            url,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    if proto == "--http1.1" {
        run(&format!("http://127.0.0.1:{port}/session?[1-{n}]"))
    } else {
        (0..n)
            .flat_map(|i| run(&format!("http://127.0.0.1:{port}/session?{i}")))
            .collect()
    }
}

/// Logs in through tether: the app's name and the session id it set.
fn login(port: u16) -> (String, String) {
    let r = fetch(&format!("http://127.0.0.1:{port}/login"), &[]);
    assert_eq!(r.status, 200, "{}", r.head);
    let sid = r.set_cookie("SID").expect("the app sets SID");
    (r.body.trim().to_string(), sid)
}

fn instance(dir: &TempDir, port: u16, ports: &[u16], redis: &Redis) -> Proc {
    let top = format!("store = \"{}\"\n", redis.url());
    let extra = "balance = \"learn\"\nsession_cookie = \"SID\"";
    let cfg = config(port, ports, extra, &top).replace(
        "[[server]]\nlisten = [\"127.0.0.1",
        "[[server]]\nhttp2 = true\nlisten = [\"127.0.0.1",
    );
    assert!(cfg.contains("http2 = true"), "{cfg}");
    tether(dir, &cfg, &[port])
}

#[test]
fn learned_sessions_are_written_behind_and_refilled_after_a_restart() {
    let Some(mut redis) = Redis::start_new() else {
        return;
    };
    let (_apps, ports) = apps(&["a", "b"]);
    let port = free_port();
    let dir = TempDir::new("write-behind");
    let _t = instance(&dir, port, &ports, &redis);

    // Two users, learned (one SET each); their homes differ (round robin).
    let (home1, sid1) = login(port);
    let (home2, sid2) = login(port);
    assert_ne!(home1, home2);
    assert!(
        eventually(Duration::from_secs(5), || keys(&redis) == 2),
        "both pins in redis"
    );
    let before = writes_seen(&redis);

    // 300 requests of user 1 over HTTP/1.1, 100 of user 2 over h2c: all home.
    for (proto, version, home, sid, n) in [
        ("--http1.1", "1.1", &home1, &sid1, 300),
        ("--http2-prior-knowledge", "2", &home2, &sid2, 100),
    ] {
        let lines = session_requests(port, proto, sid, n);
        assert_eq!(lines.len(), n, "{proto}");
        let want = format!("{home} {sid} 200 {version}");
        assert!(lines.iter().all(|l| *l == want), "{proto}: {lines:?}");
    }
    // A third login is written after anything those requests queued: once it is in
    // Redis, Redis has seen every write they caused.
    let (_, probe) = login(port);
    assert!(
        eventually(Duration::from_secs(5), || keys(&redis) == 3),
        "the probe's pin in redis"
    );
    assert_eq!(
        writes_seen(&redis) - before,
        1,
        "the probe's SET only: 400 requests of learned sessions sent Redis nothing"
    );

    // Redis restarted, empty. Once a new pin reaches it, tether's writer is on a new
    // connection; each user's next request (either protocol) writes their pin again.
    redis.stop();
    redis.start();
    assert_eq!(keys(&redis), 0, "restarted empty");
    let (_, probe2) = login(port);
    assert!(
        eventually(Duration::from_secs(10), || keys(&redis) == 1),
        "a new pin reaches the restarted redis"
    );
    let lines = session_requests(port, "--http1.1", &sid1, 1);
    assert_eq!(lines, [format!("{home1} {sid1} 200 1.1")]);
    let lines = session_requests(port, "--http2-prior-knowledge", &sid2, 1);
    assert_eq!(lines, [format!("{home2} {sid2} 200 2")]);
    assert!(
        eventually(Duration::from_secs(5), || keys(&redis) == 3),
        "both users' pins back in redis: {} keys",
        keys(&redis)
    );
    assert_ne!(probe, probe2);

    // A fresh instance (empty cache) finds both users' servers in Redis.
    let port2 = free_port();
    let dir2 = TempDir::new("write-behind-2");
    let _t2 = instance(&dir2, port2, &ports, &redis);
    for (proto, version, home, sid) in [
        ("--http1.1", "1.1", &home1, &sid1),
        ("--http2-prior-knowledge", "2", &home2, &sid2),
    ] {
        let lines = session_requests(port2, proto, sid, 5);
        let want = format!("{home} {sid} 200 {version}");
        assert!(lines.iter().all(|l| *l == want), "{proto}: {lines:?}");
    }
}
