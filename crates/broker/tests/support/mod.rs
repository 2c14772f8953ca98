//! Test helpers: real fake simulation servers (`examples/fake_sim_server.py`) and a real
//! SMTP sink (`tests/support_smtp.py`, aiosmtpd) on kernel-chosen loopback ports, each
//! reporting its port once it accepts; all killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[allow(unused_imports)] // not every test binary uses it
pub use tether_testkit::free_port;

/// Poll `cond` every 20 ms for at most `limit`; true if it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("tether-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Start a python script that prints "listening on PORT" once bound; return it and the port.
fn spawn_reporting(script: &str, args: &[String]) -> (Child, u16) {
    let mut child = Command::new("python3")
        .arg(repo().join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs (bash scripts/setup.sh installs what the tests need)");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let n = BufReader::new(stdout).read_line(&mut line).unwrap_or(0);
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok());
    match port.filter(|_| n > 0) {
        Some(port) => (child, port),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not start: {line:?}");
        }
    }
}

/// A fake simulation server.
pub struct SimServer {
    child: Child,
    pub port: u16,
}

impl SimServer {
    /// Answers `load` on /load.
    pub fn start(load: f64) -> SimServer {
        SimServer::start_with(&["--load", &load.to_string()])
    }

    /// With other arguments (`--mode hang`, ...).
    pub fn start_with(args: &[&str]) -> SimServer {
        let mut all = vec!["--port".to_string(), "0".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let (child, port) = spawn_reporting("examples/fake_sim_server.py", &all);
        SimServer { child, port }
    }

    /// `127.0.0.1:PORT`, the way the broker config lists it.
    pub fn entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `POST /set?<query>` (e.g. `load=97`, `mode=garbage`).
    pub fn set(&self, query: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "POST /set?{query} HTTP/1.0\r\nHost: sim\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.0 200"),
            "set {query}: {answer:?}"
        );
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running aiosmtpd sink.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl SmtpSink {
    pub fn start(out: PathBuf) -> SmtpSink {
        let args = vec![
            "--port".into(),
            "0".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        let (child, port) = spawn_reporting("tests/support_smtp.py", &args);
        SmtpSink { child, port, out }
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait (at most `limit`) until at least `n` messages arrived; returns them.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Subject header of a raw message.
pub fn subject(message: &serde_json::Value) -> String {
    let data = message["data"].as_str().unwrap_or("");
    data.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The body of a raw message (after the blank line), CRLF turned into LF.
pub fn body(message: &serde_json::Value) -> String {
    let data = message["data"].as_str().unwrap_or("").replace("\r\n", "\n");
    data.split_once("\n\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}
