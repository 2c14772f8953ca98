//! HTTP/1.1 end to end: keep-alive with clients, pooled upstream connections, pipelining,
//! request bodies (length and chunked), chunked and close-delimited responses, 502 and 504,
//! and a connection that holds no reader pipe while its client is silent.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;

fn proxy_config(port: u16, upstream: u16, extra: &str) -> String {
    format!("[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{upstream}\"\n{extra}")
}

/// (port, n) from a `/whoami` body.
fn whoami(body: &[u8]) -> (u16, u32) {
    let s = String::from_utf8_lossy(body);
    let mut it = s.split_whitespace().map(|kv| {
        kv.split_once('=')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    });
    let port = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let n = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (port, n)
}

#[test]
fn client_keep_alive_and_pooled_upstream_connections() {
    let dir = TempDir::new("ka-pool");
    let (up, port) = (free_port(), free_port());
    let _py = python_upstream(up);
    let _t = tether(&dir, &proxy_config(port, up, ""), &[port]);
    let url = format!("http://127.0.0.1:{port}/whoami");
    let out = curl(&["-v", &url, &url, &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("Re-using existing connection").count(),
        2,
        "{err}"
    );
    let bodies = String::from_utf8_lossy(&out.stdout).replace("port=", "\nport=");
    let seen: Vec<(u16, u32)> = bodies
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| whoami(l.as_bytes()))
        .collect();
    assert_eq!(seen.len(), 3, "{bodies}");
    // One upstream connection carried all three requests.
    assert!(seen.iter().all(|&(p, _)| p == seen[0].0), "{seen:?}");
    assert_eq!(
        seen.iter().map(|&(_, n)| n).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // A new client connection reuses the pooled upstream connection.
    let (code, body) = get(&url);
    assert_eq!(code, 200);
    assert_eq!(whoami(&body), (seen[0].0, 4));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = TempDir::new("ka-pipe");
    let (up, port) = (free_port(), free_port());
    let _py = python_upstream(up);
    let _t = tether(&dir, &proxy_config(port, up, ""), &[port]);
    let req = b"GET /whoami HTTP/1.1\r\nHost: a\r\n\r\nGET /chunked?n=2 HTTP/1.1\r\nHost: a\r\n\r\nGET /head HTTP/1.1\r\nHost: last\r\nConnection: close\r\n\r\n";
    let out = String::from_utf8_lossy(&raw(port, req)).to_string();
    let starts: Vec<usize> = out
        .match_indices("HTTP/1.1 200 OK\r\n")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 3, "{out}");
    let (a, b, c) = (
        &out[starts[0]..starts[1]],
        &out[starts[1]..starts[2]],
        &out[starts[2]..],
    );
    assert!(a.contains("port="), "{a}");
    assert!(
        b.contains("Transfer-Encoding: chunked\r\n")
            && b.contains("chunk-0\n")
            && b.contains("chunk-1\n"),
        "{b}"
    );
    assert!(b.ends_with("0\r\n\r\n"), "{b}");
    assert!(
        c.contains("Connection: close\r\n") && c.contains("Host: last"),
        "{c}"
    );
}

#[test]
fn request_bodies_with_length_and_chunked() {
    let dir = TempDir::new("ka-bodies");
    let (up, port) = (free_port(), free_port());
    let _py = python_upstream(up);
    let _t = tether(&dir, &proxy_config(port, up, ""), &[port]);
    let data = noise(1 << 20, 11);
    let file = dir.write("body.bin", &data);
    let at = format!("@{}", file.display());
    let url = format!("http://127.0.0.1:{port}/echo");
    let out = curl(&["--data-binary", &at, &url]);
    assert!(
        out.stdout == data,
        "length body: {} bytes back",
        out.stdout.len()
    );
    let out = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &at,
        &url,
    ]);
    assert!(
        out.stdout == data,
        "chunked body: {} bytes back",
        out.stdout.len()
    );
    // A body then another request on the same connection.
    let out = curl(&[
        "-v",
        "--data-binary",
        "hello",
        &url,
        "--next",
        &format!("http://127.0.0.1:{port}/whoami"),
    ]);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.starts_with("helloport="), "{body}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Re-using existing connection"));
}

#[test]
fn chunked_and_close_delimited_responses() {
    let dir = TempDir::new("ka-resp");
    let (up, port) = (free_port(), free_port());
    let _py = python_upstream(up);
    let _t = tether(&dir, &proxy_config(port, up, ""), &[port]);
    let (code, body) = get(&format!("http://127.0.0.1:{port}/chunked?n=500"));
    assert_eq!(code, 200);
    let want: String = (0..500).map(|i| format!("chunk-{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&body), want);
    let out = curl(&["-i", &format!("http://127.0.0.1:{port}/close")]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("Connection: close\r\n"), "{s}");
    assert!(s.ends_with(&"until close\n".repeat(100)), "{s}");
}

#[test]
fn silent_upstream_is_504_and_reset_upstream_is_502() {
    let dir = TempDir::new("ka-errors");
    let (up, port, rport) = (free_port(), free_port(), free_port());
    let _py = python_upstream(up);
    // An upstream that accepts, reads the request and closes without answering.
    let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let rude = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
        }
    });
    let config = format!(
        "{}\n{}",
        proxy_config(port, up, "idle_timeout_ms = 1000\n"),
        proxy_config(rport, rude, "")
    );
    let t = tether(&dir, &config, &[port, rport]);
    let (code, _) = get(&format!("http://127.0.0.1:{port}/slow?ms=3000"));
    assert_eq!(code, 504);
    let (code, _) = get(&format!("http://127.0.0.1:{rport}/"));
    assert_eq!(code, 502);
    assert!(t.wait_log("timed out"), "{}", t.log_text());
    assert!(t.wait_log("closed without a response"), "{}", t.log_text());
}

#[test]
fn files_keep_alive() {
    let dir = TempDir::new("ka-files");
    dir.write("www/a.txt", b"A\n");
    dir.write("www/b.txt", b"B\n");
    let port = free_port();
    let cfg = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\n",
        dir.path().join("www").display()
    );
    let _t = tether(&dir, &cfg, &[port]);
    let base = format!("http://127.0.0.1:{port}");
    let out = curl(&[
        "-v",
        &format!("{base}/a.txt"),
        &format!("{base}/missing"),
        &format!("{base}/b.txt"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("Re-using existing connection").count(),
        2,
        "{err}"
    );
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.starts_with("A\n") && body.ends_with("B\n") && body.contains("404 Not Found"),
        "{body}"
    );
}

/// Read one response with a `Content-Length` from `s` (bytes after it stay in `buf`):
/// (head, body).
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no Content-Length: {head}"));
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).expect("read a body");
                assert!(n > 0, "closed within a body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return (head, body);
        }
        let n = s.read(&mut chunk).expect("read a head");
        assert!(
            n > 0,
            "closed before a head: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// While a file goes out to a client that does not read it yet, and between requests, the
/// session holds no reader pipe (the core tells it when the client sends): a request sent
/// meanwhile is answered after the file, one sent after a silence is answered, and a FIN
/// after a silence closes the connection.
#[test]
fn a_silent_client_is_woken_by_its_next_request_or_its_fin() {
    let dir = TempDir::new("ka-silent");
    let big: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
    dir.write("www/big.bin", &big);
    dir.write("www/a.txt", b"A\n");
    let port = free_port();
    let cfg = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\n",
        dir.path().join("www").display()
    );
    let _t = tether(&dir, &cfg, &[port]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // 4 MiB cannot all be in the socket buffers: the answer is stuck until we read.
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_response(&mut s, &mut buf);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body == big,
        "the file arrived changed ({} bytes)",
        body.len()
    );
    let (head, body) = read_response(&mut s, &mut buf);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"A\n");
    // Silent between requests, then a request.
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut s, &mut buf);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"A\n");
    // Silent again, then the client's FIN: tether closes its side at once.
    std::thread::sleep(Duration::from_millis(300));
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("tether closes the connection");
    assert!(buf.is_empty() && rest.is_empty(), "{rest:?}");
}
