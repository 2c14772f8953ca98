//! The gRPC health check (`[upstream.health] kind = "grpc"`), end to end: the real binary
//! probes two Python `grpcio` servers running the standard `grpc.health.v1.Health` service
//! (`grpcio-health-checking`, `tests/support_grpc_health.py`). One set NOT_SERVING goes
//! down and gets no calls (a real grpcio client through tether); set SERVING again, it comes
//! back. A service the servers do not know (grpc-status NOT_FOUND) and a server that is not
//! gRPC at all (HTTP/1.1 `http.server`) fail the check.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn script() -> String {
    repo()
        .join("tests/support_grpc_health.py")
        .display()
        .to_string()
}

fn server(port: u16, name: &str) -> Proc {
    let (s, p) = (script(), port.to_string());
    python(
        &[s.as_ref(), "server".as_ref(), p.as_ref(), name.as_ref()],
        port,
    )
}

/// `support_grpc_health.py MODE PORT ARG` (bounded): stdout, trimmed.
fn run(mode: &str, port: u16, arg: &str) -> String {
    let out = Command::new("timeout")
        .args(["60", "python3", &script(), mode, &port.to_string(), arg])
        .output()
        .expect("python3 with grpcio (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{mode} {arg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn config(port: u16, a: u16, b: u16, service: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "grpc"
servers = [{{ id = "a", addr = "127.0.0.1:{a}" }}, {{ id = "b", addr = "127.0.0.1:{b}" }}]
protocol = "h2c"

[upstream.health]
kind = "grpc"
service = "{service}"
interval_ms = 100
timeout_ms = 1000
rise = 2
fall = 2

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
proxy = "grpc"
"#
    )
}

#[test]
fn grpc_health_check_takes_a_not_serving_server_out_and_back() {
    let dir = TempDir::new("grpc-health");
    let (port, a, b) = (free_port(), free_port(), free_port());
    let _a = server(a, "A");
    let _b = server(b, "B");
    let t = tether(&dir, &config(port, a, b, "t.T"), &[port]);

    // Both serve: round robin reaches both.
    let both = run("names", port, "20");
    assert_eq!(both, "A=10 B=10", "{both}");

    assert_eq!(run("set", a, "NOT_SERVING"), "ok");
    assert!(
        t.wait_log("pool grpc server a: down (2 checks failed)"),
        "{}",
        t.log_text()
    );
    assert!(!t.log_text().contains("server b: down"), "{}", t.log_text());
    let only_b = run("names", port, "20");
    assert_eq!(only_b, "B=20", "{only_b}");

    assert_eq!(run("set", a, "SERVING"), "ok");
    assert!(
        t.wait_log("pool grpc server a: up (2 checks passed)"),
        "{}",
        t.log_text()
    );
    let back = run("names", port, "20");
    assert_eq!(back, "A=10 B=10", "{back}");
}

#[test]
fn grpc_health_check_fails_unknown_services_and_non_grpc_servers() {
    let dir = TempDir::new("grpc-health-bad");
    let (port, a, b) = (free_port(), free_port(), free_port());
    let _a = server(a, "A");
    // Not gRPC: an HTTP/1.1 server answers the HTTP/2 preface with an error.
    let _b = python_http(dir.path(), b);
    let t = tether(&dir, &config(port, a, b, "no.Such"), &[port]);
    for id in ["a", "b"] {
        assert!(
            t.wait_log(&format!("pool grpc server {id}: down (2 checks failed)")),
            "{id}: {}",
            t.log_text()
        );
    }
    // No server is up: every call fails, and A saw none.
    let none = run("names", port, "3");
    assert_eq!(none, "failed=3", "{none}");
    // The same servers with the service they know: A comes up.
    let dir2 = TempDir::new("grpc-health-good");
    let port2 = free_port();
    let t2 = tether(&dir2, &config(port2, a, b, "t.T"), &[port2]);
    assert!(
        t2.wait_log_within("pool grpc server b: down", Duration::from_secs(10)),
        "{}",
        t2.log_text()
    );
    assert!(
        !t2.log_text().contains("server a: down"),
        "{}",
        t2.log_text()
    );
    let only_a = run("names", port2, "6");
    assert_eq!(only_a, "A=6", "{only_a}");
}
