//! Helpers for the operations tests (`tests/ops_*.rs`): a real SMTP server (aiosmtpd, via
//! `tests/support_smtp.py`), starting tether with its stdout kept, signals, waiting for an
//! exit with a bound, reading the admin key, and proving that no process a test started is
//! left (by pid and by process group: each worker leads its own group).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running aiosmtpd sink writing each mail as a JSON line; killed on drop.
pub struct Smtp {
    pub proc: Proc,
    pub port: u16,
    pub out: PathBuf,
}

impl Smtp {
    pub fn start(dir: &TempDir) -> Smtp {
        let out = dir.path().join("mails.jsonl");
        // The sink prints its port once it accepts; it exits at once if aiosmtpd is missing.
        let args = ["--out".as_ref(), out.as_os_str()];
        let (proc, port) = python_listening("tests/support_smtp.py", &args);
        Smtp { proc, port, out }
    }

    /// The mails received so far: (recipients, raw message).
    pub fn mails(&self) -> Vec<(Vec<String>, String)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let to = v["to"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                (to, v["data"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    }

    /// Wait (at most `limit`) for a mail whose text contains `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Option<(Vec<String>, String)> {
        let mut found = None;
        eventually(limit, || {
            found = self.mails().into_iter().find(|(_, m)| m.contains(needle));
            found.is_some()
        });
        found
    }

    /// The `[supervisor.mail]` table for this sink.
    pub fn config(&self) -> String {
        format!(
            "[supervisor.mail]\nserver = \"127.0.0.1\"\nport = {}\nsender = \"tether@example.org\"\nrecipients = [\"ops@example.org\"]\n",
            self.port
        )
    }
}

/// Start tether with `args` in `dir` (stdout and stderr to `dir/tether.log`) and wait until
/// `n` workers have said "running" in total.
pub fn start(dir: &TempDir, args: &[&str], n: usize) -> Proc {
    let log = dir.path().join("tether.log");
    let f = std::fs::File::create(&log).expect("log file");
    let f2 = f.try_clone().expect("dup log");
    let child = Command::new(TETHER)
        .args(args)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(f2)
        .stderr(f)
        .spawn()
        .expect("spawn tether");
    let mut p = Proc {
        child,
        log: Some(log),
    };
    wait_running(&mut p, n);
    p
}

/// Wait until the log names `n` running workers in total (at most 10 s).
pub fn wait_running(p: &mut Proc, n: usize) {
    if !eventually(Duration::from_secs(10), || {
        running_pids(&p.log_text()).len() >= n
    }) {
        panic!(
            "tether: {n} worker(s) never ran; alive={}; log:\n{}",
            p.alive(),
            p.log_text()
        );
    }
}

/// How many times the log says `needle`.
pub fn count(p: &Proc, needle: &str) -> usize {
    p.log_text().matches(needle).count()
}

/// Wait (at most `limit`) until the log says `needle` at least `n` times.
pub fn wait_log(p: &Proc, needle: &str, n: usize, limit: Duration) {
    if !eventually(limit, || count(p, needle) >= n) {
        panic!("log never said {needle:?} {n} times:\n{}", p.log_text());
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Wait (at most `limit`) for the child to exit; its status.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The process group of `pid`, if it lives.
pub fn pgid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Live processes (zombies excluded) in process group `group`.
pub fn group_members(group: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid_alive(pid) && pgid(pid) == Some(group))
        .collect()
}

/// Assert that the master `master` and every worker its log names are gone, and that no
/// process is left in any of their process groups (each worker leads its own).
pub fn assert_all_gone(master: u32, log: &str) {
    let mut pids = running_pids(log);
    pids.push(master);
    for pid in pids {
        assert!(
            eventually(Duration::from_secs(5), || !pid_alive(pid)),
            "process {pid} is still running; log:\n{log}"
        );
        let left = group_members(pid);
        assert!(left.is_empty(), "group {pid} still has {left:?}");
    }
}

/// The admin key tether wrote to `path` (`admin.key_file`).
pub fn read_key(path: &Path) -> String {
    let mut key = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            key = std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_string();
            !key.is_empty()
        }),
        "no key in {}",
        path.display()
    );
    key
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); (status, head, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no complete head: {text:?}")))?;
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    Ok((status, head.to_string(), body.to_string()))
}

/// `http` with the admin key.
pub fn admin(port: u16, method: &str, path: &str, key: &str) -> (u16, String) {
    let (status, _, body) = http(
        port,
        method,
        path,
        &format!("Authorization: Bearer {key}\r\n"),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, body)
}
