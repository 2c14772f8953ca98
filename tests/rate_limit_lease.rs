//! A fast shared limit with leased tokens (crates/store/src/lease.rs), end to end: two
//! tether instances share `rate = "500r/s"` (leases of 5 tokens) through one real
//! redis-server while h2load overloads one over HTTP/1.1 and the other over HTTP/2. The
//! two together let through the limit and at most the documented over-admission
//! (`N × L` = 2 × 5 requests), not twice the limit; each instance gets a share; and Redis
//! ran fewer scripts than there were requests (the leases and the kept refusals answered
//! the rest in the instances).

mod affinity_support;
mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use affinity_support::Redis;
use common::*;

const RATE: f64 = 500.0;
const BURST: f64 = 10.0;
/// `lease_size`: 500 r/s × 10 ms.
const LEASE: f64 = 5.0;
const SECONDS: u64 = 4;

fn config(port: u16, redis: &str, root: &std::path::Path) -> String {
    format!(
        r#"
store = "{redis}"

[[limit]]
name = "fast"
rate = "500r/s"
burst = 10
nodelay = true

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
root = "{}"
limits = ["fast"]
"#,
        root.display()
    )
}

/// `(2xx, 4xx, total)` from h2load's summary.
fn statuses(out: &Output) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("status codes:"))
        .unwrap_or_else(|| panic!("no status line in h2load's output:\n{text}"));
    // "status codes: 2010 2xx, 0 3xx, 7990 4xx, 0 5xx"
    let n = |class: &str| -> u64 {
        line.split(',')
            .find_map(|part| {
                let part = part.trim().trim_start_matches("status codes:").trim();
                let (num, what) = part.split_once(' ')?;
                (what == class).then(|| num.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {class} in {line:?}"))
    };
    let (ok, limited) = (n("2xx"), n("4xx"));
    (ok, limited, ok + n("3xx") + limited + n("5xx"))
}

fn script_calls(redis: &Redis) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            let calls = l.split(&[':', ','][..]).find(|f| f.starts_with("calls="))?;
            calls["calls=".len()..].parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn two_instances_with_leases_let_through_the_limit_over_http1_and_http2() {
    if Command::new("h2load").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "h2load is required in CI");
        eprintln!("SKIPPED: h2load (nghttp2-client) not installed");
        return;
    }
    let Some(redis) = Redis::start_new() else {
        return;
    };
    let root = TempDir::new("lease-root");
    std::fs::write(root.path().join("hi.txt"), b"hi\n").expect("write hi.txt");
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("lease-a"), TempDir::new("lease-b"));
    let a = tether(&da, &config(pa, &redis.url(), root.path()), &[pa]);
    let b = tether(&db, &config(pb, &redis.url(), root.path()), &[pb]);
    // Both instances answer (and reach Redis) before the clock starts.
    for p in [pa, pb] {
        let up = eventually(Duration::from_secs(10), || {
            get(&format!("http://127.0.0.1:{p}/hi.txt")).0 == 200
        });
        assert!(up, "instance on {p} does not answer 200");
    }
    // Let the warm-up requests' bucket refill (burst 10 at 500 r/s: 20 ms).
    std::thread::sleep(Duration::from_millis(100));
    let before = script_calls(&redis);

    let secs = SECONDS.to_string();
    let h1 = |port: u16| {
        Command::new("h2load")
            .args(["--h1", "-c", "2", "-D", &secs, "-t", "1"])
            .arg(format!("http://127.0.0.1:{port}/hi.txt"))
            .output()
    };
    let h2 = |port: u16| {
        Command::new("h2load")
            .args(["-c", "2", "-m", "4", "-D", &secs, "-t", "1"])
            .arg(format!("http://127.0.0.1:{port}/hi.txt"))
            .output()
    };
    let start = Instant::now();
    let (oa, ob) = std::thread::scope(|s| {
        let ta = s.spawn(|| h1(pa).expect("h2load --h1"));
        let tb = s.spawn(|| h2(pb).expect("h2load"));
        (
            ta.join().expect("h2load thread"),
            tb.join().expect("h2load thread"),
        )
    });
    let wall = start.elapsed().as_secs_f64();
    let calls = script_calls(&redis) - before;

    let (ok_a, lim_a, all_a) = statuses(&oa);
    let (ok_b, lim_b, all_b) = statuses(&ob);
    let ok = (ok_a + ok_b) as f64;
    let offered = (all_a + all_b) as f64;
    eprintln!(
        "leased shared limit: HTTP/1.1 {ok_a} passed, {lim_a} limited of {all_a}; HTTP/2 \
         {ok_b} passed, {lim_b} limited of {all_b}; {ok} passed in {wall:.2} s \
         ({:.0} r/s); {calls} Redis scripts for {offered} requests",
        ok / wall
    );
    assert_eq!(ok_a + lim_a, all_a, "HTTP/1.1: answers other than 200/429");
    assert_eq!(ok_b + lim_b, all_b, "HTTP/2: answers other than 200/429");
    // The test means something only if the instances were offered well over the limit.
    assert!(
        offered > 1.5 * RATE * SECONDS as f64,
        "offered only {offered} requests in {wall:.2} s: too slow a machine to overload"
    );
    // At most the limit over the wall time, the burst, and the leases' over-admission.
    let most = RATE * wall + BURST + 1.0 + 2.0 * LEASE;
    assert!(
        ok <= most,
        "{ok} passed: more than {most:.0} (the limit in total)"
    );
    // And not much less (h2load's -D counts only its main duration).
    let least = 0.9 * RATE * SECONDS as f64;
    assert!(ok >= least, "{ok} passed: fewer than {least:.0}");
    assert!(
        ok_a > 0 && ok_b > 0,
        "one instance got nothing: {ok_a} / {ok_b}"
    );
    // Leases and kept refusals: many requests were decided without a Redis script (one
    // script per request without them; 30-40% of the requests on a loaded 2-core machine).
    assert!(
        (calls as f64) < offered * 0.75,
        "{calls} scripts for {offered} requests: no leasing"
    );
    drop((a, b));
}
