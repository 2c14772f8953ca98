//! A corpus of malformed and ambiguous requests sent with `nc` through tether's proxy: each
//! gets its exact status, and not one byte of any of them reaches the upstream (a real
//! socket that records what arrives). A well-formed request afterwards still goes through.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

const H: &str = "Host: example.com\r\n";

/// An upstream that counts every byte it receives and answers nothing.
fn recording_upstream() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(AtomicUsize::new(0));
    let count = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    count.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (port, got)
}

fn corpus() -> Vec<(String, u16)> {
    vec![
        // Content-Length and Transfer-Encoding: smuggling material.
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5, 6\r\n\r\nhello"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: +5\r\n\r\nhello"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 5 5\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 0x10\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length:\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content-Length: 18446744073709551616\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Content_Length: 5\r\n\r\nhello"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"), 501),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n"), 501),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: identity\r\n\r\n"), 501),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
        (format!("POST / HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding:\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked;q=1\r\n\r\n"), 400),
        (format!("POST / HTTP/1.1\r\n{H}Transfer_Encoding: chunked\r\n\r\n"), 400),
        // Header lines.
        (format!("GET / HTTP/1.1\r\n{H}X: a\r\n b\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: a\r\n\tb\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n {H}\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: a\0b\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}X: a\rb\r\n\r\n"), 400),
        ("GET / HTTP/1.1\r\nHost : example.com\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n".into(), 400),
        (format!("GET / HTTP/1.1\r\n{H}Content-Length : 5\r\n\r\n"), 400),
        ("GET / HTTP/1.1\nHost: example.com\n\n".into(), 400),
        (format!("GET / HTTP/1.1\r\n{H}Bad Header\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\n{H}: no-name\r\n\r\n"), 400),
        // Request lines.
        (format!("GET /\r\n{H}\r\n"), 400),
        (format!("GET\r\n{H}\r\n"), 400),
        (format!("GET / HTTP/2.0\r\n{H}\r\n"), 505),
        (format!("GET / HTTP/1.2\r\n{H}\r\n"), 505),
        (format!("GET / HTTP/0.9\r\n{H}\r\n"), 505),
        (format!("GET / http/1.1\r\n{H}\r\n"), 400),
        (format!("GET  / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("G(T / HTTP/1.1\r\n{H}\r\n"), 400),
        (format!("GET /a b HTTP/1.1\r\n{H}\r\n"), 400),
        ("\x00\x01\x02\x03\r\n\r\n".into(), 400),
        // Host.
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        (format!("GET / HTTP/1.1\r\n{H}{H}\r\n"), 400),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n".into(), 400),
        ("GET http://other.example/ HTTP/1.1\r\nHost: example.com\r\n\r\n".into(), 400),
        // Expect.
        (format!("GET / HTTP/1.1\r\n{H}Expect: teapot\r\n\r\n"), 417),
        // Sizes.
        (format!("GET /{} HTTP/1.1\r\n{H}\r\n", "a".repeat(8200)), 414),
        (format!("GET / HTTP/1.1\r\n{H}X: {}\r\n\r\n", "a".repeat(17000)), 431),
        (format!("GET / HTTP/1.1\r\n{H}{}\r\n", "X: 1\r\n".repeat(120)), 431),
        // Cut short, then the client's FIN.
        (format!("GET / HTTP/1.1\r\n{H}"), 400),
    ]
}

#[test]
fn malformed_requests_get_their_status_and_never_reach_the_upstream() {
    let dir = TempDir::new("malformed");
    let (up, received) = recording_upstream();
    let port = free_port();
    let cfg = format!("[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\n");
    let mut t = tether(&dir, &cfg, &[port]);
    let cases = corpus();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (req, status) in &cases {
        let out = raw(port, req.as_bytes());
        let s = String::from_utf8_lossy(&out);
        let shown: String = req.chars().take(80).collect();
        assert!(
            s.starts_with(&format!("HTTP/1.1 {status} ")),
            "{shown:?}: got {:?}",
            s.lines().next()
        );
        assert!(
            s.contains("Connection: close\r\n"),
            "{shown:?}: an error closes the connection"
        );
        assert_eq!(
            received.load(Ordering::SeqCst),
            0,
            "{shown:?} reached the upstream"
        );
    }
    assert!(t.alive(), "tether died");
    // The same listener still proxies a good request (which does reach the upstream).
    let _ = raw(
        port,
        format!("GET /ok HTTP/1.1\r\n{H}Connection: close\r\n\r\n").as_bytes(),
    );
    assert!(eventually(std::time::Duration::from_secs(5), || received
        .load(Ordering::SeqCst)
        > 0));
}
