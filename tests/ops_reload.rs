//! Reloads and graceful stops with the real binary under real traffic: 20 reloads (SIGHUP)
//! while clients loop on requests, with an invalid config in the middle, and not one request
//! fails; a slow request finishes during a graceful shutdown (supervised and alone) and
//! tether exits 0; past `drain_timeout` what is left is cut and tether still exits 0.

mod common;
mod ops_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ops_support::*;

fn proxy_config(port: u16, up: u16, name: &str) -> String {
    format!(
        "server_name = \"{name}\"\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\n"
    )
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// A reused keep-alive connection closed before any byte of the answer (the server was
    /// draining it while idle): retried on a new connection, as curl and browsers do.
    retried_idle: AtomicU64,
    errors: Mutex<Vec<String>>,
    servers: Mutex<std::collections::BTreeSet<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() < 20 {
            e.push(what);
        }
    }
}

/// One request per connection, until `stop`.
fn fresh_connections(port: u16, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::SeqCst) {
        match http(port, "GET", "/whoami", "") {
            Ok((200, head, body)) if body.starts_with("port=") => {
                if let Some(s) = header(&head, "server") {
                    tally.servers.lock().unwrap().insert(s.to_string());
                }
                tally.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok((code, _, body)) => tally.fail(format!("fresh: {code} {body:?}")),
            Err(e) => tally.fail(format!("fresh: {e}")),
        }
    }
}

/// Read one response with a `Content-Length` body; None if the connection closed before
/// its first byte.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<(String, String)>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::other(format!("cut in the head: {head:?}")));
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no length: {head:?}")))?;
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some((head, String::from_utf8_lossy(&body).into_owned())))
}

/// Requests on keep-alive connections, until `stop`.
fn keep_alive(port: u16, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut conn: Option<(BufReader<TcpStream>, u32)> = None;
    while !stop.load(Ordering::SeqCst) {
        let (mut r, used) = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(addr(port)) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                    (BufReader::new(s), 0)
                }
                Err(e) => {
                    tally.fail(format!("keep-alive connect: {e}"));
                    continue;
                }
            },
        };
        let sent = r
            .get_mut()
            .write_all(b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let got = sent.and_then(|()| read_response(&mut r));
        match got {
            Ok(Some((head, body)))
                if head.starts_with("HTTP/1.1 200") && body.starts_with("port=") =>
            {
                tally.ok.fetch_add(1, Ordering::SeqCst);
                let closing =
                    header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if !closing {
                    conn = Some((r, used + 1));
                }
            }
            Ok(None) if used > 0 => {
                tally.retried_idle.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if used > 0 && e.kind() == std::io::ErrorKind::ConnectionReset => {
                tally.retried_idle.fetch_add(1, Ordering::SeqCst);
            }
            Ok(None) => tally.fail("keep-alive: closed before answering a fresh connection".into()),
            Ok(Some((head, body))) => tally.fail(format!("keep-alive: {head:?} {body:?}")),
            Err(e) => tally.fail(format!("keep-alive: {e}")),
        }
    }
}

#[test]
fn twenty_reloads_under_load_fail_no_request() {
    let dir = TempDir::new("ops-reload");
    let up = free_port();
    let _upstream = python_upstream(up);
    let port = free_port();
    let cfg = dir.write("tether.toml", proxy_config(port, up, "gen-0").as_bytes());
    let mut t = start(&dir, &[cfg.to_str().unwrap()], 1);
    let master = t.child_pid();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for i in 0..3 {
        let (stop, tally) = (stop.clone(), tally.clone());
        clients.push(std::thread::spawn(move || {
            if i == 2 {
                keep_alive(port, stop, tally)
            } else {
                fresh_connections(port, stop, tally)
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    for n in 1..=20 {
        if n == 10 {
            // An invalid config: refused with path:line:col, the running one stays.
            dir.write(
                "tether.toml",
                b"server_name = \"x\"\n[[listener]]\nlisten = 5\n",
            );
            signal(master, libc::SIGHUP);
            wait_log(
                &t,
                "refused: the running config stays",
                1,
                Duration::from_secs(10),
            );
            assert!(
                t.wait_log(&format!("{}:3:10: ", cfg.display())),
                "{}",
                t.log_text()
            );
        }
        dir.write(
            "tether.toml",
            proxy_config(port, up, &format!("gen-{n}")).as_bytes(),
        );
        signal(master, libc::SIGHUP);
        // Ready, and the old worker has finished draining.
        wait_log(&t, "drains", n, Duration::from_secs(20));
        wait_log(&t, ") finished (exit code 0)", n, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client");
    }
    let ok = tally.ok.load(Ordering::SeqCst);
    let failed = tally.failed.load(Ordering::SeqCst);
    let errors = tally.errors.lock().unwrap().clone();
    assert_eq!(failed, 0, "{ok} ok, {failed} failed: {errors:#?}");
    assert!(ok >= 60, "only {ok} requests in 20 reloads");
    let servers = tally.servers.lock().unwrap().clone();
    assert!(
        servers.contains("gen-20"),
        "the last config serves: {servers:?}"
    );
    assert!(servers.len() >= 5, "configs seen: {servers:?}");
    let log = t.log_text();
    assert_eq!(
        running_pids(&log).len(),
        21,
        "one new worker per valid reload"
    );
    eprintln!(
        "{ok} requests, {} idle keep-alive closes retried, servers seen {}",
        tally.retried_idle.load(Ordering::SeqCst),
        servers.len()
    );
    signal(master, libc::SIGTERM);
    let status = wait_exit(&mut t.child, Duration::from_secs(15)).expect("master exits");
    assert_eq!(status.code(), Some(0));
    assert_all_gone(master, &t.log_text());
}

/// Start `/slow?ms=` through tether, stop tether while it runs, check both ends.
fn slow_request_during_stop(args_before: &[&str], tag: &str) {
    let dir = TempDir::new(tag);
    let up = free_port();
    let _upstream = python_upstream(up);
    let port = free_port();
    let cfg = dir.write("tether.toml", proxy_config(port, up, "tether").as_bytes());
    let mut args: Vec<&str> = args_before.to_vec();
    args.push(cfg.to_str().unwrap());
    let mut t = start(&dir, &args, 1);
    let master = t.child_pid();
    let started = Instant::now();
    let slow = std::thread::spawn(move || http(port, "GET", "/slow?ms=1500", ""));
    std::thread::sleep(Duration::from_millis(400));
    signal(master, libc::SIGTERM);
    // Draining: the listening socket is closed, new connections are refused.
    assert!(
        eventually(Duration::from_secs(2), || TcpStream::connect(addr(port))
            .is_err()),
        "still accepting new connections while draining"
    );
    let (code, head, body) = slow.join().expect("client").expect("the slow answer");
    assert_eq!((code, body.as_str()), (200, "slow"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let status = wait_exit(&mut t.child, Duration::from_secs(10)).expect("tether exits");
    assert_eq!(status.code(), Some(0), "{}", t.log_text());
    assert_all_gone(master, &t.log_text());
}

#[test]
fn slow_request_finishes_during_graceful_shutdown() {
    slow_request_during_stop(&[], "ops-stop");
}

#[test]
fn slow_request_finishes_during_graceful_shutdown_alone() {
    slow_request_during_stop(&["--no-supervise"], "ops-stop-alone");
}

#[test]
fn drain_timeout_cuts_what_is_left() {
    let dir = TempDir::new("ops-cut");
    let up = free_port();
    let _upstream = python_upstream(up);
    let port = free_port();
    let cfg = format!(
        "drain_timeout_ms = 500\n{}",
        proxy_config(port, up, "tether")
    );
    let cfg = dir.write("tether.toml", cfg.as_bytes());
    let mut t = start(&dir, &[cfg.to_str().unwrap()], 1);
    let master = t.child_pid();
    let before = established_to(up);
    let slow = std::thread::spawn(move || http(port, "GET", "/slow?ms=5000", ""));
    // The slow request has reached the upstream (a connection more to it) before the stop.
    assert!(eventually(Duration::from_secs(5), || established_to(up) > before));
    std::thread::sleep(Duration::from_millis(100));
    let stopped = Instant::now();
    signal(master, libc::SIGTERM);
    let status = wait_exit(&mut t.child, Duration::from_secs(10)).expect("tether exits");
    assert_eq!(status.code(), Some(0), "{}", t.log_text());
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    assert!(t.wait_log("closing the connections still open"));
    let cut = slow.join().expect("client");
    assert!(!matches!(cut, Ok((200, _, _))), "{cut:?}");
    assert_all_gone(master, &t.log_text());
}
