//! Test helpers: start a real `redis-server` on a free loopback port (and kill it on drop),
//! talk to it with a raw connection, and wait for conditions with a bound on time.
//!
//! When `redis-server` is not installed, tests that need it are skipped with a message,
//! unless the `CI` environment variable is set (and not `0` or `false`): then they fail.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::mpsc;

use tether_store::{LimitAnswer, Lookup, RateRule, Store};

#[allow(unused_imports)] // not every test binary uses it
pub use tether_testkit::free_port;

/// Shows the store's log lines with `RUST_LOG=debug cargo test -- --nocapture`.
pub fn logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Polls `cond` every 10 ms for at most `limit`; panics with `what` if it never holds.
/// Returns how long it took.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() >= limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until both of a Redis store's connections are up (subscribed, so announcements
/// sent from now on reach it).
pub fn wait_connected(store: &dyn Store) {
    logs();
    wait_for(
        "the store's redis connections",
        Duration::from_secs(5),
        || store.stats().connected == Some(true),
    );
}

/// A `redis-server` child process on 127.0.0.1, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

/// Whether `redis-server` runs; when it does not and `CI` is unset, prints why the caller
/// skips. In CI a missing server is a failure.
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let ci = std::env::var("CI").unwrap_or_default();
    if !matches!(ci.as_str(), "" | "0" | "false") {
        panic!("redis-server is not installed, and CI is set: run scripts/setup.sh");
    }
    eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server, or scripts/setup.sh)");
    false
}

impl RedisServer {
    /// A server on a free port, or `None` (after saying why) when the test should skip.
    pub fn start() -> Option<RedisServer> {
        logs();
        if !redis_available() {
            return None;
        }
        Some(RedisServer::start_on(free_port()))
    }

    /// A server on `port`, answering `PING` before this returns (at most 10 s).
    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::start_with(port, &[])
    }

    /// A server on `port` with more `redis-server` arguments (`--replicaof`, cluster
    /// mode, ...), answering `PING` before this returns (at most 10 s).
    ///
    /// Each server has its own directory (removed on drop): a replica saves the dataset it
    /// receives as `dump.rdb`, and a cluster node writes its nodes file, which the next
    /// server started in a shared directory would load.
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir =
            std::env::temp_dir().join(format!("tether-store-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = RedisServer { child, port, dir };
        let limit = Duration::from_secs(10);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            if server.ping() {
                return server;
            }
            if start.elapsed() >= limit {
                panic!("redis-server on port {port} did not answer PING within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A fresh raw connection, for checking what the store wrote.
    pub fn raw(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("client");
        let con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("raw connection to the test redis-server");
        con.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("read timeout");
        con
    }

    /// `GET key` through a raw connection.
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.raw())
            .expect("GET")
    }

    /// `TTL key` (seconds; -2 when missing) through a raw connection.
    pub fn ttl(&self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query(&mut self.raw())
            .expect("TTL")
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING")
            .query::<String>(&mut con)
            .is_ok_and(|s| s == "PONG")
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a server frozen by [`RedisServer::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} redis-server");
    }

    /// Kills the server (SIGKILL: a crash, not a clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks `store.lookup(key)`; returns the answer and how long it took (panics after `limit`).
pub fn lookup(store: &dyn Store, key: &str, limit: Duration) -> (Lookup, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    store.lookup(key, Box::new(move |a| drop(tx.send(a))));
    let answer = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("lookup({key}) not answered within {limit:?}"));
    (answer, start.elapsed())
}

/// Asks `store.limit(key, rule)`; returns the answer and how long it took.
pub fn limit(store: &dyn Store, key: &str, rule: &RateRule) -> (LimitAnswer, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    store.limit(
        key,
        rule,
        Box::new(move |a| {
            let _ = tx.send(a);
        }),
    );
    let bound = Duration::from_secs(3);
    let answer = rx
        .recv_timeout(bound)
        .unwrap_or_else(|_| panic!("limit({key}) not answered within {bound:?}"));
    (answer, start.elapsed())
}
