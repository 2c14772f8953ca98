//! What a worker process does on a signal or an admin request, from outside its loops:
//!
//! - `Drainer`: the graceful stop. Every loop drains (`Handle::drain`: stop accepting,
//!   finish what is under way); after `drain_timeout` whatever is left is cut (`stop`).
//!   A second SIGTERM/SIGINT cuts at once.
//! - `MasterLink`: the write end of the status pipe to the master (`ready`, and the admin
//!   API's `reload` / `restart` / `shutdown`), non-blocking so a loop never waits on it.
//! - `Control`: the worker's `AdminControl`: a supervised worker hands reload, restart and
//!   shutdown to its master; a lone worker (`--no-supervise`) drains itself on shutdown and
//!   answers `501` to reload and restart.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tether_core::Handle;
use tether_proxy::admin::{AdminControl, Reply};
use tether_proxy::metrics::Registry;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Drains every event loop of the process, once, with a deadline.
pub struct Drainer {
    handles: Mutex<Vec<Handle>>,
    started: AtomicBool,
    timeout: Duration,
}

impl Drainer {
    pub fn new(timeout: Duration) -> Arc<Drainer> {
        Arc::new(Drainer {
            handles: Mutex::new(Vec::new()),
            started: AtomicBool::new(false),
            timeout,
        })
    }

    /// A loop that started; drained at once if the drain already began.
    pub fn add(&self, h: Handle) {
        if self.started.load(Ordering::SeqCst) {
            h.drain();
        }
        lock(&self.handles).push(h);
    }

    /// Whether a drain began.
    pub fn draining(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Start the graceful stop (once): the loops stop accepting, requests under way finish,
    /// and after the drain timeout what is left is cut.
    pub fn drain(self: &Arc<Self>, why: &str) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        log::info!(
            "{why}: draining (no new connections; up to {:?} for those open)",
            self.timeout
        );
        for h in lock(&self.handles).iter() {
            h.drain();
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("drain-deadline".into())
            .spawn(move || {
                std::thread::sleep(me.timeout);
                log::warn!(
                    "drain: {:?} passed; closing the connections still open",
                    me.timeout
                );
                me.stop_now();
            });
        if let Err(e) = spawned {
            log::error!("drain: no deadline thread ({e}); stopping now");
            self.stop_now();
        }
    }

    /// Stop every loop now, closing what is open.
    pub fn stop_now(&self) {
        for h in lock(&self.handles).iter() {
            h.stop();
        }
    }
}

/// The worker's end of the status pipe to its master.
pub struct MasterLink {
    pipe: Mutex<File>,
}

impl MasterLink {
    /// Adopt the inherited write end `fd`.
    pub fn from_fd(fd: RawFd) -> io::Result<MasterLink> {
        // SAFETY: `fd` is the status pipe the master passed for this process alone; nothing
        // else in the worker owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        Ok(MasterLink {
            pipe: Mutex::new(file),
        })
    }

    /// Send one word to the master; never blocks.
    pub fn send(&self, word: &str) -> io::Result<()> {
        lock(&self.pipe).write_all(format!("{word}\n").as_bytes())
    }
}

/// What `/admin/status` says about this process.
pub struct Info {
    pub started: Instant,
    pub threads: usize,
    pub metrics: Arc<Registry>,
    /// Supervised: (master pid, generation, restarts, master start in Unix ms).
    pub master: Option<(u32, u64, u64, u64)>,
}

/// The worker's answers to the admin API's process requests.
pub struct Control {
    pub info: Info,
    pub link: Option<Arc<MasterLink>>,
    pub drainer: Arc<Drainer>,
}

impl Control {
    fn ask_master(&self, word: &str, done: &str) -> Reply {
        let Some(link) = &self.link else {
            return Reply::new(
                501,
                format!("{word} needs the supervisor (this tether runs with --no-supervise)\n"),
            );
        };
        match link.send(word) {
            Ok(()) => Reply::new(202, format!("{done}; the master's log tells how it went\n")),
            Err(e) => {
                log::error!("admin: cannot ask the master to {word}: {e}");
                Reply::new(503, format!("cannot reach the master: {e}\n"))
            }
        }
    }
}

impl AdminControl for Control {
    fn shutdown(&self) -> Reply {
        if self.link.is_some() {
            return self.ask_master("shutdown", "shutting down gracefully");
        }
        self.drainer.drain("admin shutdown");
        Reply::new(202, "shutting down gracefully\n")
    }

    fn restart(&self) -> Reply {
        self.ask_master("restart", "a new worker is starting")
    }

    fn reload(&self) -> Reply {
        self.ask_master("reload", "reloading the config")
    }

    fn status(&self) -> Map<String, Value> {
        let i = &self.info;
        let now_ms = crate::boot::unix_ms();
        let mut m = Map::new();
        m.insert("version".into(), json!(crate::VERSION));
        m.insert(
            "mode".into(),
            json!(if i.master.is_some() {
                "supervised"
            } else {
                "alone"
            }),
        );
        m.insert("draining".into(), json!(self.drainer.draining()));
        if let Some((pid, generation, restarts, started_ms)) = i.master {
            m.insert(
                "master".into(),
                json!({"pid": pid, "uptime_ms": now_ms.saturating_sub(started_ms), "restarts": restarts}),
            );
            m.insert("generation".into(), json!(generation));
        }
        m.insert(
            "workers".into(),
            json!([{
                "pid": std::process::id(),
                "uptime_ms": i.started.elapsed().as_millis() as u64,
                "threads": i.threads,
            }]),
        );
        let metrics: Value = serde_json::from_str(&i.metrics.json()).unwrap_or(Value::Null);
        m.insert("metrics".into(), metrics);
        if let Some(store) = i.metrics.store_json() {
            m.insert("store".into(), store);
        }
        m
    }
}
