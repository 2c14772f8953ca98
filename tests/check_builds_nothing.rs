//! `tether check` and the master (at start and on reload) check a config and build nothing
//! from it: no Redis connection, no health probe, no read of the ACME storage. The same
//! config run by a worker does all three, which shows that each observation can see what it
//! looks for.

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

/// The line a worker logs when it builds the ACME state of `acme_site`.
const STORED: &str = "acme: stored certificate of a.example.org does not load";

/// A config whose `[acme]` storage holds a broken certificate for its one name (the
/// directory URL names a closed port: nothing is ordered), and its listener's port.
fn acme_site(dir: &TempDir) -> (String, u16) {
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
    (config, port)
}

#[test]
fn check_reads_no_acme_storage() {
    let dir = TempDir::new("check-acme");
    let (config, port) = acme_site(&dir);
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
    assert!(worker.wait_log(STORED), "{}", worker.log_text());
}

#[test]
fn the_master_reads_no_acme_storage_at_start_or_on_reload() {
    let dir = TempDir::new("master-acme");
    let (config, _) = acme_site(&dir);
    // The workers' output goes to worker.log only: the master's log is its own.
    let worker_log = dir.path().join("worker.log");
    let config = format!(
        "{config}[supervisor]\nshow_worker_output = false\nworker_log = \"{}\"\n",
        worker_log.display()
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let master_log = dir.path().join("master.log");
    let child = Command::new(TETHER)
        .arg(&cfg)
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&master_log).expect("log file"))
        .spawn()
        .expect("spawn tether");
    let master = Proc {
        child,
        log: Some(master_log),
    };
    assert!(
        master.wait_log_within("ready (generation 1)", Duration::from_secs(10)),
        "{}",
        master.log_text()
    );
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(master.child_pid() as libc::pid_t, libc::SIGHUP) };
    assert!(
        master.wait_log_within("ready (generation 2)", Duration::from_secs(10)),
        "{}",
        master.log_text()
    );
    let log = master.log_text();
    assert!(
        log.contains("is valid"),
        "the master checked the config:\n{log}"
    );
    assert!(
        !log.contains("stored certificate"),
        "the master read the ACME storage:\n{log}"
    );
    let workers = std::fs::read_to_string(&worker_log).unwrap_or_default();
    assert!(
        workers.matches(STORED).count() >= 2,
        "each worker reads it when it builds:\n{workers}"
    );
}
