//! Fake simulation servers for the broker tests: `examples/fake_simulation_server.py` on a
//! kernel-chosen port, its load and mode set over HTTP, its polls counted.

#![allow(dead_code)]

use crate::common::{curl, get, python_listening, Proc};

/// A fake simulation server on a kernel-chosen port.
pub struct Sim {
    _proc: Proc,
    pub port: u16,
}

impl Sim {
    /// `python3 examples/fake_simulation_server.py --port 0 ARGS`, once it listens.
    pub fn start(args: &[&str]) -> Sim {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let (proc, port) = python_listening("examples/fake_simulation_server.py", &args);
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
