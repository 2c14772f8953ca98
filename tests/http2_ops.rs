//! HTTP/2 with the rest of tether, end to end (h2c, `tests/support_h2.py` as the client):
//! a graceful reload (SIGHUP to the master) while streams are in flight against a slow
//! upstream finishes them all (GOAWAY NO_ERROR, then the connection closes), and cookie
//! affinity pins the streams of one connection that carry the cookie.

mod affinity_support;
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use affinity_support::{apps, KEY};
use common::*;
use serde_json::Value;

/// `support_h2.py MODE PORT` as a child; its stdout.
fn client(mode: &str, port: u16) -> std::process::Child {
    Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(repo().join("tests/support_h2.py"))
        .args([mode, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with the h2 package: scripts/setup.sh)")
}

/// The JSON report a client printed last.
fn report(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("client");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn count_in(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// Wait (bounded, 10 s) until a worker of `t` has finished after a reload.
fn old_worker_finished(t: &Proc) {
    assert!(
        eventually(Duration::from_secs(10), || count_in(
            &t.log_text(),
            ") finished (exit code 0)"
        ) >= 1),
        "{}",
        t.log_text()
    );
}

#[test]
fn reload_drains_h2_streams_in_flight() {
    let dir = TempDir::new("h2-drain");
    let (port, up_port) = (free_port(), free_port());
    let _up = python_upstream(up_port);
    let config = |gen: u32| {
        format!(
            "server_name = \"gen-{gen}\"\n\n[[upstream]]\nname = \"app\"\n\
             servers = [\"127.0.0.1:{up_port}\"]\n\n[[server]]\n\
             listen = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n[[server.route]]\n\
             path = \"/\"\nproxy = \"app\"\n"
        )
    };
    let t = tether(&dir, &config(1), &[port]);
    let master = t.child_pid();
    let started = Instant::now();
    // 20 streams of /slow?ms=2000 on one connection; once sent, reload.
    let mut c = client("drain", port);
    let mut line = String::new();
    if let Some(out) = c.stdout.as_mut() {
        let _ = BufReader::new(out.by_ref()).read_line(&mut line);
    }
    assert_eq!(line.trim(), "sent");
    std::thread::sleep(Duration::from_millis(500));
    dir.write("tether.toml", config(2).as_bytes());
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(master as libc::pid_t, libc::SIGHUP) };
    let r = report(c);
    // Every stream finished with the slow answer: 0 failures.
    for id in (1..41).step_by(2) {
        assert_eq!(r["status"][id.to_string()], 200, "stream {id}: {r}");
        assert_eq!(r["body"][id.to_string()], "slow", "stream {id}: {r}");
    }
    assert_eq!(r["rst"], serde_json::json!({}), "{r}");
    // The drain said GOAWAY NO_ERROR, then closed the connection.
    assert_eq!(r["goaway"], serde_json::json!([0]), "{r}");
    assert_eq!(r["eof"], true, "{r}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    // The old worker finished; the new one serves.
    old_worker_finished(&t);
    let out = curl(&[
        "--http2-prior-knowledge",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("http://127.0.0.1:{port}/whoami"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    assert_eq!(running_pids(&t.log_text()).len(), 2, "{}", t.log_text());
    assert!(!t.log_text().contains("panicked"), "{}", t.log_text());
}

#[test]
fn cookie_affinity_pins_streams_on_one_connection() {
    let dir = TempDir::new("h2-affinity");
    let (_apps, ports) = apps(&["a", "b", "c"]);
    let port = free_port();
    let servers: Vec<String> = (ports.iter().zip(["a", "b", "c"]))
        .map(|(p, n)| format!("{{ id = \"{n}\", addr = \"127.0.0.1:{p}\" }}"))
        .collect();
    let config = format!(
        "[[upstream]]\nname = \"app\"\nservers = [{}]\nbalance = \"cookie\"\n\
         cookie_name = \"srv\"\nkeys = [\"{KEY}\"]\n\n[[server]]\n\
         listen = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n[[server.route]]\n\
         path = \"/\"\nproxy = \"app\"\n",
        servers.join(", ")
    );
    let t = tether(&dir, &config, &[port]);
    let r = report(client("affinity", port));
    // The first stream is balanced and gets the sealed cookie.
    let first = &r["headers"]["1"];
    let set_cookie = (first.as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .find(|h| h.starts_with("set-cookie: srv="));
    assert!(set_cookie.is_some(), "{r}");
    let home = r["body"]["1"].as_str().unwrap_or_default().to_string();
    assert!(["a", "b", "c"].contains(&home.as_str()), "{r}");
    // The 10 streams with it go to the same server, with no new cookie.
    for id in (3..23).step_by(2) {
        let k = id.to_string();
        assert_eq!(r["status"][&k], 200, "{r}");
        assert_eq!(r["body"][&k], home.as_str(), "stream {id}: {r}");
        let again = (r["headers"][&k].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .any(|h| h.starts_with("set-cookie: srv="));
        assert!(!again, "stream {id} got a new cookie: {r}");
    }
    // The 10 without it, on the same connection, are balanced over the servers.
    let seen: HashSet<&str> = (23..43)
        .step_by(2)
        .filter_map(|id| r["body"][id.to_string()].as_str())
        .collect();
    assert!(seen.len() >= 2, "not balanced: {seen:?}: {r}");
    assert!(!t.log_text().contains("panicked"));
}

#[test]
fn reload_closes_an_h2_websocket_feed_with_going_away() {
    // The broker's feed on an HTTP/2 stream (RFC 8441) during a reload: tether sends the
    // WebSocket close 1001 and ends the stream, so the old worker's drain does not wait for
    // `drain_timeout`.
    let dir = TempDir::new("h2-feed-drain");
    let (port, sim_port) = (free_port(), free_port());
    let script = repo().join("examples/fake_sim_server.py");
    let _sim = python(
        &[
            script.as_os_str(),
            "--port".as_ref(),
            sim_port.to_string().as_ref(),
            "--load".as_ref(),
            "10".as_ref(),
        ],
        sim_port,
    );
    let config = format!(
        "drain_timeout_ms = 20000\n\n[[broker]]\nname = \"sim\"\n\
         servers = [\"localhost:{sim_port}\"]\npoll_interval_ms = 200\n\n[[server]]\n\
         listen = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n[[server.route]]\n\
         path = \"/\"\nbroker = \"sim\"\n"
    );
    let t = tether(&dir, &config, &[port]);
    assert!(eventually(Duration::from_secs(5), || get(&format!(
        "http://127.0.0.1:{port}/"
    ))
    .1 == b"1"));
    let mut c = h2_ws_child("feed-drain", port, "/");
    let mut lines = BufReader::new(c.stdout.take().expect("stdout")).lines();
    assert_eq!(
        lines.next().and_then(Result::ok).unwrap_or_default(),
        "first 1"
    );
    let started = Instant::now();
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(t.child_pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(
        lines.next().and_then(Result::ok).unwrap_or_default(),
        "close 1001"
    );
    assert_eq!(
        lines.next().and_then(Result::ok).unwrap_or_default(),
        "ended"
    );
    let _ = c.wait();
    // The old worker finished long before the 20 s drain timeout.
    old_worker_finished(&t);
    assert!(started.elapsed() < Duration::from_secs(10));
}
