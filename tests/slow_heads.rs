//! Slow heads at the connection limit, end to end with the real binary: with
//! `max_connections = 50`, 50 clients trickling unfinished request heads no longer lock
//! everyone else out until the head deadline; tether sheds the connection that has spent
//! longest on an unfinished head (or idle) to admit a new one, and counts it in `/metrics`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_new_client_gets_in_past_slow_heads_at_the_limit() {
    let dir = TempDir::new("slow-heads");
    let (port, metrics) = (free_port(), free_port());
    let cfg = format!(
        "workers = 1\nmax_connections = 50\n\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nheader_timeout_ms = 10000\n\n\
         [[server.route]]\npath = \"/\"\nredirect = \"https://example.org/\"\n"
    );
    let t = tether(&dir, &cfg, &[port, metrics]);
    // 50 slow clients, each with a head begun and never finished (the limit counts the
    // metrics listener's connections too: these fill the rest).
    let mut slow = Vec::new();
    for _ in 0..60 {
        if let Ok(mut s) = TcpStream::connect(addr(port)) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHo");
            slow.push(s);
        }
    }
    // The 51st slow client already reached the limit: tether shed the oldest slow head.
    assert!(
        t.wait_log("shed a connection waiting for"),
        "at the limit a slow head is shed:\n{}",
        t.log_text()
    );
    // A normal client is answered at once, not after the 10 s head deadline.
    for i in 0..5 {
        let t = Instant::now();
        let out = curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "3",
            &format!("http://127.0.0.1:{port}/"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "302", "client {i}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "client {i}: {:?}",
            t.elapsed()
        );
    }
    let (_, body) = get(&format!("http://127.0.0.1:{metrics}/metrics"));
    let text = String::from_utf8_lossy(&body);
    let shed = sample(&text, "tether_connections_shed_total")
        .expect("tether_connections_shed_total in /metrics");
    assert!(
        shed >= 5.0,
        "one slow head shed per new client: {shed}\n{text}"
    );
    drop(slow);
}
