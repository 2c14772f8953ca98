//! The proxied exchange's straight socket I/O (`Cx::write_now`, `Cx::read_now`): a request
//! head without a body and a small whole answer are written without a pipe, the answer read
//! from the watched upstream socket. Each case here is one where the straight path must give
//! way to a pipe, mid-message, without losing or reordering a byte: a client whose socket
//! is full (pipelined answers it does not read yet), an answer head that comes in two reads,
//! an interim `103` read together with the final answer, an upstream that closes a kept
//! connection; and HTTP/2 clients on the same listener and upstream.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// A raw HTTP/1.1 upstream: `/n/<i>` answers 4,000 bytes that start with `i` (keep-alive);
/// `/split` writes its head in two parts 200 ms apart; `/hints` writes a `103` and the
/// final answer in one write; `/once` answers and closes the connection without saying so
/// (the next request on it finds it closed); `/whoami` says which connection carried it.
const UPSTREAM: &str = r#"
import socket, sys, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(64)
conns = [0]
def serve(c):
    conns[0] += 1
    me, n, buf = conns[0], 0, b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                c.close(); return
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        path = head.split(b" ")[1].decode()
        n += 1
        if path.startswith("/n/"):
            body = ("%08d" % int(path[3:])).encode() + b"x" * 3992
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n" + body)
        elif path == "/split":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
            time.sleep(0.2)
            c.sendall(b"ngth: 5\r\nX-Split: yes\r\n\r\nhello")
        elif path == "/hints":
            c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path == "/once":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
            c.shutdown(socket.SHUT_RDWR); c.close(); return
        else:
            body = ("conn=%d n=%d" % (me, n)).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

fn setup(tag: &str) -> (TempDir, Proc, Proc, u16) {
    let dir = TempDir::new(tag);
    let (up, port) = (free_port(), free_port());
    let py = python_script(UPSTREAM, &[&up.to_string()], up);
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nhttp2 = true\nupstream = \"127.0.0.1:{up}\"\n"
    );
    let t = tether(&dir, &config, &[port]);
    (dir, py, t, port)
}

/// Read one `Content-Length` answer from `s` (`pending` holds bytes read past the last
/// one): its head and body.
fn read_answer(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_string();
            let len: usize = header(&head, "content-length")?.trim().parse().ok()?;
            while pending.len() < end + 4 + len {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                pending.extend_from_slice(&chunk[..n]);
            }
            let body = pending[end + 4..end + 4 + len].to_vec();
            pending.drain(..end + 4 + len);
            return Some((head, body));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// A client that sends 2,500 pipelined requests and reads nothing until tether stops taking
/// them (its receive buffer small): tether's writes to it find the socket full and go on
/// through pipes. Every answer arrives, whole and in order, and tether did not read the
/// client's requests faster than it could answer them (its memory stays bounded).
#[test]
fn a_client_that_does_not_read_gets_every_pipelined_answer_in_order() {
    let (_dir, _py, t, port) = setup("direct-full");
    let sock = socket2_small_rcvbuf(port);
    let mut s = sock;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    // 10 MB of answers: more than the kernel buffers on loopback hold (tcp_wmem's 4 MB).
    const N: usize = 2500;
    let mut reqs = Vec::new();
    for i in 0..N {
        reqs.extend_from_slice(format!("GET /n/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    s.write_all(&reqs).expect("send the pipelined requests");
    // Nothing read yet: the answers pile up in tether's socket until a write finds it full
    // and the rest of that answer goes through a pipe (tether says so at debug level).
    assert!(
        t.wait_log("client socket full"),
        "no answer found the client's socket full; log: {}",
        t.log_text()
    );
    let mut pending = Vec::new();
    for i in 0..N {
        let (head, body) = read_answer(&mut s, &mut pending)
            .unwrap_or_else(|| panic!("answer {i} missing; log: {}", t.log_text()));
        assert!(head.starts_with("HTTP/1.1 200"), "{i}: {head}");
        assert_eq!(body.len(), 4000, "{i}");
        assert_eq!(
            &body[..8],
            format!("{i:08}").as_bytes(),
            "answer {i} out of order"
        );
    }
    assert!(pending.is_empty());
    assert!(
        rss_kib(t.child_pid()) < 200 * 1024,
        "tether's memory grew while the client did not read"
    );
}

/// A TCP connection to `port` whose receive buffer is as small as the kernel allows (set
/// before connecting, so the window is small from the start).
fn socket2_small_rcvbuf(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor made here, owned by the `TcpStream` after.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let s = TcpStream::from_raw_fd(fd);
        let size: libc::c_int = 4096;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "SO_RCVBUF");
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect");
        s
    }
}

/// An answer head that comes in two reads (the straight read finds it partial): the rest
/// comes through the reader pipe, the first part ahead of it.
#[test]
fn an_answer_head_in_two_reads_is_forwarded_whole() {
    let (_dir, _py, _t, port) = setup("direct-split");
    let (code, head, body) = curl_get(port, "/split", &[]);
    assert_eq!(code, 200, "{head}");
    assert_eq!(header(&head, "x-split"), Some("yes"), "{head}");
    assert_eq!(body, "hello");
    // And the connection is reused after it.
    let (code, _, body) = curl_get(port, "/whoami", &[]);
    assert_eq!(code, 200);
    assert!(body.starts_with("conn="), "{body}");
}

/// A `103` read together with the final answer: both reach the client, in order.
#[test]
fn an_interim_answer_read_with_the_final_one_is_passed_on() {
    let (_dir, _py, _t, port) = setup("direct-hints");
    let out = raw(
        port,
        b"GET /hints HTTP/1.1\r\nHost: a\r\n\r\nGET /whoami HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let out = String::from_utf8_lossy(&out).to_string();
    let hints = out.find("HTTP/1.1 103").unwrap_or(usize::MAX);
    let ok = out.find("HTTP/1.1 200").unwrap_or(0);
    assert!(hints < ok, "{out}");
    assert!(out.contains("rel=preload"), "{out}");
    assert!(out.contains("\r\n\r\nok"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(out.contains("conn="), "{out}");
}

/// An upstream that closes a kept connection after answering: the next request, sent
/// straight on the pooled connection, finds it closed (the straight read sees the end)
/// and is retried on a fresh one.
#[test]
fn a_pooled_connection_found_closed_by_the_straight_read_is_retried() {
    let (_dir, _py, t, port) = setup("direct-once");
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut pending = Vec::new();
    for round in 0..5 {
        s.write_all(b"GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("send");
        let (head, body) = read_answer(&mut s, &mut pending)
            .unwrap_or_else(|| panic!("round {round}: no answer; log: {}", t.log_text()));
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
        assert_eq!(body, b"once");
    }
}

/// HTTP/1.1 and HTTP/2 clients on the same listener and upstream get the same answers,
/// one after the other on kept connections.
#[test]
fn http1_and_http2_clients_get_the_same_answers() {
    let (_dir, _py, _t, port) = setup("direct-h2");
    for i in [1, 7, 42] {
        let path = format!("/n/{i}");
        let (code, _, body1) = curl_get(port, &path, &[]);
        assert_eq!(code, 200);
        let (code2, _, body2) = h2_get(port, &path, &[]);
        assert_eq!(code2, 200);
        assert_eq!(body1, body2, "{path}");
        assert!(body1.starts_with(&format!("{i:08}")), "{body1}");
    }
}
