//! A pooled upstream connection that the server closes just as it is reused: the request
//! (without a body) is retried once on a fresh connection and the client never sees it.
//! tether does not probe a connection parked a moment ago (`crates/core/src/pool.rs`,
//! `PROBE_AFTER`), so this retry is what keeps such a race invisible.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

/// Read one request head (this test's requests have no body); false at EOF.
fn read_head(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// An upstream that answers the first request of each connection and closes the connection,
/// unanswered, when a second request arrives on it. Returns its port and a count of
/// accepted connections.
fn closes_on_reuse() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::spawn(move || {
                if !read_head(&mut s) {
                    return;
                }
                let body = format!("conn {n}\n");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                // The next request on this connection is not answered: the server closes.
                let _ = read_head(&mut s);
            });
        }
    });
    (port, accepted)
}

#[test]
fn a_reused_connection_closed_by_the_server_is_retried_on_a_fresh_one() {
    let dir = TempDir::new("pool-retry");
    let (up, accepted) = closes_on_reuse();
    let port = free_port();
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\n"
    );
    let t = tether(&dir, &config, &[port]);
    let url = format!("http://127.0.0.1:{port}/x");
    for i in 1..=3 {
        let (code, body) = get(&url);
        assert_eq!(code, 200, "request {i}: {}", t.log_text());
        // Request 1 opens connection 1; each later one is first sent on the pooled
        // connection (closed unanswered), then retried on a new one.
        assert_eq!(String::from_utf8_lossy(&body), format!("conn {i}\n"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
