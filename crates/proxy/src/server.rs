//! Turning checked `Settings` into listeners on a `Core`: the runtime built once per process
//! (`Shared::open`, `runtime.rs`), then one session factory per listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tether_core::proxy_protocol::Trusted;
use tether_core::{Accepted, Core, SessionFactory};
use tether_h2::frame::PREFACE;

use crate::access_log::AccessLogs;
use crate::h2::H2Session;
use crate::health::HealthChecker;
use crate::http::{HttpSession, ListenerCtx, TooMany};
use crate::metrics::Registry;
use crate::per_ip::PerIp;
use crate::runtime::Runtime;
use crate::status_page::Topology;
use crate::tcp::{TcpFile, TcpTunnel};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tether_broker::Broker;
use tether_config::{Settings, Target};
use tether_store::Store;

/// What the workers share at run time (opened once, from the settings).
#[derive(Clone)]
pub struct Shared {
    /// The routers, pools, TLS configs and ACME state, built from the settings.
    pub runtime: Arc<Runtime>,
    pub access_log: Option<Arc<AccessLogs>>,
    /// Every worker's counters, for the metrics listener and `status_page` routes.
    pub metrics: Arc<Registry>,
    /// The listeners and pools the HTML status page lists.
    pub topology: Arc<Topology>,
    /// Affinity entries (learned sessions, re-pins): in memory or in Redis.
    pub store: Arc<dyn Store>,
    /// The store is shared with other tether instances.
    pub store_shared: bool,
    /// The active health checks run on the first worker installed only.
    health_started: Arc<AtomicBool>,
    /// The simulation-server brokers, started (their poller threads run).
    pub brokers: Arc<HashMap<String, Arc<Broker>>>,
    /// Connections open per client address (`max_connections_per_ip`), if limited.
    pub per_ip: Option<Arc<PerIp>>,
    /// The thread following the pools' DNS entries (`discover.rs`), while any clone lives.
    pub discovery: Option<Arc<tether_discover::Discovery>>,
}

impl Shared {
    /// Build the runtime of `settings` (an error names the config position) and open the
    /// access log, the store and the brokers.
    pub fn open(settings: &Settings) -> io::Result<Shared> {
        let runtime = Runtime::build(settings)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let access_log =
            AccessLogs::open(settings).map_err(|e| io::Error::other(format!("access log: {e}")))?;
        let store = open_store(&settings.store_spec).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("store {}: {e}", settings.store),
            )
        })?;
        let mut brokers = HashMap::new();
        for config in &settings.brokers {
            let mailer = config.mailer().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("broker {}: {e}", config.name),
                )
            })?;
            let broker = Broker::start(config.clone(), mailer)?;
            brokers.insert(config.name.clone(), broker);
        }
        let metrics = Registry::new(&settings.server_name);
        metrics.set_store(store.clone());
        metrics.set_limits(runtime.limits());
        metrics.set_certificates(&runtime.certificates());
        let topology = Arc::new(Topology::from_runtime(&runtime));
        let discovery = crate::discover::start(&runtime, settings)?.map(Arc::new);
        Ok(Shared {
            discovery,
            runtime: Arc::new(runtime),
            brokers: Arc::new(brokers),
            access_log,
            metrics,
            topology,
            store,
            store_shared: settings.store_spec.is_shared(),
            health_started: Arc::new(AtomicBool::new(false)),
            per_ip: settings.max_connections_per_ip.map(PerIp::new),
        })
    }
}

/// Client connections one worker may hold: `max_connections` shared out among the workers,
/// or, when it is 0, what the descriptor limit allows (each client may need an upstream
/// socket too, and some descriptors are kept for files and listeners).
pub fn per_worker_limit(settings: &Settings) -> usize {
    let workers = settings.workers.max(1);
    let total = if settings.max_connections > 0 {
        settings.max_connections
    } else {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid, writable rlimit.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        let fds = if ok {
            lim.rlim_cur.min(1 << 24) as usize
        } else {
            1024
        };
        (fds.saturating_sub(64) / 2).max(16)
    };
    total.div_ceil(workers).max(1)
}

/// Bind one listening socket with `SO_REUSEPORT`, so that every worker has its own socket
/// on the same address and the kernel spreads connections among them.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Refuse an address another process listens on. `SO_REUSEPORT` would let tether join a
/// stranger's listener (any process of the same user, tether or not) and the kernel would
/// split the connections between them; nginx and HAProxy refuse with "address already in
/// use", and so does tether. Called before binding an address tether does not hold yet: a
/// socket without `SO_REUSEPORT` cannot bind where anyone listens.
pub fn probe_free(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into()).map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::AddrInUse => {
                "address already in use (another process listens there; tether joins only its \
                 own workers)"
                    .to_string()
            }
            _ => e.to_string(),
        };
        io::Error::new(e.kind(), format!("cannot listen on {addr}: {why}"))
    })
}

/// Bind a socket for every listener of `settings`, in order.
pub fn bind_all(settings: &Settings) -> io::Result<Vec<std::net::TcpListener>> {
    settings
        .listeners
        .iter()
        .map(|l| {
            bind_reuseport(l.listen).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {}: {e}", l.listen))
            })
        })
        .collect()
}

/// The client of an `http2` listener chose HTTP/2: ALPN `h2`, or (plain) the preface.
fn speaks_h2(accepted: &Accepted) -> bool {
    match &accepted.tls {
        Some(t) => t.alpn.as_deref() == Some("h2"),
        None => accepted.sniffed,
    }
}

/// Bind every listener of `settings` on `core`. Returns the bound addresses, in order.
pub fn install(core: &mut Core, settings: &Settings) -> io::Result<Vec<SocketAddr>> {
    let sockets = bind_all(settings)?;
    install_sockets(core, settings, sockets, &Shared::open(settings)?)
}

/// Put the bound `sockets` (one per listener of `settings`, in order) on `core` with their
/// session factories, over the runtime `shared` holds (built from the same settings).
pub fn install_sockets(
    core: &mut Core,
    settings: &Settings,
    sockets: Vec<std::net::TcpListener>,
    shared: &Shared,
) -> io::Result<Vec<SocketAddr>> {
    let server: Arc<str> = Arc::from(settings.server_name.as_str());
    core.set_max_sessions(per_worker_limit(settings));
    let stats = shared.metrics.add_worker(core.stats());
    stats.set_thread();
    if !shared.health_started.swap(true, Ordering::SeqCst) {
        if let Some(checker) = HealthChecker::from_runtime(&shared.runtime) {
            core.spawn(Box::new(checker));
        }
    }
    let mut bound = Vec::new();
    let mut sockets = sockets.into_iter();
    for built in shared.runtime.listeners() {
        let spec = built.spec.clone();
        let opts = tether_core::ListenerOpts {
            tls: built.tls.as_ref().map(|t| t.config.clone()),
            proxy_protocol: trusted_senders(spec.front.proxy_protocol.as_deref())?,
            handshake_timeout: spec.front.handshake_timeout,
            // h2c with prior knowledge next to HTTP/1.1 on a plain `http2` listener.
            sniff: (spec.front.http2 && built.tls.is_none()).then_some(PREFACE),
        };
        let server = server.clone();
        let factory: SessionFactory = match (&spec.target, &built.router) {
            (Target::TcpUpstream(addr, send_proxy), _) => {
                let (addr, send_proxy) = (*addr, *send_proxy);
                Box::new(move |_| Box::new(TcpTunnel::new(spec.clone(), addr, send_proxy)))
            }
            (Target::TcpFile(path), _) => {
                let path = path.clone();
                Box::new(move |_| Box::new(TcpFile::new(spec.clone(), path.clone())))
            }
            (Target::Http(_), None) => {
                return Err(io::Error::other(format!(
                    "http listener {} has no router built",
                    spec.listen
                )))
            }
            (Target::Http(_), Some(router)) => {
                // Built once per listener; every connection holds it by `Arc`.
                let ctx = Arc::new(ListenerCtx {
                    spec: spec.clone(),
                    server: server.clone(),
                    router: router.clone(),
                    limits: tether_http::Limits::default(),
                    stats: stats.clone(),
                    metrics: Some(shared.metrics.clone()),
                    topology: shared.topology.clone(),
                    access_log: shared.access_log.clone(),
                    store: shared.store.clone(),
                    store_shared: shared.store_shared,
                    on_store_error: settings.on_store_error,
                    brokers: shared.brokers.clone(),
                });
                let per_ip = shared.per_ip.clone();
                Box::new(move |accepted| {
                    // Count the connection on its client address; one over the limit is
                    // refused with 429.
                    let slot = match &per_ip {
                        None => None,
                        Some(table) => match table.acquire(accepted.peer.ip()) {
                            Some(slot) => Some(slot),
                            None => return Box::new(TooMany::new(ctx.clone(), accepted.peer)),
                        },
                    };
                    if ctx.spec.front.http2 && speaks_h2(accepted) {
                        return Box::new(H2Session::new(ctx.clone(), slot));
                    }
                    Box::new(HttpSession::new(ctx.clone(), slot))
                })
            }
        };
        let listen = built.spec.listen;
        let Some(socket) = sockets.next() else {
            return Err(io::Error::other(format!("no socket bound for {listen}")));
        };
        let id = core.add_listener_with(socket, opts, factory)?;
        bound.push(core.local_addr(id).unwrap_or(listen));
    }
    Ok(bound)
}

/// The affinity store the config names (memory, one Redis, a Sentinel group, a Cluster).
fn open_store(spec: &tether_config::store::StoreSpec) -> Result<Arc<dyn Store>, String> {
    use tether_config::store::{StoreAccess, StoreSpec};
    use tether_store::{Access, Backend};
    let access = |a: &StoreAccess| Access {
        username: a.username.clone(),
        password: a.password.clone(),
        tls: a.tls,
        ca_file: a.ca.clone(),
    };
    let backend = match spec {
        StoreSpec::Memory => return tether_store::from_url("memory"),
        StoreSpec::Redis { url, access: a } => Backend::Single {
            url: url.clone(),
            access: access(a),
        },
        StoreSpec::Sentinel {
            sentinels,
            master,
            db,
            sentinel_password,
            access: a,
        } => Backend::Sentinel {
            sentinels: sentinels.clone(),
            master: master.clone(),
            db: *db,
            sentinel_password: sentinel_password.clone(),
            access: access(a),
        },
        StoreSpec::Cluster { nodes, access: a } => Backend::Cluster {
            nodes: nodes.clone(),
            access: access(a),
        },
    };
    tether_store::open_backend(&backend, &tether_store::Options::default())
}

/// The core's PROXY protocol senders from the networks the config checked (`addr/bits`).
fn trusted_senders(networks: Option<&[String]>) -> io::Result<Option<Arc<Trusted>>> {
    networks
        .map(|n| Trusted::parse_all(n.iter()).map(Arc::new))
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}
