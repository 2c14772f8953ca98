//! Helpers shared by the affinity end-to-end tests (`tests/affinity.rs`,
//! `tests/affinity_more.rs`, `tests/visit_counter.rs`): curl with the response head, the
//! stateful python apps on free ports, a one-upstream tether config, and a real
//! `redis-server` that can be stopped and started again on the same port.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use crate::common::*;

/// A sealing key (hex) shared by the tests.
pub const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// One response: status, head, body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The value `name=` is set to by a `Set-Cookie` of this response.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let first = v.trim().split(';').next()?;
            let (n, value) = first.split_once('=')?;
            (n == name).then(|| value.to_string())
        })
    }
}

/// Parse curl's `-i` output (one response) into a `Reply`.
pub fn parse_reply(text: &str) -> Reply {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// GET `url` with extra curl arguments (headers, cookie jars).
pub fn fetch(url: &str, extra: &[&str]) -> Reply {
    let mut args = vec!["-s", "-i"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = curl(&args);
    parse_reply(&String::from_utf8_lossy(&out.stdout))
}

/// GET `url` sending `Cookie: cookie`.
pub fn with_cookie(url: &str, cookie: &str) -> Reply {
    let h = format!("Cookie: {cookie}");
    fetch(url, &["-H", &h])
}

/// `tests/support_app.py` instances named `names`, on free ports.
pub fn apps(names: &[&str]) -> (Vec<Proc>, Vec<u16>) {
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let procs = names
        .iter()
        .zip(&ports)
        .map(|(n, &p)| python_app(p, n))
        .collect();
    (procs, ports)
}

/// A config with one upstream `app` (servers a, b, c, d on `ports`) routed at `/`.
/// `upstream_extra` goes inside `[[upstream]]`, `top` before it.
pub fn config(port: u16, ports: &[u16], upstream_extra: &str, top: &str) -> String {
    let names = ["a", "b", "c", "d"];
    let servers: Vec<String> = ports
        .iter()
        .zip(names)
        .map(|(p, n)| format!("{{ id = \"{n}\", addr = \"127.0.0.1:{p}\" }}"))
        .collect();
    format!(
        "{top}\n[[upstream]]\nname = \"app\"\nservers = [{}]\n{upstream_extra}\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n",
        servers.join(", ")
    )
}

/// A real `redis-server` on a fixed port, killed on drop; `stop` and `start` restart it on
/// the same port (nothing persisted).
pub struct Redis {
    pub port: u16,
    proc: Option<Proc>,
}

impl Redis {
    /// A redis-server on a free port; `None` (the test is skipped) only when it is not
    /// installed and `CI` is unset.
    pub fn start_new() -> Option<Redis> {
        let mut r = Redis {
            port: free_port(),
            proc: None,
        };
        match r.spawn() {
            Ok(()) => Some(r),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED: redis-server not available ({e})");
                None
            }
            Err(e) => panic!("redis-server is required in CI: {e}"),
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.proc = Some(Proc { child, log: None });
        wait_port(self.port);
        Ok(())
    }

    /// Kill the server (and wait for it to be gone).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Start it again on the same port.
    pub fn start(&mut self) {
        self.spawn().expect("restart redis-server");
    }

    /// Send `sig` (`STOP`, `CONT`) to the server: `STOP` makes a hung Redis (the socket
    /// accepts, nothing answers).
    pub fn signal(&self, sig: &str) {
        let pid = self.proc.as_ref().expect("redis runs").child.id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}
