//! Helpers of the DNS end-to-end tests (`tests/dns_backends.rs`): a real `dnsmasq` on a
//! free loopback port answering from a hosts directory it re-reads (`--hostsdir`) and from
//! `--srv-host` records (changed by restarting it), and the stateful app bound to other
//! loopback addresses (127.0.0.2, 127.0.0.3, ...).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A `dnsmasq` on `127.0.0.1:port`, killed on drop.
pub struct Dnsmasq {
    pub port: u16,
    pub hostsdir: PathBuf,
    srv: Vec<String>,
    proc: Option<Proc>,
    log: PathBuf,
}

impl Dnsmasq {
    /// Start dnsmasq with `hosts` (the text of a hosts file) and `srv` (`--srv-host` values).
    pub fn start(dir: &TempDir, hosts: &str, srv: &[&str]) -> Dnsmasq {
        let hostsdir = dir.path().join("hosts.d");
        std::fs::create_dir_all(&hostsdir).expect("hosts dir");
        let mut d = Dnsmasq {
            port: free_udp_port(),
            hostsdir,
            srv: srv.iter().map(|s| s.to_string()).collect(),
            proc: None,
            log: dir.path().join("dnsmasq.log"),
        };
        d.set_hosts(hosts);
        d.run();
        d
    }

    fn run(&mut self) {
        let f = std::fs::File::create(&self.log).expect("dnsmasq log");
        let mut cmd = Command::new(dnsmasq_bin());
        cmd.arg("--no-daemon")
            .arg(format!("--port={}", self.port))
            .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
            .args(["--no-resolv", "--no-hosts", "--pid-file="]);
        // As root it would switch to `nobody`, who may not read the test's directory.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--user=root");
        }
        cmd.args(["--log-queries", "--log-facility=-"])
            .arg(format!("--hostsdir={}", self.hostsdir.display()));
        for s in &self.srv {
            cmd.arg(format!("--srv-host={s}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn dnsmasq (apt-get install dnsmasq; scripts/setup.sh)");
        let p = Proc {
            child,
            log: Some(self.log.clone()),
        };
        if !eventually(Duration::from_secs(10), || {
            p.log_text().contains("started, version")
                && p.log_text().contains("read ")
                && dig_ok(self.port)
        }) {
            panic!("dnsmasq did not start: {}", p.log_text());
        }
        self.proc = Some(p);
    }

    /// Replace the hosts file (dnsmasq re-reads the directory on inotify).
    pub fn set_hosts(&self, hosts: &str) {
        let tmp = self.hostsdir.join(".hosts.tmp");
        std::fs::write(&tmp, hosts).expect("write hosts");
        std::fs::rename(&tmp, self.hostsdir.join("hosts")).expect("rename hosts");
    }

    /// Stop it (the resolver goes dead: queries time out).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Restart it with other SRV records.
    pub fn restart_with_srv(&mut self, srv: &[&str]) {
        self.stop();
        self.srv = srv.iter().map(|s| s.to_string()).collect();
        self.run();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `dnsmasq` from PATH, else Debian's /usr/sbin/dnsmasq (not in a user's PATH).
pub fn dnsmasq_bin() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/dnsmasq");
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dnsmasq").is_file()))
        .unwrap_or(false);
    if in_path || !sbin.is_file() {
        PathBuf::from("dnsmasq")
    } else {
        sbin
    }
}

/// Whether a DNS query to `127.0.0.1:port` gets an answer (any answer).
fn dig_ok(port: u16) -> bool {
    let Ok(sock) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(300)));
    // A query for "x." type A: id 0x1234, RD set.
    let q = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
    ];
    if sock.send_to(&q, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[0] == 0x12)
}

/// A UDP and TCP port free on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free UDP port");
}

/// `tests/support_app.py` named `name` on `host:port`, once it accepts.
pub fn app_on(host: &str, port: u16, name: &str) -> Proc {
    let script = repo().join("tests/support_app.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .arg(name)
        .arg(host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3");
    let p = Proc { child, log: None };
    let at: SocketAddr = format!("{host}:{port}").parse().expect("addr");
    if !eventually(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&at, Duration::from_millis(200)).is_ok()
    }) {
        panic!("app {name} did not listen on {at}");
    }
    p
}

/// A port free on 127.0.0.1 and on the other loopback addresses the tests use.
pub fn free_port_on_all(hosts: &[&str]) -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if hosts
            .iter()
            .all(|h| std::net::TcpListener::bind((*h, p)).is_ok())
        {
            return p;
        }
    }
    panic!("no port free on {hosts:?}");
}
