//! The access log: one combined-format line per request, to a file (`access_log =
//! "path"`, the form before the table). Formats, per-route logs, SIGUSR1 and a stuck
//! target: `access_log_formats.rs`.

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
    // Combined: the body's size between the status and the referer ("port=N n=1").
    let (_, rest) = lines[0]
        .split_once("] \"GET /whoami HTTP/1.1\" 200 ")
        .unwrap_or_else(|| panic!("{}", lines[0]));
    let (size, tail) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}", lines[0]));
    assert_eq!(size, "port=NNNNN n=1".len().to_string(), "{}", lines[0]);
    assert_eq!(
        tail, "\"http://ref.example/\" \"test-agent/1\"",
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{}",
        lines[1]
    );
}
