//! HTTP/2 protocol errors and floods against the real binary (`http2 = true`, h2c), driven
//! by `tests/support_h2.py` (Python's `h2` package: `hyperframe` frames, `hpack`) over real
//! sockets: each attack gets the GOAWAY or RST_STREAM code tether really sends, a stream
//! past the header limit gets `431` while its connection goes on, and after every attack a
//! fresh client (`curl --http2-prior-knowledge`) is still served and the log has no panic.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

// RFC 9113 error codes.
const PROTOCOL_ERROR: u64 = 0x1;
const STREAM_CLOSED: u64 = 0x5;
const CANCEL: u64 = 0x8;
const ENHANCE_YOUR_CALM: u64 = 0xb;

/// tether with `http2 = true` on a plain port, files under `www` at `/files`, and a small
/// idle timeout (the zero-window stall is reset after it).
fn start(tag: &str) -> (TempDir, Proc, u16) {
    let dir = TempDir::new(tag);
    dir.write("www/files/a.txt", b"still here\n");
    dir.write("www/files/big.bin", &noise(1 << 20, 3));
    let port = free_port();
    let config = format!(
        r#"
access_log = "access.log"

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true
idle_timeout_ms = 1000

[[server.route]]
path = "/files"
root = "{}"
"#,
        dir.path().join("www").display()
    );
    let t = tether(&dir, &config, &[port]);
    (dir, t, port)
}

/// Run one attack of `tests/support_h2.py`; its JSON report.
fn attack(name: &str, port: u16) -> Value {
    let out = Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(repo().join("tests/support_h2.py"))
        .args([name, &port.to_string()])
        .output()
        .expect("python3 (with the h2 package: scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{name}: no report ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn goaway(r: &Value) -> Vec<u64> {
    r["goaway"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// After an attack: a fresh client gets the file over h2c, and nothing panicked.
fn still_serves(port: u16, t: &Proc) {
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "-",
        "-w",
        " %{http_version} %{http_code}",
        &format!("http://127.0.0.1:{port}/files/a.txt"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "still here\n 2 200",
        "log:\n{}",
        t.log_text()
    );
    let good = attack("good", port);
    assert_eq!(good["status"]["1"], 200, "{good}");
    assert!(!t.log_text().contains("panicked"), "{}", t.log_text());
}

#[test]
fn continuation_flood_gets_enhance_your_calm() {
    let (_dir, t, port) = start("h2-continuation");
    // Thousands of small CONTINUATION frames: capped by frames (64) per block.
    let r = attack("continuation", port);
    assert_eq!(goaway(&r), [ENHANCE_YOUR_CALM], "{r}");
    assert_eq!(r["eof"], true, "the connection is closed: {r}");
    // A few 16 KB frames: capped by bytes (64 KiB) per block.
    let r = attack("continuation_big", port);
    assert_eq!(goaway(&r), [ENHANCE_YOUR_CALM], "{r}");
    assert!(t.wait_log("a header block too large or in too many frames"));
    still_serves(port, &t);
}

#[test]
fn hpack_bomb_gets_431_and_the_connection_goes_on() {
    let (_dir, t, port) = start("h2-hpack");
    // One 4000-byte dynamic-table entry referenced 1000 times (~4 MB decoded from ~5 KB).
    let r = attack("hpack_bomb", port);
    assert_eq!(r["status"]["1"], 431, "{r}");
    assert!(goaway(&r).is_empty(), "no GOAWAY for a refused stream: {r}");
    // The next stream on the same connection is served.
    assert_eq!(r["status"]["3"], 200, "{r}");
    assert_eq!(r["body"]["3"], "still here\n", "{r}");
    still_serves(port, &t);
}

#[test]
fn ping_and_settings_floods_get_enhance_your_calm() {
    let (_dir, t, port) = start("h2-floods");
    for name in ["ping_flood", "settings_flood"] {
        let r = attack(name, port);
        assert_eq!(goaway(&r), [ENHANCE_YOUR_CALM], "{name}: {r}");
        assert_eq!(r["eof"], true, "{name}: the connection is closed: {r}");
    }
    assert!(t.wait_log("too many control frames (flood)"));
    still_serves(port, &t);
}

#[test]
fn stream_id_misuse_gets_goaway() {
    let (_dir, t, port) = start("h2-ids");
    // A client stream with an even id, DATA on a stream never opened: PROTOCOL_ERROR.
    for name in ["even_id", "data_idle"] {
        let r = attack(name, port);
        assert_eq!(goaway(&r), [PROTOCOL_ERROR], "{name}: {r}");
    }
    // A new stream numbered below one already opened (RFC 9113 5.1.1): PROTOCOL_ERROR.
    let r = attack("lower_id", port);
    assert_eq!(r["status"]["5"], 200, "{r}");
    assert_eq!(goaway(&r), [PROTOCOL_ERROR], "lower_id: {r}");
    // HEADERS again on stream 1 once it is closed (RFC 9113 5.1): STREAM_CLOSED.
    let r = attack("reused_id", port);
    assert_eq!(r["status"]["1"], 200, "{r}");
    assert_eq!(goaway(&r), [STREAM_CLOSED], "reused_id: {r}");
    still_serves(port, &t);
}

#[test]
fn zero_window_stall_is_reset_after_the_idle_timeout() {
    let (_dir, t, port) = start("h2-stall");
    // INITIAL_WINDOW_SIZE 0, never opened: the head goes, the body cannot; the stream is
    // reset with CANCEL once its window stayed closed for idle_timeout_ms (1 s).
    let r = attack("zero_window", port);
    assert_eq!(r["status"]["1"], 200, "{r}");
    assert_eq!(r["rst"]["1"], CANCEL, "{r}");
    assert!(
        r["body"]["1"].is_null(),
        "no DATA through a zero window: {r}"
    );
    let ms = r["ms"].as_u64().unwrap_or(0);
    assert!((900..10_000).contains(&ms), "reset after {ms} ms: {r}");
    assert!(t.wait_log("stream 1: window closed too long"));
    still_serves(port, &t);
}
