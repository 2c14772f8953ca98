//! The supervisor with the real binary: a worker killed with SIGKILL is replaced within a
//! second and a crash mail reaches a real SMTP server (aiosmtpd), with the admin key mailed
//! at start; a SIGSTOPped worker is replaced by the heartbeat; the worker dies with its
//! master; SIGTERM stops everything with exit 0; the console on a terminal (`script`);
//! `show_worker_output = false` keeps the worker's output out of the master's and in
//! `worker_log`.

mod common;
mod ops_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ops_support::*;

fn files_with(port: u16, dir: &TempDir, extra: &str) -> String {
    dir.write("www/hello.txt", b"hello from the worker\n");
    format!("{}\n{extra}", files_config(port, &dir.path().join("www")))
}

fn hello(port: u16) -> bool {
    matches!(http(port, "GET", "/hello.txt", ""), Ok((200, _, b)) if b == "hello from the worker\n")
}

#[test]
fn killed_worker_is_replaced_within_a_second_and_mailed() {
    let dir = TempDir::new("ops-kill");
    let smtp = Smtp::start(&dir);
    let port = free_port();
    let key_file = dir.path().join("admin.key");
    let cfg = files_with(
        port,
        &dir,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\nkey_file = \"{}\"\n[supervisor]\nsignature = \"-- the ops team, sig-7f3a\"\nmail_log_lines = 20\n{}",
            free_port(),
            key_file.display(),
            smtp.config()
        ),
    );
    let cfg_path = dir.write("tether.toml", cfg.as_bytes());
    let mut t = start(&dir, &[cfg_path.to_str().unwrap()], 1);
    let master = t.child_pid();
    let first = t.pid();
    assert_ne!(first, master, "a worker process serves");
    assert!(hello(port));

    // The admin key reaches the recipients at start; the log says where, never the key.
    let key = read_key(&key_file);
    let (to, mail) = smtp
        .wait_for("admin key", Duration::from_secs(10))
        .expect("the key mail");
    assert_eq!(to, ["ops@example.org"]);
    assert!(mail.contains(&key), "{mail}");
    assert!(mail.contains("sig-7f3a"), "{mail}");
    assert!(!t.log_text().contains(&key), "the key is in the log");

    signal(first, libc::SIGKILL);
    let killed = Instant::now();
    let mut second = first;
    let replaced = eventually(Duration::from_secs(1), || {
        second = running_pids(&t.log_text()).last().copied().unwrap_or(first);
        second != first && hello(port)
    });
    let took = killed.elapsed();
    assert!(
        replaced,
        "no new worker served within 1 s ({took:?}); log:\n{}",
        t.log_text()
    );
    assert!(!pid_alive(first));
    assert_eq!(pgid(second), Some(second), "the worker leads its own group");

    let (_, crash) = smtp
        .wait_for(
            &format!("Subject: tether: worker {first} on"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no crash mail; got {:?}", smtp.mails()));
    assert!(crash.contains("killed by signal 9 (SIGKILL)"), "{crash}");
    assert!(crash.contains("sig-7f3a"), "{crash}");
    assert!(
        crash.contains(&format!("running (pid {first}")),
        "the crash mail quotes the worker's last lines: {crash}"
    );

    // SIGTERM: the worker drains, the master exits 0, nothing is left.
    signal(master, libc::SIGTERM);
    let status = wait_exit(&mut t.child, Duration::from_secs(15)).expect("master exits");
    assert_eq!(status.code(), Some(0), "{}", t.log_text());
    assert_all_gone(master, &t.log_text());
}

#[test]
fn stopped_worker_is_replaced_by_the_heartbeat() {
    let dir = TempDir::new("ops-hang");
    let port = free_port();
    let cfg = files_with(
        port,
        &dir,
        "[supervisor]\nheartbeat_interval_ms = 200\nheartbeat_failures = 3\n",
    );
    let cfg_path = dir.write("tether.toml", cfg.as_bytes());
    let mut t = start(&dir, &[cfg_path.to_str().unwrap()], 1);
    let master = t.child_pid();
    let hung = t.pid();
    assert!(hello(port));

    signal(hung, libc::SIGSTOP);
    let stopped = Instant::now();
    // kill(2) returns before the worker has stopped: a request sent in between could be
    // accepted by it and reset when it is killed. Wait until it is stopped (state T).
    let state = || {
        std::fs::read_to_string(format!("/proc/{hung}/stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s.get(i + 2..i + 3))
                    .map(String::from)
            })
    };
    assert!(eventually(Duration::from_secs(5), || state().as_deref() == Some("T")));
    // A request sent now waits in the socket the master holds, and the next worker answers.
    let waiting = std::thread::spawn(move || http(port, "GET", "/hello.txt", ""));
    wait_running(&mut t, 2);
    let took = stopped.elapsed();
    // 3 misses at 200 ms (each probe waits up to 200 ms), then a restart: about 1 s.
    assert!(took < Duration::from_secs(5), "replaced after {took:?}");
    let log = t.log_text();
    assert!(log.contains("no answer to 3 heartbeats in a row"), "{log}");
    assert!(eventually(Duration::from_secs(5), || !pid_alive(hung)));
    let answer = waiting.join().expect("client thread").expect("answered");
    assert_eq!(answer.0, 200);
    assert_eq!(answer.2, "hello from the worker\n");
    assert!(hello(port));
    drop(t);
    assert_all_gone(master, &log);
}

#[test]
fn the_worker_dies_with_its_master() {
    let dir = TempDir::new("ops-orphan");
    let port = free_port();
    let cfg_path = dir.write("tether.toml", files_with(port, &dir, "").as_bytes());
    let mut t = start(&dir, &[cfg_path.to_str().unwrap()], 1);
    let worker = t.pid();
    assert!(hello(port));
    signal(t.child_pid(), libc::SIGKILL);
    let _ = t.child.wait();
    assert!(
        eventually(Duration::from_secs(2), || !pid_alive(worker)),
        "worker {worker} outlived its master"
    );
    assert!(group_members(worker).is_empty());
}

#[test]
fn console_on_a_terminal() {
    // `script` gives tether a terminal on its stdin, as an operator's shell would.
    let dir = TempDir::new("ops-console");
    let port = free_port();
    let cfg_path = dir.write("tether.toml", files_with(port, &dir, "").as_bytes());
    let log = dir.path().join("tether.log");
    let cmd = format!("{TETHER} {} 2>{}", cfg_path.display(), log.display());
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(10), || read_log()
            .contains(" running (pid ")),
        "{}",
        read_log()
    );
    let text = read_log();
    let master: u32 = text
        .split(" master (pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .expect("the master's pid in the log");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"status\n").expect("type status");
    stdin.write_all(b"restart\n").expect("type restart");
    assert!(
        eventually(Duration::from_secs(10), || running_pids(&read_log()).len()
            >= 2),
        "console restart: {}",
        read_log()
    );
    assert!(hello(port));
    stdin.write_all(b"exit\n").expect("type exit");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    let _ = child.kill();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    let _ = child.wait();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", read_log());
    assert!(out.contains("worker pid"), "status output: {out:?}");
    assert!(read_log().contains("console: stopping"), "{}", read_log());
    assert_all_gone(master, &read_log());
}

#[test]
fn hidden_worker_output_goes_to_the_worker_log() {
    let dir = TempDir::new("ops-hidden");
    let port = free_port();
    let aport = free_port();
    let wlog = dir.path().join("worker.log");
    let cfg = files_with(
        port,
        &dir,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{aport}\"\n[supervisor]\nshow_worker_output = false\nworker_log = \"{}\"\n",
            wlog.display()
        ),
    );
    let cfg_path = dir.write("tether.toml", cfg.as_bytes());
    let log = dir.path().join("tether.log");
    let child = Command::new(TETHER)
        .arg(&cfg_path)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn tether");
    let mut t = Proc {
        child,
        log: Some(log),
    };
    let worker_log = || std::fs::read_to_string(&wlog).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(10), || worker_log()
            .contains(" running (pid ")),
        "worker log: {}\nmaster log: {}",
        worker_log(),
        t.log_text()
    );
    assert!(hello(port));
    assert!(t.log_text().contains(" master (pid "));
    assert!(!t.log_text().contains(" running (pid "), "{}", t.log_text());
    let worker = running_pids(&worker_log())[0];
    assert_eq!(http(aport, "GET", "/healthz", "").expect("healthz").0, 200);
    signal(t.child_pid(), libc::SIGTERM);
    let status = wait_exit(&mut t.child, Duration::from_secs(15)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(worker_log().contains(&format!("worker {worker} stopped")));
    assert_all_gone(t.child_pid(), &worker_log());
}
