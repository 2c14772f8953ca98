//! The PROXY protocol end to end: hand-made v1/v2 headers on a listener that trusts the
//! sender (the client they name drives X-Forwarded-For, allow/deny and the access log),
//! untrusted senders, malformed and missing headers closed with a log line, headers sent to
//! upstreams (`send_proxy`, a second tether and a raw TCP server reading them), and HAProxy
//! with `send-proxy-v2` in front of a plain and a TLS listener.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use tls_support::{Ca, Key};

/// A v1 header from `src:sport` to 127.0.0.1:`dport`.
fn v1(src: &str, sport: u16, dport: u16) -> Vec<u8> {
    format!("PROXY TCP4 {src} 127.0.0.1 {sport} {dport}\r\n").into_bytes()
}

/// A v2 PROXY header over INET/STREAM from `src:sport` to 127.0.0.1:`dport`, with one TLV
/// (which tether skips).
fn v2(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21);
    h.push(0x11);
    let tlv = [0x04u8, 0x00, 0x02, b'o', b'k']; // PP2_TYPE_NOOP, 2 bytes
    h.extend_from_slice(&((12 + tlv.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&tlv);
    h
}

/// Send `parts` one write each, then read until tether closes (bounded by 10 s).
fn exchange(port: u16, parts: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for p in parts {
        if s.write_all(p).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn headers_from_a_trusted_sender_name_the_client_everywhere() {
    let dir = TempDir::new("pp-trusted");
    let (port, up) = (free_port(), free_port());
    let _u = python_echo_head(up);
    let log = dir.path().join("access.log");
    let config = format!(
        r#"access_log = "{}"
[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]
[[server]]
listen = ["127.0.0.1:{port}"]
proxy_protocol = {{ trusted = ["127.0.0.0/8"] }}
[[server.route]]
path = "/"
proxy = "app"
[[server.route]]
path = "/private"
proxy = "app"
deny = ["192.0.2.66"]
"#,
        log.display()
    );
    let t = tether(&dir, &config, &[port]);

    // v1, with the request in the same write as the header.
    let one: Vec<u8> = [v1("192.0.2.10", 5555, port), get("/a")].concat();
    let out = exchange(port, &[&one]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("X-Forwarded-For: 192.0.2.10\n"), "{out}");

    // v2 with a TLV, the header and the request in separate writes.
    let out = exchange(port, &[&v2([192, 0, 2, 20], 6000, port), &get("/b")]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("X-Forwarded-For: 192.0.2.20\n"), "{out}");

    // A v1 header split in the middle: tether waits for the rest.
    let h = v1("192.0.2.30", 7000, port);
    let out = exchange(port, &[&h[..9], &h[9..], &get("/c")]);
    assert!(out.contains("X-Forwarded-For: 192.0.2.30\n"), "{out}");

    // allow/deny judge the client the header names, not the balancer.
    let denied = exchange(
        port,
        &[&[v1("192.0.2.66", 1, port), get("/private/x")].concat()],
    );
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    let allowed = exchange(
        port,
        &[&[v1("192.0.2.67", 1, port), get("/private/x")].concat()],
    );
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");

    // v2 LOCAL (a balancer's own health check): the connection keeps its real peer.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    let out = exchange(port, &[local, &get("/local")]);
    assert!(out.contains("X-Forwarded-For: 127.0.0.1\n"), "{out}");

    // The access log names the clients too.
    assert!(
        eventually(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("192.0.2.10 - - [") && text.contains("192.0.2.66 - - [")
        }),
        "access log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(t);
}

#[test]
fn untrusted_malformed_and_missing_headers_are_closed_and_logged() {
    let dir = TempDir::new("pp-refused");
    let (open, strict, up) = (free_port(), free_port(), free_port());
    let _u = python_echo_head(up);
    let config = format!(
        r#"
[[listener]]
listen = "127.0.0.1:{open}"
protocol = "http"
upstream = "127.0.0.1:{up}"
proxy_protocol = {{ trusted = ["127.0.0.1"] }}
[[listener]]
listen = "127.0.0.1:{strict}"
protocol = "http"
upstream = "127.0.0.1:{up}"
proxy_protocol = {{ trusted = ["10.0.0.0/8", "::1"] }}
"#
    );
    let t = tether(&dir, &config, &[open, strict]);
    let count = |what: &str| t.log_text().matches(what).count();

    // A sender outside the trusted networks: closed before a byte is read.
    let before = count("is not a trusted sender");
    let out = exchange(strict, &[&[v1("192.0.2.1", 1, strict), get("/")].concat()]);
    assert_eq!(out, "", "an untrusted sender got an answer");
    assert!(eventually(Duration::from_secs(5), || count(
        "is not a trusted sender"
    ) > before));

    // Plain HTTP where a header must come first.
    let out = exchange(open, &[&get("/")]);
    assert_eq!(out, "");
    assert!(eventually(Duration::from_secs(5), || count(
        "not a PROXY protocol header; connection closed"
    ) >= 1));

    // A malformed v1 header.
    let bad = b"PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n";
    let out = exchange(open, &[bad, &get("/")]);
    assert_eq!(out, "");
    assert!(eventually(Duration::from_secs(5), || count(
        "PROXY v1 address is invalid for its family"
    ) >= 1));

    // Still serving.
    let out = exchange(open, &[&[v1("192.0.2.5", 1, open), get("/")].concat()]);
    assert!(out.contains("X-Forwarded-For: 192.0.2.5\n"), "{out}");
    let mut t = t;
    assert!(t.alive());
}

/// `tether check PATH` must fail: its message.
fn check_fails(cfg: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{} passed check", cfg.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_refuses_a_bad_trusted_network_and_send_proxy_value() {
    let dir = TempDir::new("pp-check");
    let cfg = dir.write(
        "bad.toml",
        b"[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:2\"\nproxy_protocol = { trusted = [\"10.0.0.0/33\"] }\n",
    );
    let err = check_fails(&cfg);
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("proxy_protocol.trusted"), "{err}");

    let cfg = dir.write(
        "bad2.toml",
        b"[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:2\"]\nsend_proxy = \"v3\"\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"a\"\n",
    );
    let err = check_fails(&cfg);
    assert!(err.contains("bad2.toml:4:14"), "{err}");
    assert!(err.contains("send_proxy"), "{err}");
}

/// A TCP server that answers each connection with the first line it received, then closes.
fn first_line_server(port: u16) -> Proc {
    let script = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept()
    c.settimeout(10)
    data = b""
    try:
        while b"\n" not in data:
            more = c.recv(4096)
            if not more:
                break
            data += more
        c.sendall(data.split(b"\n")[0] + b"\n")
    except OSError:
        pass
    c.close()
"#;
    python_script(script, &[&port.to_string()], port)
}

#[test]
fn send_proxy_names_the_client_to_upstreams_and_probes_send_local() {
    // tether A (send_proxy = "v2", health checks) -> tether B (proxy_protocol) -> echo.
    let dir_b = TempDir::new("pp-send-b");
    let (a, b, up, tcp, raw) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let _u = python_echo_head(up);
    let log_b = dir_b.path().join("access.log");
    let config_b = format!(
        "access_log = \"{}\"\n[[listener]]\nlisten = \"127.0.0.1:{b}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\nproxy_protocol = {{ trusted = [\"127.0.0.1\"] }}\n",
        log_b.display()
    );
    let _tb = tether(&dir_b, &config_b, &[b]);
    let _r = first_line_server(raw);
    let dir_a = TempDir::new("pp-send-a");
    let config_a = format!(
        r#"
[[upstream]]
name = "b"
servers = ["127.0.0.1:{b}"]
send_proxy = "v2"
[upstream.health]
path = "/probe"
interval_ms = 200
[[server]]
listen = ["127.0.0.1:{a}"]
[[server.route]]
path = "/"
proxy = "b"
[[listener]]
listen = "127.0.0.1:{tcp}"
protocol = "tcp"
upstream = "127.0.0.1:{raw}"
send_proxy = "v1"
"#
    );
    let _ta = tether(&dir_a, &config_a, &[a, tcp]);

    // B sees the client of A (bound to 127.0.0.9), not A.
    let url = format!("http://127.0.0.1:{a}/via-a");
    for _ in 0..3 {
        let out = curl(&["-s", "--interface", "127.0.0.9", &url]);
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.contains("X-Forwarded-For: 127.0.0.9, 127.0.0.9\n"),
            "{body}"
        );
    }
    let b_log = || std::fs::read_to_string(&log_b).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || b_log()
            .contains("127.0.0.9 - - [")),
        "{}",
        b_log()
    );
    // Health probes carry a LOCAL header: B answers them and logs A's own address.
    assert!(
        eventually(Duration::from_secs(10), || b_log()
            .lines()
            .any(|l| l.starts_with("127.0.0.1 ") && l.contains("GET /probe"))),
        "{}",
        b_log()
    );

    // A tcp listener's send_proxy = "v1": the raw server reads the header line.
    let mut s = TcpStream::connect(addr(tcp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = s.local_addr().unwrap().port();
    s.write_all(b"hello\n").unwrap();
    let mut line = String::new();
    let _ = s.read_to_string(&mut line);
    assert_eq!(
        line,
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {me} {tcp}\r\n"),
        "the first line the upstream got"
    );
}

/// HAProxy in TCP mode on `front` (plain) and `front_tls` (TLS passed through), each
/// sending a v2 header to tether.
fn haproxy(dir: &TempDir, front: u16, plain: u16, front_tls: u16, tls: u16) -> Proc {
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend plain\n  bind 127.0.0.1:{front}\n  default_backend plain\n\
         backend plain\n  server t 127.0.0.1:{plain} send-proxy-v2\n\
         frontend tls\n  bind 127.0.0.1:{front_tls}\n  default_backend tls\n\
         backend tls\n  server t 127.0.0.1:{tls} send-proxy-v2\n"
    );
    let path = dir.write("haproxy.cfg", cfg.as_bytes());
    let child = Command::new("haproxy")
        .args(["-db", "-f", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (is it installed? scripts/setup.sh installs it)");
    let p = Proc { child, log: None };
    wait_port(front);
    wait_port(front_tls);
    p
}

#[test]
fn haproxy_send_proxy_v2_in_front_of_plain_and_tls_listeners() {
    let dir = TempDir::new("pp-haproxy");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let (plain, tls, up) = (free_port(), free_port(), free_port());
    let (front, front_tls) = (free_port(), free_port());
    let _u = python_echo_head(up);
    let config = format!(
        r#"
[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]
[[server]]
listen = ["127.0.0.1:{plain}"]
proxy_protocol = {{ trusted = ["127.0.0.1"] }}
[[server.route]]
path = "/"
proxy = "app"
[[server]]
listen = ["127.0.0.1:{tls}"]
proxy_protocol = {{ trusted = ["127.0.0.1"] }}
tls = {{ certificates = [{{ cert = "{}", key = "{}" }}] }}
[[server.route]]
path = "/"
proxy = "app"
"#,
        cert.display(),
        key.display()
    );
    let _t = tether(&dir, &config, &[plain, tls]);
    let _h = haproxy(&dir, front, plain, front_tls, tls);

    let url = format!("http://127.0.0.1:{front}/plain");
    let out = curl(&["-s", "--interface", "127.0.0.7", &url]);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("X-Forwarded-For: 127.0.0.7\n"), "{body}");

    let url = format!("https://localhost:{front_tls}/tls");
    let resolve = format!("localhost:{front_tls}:127.0.0.1");
    let out = curl(&[
        "-s",
        "--interface",
        "127.0.0.8",
        "--cacert",
        ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ]);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("X-Forwarded-For: 127.0.0.8\n"), "{body}");
    assert!(body.contains("X-Forwarded-Proto: https\n"), "{body}");
}

#[test]
fn max_connections_per_ip_counts_the_client_the_header_names() {
    let dir = TempDir::new("pp-per-ip");
    let (port, up) = (free_port(), free_port());
    let _u = python_echo_head(up);
    let config = format!(
        "max_connections_per_ip = 1\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\nproxy_protocol = {{ trusted = [\"127.0.0.1\"] }}\n"
    );
    let _t = tether(&dir, &config, &[port]);
    // One connection of 192.0.2.1 held open (its header sent, no request yet)...
    let mut held = TcpStream::connect(addr(port)).unwrap();
    held.write_all(&v1("192.0.2.1", 1000, port)).unwrap();
    // ...and the header has been read once a request on it is answered: hold it with a
    // keep-alive request.
    held.write_all(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut first = [0u8; 12];
    held.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // A second one from the same client (by its header, all come from 127.0.0.1): 429.
    let out = exchange(port, &[&[v1("192.0.2.1", 1001, port), get("/")].concat()]);
    assert!(out.starts_with("HTTP/1.1 429"), "{out}");
    // Another client through the same balancer address: served.
    let out = exchange(port, &[&[v1("192.0.2.2", 1002, port), get("/")].concat()]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    drop(held);
}

#[test]
fn proxy_header_then_h2c_on_one_plain_listener() {
    let dir = TempDir::new("pp-h2c");
    let (port, up) = (free_port(), free_port());
    let _u = python_echo_head(up);
    let config = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\nhttp2 = true\nproxy_protocol = {{ trusted = [\"127.0.0.1\"] }}\n"
    );
    let _t = tether(&dir, &config, &[port]);
    let url = format!("http://127.0.0.1:{port}/through");
    for (proto, want) in [("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")] {
        let out = curl(&[
            "-s",
            "--haproxy-protocol",
            proto,
            "-w",
            "\n%{http_version}",
            &url,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.ends_with(&format!("\n{want}")), "{proto}: {text}");
        assert!(text.contains("GET /through"), "{proto}: {text}");
    }
}
