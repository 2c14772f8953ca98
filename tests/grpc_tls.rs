//! gRPC to a TLS upstream (`protocol = "h2"`: HTTP/2 over TLS, ALPN `h2`), end to end: a
//! `grpcio` server with a certificate made at test time (`tests/tls_support`), tether
//! verifying it against the test CA, and grpcio clients on a plain front: every kind of
//! call, 10 client connections × 20 calls on one TLS upstream connection; and an HTTPS
//! server that does not speak HTTP/2 by ALPN refused with a log line (curl --http1.1: 502).

mod common;
mod tls_support;

use common::*;

fn script() -> String {
    repo().join("tests/support_grpc.py").display().to_string()
}

fn config(port: u16, up_port: u16, ca: &std::path::Path) -> String {
    config_with(port, up_port, ca, "h2")
}

fn config_with(port: u16, up_port: u16, ca: &std::path::Path, protocol: &str) -> String {
    format!(
        r#"
workers = 1

[[upstream]]
name = "grpc"
servers = ["127.0.0.1:{up_port}"]
protocol = "{protocol}"
tls = {{ ca = "{}", sni = "grpc.test" }}

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "grpc"
"#,
        ca.display()
    )
}

#[test]
fn grpc_calls_through_a_tls_h2_upstream() {
    calls_through("h2");
}

#[test]
fn grpc_calls_through_an_auto_pool_whose_server_chose_h2() {
    // `protocol = "auto"`: the first call (a unary one, with its message) reaches the
    // server's TLS handshake on the HTTP/1.1 path, the server picks `h2` from the offered
    // `h2, http/1.1`, and the call moves to the shared HTTP/2 connection unsent.
    calls_through("auto");
}

fn calls_through(protocol: &str) {
    let dir = TempDir::new("grpc-tls");
    let ca = tls_support::Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("grpc", &["grpc.test"], tls_support::Key::P256, 5);
    let (port, up_port) = (free_port(), free_port());
    let (s, p) = (script(), up_port.to_string());
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let _up = python(
        &[
            s.as_ref(),
            "server".as_ref(),
            p.as_ref(),
            "1000".as_ref(),
            "0".as_ref(),
            c.as_ref(),
            k.as_ref(),
        ],
        up_port,
    );
    let t = tether(
        &dir,
        &config_with(port, up_port, &ca.cert, protocol),
        &[port],
    );
    let (ok, text) = grpc_client(port, "calls");
    assert!(ok, "{text}\n{}", t.log_text());
    for check in [
        "unary ok",
        "server_stream ok",
        "client_stream ok",
        "bidi ok",
        "16MiB ok",
    ] {
        assert!(text.contains(check), "{check}: {text}");
    }
    let (ok, text) = grpc_client(port, "channels:10");
    assert!(ok, "{text}\n{}", t.log_text());
    assert!(text.contains("channels ok 200"), "{text}");
    // The `calls` round's connection was closed by no one: still the only one.
    assert!(text.contains("peers 1\n"), "one TLS connection: {text}");
    if protocol == "auto" {
        let said = format!("127.0.0.1:{up_port} chose h2 by ALPN");
        assert!(t.wait_log(&said), "{}", t.log_text());
        assert_eq!(t.log_text().matches(&said).count(), 1, "{}", t.log_text());
    }
}

#[test]
fn a_tls_server_without_h2_alpn_is_refused_with_a_log_line() {
    // An HTTPS server that speaks only HTTP/1.1 (python's http.server over TLS, no ALPN):
    // the connection fails (never HTTP/2 frames to an HTTP/1.1 server), the client gets 502.
    let dir = TempDir::new("grpc-tls-no-h2");
    let ca = tls_support::Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("web", &["grpc.test"], tls_support::Key::P256, 5);
    let (port, up_port) = (free_port(), free_port());
    let server = format!(
        "import http.server, ssl, sys\n\
         s = http.server.HTTPServer(('127.0.0.1', {up_port}), http.server.SimpleHTTPRequestHandler)\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain('{}', '{}')\n\
         s.socket = ctx.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        cert.display(),
        key.display()
    );
    let _up = python_script(&server, &[], up_port);
    let t = tether(&dir, &config(port, up_port, &ca.cert), &[port]);
    let out = curl(&[
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "502",
        "{}",
        t.log_text()
    );
    assert!(
        t.wait_log("did not agree to HTTP/2 by ALPN"),
        "{}",
        t.log_text()
    );
}
