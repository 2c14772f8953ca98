//! Plain HTTP/2 and HTTP/1.1 to an h2c upstream (`protocol = "h2c"`), end to end: curl
//! (with prior knowledge, and `--http1.1`) and python `requests` through tether to a Python
//! `h2` server (`tests/support_h2c.py`): a GET (`Host`/`:authority` and `te` as RFC 9113
//! maps them), a 300 kB POST body echoed byte for byte through both windows (also chunked
//! by an HTTP/1.1 client), response trailers carried as a trailing HEADERS frame or as
//! chunked trailers, and client connections sharing one upstream connection.
//! (One curl per request: curl 7.88 fails a second request on a reused HTTP/2 connection,
//! whatever the server.)

mod common;

use common::*;

fn h2c_tether(dir: &TempDir) -> (u16, Proc, Proc) {
    let (port, up_port) = (free_port(), free_port());
    let up = h2c_app(up_port);
    let config = h2c_pool_config(port, up_port, H2APP_ROUTE);
    let t = tether(dir, &config, &[port]);
    (port, up, t)
}

fn h2(args: &[&str]) -> String {
    let mut all = vec!["--http2-prior-knowledge", "-D", "-"];
    all.extend_from_slice(args);
    let out = curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn curl_h2_get_post_and_trailers_through_an_h2c_upstream() {
    let dir = TempDir::new("h2-upstream");
    let (port, _up, _t) = h2c_tether(&dir);
    let base = format!("http://127.0.0.1:{port}");

    let text = h2(&[
        "-H",
        "te: trailers",
        "-o",
        "/dev/null",
        &format!("{base}/hello"),
    ]);
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(text.contains("x-method: get"), "{text}");
    assert!(
        text.contains(&format!("x-authority: 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("x-te: trailers"), "{text}");

    let body: Vec<u8> = noise(300_000, 7);
    let file = dir.write("body.bin", &body);
    let echoed = dir.path().join("echoed.bin");
    let text = h2(&[
        "--data-binary",
        &format!("@{}", file.display()),
        "-o",
        echoed.to_str().expect("path"),
        &format!("{base}/echo"),
    ]);
    assert!(text.contains("x-received-length: 300000"), "{text}");
    assert!(
        std::fs::read(&echoed).expect("echoed") == body,
        "echo differs"
    );

    let text = h2(&["-X", "POST", "-o", "/dev/null", &format!("{base}/trailers")]);
    assert!(text.contains("grpc-status: 0"), "trailers carried: {text}");
    assert!(text.contains("x-trailer: yes"), "trailers carried: {text}");
}

#[test]
fn streams_a_goaway_left_unprocessed_are_sent_again() {
    // nghttp sends four requests at once on one connection; tether opens them on one
    // upstream connection in order; the server answers /goaway (stream 1) and goes away
    // naming stream 1 its last: the three /hello streams were never processed, so tether
    // sends them again on a new connection (another x-conn) and every request gets its 200.
    let dir = TempDir::new("h2-upstream-goaway");
    let (port, _up, t) = h2c_tether(&dir);
    let base = format!("http://127.0.0.1:{port}");
    let out = std::process::Command::new("timeout")
        .args(["30", "nghttp", "-v"])
        .arg(format!("{base}/goaway"))
        .args((1..=3).map(|i| format!("{base}/hello?{i}")))
        .output()
        .expect("nghttp (nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let ok = text.matches(":status: 200").count();
    assert_eq!(ok, 4, "{text}\n{}", t.log_text());
    // The x-conn of each answer, in order: /goaway's first (nghttp's first stream).
    let conns: Vec<&str> = (text.lines())
        .filter_map(|l| l.split("x-conn: ").nth(1))
        .collect();
    assert_eq!(conns.len(), 4, "{text}");
    let first = conns[0];
    assert!(conns[1..].iter().all(|c| *c != first), "{conns:?}\n{text}");
    assert!(
        t.wait_log("3 stream(s) not processed, sent again"),
        "{}",
        t.log_text()
    );
}

/// A Python h2 client: POST /trailers with a body and an `x-checksum` trailer to tether on
/// `port`; prints the response trailers.
const TRAILER_CLIENT: &str = r#"
import socket, sys, h2.connection, h2.config, h2.events
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
c.initiate_connection()
c.send_headers(1, [(b":method", b"POST"), (b":path", b"/trailers"), (b":scheme", b"http"),
                   (b":authority", b"example.test"), (b"te", b"trailers")])
c.send_data(1, b"some body")
c.send_headers(1, [(b"x-checksum", b"abc123")], end_stream=True)
s.sendall(c.data_to_send())
done = False
while not done:
    data = s.recv(65536)
    if not data:
        break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.TrailersReceived):
            print(dict(e.headers))
        if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
            done = True
    s.sendall(c.data_to_send())
"#;

#[test]
fn request_trailers_reach_an_h2c_upstream() {
    let dir = TempDir::new("h2-upstream-req-trailers");
    let (port, _up, _t) = h2c_tether(&dir);
    let out = std::process::Command::new("timeout")
        .args(["30", "python3", "-c", TRAILER_CLIENT, &port.to_string()])
        .output()
        .expect("python3 with h2");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("b'x-echo-trailer': b'abc123'"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cookie_affinity_holds_on_an_h2c_pool() {
    // Three h2c backends, balance = "cookie": tether's Set-Cookie is added to the HTTP/2
    // answer, and every request carrying it reaches the same backend.
    let dir = TempDir::new("h2-upstream-cookie");
    let ups: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _procs: Vec<Proc> = ups.iter().map(|p| h2c_app(*p)).collect();
    let port = free_port();
    let servers: Vec<String> = ups.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let config = format!(
        r#"
[[upstream]]
name = "h2app"
servers = [{}]
protocol = "h2c"
balance = "cookie"
keys = ["000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "h2app"
"#,
        servers.join(", ")
    );
    let _t = tether(&dir, &config, &[port]);
    let jar = dir.path().join("jar.txt");
    let jar = jar.to_str().expect("path");
    let url = format!("http://127.0.0.1:{port}/hello");
    let port_of = |text: &str| -> String {
        (text.lines())
            .find_map(|l| l.strip_prefix("x-port: "))
            .unwrap_or("?")
            .trim()
            .to_string()
    };
    let first = h2(&["-c", jar, "-o", "/dev/null", &url]);
    assert!(first.contains("set-cookie: "), "tether's cookie: {first}");
    let pinned = port_of(&first);
    for _ in 0..6 {
        let text = h2(&["-b", jar, "-o", "/dev/null", &url]);
        assert_eq!(port_of(&text), pinned, "{text}");
    }
}

/// `curl --http1.1 -D - ARGS` (fails the test if curl fails): the head, lowercased.
fn h1(args: &[&str]) -> String {
    let mut all = vec!["--http1.1", "-D", "-"];
    all.extend_from_slice(args);
    let out = curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn http1_clients_get_post_chunked_and_trailers_through_an_h2c_upstream() {
    // HTTP/1.1 requests become header lists on the shared HTTP/2 connection (Host →
    // :authority, connection-specific fields dropped); answers without a length come back
    // chunked, with the upstream's trailers as chunked trailers when the client said
    // `TE: trailers`.
    let dir = TempDir::new("h2-upstream-h1");
    let (port, _up, mut t) = h2c_tether(&dir);
    let base = format!("http://127.0.0.1:{port}");

    let got = dir.path().join("got.bin");
    let got_s = got.to_str().expect("path");
    let text = h1(&["-o", got_s, &format!("{base}/hello")]);
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("x-method: get"), "{text}");
    assert!(
        text.contains(&format!("x-authority: 127.0.0.1:{port}")),
        "Host as :authority: {text}"
    );
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert_eq!(std::fs::read(&got).expect("body"), b"hello from h2c");

    // A 300 kB Content-Length body, echoed byte for byte (chunked back).
    let body: Vec<u8> = noise(300_000, 11);
    let file = dir.write("body.bin", &body);
    let data = format!("@{}", file.display());
    let text = h1(&["--data-binary", &data, "-o", got_s, &format!("{base}/echo")]);
    assert!(text.contains("x-received-length: 300000"), "{text}");
    assert!(std::fs::read(&got).expect("echo") == body, "echo differs");

    // The same body chunked by the client: de-chunked into DATA frames.
    let text = h1(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        "-o",
        got_s,
        &format!("{base}/echo"),
    ]);
    assert!(text.contains("x-received-length: 300000"), "{text}");
    assert!(
        std::fs::read(&got).expect("echo") == body,
        "chunked echo differs"
    );

    // Trailers: as chunked trailers with `TE: trailers`, left out without.
    let raw = |te: bool| {
        let mut args = vec!["--raw", "-X", "POST", "-o", got_s];
        if te {
            args.extend(["-H", "TE: trailers"]);
        }
        let url = format!("{base}/trailers");
        args.push(&url);
        h1(&args);
        String::from_utf8_lossy(&std::fs::read(&got).expect("raw")).to_lowercase()
    };
    let with = raw(true);
    assert!(
        with.contains("payload\r\n0\r\n") && with.contains("grpc-status: 0\r\n"),
        "{with:?}"
    );
    assert!(with.contains("x-trailer: yes\r\n"), "{with:?}");
    let without = raw(false);
    assert!(without.ends_with("0\r\n\r\n"), "{without:?}");
    assert!(!without.contains("grpc-status"), "{without:?}");
    assert!(t.alive(), "{}", t.log_text());
}

/// A python `requests` session (keep-alive): two GETs, a POST with a length and a chunked
/// POST (a generator body), each echoed byte for byte.
const REQUESTS_CLIENT: &str = r#"
import sys, requests
base = "http://127.0.0.1:%s" % sys.argv[1]
s = requests.Session()
for i in range(2):
    r = s.get(base + "/hello", timeout=10)
    assert r.status_code == 200 and r.text == "hello from h2c", (r.status_code, r.text)
body = bytes((i * 31) & 0xFF for i in range(100000))
r = s.post(base + "/echo", data=body, timeout=10)
assert r.status_code == 200 and r.content == body, (r.status_code, len(r.content))
def gen():
    for i in range(0, len(body), 7000):
        yield body[i:i + 7000]
r = s.post(base + "/echo", data=gen(), timeout=10)
assert r.status_code == 200 and r.content == body, (r.status_code, len(r.content))
assert r.headers.get("x-received-length") == "100000", r.headers
print("requests ok")
"#;

#[test]
fn python_requests_through_an_h2c_upstream() {
    let dir = TempDir::new("h2-upstream-requests");
    let (port, _up, t) = h2c_tether(&dir);
    let out = std::process::Command::new("timeout")
        .args(["60", "python3", "-c", REQUESTS_CLIENT, &port.to_string()])
        .output()
        .expect("python3 with requests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("requests ok"),
        "{text}\n{}",
        t.log_text()
    );
}

#[test]
fn client_connections_share_one_upstream_connection() {
    // Six client connections one after another, three HTTP/1.1 and three HTTP/2: every
    // request rides the one upstream connection the loop's hub keeps (the backend numbers
    // its connections in x-conn; one event loop, so one hub).
    let dir = TempDir::new("h2-upstream-share");
    let (port, up_port) = (free_port(), free_port());
    let _up = h2c_app(up_port);
    let config = format!(
        "workers = 1\n{}",
        h2c_pool_config(port, up_port, H2APP_ROUTE)
    );
    let t = tether(&dir, &config, &[port]);
    let url = format!("http://127.0.0.1:{port}/hello");
    let conn_of = |text: &str| {
        (text.lines())
            .find_map(|l| l.strip_prefix("x-conn: "))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no x-conn: {text}"))
    };
    let mut seen = Vec::new();
    for i in 0..6 {
        let text = if i % 2 == 0 {
            h1(&["-o", "/dev/null", &url])
        } else {
            h2(&["-o", "/dev/null", &url])
        };
        seen.push(conn_of(&text));
    }
    assert!(
        seen.iter().all(|c| *c == seen[0]),
        "one upstream connection for all: {seen:?}\n{}",
        t.log_text()
    );
}

#[test]
fn http1_pipelined_requests_head_and_http10_through_an_h2c_upstream() {
    // Three pipelined requests on one connection answered in order (the POST's body read
    // by its length, the next request's bytes kept); a HEAD answer has no body framing; an
    // HTTP/1.0 request without Host gets the server's address as :authority and a body
    // ended by the close.
    use std::io::{Read, Write};
    let dir = TempDir::new("h2-upstream-h1-pipe");
    let (port, _up, _t) = h2c_tether(&dir);
    let exchange = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(bytes).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_string()
    };
    let text = exchange(
        b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /nothere HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde",
    );
    let hello = text.find("e\r\nhello from h2c\r\n0\r\n\r\n");
    let missing = text.find("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
    let echo = text.find("5\r\nabcde\r\n0\r\n\r\n");
    assert!(
        hello.is_some() && missing > hello && echo > missing,
        "in order: {text:?}"
    );
    assert!(text.contains("x-authority: a\r\n"), "{text:?}");

    let text = exchange(b"HEAD /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("x-method: HEAD"), "{text:?}");
    assert!(!text.contains("transfer-encoding"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n"), "no body: {text:?}");

    let text = exchange(b"GET /hello HTTP/1.0\r\n\r\n");
    assert!(
        text.contains("x-authority: 127.0.0.1:") && text.ends_with("\r\n\r\nhello from h2c"),
        "{text:?}"
    );
    assert!(text.contains("connection: close\r\n"), "{text:?}");
}

#[test]
fn answers_past_the_shared_connections_window_keep_flowing() {
    // Every client connection's calls share one upstream connection, whose receive window
    // (1 MiB) every answer's bytes must be given back to once they left for the client —
    // also when the answer ended at once (a regression: they were not, and the connection
    // stalled for good after ~1 MiB of answers). 16 echoes of 100 kB, HTTP/2 and HTTP/1.1
    // clients alternately, 1.6 MB in all; each must come back whole in bounded time.
    let dir = TempDir::new("h2-upstream-window");
    let (port, _up, _t) = h2c_tether(&dir);
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let file = dir.write("body.bin", &body);
    let file = format!("@{}", file.display());
    let url = format!("http://127.0.0.1:{port}/echo");
    for i in 0..16 {
        let proto = if i % 2 == 0 {
            "--http2-prior-knowledge"
        } else {
            "--http1.1"
        };
        let out = curl(&[
            proto,
            "--max-time",
            "10",
            "-H",
            "content-type: application/octet-stream",
            "--data-binary",
            &file,
            &url,
        ]);
        assert!(
            out.status.success(),
            "request {i} ({proto}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), body.len(), "request {i} ({proto})");
        assert!(
            out.stdout == body,
            "request {i} ({proto}): not byte for byte"
        );
    }
}

#[test]
fn tether_as_the_h2c_backend_of_tether() {
    // A real HTTP/2 server other than Python's: tether itself, serving files over h2c
    // (`http2 = true` on a plain listener: prior knowledge), behind a tether whose pool
    // says `protocol = "h2c"`; HTTP/1.1 and HTTP/2 clients get the file byte for byte.
    let (back_dir, front_dir) = (TempDir::new("h2c-back"), TempDir::new("h2c-front"));
    let (back, front) = (free_port(), free_port());
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    back_dir.write("www/big.bin", &body);
    let back_config = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{back}\"]\nhttp2 = true\n\n\
         [[server.route]]\npath = \"/\"\nroot = \"{}\"\n",
        back_dir.path().join("www").display()
    );
    let _b = tether(&back_dir, &back_config, &[back]);
    let front_config = format!(
        "[[upstream]]\nname = \"files\"\nservers = [\"127.0.0.1:{back}\"]\nprotocol = \"h2c\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{front}\"]\nhttp2 = true\n\n\
         [[server.route]]\npath = \"/\"\nproxy = \"files\"\n"
    );
    let _f = tether(&front_dir, &front_config, &[front]);
    let url = format!("http://127.0.0.1:{front}/big.bin");
    for proto in ["--http2-prior-knowledge", "--http1.1"] {
        for _ in 0..3 {
            let out = curl(&[proto, "-D", "-", "-o", "-", &url]);
            assert!(
                out.status.success(),
                "{proto}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = &out.stdout;
            let split = text
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head");
            let head = String::from_utf8_lossy(&text[..split]).to_lowercase();
            assert!(head.contains(" 200"), "{proto}: {head}");
            assert!(
                text[split + 4..] == body[..],
                "{proto}: not byte for byte\n{head}"
            );
        }
    }
    // A 404 from the backend is passed on.
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{front}/nope"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}
