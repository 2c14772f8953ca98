//! gRPC through tether to an h2c upstream (`protocol = "h2c"`), end to end: the real binary
//! between Python `grpcio` clients and a `grpcio` server (`tests/support_grpc.py`, generic
//! handlers, no protoc): unary, server, client and bidi streaming, a 16 MiB message each way
//! byte for byte, 200 concurrent calls on one upstream connection (the server counts the
//! peers it saw), no backend → UNAVAILABLE from tether, `grpc-timeout` → DEADLINE_EXCEEDED
//! from tether (curl, so the client's own deadline cannot be what answers).

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A TCP server that accepts and stays silent.
const SILENT: &str = "import socket, sys\n\
s = socket.socket()\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('127.0.0.1', int(sys.argv[1])))\n\
s.listen(16)\n\
held = []\n\
while True:\n    held.append(s.accept())\n";

fn config(port: u16, up_port: u16) -> String {
    format!(
        r#"
[[upstream]]
name = "grpc"
servers = ["127.0.0.1:{up_port}"]
protocol = "h2c"

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "grpc"
"#
    )
}

fn script() -> String {
    repo().join("tests/support_grpc.py").display().to_string()
}

fn grpc_server(port: u16) -> Proc {
    grpc_server_max(port, 1000)
}

/// The test service announcing MAX_CONCURRENT_STREAMS = `max`.
fn grpc_server_max(port: u16, max: u32) -> Proc {
    grpc_server_aged(port, max, 0)
}

/// The test service, whose connections get a GOAWAY at `age_ms` (0: never).
fn grpc_server_aged(port: u16, max: u32, age_ms: u32) -> Proc {
    let (s, p, m, a) = (
        script(),
        port.to_string(),
        max.to_string(),
        age_ms.to_string(),
    );
    python(
        &[
            s.as_ref(),
            "server".as_ref(),
            p.as_ref(),
            m.as_ref(),
            a.as_ref(),
        ],
        port,
    )
}

#[test]
fn grpc_calls_of_every_kind_through_tether() {
    let dir = TempDir::new("grpc-calls");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server(up_port);
    let _t = tether(&dir, &config(port, up_port), &[port]);
    let (ok, text) = grpc_client(port, "calls");
    assert!(ok, "{text}");
    for check in [
        "unary ok",
        "server_stream ok",
        "client_stream ok",
        "bidi ok",
        "16MiB ok",
    ] {
        assert!(text.contains(check), "{check}: {text}");
    }
}

#[test]
fn grpc_200_concurrent_calls_share_one_upstream_connection() {
    let dir = TempDir::new("grpc-many");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server(up_port);
    let _t = tether(&dir, &config(port, up_port), &[port]);
    let started = Instant::now();
    let (ok, text) = grpc_client(port, "many");
    assert!(ok, "{text}");
    // 200 calls of 0.5 s each: concurrent, not one after the other.
    assert!(started.elapsed() < Duration::from_secs(30), "{text}");
    assert!(text.contains("many ok 200"), "{text}");
    assert!(text.contains("peers 1\n"), "one backend connection: {text}");
}

#[test]
fn grpc_ten_client_connections_share_one_upstream_connection() {
    // 10 client connections (grpcio channels with their own subchannels) × 20 concurrent
    // calls: the loop's hub multiplexes all 200 calls (and the count query) on one
    // backend connection (before the hub, each client connection had its own: 11).
    let dir = TempDir::new("grpc-channels");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server(up_port);
    // One event loop: the hub is per loop (with N workers, at most N connections).
    let one_loop = format!("workers = 1\n{}", config(port, up_port));
    let t = tether(&dir, &one_loop, &[port]);
    let (ok, text) = grpc_client(port, "channels:10");
    assert!(ok, "{text}\n{}", t.log_text());
    assert!(text.contains("channels ok 200"), "{text}");
    assert!(text.contains("peers 1\n"), "one backend connection: {text}");
}

#[test]
fn grpc_a_full_upstream_connection_makes_another() {
    // The backend takes 50 streams per connection; tether's front takes 128 per client
    // connection: 128 calls at once need exactly 3 backend connections (50 + 50 + 28).
    let dir = TempDir::new("grpc-full");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server_max(up_port, 50);
    let t = tether(&dir, &config(port, up_port), &[port]);
    let (ok, text) = grpc_client(port, "many");
    assert!(ok, "{text}\n{}", t.log_text());
    assert!(text.contains("many ok 200"), "{text}");
    assert!(
        text.contains("peers 3\n"),
        "three backend connections: {text}"
    );
}

#[test]
fn grpc_a_consumer_that_stops_reading_stops_the_producer() {
    // A 200 MiB server stream whose consumer reads 1 MiB and waits 3 s: the windows stop
    // the server (both the upstream stream's and connection's, as tether gives them back
    // only once the client took the bytes), and tether's memory does not grow with it.
    let dir = TempDir::new("grpc-slow");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server(up_port);
    let t = tether(&dir, &config(port, up_port), &[port]);
    let (ok, text) = grpc_client(port, &format!("slow:{}", t.pid()));
    assert!(ok, "{text}");
    let field = |name: &str| -> u64 {
        let at = text.find(name).map(|i| i + name.len() + 1).unwrap_or(0);
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap_or(u64::MAX)
    };
    let (produced, grown) = (field("produced"), field("rss_growth_kib"));
    // What the windows and socket buffers on the way hold: far from the 200 MiB.
    assert!(produced <= 48, "the producer was not held back: {text}");
    assert!(grown < 32 * 1024, "tether's RSS grew {grown} KiB: {text}");
}

#[test]
fn grpc_backend_goaway_under_load_fails_no_call() {
    // The backend sends GOAWAY to every connection 300 ms old (grpcio's
    // max_connection_age): new calls go to a fresh connection, and streams above the
    // GOAWAY's last-stream-id (never processed) are sent again there.
    let dir = TempDir::new("grpc-goaway");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server_aged(up_port, 1000, 300);
    let t = tether(&dir, &config(port, up_port), &[port]);
    let (ok, text) = grpc_client(port, "load");
    assert!(ok, "{text}\n{}", t.log_text());
    assert!(text.contains("load ok failures=0"), "{text}");
    let peers: u32 = text
        .split("peers ")
        .nth(1)
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        peers >= 3,
        "the backend's GOAWAYs moved calls to new connections: {text}"
    );
}

#[test]
fn grpc_backend_dying_mid_stream_is_unavailable_and_the_next_calls_go_elsewhere() {
    // Two backends; the one serving a server stream dies after 3 messages: the stream ends
    // with UNAVAILABLE in its trailers (not a reset), and the next calls reach the other
    // (a refused connect to the dead one tries the next server).
    let dir = TempDir::new("grpc-die");
    let (port, a, b) = (free_port(), free_port(), free_port());
    let _a = grpc_server(a);
    let _b = grpc_server(b);
    let config = format!(
        r#"
[[upstream]]
name = "grpc"
servers = ["127.0.0.1:{a}", "127.0.0.1:{b}"]
protocol = "h2c"

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "grpc"
"#
    );
    let t = tether(&dir, &config, &[port]);
    let (ok, text) = grpc_client(port, "die");
    assert!(ok, "{text}\n{}", t.log_text());
    assert!(
        text.contains("died ok") && text.contains("survivor ok"),
        "{text}"
    );
}

#[test]
fn grpc_calls_answered_before_their_request_ends_free_their_stream() {
    // The backend takes 2 streams per connection and answers each call after its first
    // message while the client keeps streaming (then resets the stream with NO_ERROR):
    // each answer reaches the client, and the slots come back, so six calls in a row on a
    // 2-stream connection (and one more) all get their answer.
    let dir = TempDir::new("grpc-early");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server_max(up_port, 2);
    let t = tether(&dir, &config(port, up_port), &[port]);
    let (ok, text) = grpc_client(port, "early");
    assert!(ok, "{text}\n{}", t.log_text());
}

#[test]
fn grpc_calls_over_a_rate_limit_are_resource_exhausted() {
    // A route's limit refuses a gRPC call as a gRPC answer (200, grpc-status 8), never as
    // a bare 429 or an HTML page; the call within the limit reaches the backend.
    let dir = TempDir::new("grpc-limited");
    let (port, up_port) = (free_port(), free_port());
    let _up = grpc_server(up_port);
    let config = config(port, up_port).replace(
        "[[server]]\n",
        "[[limit]]\nname = \"calls\"\nrate = \"1r/m\"\nburst = 0\nnodelay = true\n\n\
         [[server]]\nlimits = [\"calls\"]\n",
    );
    let t = tether(&dir, &config, &[port]);
    let (ok, text) = grpc_client(port, "limited");
    assert!(ok, "{text}\n{}", t.log_text());
    assert!(text.contains("limited ok"), "{text}");
}

#[test]
fn grpc_no_backend_is_unavailable_from_tether() {
    let dir = TempDir::new("grpc-unavailable");
    let (port, up_port) = (free_port(), free_port());
    let _t = tether(&dir, &config(port, up_port), &[port]);
    let (ok, text) = grpc_client(port, "unavailable");
    assert!(ok, "{text}");
    assert!(
        text.contains("tether"),
        "the answer is tether's own: {text}"
    );
}

#[test]
fn grpc_timeout_is_the_upstream_deadline() {
    let dir = TempDir::new("grpc-deadline");
    let (port, up_port) = (free_port(), free_port());
    // A backend that accepts and never answers (not even SETTINGS): only tether's deadline
    // can end the call (a grpcio backend would answer DEADLINE_EXCEEDED itself).
    let _up = python_script(SILENT, &[&up_port.to_string()], up_port);
    let t = tether(&dir, &config(port, up_port), &[port]);
    // One gRPC message: a 0 flag, its length (4 bytes, big endian), the payload.
    let payload = b"anything";
    let mut msg = vec![0u8];
    msg.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    msg.extend_from_slice(payload);
    let body = dir.write("msg.bin", &msg);
    let started = Instant::now();
    let out = curl(&[
        "--http2-prior-knowledge",
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--max-time",
        "20",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        "grpc-timeout: 1S",
        "--data-binary",
        &format!("@{}", body.display()),
        &format!("http://127.0.0.1:{port}/t.T/Unary"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("grpc-status: 4"),
        "{text} {why}\n{}",
        t.log_text()
    );
    assert!(
        text.contains("grpc-message: tether: deadline_exceeded"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn grpc_calls_follow_their_session_id_in_metadata_across_three_backends() {
    // The session_id policy on gRPC metadata: the backend's new id (initial metadata
    // `x-session`) is tagged with its server; calls sending it back go home and the
    // backend sees its own id.
    let dir = TempDir::new("grpc-session-id");
    let (port, a, b, c) = (free_port(), free_port(), free_port(), free_port());
    let _servers = [grpc_server(a), grpc_server(b), grpc_server(c)];
    let config = format!(
        r#"
[[upstream]]
name = "grpc"
servers = ["127.0.0.1:{a}", "127.0.0.1:{b}", "127.0.0.1:{c}"]
protocol = "h2c"
balance = "session_id"
keys = ["00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"]
session_header = "x-session"

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "grpc"
"#
    );
    let _t = tether(&dir, &config, &[port]);
    let (ok, out) = grpc_client(port, "sessions:6");
    assert!(ok, "{out}");
    assert_eq!(out.matches("session ok").count(), 6, "{out}");
    // Round robin made the six sessions on all three servers.
    assert!(out.contains("homes 3"), "{out}");
}

#[test]
fn grpc_calls_hashed_by_a_metadata_value_stay_on_one_backend() {
    // `ip_hash` with `hash_key = "header:x-user"`: gRPC metadata are headers, so a user's
    // calls reach one server whatever channel they come on, and users spread.
    let dir = TempDir::new("grpc-hash-key");
    let (port, a, b, c) = (free_port(), free_port(), free_port(), free_port());
    let _servers = [grpc_server(a), grpc_server(b), grpc_server(c)];
    let config = config(port, a).replace(
        &format!("servers = [\"127.0.0.1:{a}\"]"),
        &format!(
            "servers = [\"127.0.0.1:{a}\", \"127.0.0.1:{b}\", \"127.0.0.1:{c}\"]\n\
             balance = \"ip_hash\"\nhash_key = \"header:x-user\""
        ),
    );
    assert!(config.contains("hash_key"), "{config}");
    let _t = tether(&dir, &config, &[port]);
    let (ok, out) = grpc_client(port, "users:12");
    assert!(ok, "{out}");
    assert_eq!(out.matches("user ok").count(), 12, "{out}");
    assert!(!out.contains("homes 1\n"), "12 users on one server: {out}");
}
