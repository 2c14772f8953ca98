//! The supervisor: `tether [CONFIG]` runs this master process, which holds the listening
//! sockets (`sockets.rs`), starts the worker that serves (`process.rs`), and:
//!
//! - restarts it when it exits unexpectedly, after a backoff (`backoff.rs`), and mails a
//!   crash report with the last lines of its output (`mail.rs`);
//! - asks it `GET /healthz` every `heartbeat_interval` (`heartbeat.rs`) and kills
//!   (SIGKILL) and replaces it after `heartbeat_failures` misses in a row;
//! - reloads on SIGHUP, the console's `reload` or `POST /admin/reload`: the config is read
//!   and checked here first (an error keeps the running config and logs
//!   `path:line:col: message`); a new worker starts on the same sockets, and once it says
//!   `ready` the old one drains (SIGTERM) and exits. `restart` does the same with the
//!   running config. No connection is dropped: both workers accept from the same sockets
//!   until the old one stops, and it accepts what is queued before it does;
//! - stops on SIGTERM / SIGINT, the console's `exit` or `POST /admin/shutdown`: the worker
//!   drains for up to `drain_timeout`, then the master exits 0;
//! - reads console commands when its stdin is a terminal (`console.rs`).
//!
//! Everything happens on the master's main thread, in `Master::run`, from events that
//! helper threads send (signals, the workers' status pipes, the heartbeat, the console).

mod backoff;
mod console;
mod heartbeat;
pub mod mail;
mod process;
mod reap;
mod sockets;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tether_config::{ConfigError, Settings};
use tether_mail::Mailer;

use crate::boot::Boot;
use backoff::Backoff;
use process::{OutputOpts, Worker};
use reap::kill;
use sockets::SocketSet;

/// How often the master's loop looks at its timers when no event comes.
const TICK: Duration = Duration::from_millis(100);
/// A worker must say `ready` within this time.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to `drain_timeout` before a draining worker is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// What the master's loop hears.
pub enum Event {
    Signal(i32),
    /// A word from a worker's status pipe: `ready`, `reload`, `restart`, `shutdown`.
    Status {
        pid: u32,
        word: String,
    },
    Heartbeat {
        ok: bool,
        sent: Instant,
    },
    Console(String),
}

/// Where the config comes from: a file (read again on reload) or the embedded default.
pub struct ConfigSource {
    path: Option<PathBuf>,
}

impl ConfigSource {
    pub fn new(path: Option<PathBuf>) -> ConfigSource {
        ConfigSource { path }
    }

    /// The name in messages.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<default>".into(), |p| p.display().to_string())
    }

    /// Read and check the config: its text and the settings.
    pub fn read(&self) -> Result<(String, Settings), ConfigError> {
        let name = self.name();
        let text = match &self.path {
            None => tether_proxy::DEFAULT_CONFIG.to_string(),
            Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigError {
                path: name.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read: {e}"),
            })?,
        };
        let settings = Settings::from_text(&text, &name)?;
        Ok((text, settings))
    }
}

/// Run the master until it is told to stop.
pub fn run(source: ConfigSource, text: String, settings: Settings) -> io::Result<()> {
    let mut sockets = SocketSet::default();
    sockets.ensure(&settings)?;
    // Written once the addresses are ours; removed when `run` returns.
    let _pid_file = crate::pidfile::PidFile::create(&settings);
    let admin = sockets
        .admin_addr(&settings)
        .ok_or_else(|| io::Error::other("no admin listener"))?;
    let (key, key_source) = crate::admin_key::obtain(&settings)?;
    let mailer = mail::mailer(&settings);
    let mailed = mail::send_key_with(&mailer, &settings, &key, admin);
    crate::admin_key::log_where(&settings, &key, &key_source, &mailed);
    let (tx, rx) = channel();
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD])?;
    let signal_tx = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if signal_tx.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })?;
    console::start(tx.clone())?;
    let target = Arc::new(Mutex::new(heartbeat::Target {
        addr: admin,
        interval: settings.ops.supervisor.heartbeat_interval,
    }));
    heartbeat::start(target.clone(), tx.clone())?;
    log::info!(
        "tether {} master (pid {}): admin listener on {admin}; starting the worker",
        crate::VERSION,
        std::process::id()
    );
    let mut m = Master {
        source,
        text,
        settings: Arc::new(settings),
        sockets,
        key,
        mailer,
        events: rx,
        tx,
        heartbeat: target,
        current: None,
        starting: None,
        retiring: Vec::new(),
        backoff: Backoff::default(),
        respawn_at: Some(Instant::now()),
        generation: 0,
        restarts: 0,
        ever_ready: false,
        started: Instant::now(),
        started_ms: crate::boot::unix_ms(),
        shutdown: None,
        reload_again: false,
    };
    m.run()
}

struct Master {
    source: ConfigSource,
    /// The running config's text (what a restarted worker gets).
    text: String,
    settings: Arc<Settings>,
    sockets: SocketSet,
    key: String,
    mailer: Mailer,
    events: Receiver<Event>,
    tx: Sender<Event>,
    heartbeat: Arc<Mutex<heartbeat::Target>>,
    /// The worker serving now.
    current: Option<Worker>,
    /// A replacement (reload, restart) not ready yet, with its config text.
    starting: Option<(Worker, String)>,
    /// Replaced workers, draining.
    retiring: Vec<Worker>,
    backoff: Backoff,
    /// Start a worker at this time (first start, after a crash).
    respawn_at: Option<Instant>,
    generation: u64,
    restarts: u64,
    ever_ready: bool,
    started: Instant,
    started_ms: u64,
    /// Stopping: every worker is gone by this time.
    shutdown: Option<Instant>,
    /// A reload came while a worker was starting: reload again once it is ready.
    reload_again: bool,
}

impl Master {
    fn run(&mut self) -> io::Result<()> {
        loop {
            match self.events.recv_timeout(TICK) {
                Ok(e) => self.handle(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the master lost its event channel"))
                }
            }
            while let Ok(e) = self.events.try_recv() {
                self.handle(e);
            }
            self.reap()?;
            self.timers();
            if self.shutdown.is_some() && self.workers().next().is_none() {
                break;
            }
        }
        if !self.mailer.flush(Duration::from_secs(5)) {
            log::warn!("mail: some mails were still being sent at exit");
        }
        log::info!("master {}: stopped", std::process::id());
        Ok(())
    }

    fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.current
            .iter()
            .chain(self.starting.iter().map(|(w, _)| w))
            .chain(self.retiring.iter())
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Signal(SIGHUP) => self.reload("SIGHUP"),
            Event::Signal(SIGCHLD) => {}
            Event::Signal(SIGQUIT) => self.stop_fast("SIGQUIT"),
            Event::Signal(SIGUSR1) => self.forward_signal(libc::SIGUSR1, "SIGUSR1"),
            Event::Signal(sig) => {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                self.stop(name)
            }
            Event::Status { pid, word } => self.status_word(pid, &word),
            Event::Heartbeat { ok, sent } => self.heartbeat(ok, sent),
            Event::Console(cmd) => match cmd.as_str() {
                "status" => println!("{}", self.describe()),
                "reload" => self.reload("console"),
                "restart" => self.restart("console"),
                "exit" | "quit" => self.stop("console"),
                _ => println!("{}", console::HELP),
            },
        }
    }

    fn status_word(&mut self, pid: u32, word: &str) {
        match word {
            "ready" => self.ready(pid),
            "reload" => self.reload("admin API"),
            "restart" => self.restart("admin API"),
            "shutdown" => self.stop("admin API"),
            other => log::warn!("worker {pid} said {other:?}; ignored"),
        }
    }

    fn ready(&mut self, pid: u32) {
        let now = Instant::now();
        if let Some(w) = self.current.as_mut().filter(|w| w.pid == pid) {
            w.ready_at = Some(now);
            self.ever_ready = true;
            log::info!("worker {pid} ready (generation {})", w.generation);
            return;
        }
        if self.starting.as_ref().is_none_or(|(w, _)| w.pid != pid) {
            return;
        }
        let Some((mut new, text)) = self.starting.take() else {
            return;
        };
        new.ready_at = Some(now);
        let generation = new.generation;
        self.ever_ready = true;
        self.text = text;
        self.settings = new.settings.clone();
        self.point_heartbeat();
        match self.current.replace(new) {
            Some(old) => {
                log::info!(
                    "worker {pid} ready (generation {generation}); worker {} drains",
                    old.pid
                );
                self.retire(old);
            }
            None => log::info!("worker {pid} ready (generation {generation})"),
        }
        if std::mem::take(&mut self.reload_again) {
            self.reload("a reload asked while the last one ran");
        }
    }

    /// Aim the heartbeat at the running config's admin listener, at its interval.
    fn point_heartbeat(&self) {
        let Some(addr) = self.sockets.admin_addr(&self.settings) else {
            return;
        };
        let mut t = self.heartbeat.lock().unwrap_or_else(|p| p.into_inner());
        t.addr = addr;
        t.interval = self.settings.ops.supervisor.heartbeat_interval;
    }

    fn heartbeat(&mut self, ok: bool, sent: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        let failures = self.settings.ops.supervisor.heartbeat_failures;
        let Some(w) = self.current.as_mut() else {
            return;
        };
        if w.killed_for.is_some() || w.ready_at.is_none_or(|r| r > sent) {
            return;
        }
        if ok {
            w.misses = 0;
            return;
        }
        w.misses += 1;
        log::warn!(
            "heartbeat: worker {} did not answer /healthz ({} of {failures})",
            w.pid,
            w.misses
        );
        if w.misses >= failures {
            let why = format!("no answer to {} heartbeats in a row", w.misses);
            log::error!("worker {}: {why}; killing it (SIGKILL)", w.pid);
            kill(w, libc::SIGKILL);
            w.killed_for = Some(why);
        }
    }

    /// Re-read the config and, if it is valid, replace the worker with one running it.
    fn reload(&mut self, why: &str) {
        if self.shutdown.is_some() {
            return;
        }
        if self.starting.is_some() {
            log::info!(
                "reload ({why}): a new worker is starting; reloading again once it is ready"
            );
            self.reload_again = true;
            return;
        }
        match self.source.read() {
            Ok((text, settings)) => {
                log::info!("reload ({why}): {} is valid", self.source.name());
                self.replace(text, settings, why)
            }
            Err(e) => {
                log::error!("{e}");
                log::error!("reload ({why}) refused: the running config stays");
            }
        }
    }

    /// Replace the worker with one running the same config.
    fn restart(&mut self, why: &str) {
        if self.shutdown.is_some() || self.starting.is_some() {
            log::info!("restart ({why}): a worker is already starting");
            return;
        }
        let settings = (*self.settings).clone();
        self.replace(self.text.clone(), settings, why);
    }

    fn replace(&mut self, text: String, settings: Settings, why: &str) {
        if let Err(e) = self.sockets.ensure(&settings) {
            log::error!("{why}: {e}; the running config stays");
            return;
        }
        if settings.ops.supervisor.mail != self.settings.ops.supervisor.mail {
            self.mailer = mail::mailer(&settings);
        }
        if self.current.is_none() {
            // Waiting to restart after a crash: the next worker runs the new config.
            self.text = text;
            self.settings = Arc::new(settings);
            self.point_heartbeat();
            self.respawn_at = Some(Instant::now());
            return;
        }
        match self.spawn(&text, Arc::new(settings)) {
            Ok(w) => {
                log::info!(
                    "{why}: started worker {} (generation {}); the old one serves until it is ready",
                    w.pid,
                    w.generation
                );
                self.starting = Some((w, text));
            }
            Err(e) => log::error!("{why}: cannot start a worker: {e}; the running one stays"),
        }
    }

    fn spawn(&mut self, text: &str, settings: Arc<Settings>) -> io::Result<Worker> {
        let (sockets, admin) = self.sockets.for_worker(&settings);
        self.generation += 1;
        let boot = Boot {
            config_name: self.source.name(),
            config_text: text.to_string(),
            key: Some(self.key.clone()),
            sockets,
            admin,
            status_fd: -1,
            master_pid: std::process::id(),
            generation: self.generation,
            restarts: self.restarts,
            master_started_ms: self.started_ms,
        };
        let sup = &settings.ops.supervisor;
        let opts = OutputOpts {
            show: sup.show_worker_output,
            log_file: sup.worker_log.clone(),
        };
        process::spawn(boot, settings.clone(), &opts, &self.tx)
    }

    /// Ask a replaced worker to drain; it is killed if still there after the drain timeout.
    fn retire(&mut self, mut w: Worker) {
        kill(&w, libc::SIGTERM);
        w.stop_deadline = Some(Instant::now() + w.settings.ops.drain_timeout + KILL_GRACE);
        self.retiring.push(w);
    }

    /// Stop everything gracefully.
    /// SIGUSR1 (reopen the access logs): every worker gets it too.
    fn forward_signal(&self, sig: i32, name: &str) {
        log::info!("{name}: passed on to the workers");
        for w in self.workers() {
            kill(w, sig);
        }
    }

    fn stop(&mut self, why: &str) {
        if self.shutdown.is_some() {
            log::warn!("{why} again: killing the workers now");
            for w in self.workers() {
                kill(w, libc::SIGKILL);
            }
            return;
        }
        let drain = self.settings.ops.drain_timeout;
        log::info!("{why}: stopping; the worker drains for up to {drain:?}");
        let deadline = Instant::now() + drain + KILL_GRACE;
        self.shutdown = Some(deadline);
        self.respawn_at = None;
        // The listening sockets close as soon as the workers close theirs: new connections
        // are refused instead of waiting in a queue nobody will serve.
        self.sockets = SocketSet::default();
        let all = self
            .current
            .iter_mut()
            .chain(self.starting.iter_mut().map(|(w, _)| w))
            .chain(self.retiring.iter_mut());
        for w in all {
            kill(w, libc::SIGTERM);
            w.stop_deadline = Some(deadline);
        }
    }

    /// Stop now (`tether stop`, SIGQUIT): the workers close every connection at once
    /// instead of draining.
    fn stop_fast(&mut self, why: &str) {
        if self.shutdown.is_none() {
            self.stop(why);
        }
        log::info!("{why}: fast stop, the workers close every connection now");
        for w in self.workers() {
            kill(w, libc::SIGQUIT);
        }
    }

    /// The console's `status`.
    fn describe(&self) -> String {
        let mut s = format!(
            "master pid {}, up {} s, config {}, restarts {}",
            std::process::id(),
            self.started.elapsed().as_secs(),
            self.source.name(),
            self.restarts
        );
        if let Some(a) = self.sockets.admin_addr(&self.settings) {
            s.push_str(&format!(", admin listener {a}"));
        }
        for (role, w) in self
            .current
            .iter()
            .map(|w| ("serving", w))
            .chain(self.starting.iter().map(|(w, _)| ("starting", w)))
            .chain(self.retiring.iter().map(|w| ("draining", w)))
        {
            s.push_str(&format!(
                "\nworker pid {} generation {}: {role}, up {} s",
                w.pid,
                w.generation,
                w.started.elapsed().as_secs()
            ));
        }
        s
    }
}
