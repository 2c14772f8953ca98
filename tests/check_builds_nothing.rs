//! `tether check` (the master's check too: both read the config with `Settings::from_text`)
//! checks and builds nothing: no Redis connection, no health probe, no read of the ACME
//! storage. The same config run by a worker does all three, which shows that each
//! observation can see what it looks for.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A listener nothing is expected to connect to, polled without blocking.
fn quiet_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// Whether a connection arrives on `l` within `limit`.
fn connected_within(l: &TcpListener, limit: Duration) -> bool {
    eventually(limit, || match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    })
}

fn check(config: &std::path::Path) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new(TETHER)
        .args(["check", config.to_str().expect("utf-8 path")])
        .env("RUST_LOG", "debug")
        .output()
        .expect("run tether check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, started.elapsed())
}

#[test]
fn check_connects_to_no_store_and_probes_no_server() {
    let dir = TempDir::new("check-nothing");
    let (redis, redis_port) = quiet_listener();
    let (backend, backend_port) = quiet_listener();
    let port = free_port();
    let config = format!(
        "store = \"redis://127.0.0.1:{redis_port}\"\n\
         [[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{backend_port}\"]\n\
         [upstream.health]\npath = \"/health\"\ninterval_ms = 50\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let (code, out, took) = check(&cfg);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (1 listeners)"), "{out}");
    assert!(took < Duration::from_secs(5), "check took {took:?}");
    assert!(
        !connected_within(&redis, Duration::from_millis(500)),
        "tether check connected to the store"
    );
    assert!(
        !connected_within(&backend, Duration::from_millis(200)),
        "tether check probed the upstream"
    );

    // The worker builds the runtime: its health checker probes the server at once and the
    // Redis store's helper threads connect.
    let cfg = cfg.to_str().expect("utf-8 path");
    let _worker = tether_args(dir.path(), &["--no-supervise", cfg], &[port]);
    assert!(
        connected_within(&backend, Duration::from_secs(5)),
        "the worker's health checker never probed"
    );
    assert!(
        connected_within(&redis, Duration::from_secs(5)),
        "the worker never connected to the store"
    );
}

#[test]
fn check_reads_no_acme_storage() {
    let dir = TempDir::new("check-acme");
    // The directory URL names a closed port: nothing is ordered either way.
    let closed = free_port();
    let port = free_port();
    dir.write(
        &format!("acme/127.0.0.1_{closed}_dir/certs/a.example.org/cert.pem"),
        b"not a certificate\n",
    );
    let config = format!(
        "[acme]\ndirectory = \"https://127.0.0.1:{closed}/dir\"\nagree_tos = true\n\
         storage = \"{}\"\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhostnames = [\"a.example.org\"]\n\
         tls = {{ certificates = \"acme\" }}\n",
        dir.path().join("acme").display()
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let (code, out, _) = check(&cfg);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("stored certificate"),
        "tether check read the ACME storage:\n{out}"
    );

    // The worker registers the name and reads its stored certificate, which does not load.
    let cfg = cfg.to_str().expect("utf-8 path");
    let worker = tether_args(dir.path(), &["--no-supervise", cfg], &[port]);
    assert!(
        worker.wait_log("acme: stored certificate of a.example.org does not load"),
        "{}",
        worker.log_text()
    );
}
