//! Plain HTTP/2 to an h2c upstream (`protocol = "h2c"`): curl with prior knowledge through
//! tether to a Python `h2` server (`crates/h2/tests/h2_server.py`): a GET, a POST body
//! echoed byte for byte, and response trailers carried as a trailing HEADERS frame.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// The Python h2 server (one connection), and its port.
fn h2_server() -> (Proc, u16) {
    let script = repo().join("crates/h2/tests/h2_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("100")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with h2");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("port");
    let port = line.trim().parse().expect("a port from h2_server.py");
    (Proc { child, log: None }, port)
}

#[test]
fn curl_h2_through_tether_to_an_h2c_server() {
    let dir = TempDir::new("h2-upstream");
    let (_up, up_port) = h2_server();
    let port = free_port();
    let config = format!(
        r#"
[[upstream]]
name = "h2app"
servers = ["127.0.0.1:{up_port}"]
protocol = "h2c"

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "h2app"
"#
    );
    let _t = tether(&dir, &config, &[port]);
    let body: Vec<u8> = noise(300_000, 7);
    let file = dir.write("body.bin", &body);
    let echoed = dir.path().join("echoed.bin");
    let base = format!("http://127.0.0.1:{port}");
    // One curl, one client connection: the three requests share one upstream connection
    // (the server serves only one).
    let out = curl(&[
        "--http2-prior-knowledge",
        "-sS",
        "--max-time",
        "30",
        "-D",
        "-",
        &format!("{base}/hello"),
        "-o",
        "/dev/null",
        "--next",
        "--http2-prior-knowledge",
        "-sS",
        "-D",
        "-",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{base}/echo"),
        "-o",
        echoed.to_str().expect("path"),
        "--next",
        "--http2-prior-knowledge",
        "-sS",
        "-D",
        "-",
        "-X",
        "POST",
        &format!("{base}/trailers"),
        "-o",
        "/dev/null",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("x-method: get"), "{text}");
    assert!(text.contains("x-received-length: 300000"), "{text}");
    assert_eq!(std::fs::read(&echoed).expect("echoed"), body);
    assert!(text.contains("grpc-status: 0"), "trailers carried: {text}");
}
