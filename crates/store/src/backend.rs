//! Where the Redis store's data lives ([`Backend`], plain data a configuration builds) and
//! how a helper thread gets a connection to it (`Target`, `Conn`).
//!
//! - `Single`: one server, by URL (`redis://` or `rediss://`), as before.
//! - `Sentinel`: the master of a Sentinel-monitored group. Every connect (the first, and
//!   the one after every failure) asks the sentinels in turn `SENTINEL
//!   get-master-addr-by-name <master>` and checks with `ROLE` that the answer is a master,
//!   so a failover is followed without a restart: the old master's connection breaks (or
//!   answers `READONLY` once demoted), the helper reconnects and the sentinels name the
//!   new one. A sentinel that names no master, or a master that is not one yet, is an
//!   outage like a refused connection (writes wait in the queue, asks answer `Down`).
//! - `Cluster`: the `redis` crate's sync cluster client, which follows `MOVED` and `ASK`
//!   redirections and refreshes its slot map. Its pipelines do not follow a redirection
//!   answered inside them, so on a cluster each command is sent on its own (routed by its
//!   key: one key per command, the rate-limit script included). Announcements use plain
//!   `PUBLISH`/`SUBSCRIBE`, which a cluster broadcasts to every node over its bus: the
//!   subscriber listens on any one node (the first of the list that answers) and needs
//!   no slot map, and a node that moves slots or dies costs only a reconnect to the next.
//!   Sharded pub/sub (`SSUBSCRIBE`) would spare the bus but tie the subscription to the
//!   channel's slot owner, one more thing to follow during a reshard, for a channel that
//!   carries only puts and removes.
//!
//! Each variant takes an [`Access`]: an ACL user and password (the configuration reads
//! them from the environment through `${NAME}`), TLS, and a CA file for TLS.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisError,
    RedisResult, Value,
};

/// Where a Redis store keeps its data. Plain data: building it connects nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One server: `redis://[user:password@]host:port/db`, or `rediss://` for TLS.
    Single { url: String, access: Access },
    /// The master of a Sentinel group: the sentinels' `host:port`s and the group's name.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        /// Database number on the master.
        db: i64,
        /// Password of the sentinels themselves (`requirepass` in sentinel.conf), if any.
        sentinel_password: Option<String>,
        access: Access,
    },
    /// A Redis Cluster: some of its nodes' `host:port`s (the rest are discovered).
    Cluster { nodes: Vec<String>, access: Access },
}

/// Credentials and TLS for the data nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// ACL user (`AUTH user password`); `None`: the default user.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Connect with TLS (implied by a `rediss://` URL).
    pub tls: bool,
    /// PEM file of the CA that signed the servers' certificates; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Backend {
    /// Whether connections to it use TLS (`rediss://`, `tls`, or a CA file).
    pub fn uses_tls(&self) -> bool {
        match self {
            Backend::Single { url, access } => {
                url.trim_start().starts_with("rediss://") || access.tls || access.ca_file.is_some()
            }
            Backend::Sentinel { access, .. } | Backend::Cluster { access, .. } => {
                access.tls || access.ca_file.is_some()
            }
        }
    }

    /// `Single` with the URL's own credentials and TLS.
    pub fn single(url: &str) -> Backend {
        Backend::Single {
            url: url.to_string(),
            access: Access::default(),
        }
    }
}

/// A connection to the data: one server's, or a cluster's.
pub(crate) enum Conn {
    Plain(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    /// One answer per command of `pipe`; server errors are `Value::ServerError`s, network
    /// failures and timeouts an `Err`.
    pub(crate) fn run(&mut self, pipe: &redis::Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Plain(c) => pipe.query::<Vec<Value>>(c),
            Conn::Cluster(c) => {
                let mut out = Vec::new();
                for cmd in pipe.cmd_iter() {
                    out.push(match c.req_command(cmd) {
                        Ok(v) => v,
                        Err(e) => as_server_error(e)?,
                    });
                }
                Ok(out)
            }
        }
    }

    pub(crate) fn ping(&mut self) -> RedisResult<Value> {
        match self {
            Conn::Plain(c) => redis::cmd("PING").query::<Value>(c),
            Conn::Cluster(c) => redis::cmd("PING").query::<Value>(c.as_mut()),
        }
    }
}

/// A server's refusal as the `Value` a plain pipeline would have given; anything else
/// (I/O, timeout, a cluster that cannot route) stays an error.
fn as_server_error(e: RedisError) -> RedisResult<Value> {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
        return Err(e);
    }
    match e.code() {
        Some(code) if !matches!(code, "MOVED" | "ASK") => {
            let detail = e.detail().unwrap_or_default().replace(['\r', '\n'], " ");
            redis::parse_redis_value(format!("-{code} {detail}\r\n").as_bytes())
        }
        _ => Err(e),
    }
}

/// How the helper threads reach the data (built once from a [`Backend`]).
pub(crate) enum Target {
    Single(Client),
    Sentinel {
        sentinels: Vec<Client>,
        master: String,
        db: i64,
        access: Access,
        ca: Option<Vec<u8>>,
        /// The sentinel to ask first (the last one that answered).
        first: AtomicUsize,
        /// The master last connected to, to log a change once.
        current: Mutex<Option<(String, u16)>>,
    },
    Cluster {
        client: ClusterClient,
        /// The same nodes as single servers, for the subscription.
        nodes: Vec<Client>,
        first: AtomicUsize,
    },
}

impl Target {
    /// Checks `backend` and builds its clients (no connection yet); also returns the label
    /// of log lines (never a password).
    pub(crate) fn new(backend: &Backend) -> Result<(Target, String), String> {
        if backend.uses_tls() {
            // redis's TLS asks rustls for the process-wide provider, which rustls cannot
            // pick alone when both or neither of its providers are compiled in. Keep
            // whatever the embedding program installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        match backend {
            Backend::Single { url, access } => {
                let ca = read_ca(access)?;
                let mut info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| format!("bad redis URL {url:?}: {e}"))?;
                let settings = info.redis_settings().clone();
                let mut settings2 = settings.clone();
                if let Some(u) = &access.username {
                    settings2 = settings2.set_username(u);
                }
                if let Some(p) = &access.password {
                    settings2 = settings2.set_password(p);
                }
                info = info.set_redis_settings(settings2);
                if access.tls || ca.is_some() {
                    if let ConnectionAddr::Tcp(host, port) = info.addr().clone() {
                        info = info.set_addr(tls_addr(host, port));
                    }
                }
                let label = format!("{}/{}", info.addr(), settings.db());
                let client =
                    client_for(info, ca).map_err(|e| format!("bad redis URL {url:?}: {e}"))?;
                Ok((Target::Single(client), label))
            }
            Backend::Sentinel {
                sentinels,
                master,
                db,
                sentinel_password,
                access,
            } => {
                if sentinels.is_empty() {
                    return Err("a sentinel store needs at least one sentinel".into());
                }
                if master.is_empty() {
                    return Err("a sentinel store needs the master's name".into());
                }
                let ca = read_ca(access)?;
                let mut clients = Vec::new();
                for s in sentinels {
                    let (host, port) = host_port(s)?;
                    let mut settings = redis::RedisConnectionInfo::default();
                    if let Some(p) = sentinel_password {
                        settings = settings.set_password(p);
                    }
                    let info = addr(host, port, access)
                        .into_connection_info()
                        .map_err(|e| format!("bad sentinel address {s:?}: {e}"))?
                        .set_redis_settings(settings);
                    let client = client_for(info, ca.clone())
                        .map_err(|e| format!("bad sentinel address {s:?}: {e}"))?;
                    clients.push(client);
                }
                let label = format!("sentinel master {master} via {}", sentinels.join(","));
                Ok((
                    Target::Sentinel {
                        sentinels: clients,
                        master: master.clone(),
                        db: *db,
                        access: access.clone(),
                        ca,
                        first: AtomicUsize::new(0),
                        current: Mutex::new(None),
                    },
                    label,
                ))
            }
            Backend::Cluster { nodes, access } => {
                if nodes.is_empty() {
                    return Err("a cluster store needs at least one node".into());
                }
                let ca = read_ca(access)?;
                let mut infos = Vec::new();
                let mut clients = Vec::new();
                for n in nodes {
                    let (host, port) = host_port(n)?;
                    let info = node_info(host, port, 0, access)
                        .map_err(|e| format!("bad cluster node {n:?}: {e}"))?;
                    clients.push(
                        client_for(info.clone(), ca.clone())
                            .map_err(|e| format!("bad cluster node {n:?}: {e}"))?,
                    );
                    infos.push(info);
                }
                let mut builder = ClusterClient::builder(infos)
                    .connection_timeout(crate::writer::TIMEOUT)
                    .response_timeout(crate::writer::TIMEOUT)
                    .retries(6)
                    .min_retry_wait(10)
                    .max_retry_wait(200);
                if let Some(u) = &access.username {
                    builder = builder.username(u);
                }
                if let Some(p) = &access.password {
                    builder = builder.password(p);
                }
                if let Some(pem) = ca {
                    builder = builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    });
                }
                let client = builder
                    .build()
                    .map_err(|e| format!("bad cluster settings: {e}"))?;
                let label = format!("cluster {}", nodes.join(","));
                Ok((
                    Target::Cluster {
                        client,
                        nodes: clients,
                        first: AtomicUsize::new(0),
                    },
                    label,
                ))
            }
        }
    }

    /// Whether `READONLY` means "the master moved": reconnect and ask again.
    pub(crate) fn follows_failover(&self) -> bool {
        !matches!(self, Target::Single(_))
    }

    /// The writer's connection, with `timeout` on connect, reads and writes.
    pub(crate) fn connect(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Target::Cluster { client, .. } => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
            _ => {
                let c = self.connect_one(timeout)?;
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))?;
                Ok(Conn::Plain(c))
            }
        }
    }

    /// A connection to one server: the server, the current master, or (a cluster) the
    /// first node that answers, for the subscription.
    pub(crate) fn connect_one(&self, timeout: Duration) -> RedisResult<redis::Connection> {
        match self {
            Target::Single(client) => client.get_connection_with_timeout(timeout),
            Target::Sentinel {
                sentinels,
                master,
                db,
                access,
                ca,
                first,
                current,
            } => {
                let (host, port) = ask_sentinels(sentinels, master, first, timeout)?;
                let info = node_info(host.clone(), port, *db, access)?;
                let client = client_for(info, ca.clone())?;
                let mut con = client.get_connection_with_timeout(timeout)?;
                con.set_read_timeout(Some(timeout))?;
                let role: Vec<Value> = redis::cmd("ROLE").query(&mut con)?;
                match role.first() {
                    Some(Value::BulkString(r)) if r == b"master" => {
                        let mut known = current.lock().unwrap_or_else(|p| p.into_inner());
                        let now = Some((host.clone(), port));
                        if *known != now {
                            log::info!("redis sentinel: master {master} at {host}:{port}");
                            *known = now;
                        }
                        Ok(con)
                    }
                    _ => Err(RedisError::from((
                        redis::ErrorKind::Io,
                        "the sentinels' master is not a master (yet)",
                        format!("{host}:{port}"),
                    ))),
                }
            }
            Target::Cluster { nodes, first, .. } => {
                let start = first.load(Ordering::Relaxed);
                let mut last = None;
                for i in 0..nodes.len() {
                    let at = (start + i) % nodes.len();
                    match nodes[at].get_connection_with_timeout(timeout) {
                        Ok(c) => {
                            first.store(at, Ordering::Relaxed);
                            return Ok(c);
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(no_nodes))
            }
        }
    }
}

fn no_nodes() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "no node to ask"))
}

/// The master's address from the first sentinel that knows it, starting with the one
/// that answered last.
fn ask_sentinels(
    sentinels: &[Client],
    master: &str,
    first: &AtomicUsize,
    timeout: Duration,
) -> RedisResult<(String, u16)> {
    let start = first.load(Ordering::Relaxed);
    let mut last = None;
    for i in 0..sentinels.len() {
        let at = (start + i) % sentinels.len();
        let asked = sentinels[at]
            .get_connection_with_timeout(timeout)
            .and_then(|mut c| {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query::<Option<(String, u16)>>(&mut c)
            });
        match asked {
            Ok(Some(addr)) => {
                first.store(at, Ordering::Relaxed);
                return Ok(addr);
            }
            Ok(None) => {
                last = Some(RedisError::from((
                    redis::ErrorKind::Io,
                    "the sentinel knows no such master",
                    master.to_string(),
                )))
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_nodes))
}

fn addr(host: String, port: u16, access: &Access) -> ConnectionAddr {
    if access.tls || access.ca_file.is_some() {
        tls_addr(host, port)
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

fn tls_addr(host: String, port: u16) -> ConnectionAddr {
    ConnectionAddr::TcpTls {
        host,
        port,
        insecure: false,
        tls_params: None,
    }
}

fn node_info(host: String, port: u16, db: i64, access: &Access) -> RedisResult<ConnectionInfo> {
    let mut settings = redis::RedisConnectionInfo::default().set_db(db);
    if let Some(u) = &access.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &access.password {
        settings = settings.set_password(p);
    }
    Ok(addr(host, port, access)
        .into_connection_info()?
        .set_redis_settings(settings))
}

fn client_for(info: ConnectionInfo, ca: Option<Vec<u8>>) -> RedisResult<Client> {
    match ca {
        Some(pem) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
            Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        _ => Client::open(info),
    }
}

fn read_ca(access: &Access) -> Result<Option<Vec<u8>>, String> {
    match &access.ca_file {
        None => Ok(None),
        Some(path) => std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("cannot read the redis CA file {}: {e}", path.display())),
    }
}

/// `host:port` (an IPv6 host in brackets).
fn host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("bad redis address {s:?}: expected host:port");
    let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(host_port("127.0.0.1:7000"), Ok(("127.0.0.1".into(), 7000)));
        assert_eq!(host_port("[::1]:26379"), Ok(("::1".into(), 26379)));
        for bad in ["127.0.0.1", ":7000", "h:notaport", "h:70000"] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_backends_are_errors() {
        let none = Backend::Sentinel {
            sentinels: vec![],
            master: "m".into(),
            db: 0,
            sentinel_password: None,
            access: Access::default(),
        };
        assert!(Target::new(&none).is_err());
        let cluster = Backend::Cluster {
            nodes: vec!["nope".into()],
            access: Access::default(),
        };
        let err = Target::new(&cluster).err().expect("an error");
        assert!(err.contains("host:port"), "{err}");
        let ca = Backend::Cluster {
            nodes: vec!["127.0.0.1:7000".into()],
            access: Access {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..Access::default()
            },
        };
        let err = Target::new(&ca).err().expect("an error");
        assert!(err.contains("CA file"), "{err}");
    }

    #[test]
    fn labels_hold_no_password() {
        let b = Backend::Single {
            url: "redis://u:secret@127.0.0.1:6379/2".into(),
            access: Access::default(),
        };
        let (_, label) = Target::new(&b).expect("a target");
        assert_eq!(label, "127.0.0.1:6379/2");
    }
}
