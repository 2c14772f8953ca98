//! The parts of a fleet (`tests/fleet.rs`, `benches/fleet.sh`): a Sentinel-managed Redis
//! (one master, one replica, three sentinels), a three-master Redis Cluster, HAProxy in
//! front of several tether instances (PROXY protocol v2), and users who keep clicking
//! through it against the stateful app (sessions in each backend's memory, so a user sent
//! to the wrong backend visibly loses the session).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// `redis-server ARGS` with its output in `dir/NAME.log`, once its port accepts.
pub fn redis(dir: &TempDir, name: &str, port: u16, args: &[String]) -> Proc {
    let log = dir.path().join(format!("{name}.log"));
    let f = std::fs::File::create(&log).expect("redis log");
    let child = Command::new("redis-server")
        .args(args)
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let p = Proc {
        child,
        log: Some(log),
    };
    wait_port(port);
    p
}

/// The arguments of a plain in-memory redis-server on `port` (no disk).
pub fn redis_args(dir: &TempDir, port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.path().to_str().expect("utf-8 dir"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `redis-cli -p PORT ARGS`: its stdout, trimmed ("" when it failed).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// One master, one replica and three sentinels (quorum 2) watching them as `fleet`.
pub struct SentinelGroup {
    pub master: Option<Proc>,
    pub master_port: u16,
    pub replica: Proc,
    pub replica_port: u16,
    pub sentinels: Vec<Proc>,
    pub sentinel_ports: Vec<u16>,
}

impl SentinelGroup {
    pub fn start(dir: &TempDir, down_after_ms: u64) -> SentinelGroup {
        let master_port = free_port();
        let replica_port = free_port();
        let master = redis(dir, "master", master_port, &redis_args(dir, master_port));
        let mut args = redis_args(dir, replica_port);
        args.extend(["--replicaof", "127.0.0.1"].map(String::from));
        args.push(master_port.to_string());
        let replica = redis(dir, "replica", replica_port, &args);
        let synced = eventually(Duration::from_secs(15), || {
            redis_cli(replica_port, &["INFO", "replication"]).contains("master_link_status:up")
        });
        assert!(synced, "the replica never synced with the master");
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            // Each sentinel rewrites its own file, so each has one.
            let conf = dir.write(
                &format!("sentinel-{i}.conf"),
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor fleet 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds fleet {down_after_ms}\n\
                     sentinel failover-timeout fleet 10000\n\
                     sentinel parallel-syncs fleet 1\n",
                    dir.path().display()
                )
                .as_bytes(),
            );
            let args = vec![
                conf.to_str().expect("utf-8 path").to_string(),
                "--sentinel".to_string(),
            ];
            sentinels.push(redis(dir, &format!("sentinel-{i}"), port, &args));
            sentinel_ports.push(port);
        }
        // Every sentinel sees the replica and the two others before the run starts.
        let ready = eventually(Duration::from_secs(20), || {
            sentinel_ports.iter().all(|&p| {
                let m = redis_cli(p, &["SENTINEL", "MASTER", "fleet"]);
                let lines: Vec<&str> = m.lines().collect();
                let field = |name: &str| {
                    lines
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| lines.get(i + 1))
                        .and_then(|v| v.parse::<u32>().ok())
                        .unwrap_or(0)
                };
                field("num-slaves") >= 1 && field("num-other-sentinels") >= 2
            })
        });
        assert!(ready, "the sentinels never saw each other and the replica");
        SentinelGroup {
            master: Some(master),
            master_port,
            replica,
            replica_port,
            sentinels,
            sentinel_ports,
        }
    }

    /// The master's port as the first sentinel says.
    pub fn current_master_port(&self) -> Option<u16> {
        let out = redis_cli(
            self.sentinel_ports[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "fleet"],
        );
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    /// `store = { sentinels = [...], master = "fleet" }`.
    pub fn store_line(&self) -> String {
        let list: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!(
            "store = {{ sentinels = [{}], master = \"fleet\" }}",
            list.join(", ")
        )
    }
}

/// Three cluster-enabled redis-servers joined by `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    pub ports: Vec<u16>,
}

impl Cluster {
    pub fn start(dir: &TempDir) -> Cluster {
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let mut args = redis_args(dir, port);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "2000",
                ]
                .map(String::from),
            );
            nodes.push(redis(dir, &format!("cluster-{i}"), port, &args));
            ports.push(port);
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let ok = eventually(Duration::from_secs(20), || {
            ports
                .iter()
                .all(|&p| redis_cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
        assert!(ok, "the cluster never reached cluster_state:ok");
        Cluster { nodes, ports }
    }

    /// `store = { cluster = [...] }`.
    pub fn store_line(&self) -> String {
        let list: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!("store = {{ cluster = [{}] }}", list.join(", "))
    }
}

/// HAProxy on `front` in TCP mode, round robin over the tether instances on `backends`
/// with the PROXY protocol v2, health-checked every 200 ms; a connection refused by one
/// instance is redispatched to another.
pub fn haproxy(dir: &TempDir, front: u16, backends: &[u16]) -> Proc {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!("  server t{i} 127.0.0.1:{p} send-proxy-v2 check inter 200 fall 1 rise 2\n")
        })
        .collect();
    let cfg = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
         \x20 retries 3\n  option redispatch\n\
         frontend fleet\n  bind 127.0.0.1:{front}\n  default_backend tethers\n\
         backend tethers\n  balance roundrobin\n{servers}"
    );
    let path = dir.write("haproxy.cfg", cfg.as_bytes());
    let child = Command::new("haproxy")
        .args(["-db", "-f", path.to_str().expect("utf-8 path")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (scripts/setup.sh installs it)");
    let p = Proc { child, log: None };
    wait_port(front);
    p
}

/// One answer: status, the `SID` a `Set-Cookie` sets, the body.
pub struct Answer {
    pub status: u16,
    pub sid: Option<String>,
    pub body: String,
}

/// `GET path` on 127.0.0.1:`port` over a new connection (`Connection: close`), with
/// `Cookie: SID=sid` when given. Errors (connect, timeout, garbage) are `Err` text.
pub fn click(port: u16, path: &str, sid: Option<&str>) -> Result<Answer, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let cookie = sid
        .map(|v| format!("Cookie: SID={v}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: fleet\r\n{cookie}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no head in {} bytes", raw.len()))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    let sid = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let first = v.trim().split(';').next()?;
        let (n, value) = first.split_once('=')?;
        (n == "SID").then(|| value.to_string())
    });
    Ok(Answer {
        status,
        sid,
        body: body.to_string(),
    })
}

/// What happened to the users, with times since the run started.
#[derive(Default)]
pub struct Record {
    pub requests: u64,
    /// (when, what): a request that did not get its answer (no 200/401, or no answer).
    pub failures: Vec<(Duration, String)>,
    /// (when, user, the backend that held the session, the one that answered).
    pub lost: Vec<(Duration, usize, String, String)>,
    /// (when, user, backend): a session created.
    pub logins: Vec<(Duration, usize, String)>,
}

/// Users clicking through `port` until stopped: each logs in (`/login`: its backend
/// creates a session in memory) then clicks `/session` every `pause`; a `401` means the
/// request reached a backend that does not hold the session (lost: logged in again).
pub struct Users {
    pub record: Arc<Mutex<Record>>,
    pub started: Instant,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    port: u16,
    pause: Duration,
}

impl Users {
    pub fn new(port: u16, pause: Duration) -> Users {
        Users {
            record: Arc::new(Mutex::new(Record::default())),
            started: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            port,
            pause,
        }
    }

    /// Start one more user.
    pub fn add(&mut self) {
        let id = self.threads.len();
        let (record, stop, started, port, pause) = (
            self.record.clone(),
            self.stop.clone(),
            self.started,
            self.port,
            self.pause,
        );
        self.threads.push(std::thread::spawn(move || {
            user(id, port, pause, &record, &stop, started)
        }));
    }

    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Stop every user and wait for them (each finishes its click).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Per backend: the users whose last session is there.
    pub fn homes(&self) -> BTreeMap<String, usize> {
        let r = self.record.lock().expect("record");
        let mut last: BTreeMap<usize, String> = BTreeMap::new();
        for (_, u, b) in &r.logins {
            last.insert(*u, b.clone());
        }
        let mut out = BTreeMap::new();
        for b in last.values() {
            *out.entry(b.clone()).or_insert(0) += 1;
        }
        out
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        self.stop();
    }
}

fn user(
    id: usize,
    port: u16,
    pause: Duration,
    record: &Mutex<Record>,
    stop: &AtomicBool,
    started: Instant,
) {
    let mut session: Option<(String, String)> = None; // (sid, backend)
    while !stop.load(Ordering::SeqCst) {
        let path = if session.is_some() {
            "/session"
        } else {
            "/login"
        };
        let sid = session.as_ref().map(|(s, _)| s.as_str());
        let answer = click(port, path, sid);
        let now = started.elapsed();
        let mut r = record.lock().expect("record");
        r.requests += 1;
        match answer {
            Ok(a) if a.status == 200 && path == "/login" => match a.sid {
                Some(sid) => {
                    let backend = a.body.trim().to_string();
                    r.logins.push((now, id, backend.clone()));
                    session = Some((sid, backend));
                }
                None => r
                    .failures
                    .push((now, format!("user {id}: login without SID"))),
            },
            Ok(a) if a.status == 200 => {}
            Ok(a) if a.status == 401 => {
                // "<name> no session": the request reached another backend.
                let at = a.body.split(' ').next().unwrap_or("").to_string();
                let home = session.take().map(|(_, b)| b).unwrap_or_default();
                r.lost.push((now, id, home, at));
            }
            Ok(a) => r.failures.push((
                now,
                format!("user {id} {path}: {} {}", a.status, a.body.trim()),
            )),
            Err(e) => r.failures.push((now, format!("user {id} {path}: {e}"))),
        }
        drop(r);
        std::thread::sleep(pause);
    }
}
