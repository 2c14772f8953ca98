//! Request limits (nginx `limit_req` / `limit_conn`) end to end with the real binary, over
//! HTTP/1.1 (python `http.client`, curl) and HTTP/2 (python `h2`): over the rate, `429` with
//! `Retry-After`; `nodelay` passes the burst at once, without it the burst is delayed and
//! passes; a header key separates clients; `conn` refuses a second request in flight; two
//! instances sharing one Redis let through the limit in total; with Redis gone, `open`
//! limits locally and `closed` answers `503`.

mod affinity_support;
mod common;

use std::process::Command;
use std::time::Duration;

use affinity_support::Redis;
use common::*;

/// `tests/support_rate_client.py ARGS`, parsed.
fn client(args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/support_rate_client.py"))
        .args(args)
        .output()
        .expect("python3");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client output: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn list(v: &serde_json::Value, field: &str) -> Vec<u64> {
    v[field]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

fn config(port: u16, up: u16, hold: u16, metrics: u16) -> String {
    format!(
        r#"
[metrics]
listen = "127.0.0.1:{metrics}"

[[limit]]
name = "nodelay"
rate = "10r/s"
burst = 2
nodelay = true

[[limit]]
name = "delayed"
rate = "10r/s"
burst = 3

[[limit]]
name = "nodelay_h2"
rate = "10r/s"
burst = 2
nodelay = true

[[limit]]
name = "delayed_h2"
rate = "10r/s"
burst = 3

[[limit]]
name = "per_key"
rate = "1r/m"
key = ["header.X-Api-Key"]
status = 429
body = "slow down\n"

[[limit]]
name = "one_at_a_time"
conn = 1

[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[upstream]]
name = "hold"
servers = ["127.0.0.1:{hold}"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/nodelay"
proxy = "app"
strip_prefix = true
limits = ["nodelay"]

[[server.route]]
path = "/delayed"
proxy = "app"
strip_prefix = true
limits = ["delayed"]

[[server.route]]
path = "/h2/nodelay"
proxy = "app"
strip_prefix = true
limits = ["nodelay_h2"]

[[server.route]]
path = "/h2/delayed"
proxy = "app"
strip_prefix = true
limits = ["delayed_h2"]

[[server.route]]
path = "/keyed"
proxy = "app"
strip_prefix = true
limits = ["per_key"]

[[server.route]]
path = "/hold"
proxy = "hold"
limits = ["one_at_a_time"]

[[server.route]]
path = "/whoami"
proxy = "hold"
limits = ["one_at_a_time"]
"#
    )
}

#[test]
fn rate_burst_nodelay_delay_keys_and_conn_over_http1_and_http2() {
    let dir = TempDir::new("rate-limits");
    let (port, up, hold) = (free_port(), free_port(), free_port());
    let _u = python_upstream(up);
    let hold_script = repo().join("tests/support_hold_app.py");
    let hold_port = hold.to_string();
    let _h = python(
        &[hold_script.as_os_str(), hold_port.as_ref(), "h".as_ref()],
        hold,
    );
    let m = free_port();
    let t = tether(&dir, &config(port, up, hold, m), &[port, m]);
    let p = port.to_string();

    // nodelay, 10 r/s, burst 2: three pass at once, the rest of a quick run is refused with
    // Retry-After (the answers are quick: few slots free up meanwhile).
    let v = client(&["seq", &p, "/nodelay/whoami", "8"]);
    let status = list(&v, "status");
    let ms = list(&v, "ms");
    assert_eq!(&status[..3], &[200, 200, 200], "{v}");
    let ok = status.iter().filter(|&&s| s == 200).count() as u64;
    let limited = status.iter().filter(|&&s| s == 429).count() as u64;
    assert_eq!(ok + limited, 8, "{v}");
    // At most one more slot per 100 ms elapsed.
    assert!(ok <= 3 + ms[7] / 100 + 1, "{v}");
    assert!(limited >= 1, "{v}");
    let first = status.iter().position(|&s| s == 429).unwrap();
    assert_eq!(v["retry_after"][first], "1", "{v}");
    // The fast answers took no delay.
    assert!(ms[2] < 300, "{v}");

    // Delayed (no nodelay), 10 r/s, burst 3: four requests all pass, the fourth about
    // 300 ms after the first.
    let v = client(&["seq", &p, "/delayed/whoami", "4"]);
    assert_eq!(list(&v, "status"), vec![200, 200, 200, 200], "{v}");
    let ms = list(&v, "ms");
    assert!(ms[3] >= 250, "the burst was not delayed: {v}");

    // Over HTTP/2 (limits of their own, the same rules): five streams at once, four pass,
    // delayed in turn, the fifth is refused at once.
    let v = client(&["h2", &p, "/h2/delayed/whoami", "5"]);
    let mut status = list(&v, "status");
    status.sort();
    assert_eq!(status, vec![200, 200, 200, 200, 429], "{v}");
    let ms = list(&v, "ms");
    let slowest_ok = (0..5)
        .filter(|&i| v["status"][i] == 200)
        .map(|i| ms[i])
        .max()
        .unwrap();
    assert!(slowest_ok >= 250, "HTTP/2 burst not delayed: {v}");
    // nodelay over HTTP/2: three streams pass at once, the others get 429 + Retry-After.
    let v = client(&["h2", &p, "/h2/nodelay/whoami", "6"]);
    let s = list(&v, "status");
    let ok = s.iter().filter(|&&x| x == 200).count();
    assert!((3..=4).contains(&ok), "{v}");
    let refused = (0..6).find(|&i| v["status"][i] == 429).expect("a 429");
    assert_eq!(v["retry_after"][refused], "1", "{v}");

    // Keyed by a header: each key its own bucket (1 r/m: one request per key).
    let key_a = "X-Api-Key=alpha";
    let v = client(&["seq", &p, "/keyed/whoami", "2", key_a]);
    assert_eq!(list(&v, "status"), vec![200, 429], "{v}");
    let v = client(&["seq", &p, "/keyed/whoami", "1", "X-Api-Key=beta"]);
    assert_eq!(list(&v, "status"), vec![200], "{v}");
    let (code, body) = {
        let out = curl(&[
            "-H",
            "X-Api-Key: alpha",
            "-w",
            "\n%{http_code}",
            &format!("http://127.0.0.1:{port}/keyed/x"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (b, c) = text.rsplit_once('\n').unwrap();
        (c.to_string(), b.to_string())
    };
    assert_eq!(code, "429");
    assert_eq!(body, "slow down\n", "the configured body");
    let v = client(&["h2", &p, "/keyed/whoami", "1", "X-Api-Key=gamma"]);
    assert_eq!(list(&v, "status"), vec![200], "{v}");
    let v = client(&["h2", &p, "/keyed/whoami", "1", "X-Api-Key=alpha"]);
    assert_eq!(list(&v, "status"), vec![429], "{v}");

    // The counters per limit, in /metrics and /api.
    let (_, text) = get(&format!("http://127.0.0.1:{m}/metrics"));
    let text = String::from_utf8_lossy(&text).into_owned();
    let sample = |line: &str| -> u64 {
        common::sample(&text, line).unwrap_or_else(|| panic!("no {line} in:\n{text}")) as u64
    };
    assert!(sample("tether_limit_requests_total{limit=\"nodelay\",result=\"rejected\"}") >= 1);
    assert!(sample("tether_limit_requests_total{limit=\"delayed\",result=\"delayed\"}") >= 3);
    assert!(sample("tether_limit_requests_total{limit=\"per_key\",result=\"allowed\"}") >= 2);
    assert_eq!(
        sample("tether_limit_evicted_keys_total{limit=\"per_key\"}"),
        0
    );
    let (_, api) = get(&format!("http://127.0.0.1:{m}/api"));
    let api: serde_json::Value = serde_json::from_slice(&api).expect("/api JSON");
    assert!(
        api["limits"]["delayed_h2"]["rejected"].as_u64() >= Some(1),
        "{api}"
    );

    // limit_conn = 1: one request held at the backend; another of the same client gets 429
    // (HTTP/1.1 and HTTP/2); once it is answered, the next passes.
    let held = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            &format!("http://127.0.0.1:{port}/hold"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    assert!(
        eventually(Duration::from_secs(10), || {
            get(&format!("http://127.0.0.1:{hold}/inflight")).1 == b"1"
        }),
        "the request is not held"
    );
    let (code, _) = get(&format!("http://127.0.0.1:{port}/whoami"));
    assert_eq!(code, 429);
    let v = client(&["h2", &p, "/whoami", "1"]);
    assert_eq!(list(&v, "status"), vec![429], "{v}");
    let (code, _) = get(&format!("http://127.0.0.1:{hold}/release"));
    assert_eq!(code, 200);
    let out = held.wait_with_output().expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "h");
    assert!(
        eventually(Duration::from_secs(5), || get(&format!(
            "http://127.0.0.1:{port}/whoami"
        ))
        .0 == 200),
        "the permit was not given back"
    );
    drop(t);
}

fn shared_config(port: u16, up: u16, redis: &str, on_error: &str) -> String {
    format!(
        r#"
store = "{redis}"
on_store_error = "{on_error}"

[[limit]]
name = "shared"
rate = "10r/s"
burst = 2
nodelay = true

[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]

[[server.route]]
path = "/"
proxy = "app"
limits = ["shared"]
"#
    )
}

#[test]
fn two_instances_share_one_limit_through_redis_then_open_or_closed_without_it() {
    let Some(mut redis) = Redis::start_new() else {
        return;
    };
    let up = free_port();
    let _u = python_upstream(up);
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("rate-shared-a"), TempDir::new("rate-shared-b"));
    let a = tether(&da, &shared_config(pa, up, &redis.url(), "open"), &[pa]);
    let b = tether(&db, &shared_config(pb, up, &redis.url(), "closed"), &[pb]);

    // 40 r/s offered for 5 s over both instances: about 10 r/s pass in total (the burst of
    // 2 absorbs the clients' jitter; 50 + 3 expected, within 15 %).
    let v = client(&[
        "pace",
        "40",
        "5",
        "/whoami",
        &pa.to_string(),
        &pb.to_string(),
    ]);
    let ok = v["ok"].as_u64().unwrap();
    let limited = v["limited"].as_u64().unwrap();
    eprintln!(
        "shared limit: {ok} passed, {limited} refused of {} (10 r/s x 5 s + 3 = 53)",
        ok + limited
    );
    assert_eq!(v["other"], 0, "{v}");
    assert!((45..=61).contains(&ok), "not ~10 r/s in total: {v}");

    // Redis gone: "open" limits in the instance (some pass, some 429, no 503); "closed"
    // refuses with 503.
    redis.stop();
    let closed_refuses = eventually(Duration::from_secs(10), || {
        get(&format!("http://127.0.0.1:{pb}/whoami")).0 == 503
    });
    assert!(
        closed_refuses,
        "closed did not answer 503: {}",
        b.log_text()
    );
    let v = client(&["seq", &pa.to_string(), "/whoami", "8"]);
    let s = list(&v, "status");
    assert!(s.iter().all(|&x| x == 200 || x == 429), "{v}");
    assert!(
        s.contains(&200) && s.contains(&429),
        "open: not the local limiter: {v}"
    );
    assert!(
        a.wait_log_within("limiting in this instance only", Duration::from_secs(5)),
        "{}",
        a.log_text()
    );
}
