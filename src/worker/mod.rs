//! The worker process: one event loop (`Core`) per thread, each with its own `SO_REUSEPORT`
//! sockets; the admin listener on the first loop; signals.
//!
//! Two ways in:
//! - `run_supervised` (`tether --worker`, started by the master): the boot message on stdin
//!   (`boot.rs`) brings the checked config text, the admin key and the inherited sockets;
//!   the worker says `ready` on the status pipe once every loop runs;
//! - `run_alone` (`tether --no-supervise`): the worker binds its own sockets and makes or
//!   reads the admin key itself.
//!
//! Either way the config arrives checked (plain `Settings`); `serve` builds what runs from it
//! once (`Shared::open`: routers, pools, TLS configs, ACME state) and every event-loop
//! thread installs its listeners from that one build.
//!
//! Signals (`signal-hook`, on a thread of their own): SIGTERM / SIGINT drain gracefully
//! (`control.rs`), a second one stops at once; SIGHUP asks the master to reload (a lone
//! worker cannot reload and says so).

mod control;

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tether_config::{Settings, Target};
use tether_core::{Core, Handle};
use tether_proxy::admin::{Admin, AdminSession, ConfiguredPools};
use tether_proxy::runtime::Runtime;
use tether_proxy::server::{self, Shared};

use crate::boot::{Boot, BootSockets};
use control::{Control, Drainer, Info, MasterLink};

/// What `serve` runs.
struct Plan {
    settings: Settings,
    /// Per event-loop thread, one socket per listener of `settings`, in order.
    per_thread: Vec<Vec<TcpListener>>,
    admin: Option<TcpListener>,
    key: Option<String>,
    link: Option<Arc<MasterLink>>,
    master: Option<(u32, u64, u64, u64)>,
}

/// `tether --no-supervise`: bind, make the admin key, serve until a signal.
pub fn run_alone(settings: Settings) -> io::Result<()> {
    let workers = settings.workers.max(1);
    let mut per_thread = Vec::with_capacity(workers);
    for l in &settings.listeners {
        server::probe_free(l.listen)?;
    }
    for _ in 0..workers {
        per_thread.push(server::bind_all(&settings)?);
    }
    // Written once the addresses are ours; removed when this returns.
    let _pid_file = crate::pidfile::PidFile::create(&settings);
    let mut admin = None;
    let mut key = None;
    if let Some(addr) = settings.ops.admin.listen {
        admin = Some(
            TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?,
        );
        let (k, source) = crate::admin_key::obtain(&settings)?;
        let mailed = crate::supervisor::mail::send_key(&settings, &k, addr);
        crate::admin_key::log_where(&settings, &k, &source, &mailed);
        key = Some(k);
    }
    serve(Plan {
        settings,
        per_thread,
        admin,
        key,
        link: None,
        master: None,
    })
}

/// `tether --worker`: read the boot message from the master, adopt the sockets, serve.
pub fn run_supervised() -> io::Result<()> {
    // SAFETY: isatty has no preconditions.
    if unsafe { libc::isatty(0) } == 1 {
        return Err(io::Error::other(
            "--worker is internal: the master starts it (run `tether [CONFIG]`)",
        ));
    }
    let boot = Boot::read_from(io::stdin().lock())?;
    let settings = Settings::from_text(&boot.config_text, &boot.config_name)
        .map_err(|e| io::Error::other(e.to_string()))?;
    crate::init_logging(settings.session_log.as_ref());
    for w in tether_config::warnings::warnings(&boot.config_text, &boot.config_name) {
        log::warn!("{w}");
    }
    let workers = settings.workers.max(1);
    let mut per_thread: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    for spec in &settings.listeners {
        let inherited = boot.sockets.iter().find(|s| s.addr == spec.listen);
        for (t, sockets) in per_thread.iter_mut().enumerate() {
            let fd = inherited.and_then(|s| s.fds.get(t)).copied();
            sockets.push(match fd {
                Some(fd) => adopt(fd, spec.listen)?,
                None => server::bind_reuseport(spec.listen).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on {}: {e}", spec.listen))
                })?,
            });
        }
    }
    let admin = match &boot.admin {
        Some(BootSockets { addr, fds }) => match fds.first() {
            Some(&fd) => Some(adopt(fd, *addr)?),
            None => None,
        },
        None => None,
    };
    let link = Arc::new(MasterLink::from_fd(boot.status_fd)?);
    serve(Plan {
        settings,
        per_thread,
        admin,
        key: boot.key,
        link: Some(link),
        master: Some((
            boot.master_pid,
            boot.generation,
            boot.restarts,
            boot.master_started_ms,
        )),
    })
}

/// Take ownership of an inherited listening socket, checking it is bound to `addr`.
fn adopt(fd: RawFd, addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    // SAFETY: the master passed `fd` for this socket alone and gave it to nothing else in
    // this process; it is checked below before use.
    let socket = unsafe { TcpListener::from_raw_fd(fd) };
    // SAFETY: fcntl on a descriptor we own: close it if this process ever starts another.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    match socket.local_addr() {
        Ok(a) if a == addr || (addr.port() == 0 && a.ip() == addr.ip()) => Ok(socket),
        Ok(a) => Err(io::Error::other(format!(
            "inherited descriptor {fd} is bound to {a}, not {addr}"
        ))),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("inherited descriptor {fd} for {addr}: {e}"),
        )),
    }
}

/// Run one event loop per thread on the planned sockets until drained or stopped.
fn serve(plan: Plan) -> io::Result<()> {
    let Plan {
        settings,
        per_thread,
        admin,
        key,
        link,
        master,
    } = plan;
    let started = Instant::now();
    let workers = per_thread.len();
    let shared = Shared::open(&settings)?;
    let drainer = Drainer::new(settings.ops.drain_timeout);
    for spec in &settings.listeners {
        let tls = if spec.front.tls.is_some() {
            " over TLS"
        } else {
            ""
        };
        log::info!(
            "listening on {}{tls}: {}",
            spec.listen,
            describe(&spec.target)
        );
    }
    for w in shared.runtime.warnings() {
        log::warn!("{w}");
    }
    if settings.listeners.iter().any(|l| l.front.tls.is_some()) {
        // Says once what the kernel offers (the record layer stays in rustls either way).
        tether_core::tls::ktls_supported();
    }
    watch_expiry(&shared.runtime);
    if let Some(acme) = shared.runtime.acme() {
        tether_acme::start(acme.clone(), settings.ops.supervisor.mail.as_ref());
    }
    let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
    let control = Arc::new(Control {
        info: Info {
            started,
            threads: workers,
            metrics: shared.metrics.clone(),
            master,
        },
        link: link.clone(),
        drainer: drainer.clone(),
    });
    let pools = Arc::new(ConfiguredPools::new(&shared.runtime).with_drains(&settings));
    let admin_state = Admin::new(key, &settings.server_name, control, pools);
    let mut admin = admin;
    // Each loop reports once it owns its sockets; "running" is logged after all have.
    let (ready_tx, ready) = std::sync::mpsc::channel::<Result<Handle, String>>();
    let mut threads = Vec::with_capacity(workers);
    for (w, sockets) in per_thread.into_iter().enumerate() {
        let settings = settings.clone();
        let shared = shared.clone();
        let ready_tx = ready_tx.clone();
        let admin_socket = if w == 0 { admin.take() } else { None };
        let admin_state = admin_state.clone();
        let t = std::thread::Builder::new()
            .name(format!("worker-{w}"))
            .spawn(move || {
                let started = Core::new().and_then(|mut core| {
                    server::install_sockets(&mut core, &settings, sockets, &shared)?;
                    if let Some(socket) = admin_socket {
                        core.add_listener(
                            socket,
                            Box::new(move |_| Box::new(AdminSession::new(admin_state.clone()))),
                        )?;
                    }
                    Ok(core)
                });
                match started {
                    Ok(mut core) => {
                        let _ = ready_tx.send(Ok(core.handle()));
                        core.run()
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("worker {w}: {e}")));
                        Err(e)
                    }
                }
            })?;
        threads.push(t);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready.recv() {
            Ok(Ok(h)) => drainer.add(h),
            Ok(Err(e)) => return Err(io::Error::other(e)),
            Err(_) => return Err(io::Error::other("a worker stopped before it was ready")),
        }
    }
    watch_signals(drainer.clone(), link.clone())?;
    if let Some(a) = admin_addr {
        log::info!("admin listener on {a} (GET /healthz; /admin/ with the key)");
    }
    log::info!(
        "tether {} running (pid {}, {workers} worker(s))",
        crate::VERSION,
        std::process::id()
    );
    if let Some(link) = &link {
        link.send("ready")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot tell the master: {e}")))?;
    }
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(io::Error::other("a worker thread panicked")),
        }
    }
    if result.is_ok() {
        log::info!("worker {} stopped", std::process::id());
    }
    result
}

/// SIGTERM / SIGINT: drain (a second one: stop now); SIGHUP: ask the master to reload.
fn watch_signals(drainer: Arc<Drainer>, link: Option<Arc<MasterLink>>) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGUSR1 => {
                        log::info!("SIGUSR1: reopening the access logs");
                        tether_proxy::access_log::reopen_all();
                    }
                    SIGHUP => match &link {
                        Some(l) => {
                            log::info!("SIGHUP: asking the master to reload");
                            if let Err(e) = l.send("reload") {
                                log::error!("cannot ask the master to reload: {e}");
                            }
                        }
                        None => log::warn!(
                            "SIGHUP: reloading needs the supervisor (tether runs with \
                             --no-supervise); the running config stays"
                        ),
                    },
                    SIGQUIT => {
                        log::info!("SIGQUIT: fast stop, closing every connection now");
                        drainer.drain("SIGQUIT");
                        drainer.stop_now();
                    }
                    _ if drainer.draining() => {
                        log::warn!("second stop signal: closing every connection now");
                        drainer.stop_now();
                    }
                    _ => drainer.drain(if sig == SIGINT { "SIGINT" } else { "SIGTERM" }),
                }
            }
        })?;
    Ok(())
}

/// Warn daily about certificates that expire soon (the start already warned once).
fn watch_expiry(runtime: &Arc<Runtime>) {
    if runtime.certificates().is_empty() {
        return;
    }
    let runtime = runtime.clone();
    let spawned = std::thread::Builder::new()
        .name("cert-expiry".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(86_400));
            for w in runtime.warnings() {
                if w.starts_with("certificate ") {
                    log::warn!("{w}");
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the daily certificate expiry check: {e}");
    }
}

/// One line about what a listener serves, for the log.
fn describe(t: &Target) -> String {
    match t {
        Target::TcpUpstream(a, None) => format!("tcp tunnel to {a}"),
        Target::TcpUpstream(a, Some(v)) => format!("tcp tunnel to {a} (PROXY protocol {v:?})"),
        Target::TcpFile(p) => format!("tcp file {}", p.display()),
        Target::Http(r) => {
            let routes: usize = r.hosts.iter().map(|h| h.routes.len()).sum();
            format!("http, {} virtual host(s), {routes} route(s)", r.hosts.len())
        }
    }
}
