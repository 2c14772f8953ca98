//! Fake simulation servers for the broker tests: `examples/fake_simulation_server.py` on a
//! kernel-chosen port, its load and mode set over HTTP, its polls counted.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{curl, get, repo, Proc};

/// A fake simulation server on a kernel-chosen port.
pub struct Sim {
    _proc: Proc,
    pub port: u16,
}

impl Sim {
    /// `python3 examples/fake_simulation_server.py --port 0 ARGS`, once it listens.
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new("python3")
            .arg(repo().join("examples/fake_simulation_server.py"))
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let proc = Proc { child, log: None };
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("fake_simulation_server.py {args:?} did not start: {line:?}")
            });
        Sim { _proc: proc, port }
    }

    pub fn entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `POST /set?QUERY` (load=, mode=, delay_ms=).
    pub fn set(&self, query: &str) {
        let out = curl(&[
            "-s",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{}/set?{query}", self.port),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok", "set {query}");
    }

    /// How many `GET /load` it has seen.
    pub fn polls(&self) -> u64 {
        let (_, body) = get(&format!("http://127.0.0.1:{}/stats", self.port));
        String::from_utf8_lossy(&body)
            .strip_prefix("polls ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}
