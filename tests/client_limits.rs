//! What one client may take from tether, tried with real sockets against the real binary:
//!
//! - a request head has `header_timeout_ms` from its first byte (slowloris): a client that
//!   trickles a head one byte at a time gets `408` and a close at the deadline, however
//!   often it sends; a connection that sends nothing is closed silently at `idle_timeout_ms`;
//! - `max_connections_per_ip`: one address past its limit is answered `429` and closed,
//!   while another address is served; the count goes down when a connection ends.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A file listener with the given extra listener keys, serving `dir` (which has `hello.txt`).
fn config(port: u16, dir: &TempDir, top: &str, listener: &str) -> String {
    dir.write("www/hello.txt", b"hello\n");
    format!(
        "{top}[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\n{listener}",
        dir.path().join("www").display()
    )
}

/// Read what has arrived on `s` (non-blocking); `Err(())` once the peer closed or reset.
fn read_available(s: &mut TcpStream, into: &mut Vec<u8>) -> Result<(), ()> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Err(()),
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

/// Send `head` one byte every `every`, from a fresh connection, for at most `limit`; returns
/// what came back, how long after the first byte the connection was closed (None: still
/// open at `limit`), and how many bytes were sent.
fn trickle(
    port: u16,
    head: &[u8],
    every: Duration,
    limit: Duration,
) -> (Vec<u8>, Option<Duration>, usize) {
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_nonblocking(true).expect("nonblocking");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut sent = 0;
    while start.elapsed() < limit {
        if sent < head.len() && s.write(&head[sent..=sent]).is_ok() {
            sent += 1;
        }
        // Read in small steps until the next byte is due.
        let next = Instant::now() + every;
        while Instant::now() < next {
            if read_available(&mut s, &mut got).is_err() {
                return (got, Some(start.elapsed()), sent);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    (got, None, sent)
}

#[test]
fn a_trickling_head_gets_408_at_the_header_deadline() {
    let dir = TempDir::new("slowloris");
    let port = free_port();
    let cfg = config(
        port,
        &dir,
        "",
        "idle_timeout_ms = 1500\nheader_timeout_ms = 1500\n",
    );
    let _t = tether(&dir, &cfg, &[port]);

    // One byte every 300 ms: each byte comes well within the idle timeout, and the head never
    // ends (a header line that never finishes).
    let mut head = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 200));
    let (got, closed, sent) = trickle(
        port,
        &head,
        Duration::from_millis(300),
        Duration::from_secs(8),
    );
    let text = String::from_utf8_lossy(&got);
    let Some(after) = closed else {
        panic!("a head trickled for 8 s ({sent} bytes) is still open; got {text:?}");
    };
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(header(&text, "connection") == Some("close"), "{text:?}");
    // The deadline counts from the first byte: 1.5 s, then the close (nothing lingers, the
    // client half-closes nothing: tether's FIN ends the read).
    assert!(
        after >= Duration::from_millis(1300),
        "closed too soon: {after:?}"
    );
    assert!(
        after < Duration::from_millis(3500),
        "closed late: {after:?}"
    );

    // A complete head sent slowly but within the deadline is served, and the deadline of the
    // next request on the same connection starts at that request's first byte.
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..2 {
        for chunk in req.chunks(8) {
            s.write_all(chunk).expect("write");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).expect("answer");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
        // Between requests the keep-alive wait (idle timeout) applies, not the header one.
        std::thread::sleep(Duration::from_millis(1000));
    }
}

#[test]
fn silent_connections_close_without_a_408_and_stalled_heads_get_one() {
    let dir = TempDir::new("silent");
    let port = free_port();
    let cfg = config(
        port,
        &dir,
        "",
        "idle_timeout_ms = 1000\nheader_timeout_ms = 2000\n",
    );
    let _t = tether(&dir, &cfg, &[port]);

    // Nothing sent: closed at the idle timeout with no answer (there is no request to answer).
    let (got, closed, _) = trickle(
        port,
        b"",
        Duration::from_millis(100),
        Duration::from_secs(6),
    );
    let after = closed.expect("a silent connection stays open past 6 s");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_millis(2500),
        "{after:?}"
    );

    // A partial head, then silence: answered 408 at the header deadline (2 s from its first
    // byte), not at the idle timeout (1 s).
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(6)))
        .expect("timeout");
    let start = Instant::now();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHo")
        .expect("write");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let after = start.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(
        after >= Duration::from_millis(1800) && after < Duration::from_millis(4000),
        "{after:?}"
    );
}

/// `curl` from `source` (a loopback address) for `/hello.txt`: (status, head and body).
fn curl_from(source: &str, port: u16) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "5", "--interface", source])
        .arg(format!("http://127.0.0.1:{port}/hello.txt"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn one_address_past_max_connections_per_ip_gets_429_and_others_are_served() {
    let dir = TempDir::new("per-ip");
    let port = free_port();
    let cfg = config(port, &dir, "max_connections_per_ip = 2\n", "");
    let _t = tether(&dir, &cfg, &[port]);

    // Two connections from 127.0.0.1, each shown to be served (so each holds a session).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr(port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).expect("answer");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
        held.push(s);
    }

    // A third from 127.0.0.1: 429, a short body, Connection: close, then the close.
    let (status, text) = curl_from("127.0.0.1", port);
    assert_eq!(status, 429, "{text}");
    assert_eq!(header(&text, "connection"), Some("close"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(!body.is_empty() && body.len() < 200, "{body:?}");

    // Another address is served meanwhile.
    let (status, text) = curl_from("127.0.0.2", port);
    assert_eq!(status, 200, "{text}");

    // One of the two ends: 127.0.0.1 is served again (the count went down).
    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(5), || curl_from("127.0.0.1", port).0
            == 200),
        "127.0.0.1 still refused after one of its connections closed"
    );
    drop(held);
}
