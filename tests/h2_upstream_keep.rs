//! How tether keeps its HTTP/2 upstream connections (`h2_idle_timeout_ms`,
//! `h2_ping_interval_ms`, `h2_ping_timeout_ms` of an `[[upstream]]`), end to end with a
//! Python `h2` server (`tests/support_h2c.py`, which numbers its connections in `x-conn`):
//! an unused connection closes after the idle timeout (the next request opens another),
//! and a server that stops answering (SIGSTOP: the kernel still acknowledges, nothing
//! else comes) is found out by an unanswered PING, its connection failed and the call on
//! it answered 502 long before any request deadline (HTTP/1.1 client); the connection
//! opened next to the stopped server never gets its SETTINGS and fails as soon (HTTP/2
//! client).

mod common;

use std::time::{Duration, Instant};

use common::*;

fn setup(dir: &TempDir, keep: &str) -> (u16, Proc, Proc) {
    let (port, up_port) = (free_port(), free_port());
    let up = h2c_app(up_port);
    let config = format!(
        r#"
workers = 1

[[upstream]]
name = "h2app"
servers = ["127.0.0.1:{up_port}"]
protocol = "h2c"
{keep}

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "h2app"
"#
    );
    let t = tether(dir, &config, &[port]);
    (port, up, t)
}

/// `curl [--http2-prior-knowledge | --http1.1] URL`: (status, x-conn).
fn hello(port: u16, h2: bool) -> (String, String) {
    let url = format!("http://127.0.0.1:{port}/hello");
    let proto = if h2 {
        "--http2-prior-knowledge"
    } else {
        "--http1.1"
    };
    let out = curl(&[
        proto,
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let conn = (text.lines())
        .find_map(|l| l.strip_prefix("x-conn: "))
        .unwrap_or("-")
        .trim()
        .to_string();
    let status = text.rsplit('\n').next().unwrap_or("").trim().to_string();
    (status, conn)
}

#[test]
fn an_unused_upstream_connection_closes_after_the_idle_timeout() {
    let dir = TempDir::new("h2-keep-idle");
    let (port, _up, t) = setup(&dir, "h2_idle_timeout_ms = 300");
    let (status, first) = hello(port, false);
    assert_eq!(status, "200");
    // Within the idle timeout the connection is reused...
    let (_, again) = hello(port, true);
    assert_eq!(again, first, "reused while in use lately");
    // ...past it, the hub closes it (GOAWAY) and the next request opens another.
    assert!(
        t.wait_log_within("unused, closed (GOAWAY)", Duration::from_secs(10)),
        "{}",
        t.log_text()
    );
    let (status, later) = hello(port, false);
    assert_eq!(status, "200");
    assert_ne!(later, first, "a new connection after the idle timeout");
}

#[test]
fn an_unanswered_ping_fails_the_connection_and_its_calls() {
    let dir = TempDir::new("h2-keep-ping");
    let (port, up, t) = setup(
        &dir,
        "h2_ping_interval_ms = 200\nh2_ping_timeout_ms = 500\nh2_idle_timeout_ms = 60000",
    );
    let (status, first) = hello(port, true);
    assert_eq!(status, "200");
    // The server stops (its socket stays open: only a PING can tell).
    let pid = up.pid().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill");
    assert!(stop.success());
    for h2 in [false, true] {
        let started = Instant::now();
        let (status, _) = hello(port, h2);
        // The request deadline is 60 s (idle_timeout): only the PING ends it this soon.
        assert_eq!(status, "502", "h2={h2}\n{}", t.log_text());
        assert!(started.elapsed() < Duration::from_secs(8), "h2={h2}");
    }
    assert!(
        t.log_text().contains("no PING answer in 500 ms"),
        "{}",
        t.log_text()
    );
    let cont = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill");
    assert!(cont.success());
    // The server is back: a fresh connection serves.
    let (status, later) = hello(port, false);
    assert_eq!(status, "200", "{}", t.log_text());
    assert_ne!(later, first);
}
