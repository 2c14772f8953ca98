//! Heads checked in one pass and forwarded from their own bytes (issue 22), end to end with
//! the real binary, raw sockets as clients (`nc`) and a raw-socket upstream that records
//! every head it receives:
//!
//! - a bare LF anywhere in a request head (the request line, any field line, the empty
//!   line) is still `400`, and not one byte reaches the upstream;
//! - a bare LF anywhere in a backend's head is still `502`;
//! - the field lines tether keeps reach the upstream exactly as the client wrote them
//!   (spacing included), the ones it must drop do not, and tether's `X-Forwarded-*` follow;
//!   a backend's kept lines reach the client as the backend wrote them, with the body;
//! - the same request over HTTP/2 (h2c) reaches the upstream with the same fields.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// An upstream on a raw socket: records every request head it receives and answers each
/// with `answer` (keep-alive: the same connection may carry the next request).
fn raw_upstream(answer: &'static [u8]) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        seen.lock().expect("lock").push(head);
                        if s.write_all(answer).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, heads)
}

fn config(port: u16, up: u16) -> String {
    format!(
        "access_log = \"off\"\n\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{up}\"]\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
    )
}

const GOOD: &[u8] =
    b"HTTP/1.1 200 OK\r\nX-App:   spaced  \t\r\nContent-Length: 5\r\nX-Tail: t\r\n\r\nhello";

/// The request lines, joined with CRLF except line `bare`, which ends in a bare LF.
fn head_with_bare_lf(bare: usize) -> Vec<u8> {
    let lines = [
        "GET / HTTP/1.1",
        "Host: example.com",
        "X-A: 1",
        "Cookie: a=1; b=2",
        "X-B: 2",
        "",
    ];
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(if i == bare { b"\n" } else { b"\r\n" });
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_bare_lf_anywhere_in_a_request_head_is_refused_and_nothing_reaches_the_upstream() {
    let (up, heads) = raw_upstream(GOOD);
    let port = free_port();
    let dir = TempDir::new("head-lines-lf");
    let _t = tether(&dir, &config(port, up), &[port]);
    for bare in 0..6 {
        let answer = text(&raw(port, &head_with_bare_lf(bare)));
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "bare LF ending line {bare}: {answer}"
        );
    }
    assert!(
        heads.lock().expect("lock").is_empty(),
        "a refused head reached the upstream"
    );
    // The same head with CRLF everywhere goes through.
    let ok = text(&raw(port, &head_with_bare_lf(usize::MAX)));
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert_eq!(heads.lock().expect("lock").len(), 1);
}

#[test]
fn a_bare_lf_anywhere_in_a_backend_head_is_a_502() {
    let answers: [&'static [u8]; 4] = [
        b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\nok",
    ];
    for answer in answers {
        let (up, heads) = raw_upstream(answer);
        let port = free_port();
        let dir = TempDir::new("head-lines-lf-up");
        let _t = tether(&dir, &config(port, up), &[port]);
        let got = text(&raw(
            port,
            b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        ));
        assert_eq!(heads.lock().expect("lock").len(), 1, "{}", text(answer));
        assert!(
            got.starts_with("HTTP/1.1 502 "),
            "{:?} gave {got}",
            text(answer)
        );
    }
}

#[test]
fn kept_lines_cross_as_written_both_ways() {
    let (up, heads) = raw_upstream(GOOD);
    let port = free_port();
    let dir = TempDir::new("head-lines-kept");
    let _t = tether(&dir, &config(port, up), &[port]);
    let req = b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  spaced \t\r\n\
                Cookie: a=1; b=2\r\nConnection: keep-alive, X-Drop\r\nX-Drop: secret\r\n\
                Keep-Alive: 5\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\n\
                User-Agent: t/1\r\n\r\n";
    // Twice on one connection: the second request comes from a pooled upstream connection.
    let mut twice = req.to_vec();
    twice.extend_from_slice(&req[..]);
    let answer = text(&raw(port, &twice));
    assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{answer}");
    let first = answer
        .split("HTTP/1.1 200 OK\r\n")
        .nth(1)
        .expect("an answer");
    assert!(
        first.starts_with("X-App:   spaced  \t\r\nContent-Length: 5\r\nX-Tail: t\r\nServer: "),
        "{first:?}"
    );
    assert!(first.contains("\r\n\r\nhello"), "{first:?}");

    let heads = heads.lock().expect("lock");
    assert_eq!(heads.len(), 2);
    for head in heads.iter() {
        let h = text(head);
        assert!(
            h.starts_with(
                "GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  spaced \t\r\n\
                 Cookie: a=1; b=2\r\nUser-Agent: t/1\r\n"
            ),
            "{h:?}"
        );
        assert!(
            h.ends_with(
                "X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n\
                 X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n"
            ),
            "{h:?}"
        );
        for gone in ["X-Drop", "secret", "Keep-Alive", "Connection", "6.6.6.6"] {
            assert!(!h.contains(gone), "{gone} crossed: {h:?}");
        }
    }
}

#[test]
fn the_same_fields_cross_from_http2() {
    let (up, heads) = raw_upstream(GOOD);
    let port = free_port();
    let dir = TempDir::new("head-lines-h2");
    let _t = tether(&dir, &config(port, up), &[port]);
    let (status, headers, body) = h2_get(port, "/x?y=1", &["x-a=1", "cookie=a=1; b=2"]);
    assert_eq!((status, body.as_str()), (200, "hello"));
    assert_eq!(h2_header(&headers, "x-app"), Some("spaced"));
    assert!(eventually(Duration::from_secs(5), || {
        !heads.lock().expect("lock").is_empty()
    }));
    let h = text(&heads.lock().expect("lock")[0]);
    assert!(h.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{h:?}");
    for line in [
        "\r\nx-a: 1\r\n",
        "\r\ncookie: a=1; b=2\r\n",
        "\r\nX-Forwarded-Proto: http\r\n",
    ] {
        assert!(
            h.to_ascii_lowercase().contains(&line.to_ascii_lowercase()),
            "{line:?} not in {h:?}"
        );
    }
}
