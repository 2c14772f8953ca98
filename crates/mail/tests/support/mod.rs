//! Test helpers: start the real SMTP sink (`tests/support_smtp.py`, aiosmtpd) on a given or
//! kernel-chosen loopback port, read what it received, kill it on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[allow(unused_imports)] // not every test binary uses it
pub use tether_testkit::free_port;

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

/// A running aiosmtpd sink; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl SmtpSink {
    /// Start the sink on `port` (0: any) writing to `out`; returns once it accepts.
    pub fn start(port: u16, out: PathBuf) -> SmtpSink {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/support_smtp.py"))
            .args(["--port", &port.to_string(), "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (bash scripts/setup.sh installs aiosmtpd)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        // The sink prints "listening on PORT" once bound; EOF means it died.
        let n = BufReader::new(stdout).read_line(&mut line).unwrap_or(0);
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port.filter(|_| n > 0) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("SMTP sink did not start (is aiosmtpd installed?): {line:?}");
        };
        SmtpSink { child, port, out }
    }

    /// Messages received so far, as JSON values {"from", "to", "data"}.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        read_messages(&self.out)
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

pub fn read_messages(path: &PathBuf) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
