//! The access log: one combined-format line per request, to a file.

mod common;

use common::*;

#[test]
fn one_line_per_request_in_combined_format() {
    let dir = TempDir::new("access-log");
    let (up, port) = (free_port(), free_port());
    let _py = python_upstream(up);
    let log = dir.path().join("access.log");
    let cfg = format!(
        "access_log = \"{}\"\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\n",
        log.display()
    );
    let _t = tether(&dir, &cfg, &[port]);
    let base = format!("http://127.0.0.1:{port}");
    let out = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-A",
        "test-agent/1",
        "-e",
        "http://ref.example/",
        &format!("{base}/whoami"),
        &format!("{base}/missing"),
    ]);
    assert!(out.status.success());
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(std::time::Duration::from_secs(5), || read().lines().count()
            == 2),
        "{}",
        read()
    );
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0]
            .contains("] \"GET /whoami HTTP/1.1\" 200 \"http://ref.example/\" \"test-agent/1\" "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{}",
        lines[1]
    );
}
