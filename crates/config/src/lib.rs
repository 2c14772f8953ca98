//! tether-config: the file a user writes, checked into `Settings`, plain data (no pool,
//! counter, store, thread or socket: `spec.rs`). Formats: tether's TOML (this file, with
//! `[[listener]]` in `listener.rs` and virtual hosts in `servers.rs`), eXpServer's
//! `xps_config.json` (`xps.rs`) and Webots' `session.json` (`session_json.rs`). Every table
//! rejects unknown keys; every error names `path:line:col`. Checking reads the files a
//! config names (certificates, keys, CAs) to refuse broken ones; the worker builds what runs
//! from `Settings` once (`tether_proxy::runtime`).
//!
//! Beside the formats: `acl.rs` (allow/deny networks, the status formats), `acme.rs` (the
//! `[acme]` table bound to the listeners), `certs.rs` (certificates, keys and CAs read and
//! checked, without building a rustls config). This crate may import only pure crates
//! (`tether-http`, `tether-balance`, `tether-files`) and the settings types of
//! `tether-broker` and `tether-mail`; never `tether-core`, `mio`, `tokio` or `tether-proxy`
//! (`tests/deps.rs` checks it). The modules of the TOML format (`lib.rs`, `listener.rs`,
//! `servers.rs`, `tls.rs`, `upstream.rs`, `ops.rs`, `acme.rs`) are one concept — one file's
//! checks — and import each other's helpers.
//!
//! ```toml
//! server_name = "tether"
//!
//! [[listener]]
//! listen = "0.0.0.0:8001"
//! protocol = "http"            # or "tcp"
//! upstream = "127.0.0.1:3000"  # proxy / tunnel to this address, or:
//! # root = "public"            # http: serve this directory
//! # file = "public/sample.txt" # tcp: stream this file on connect
//! ```

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::acl::StatusFormat;
use crate::acme::AcmeSpec;
use tether_broker::BrokerConfig;

/// The default `header_timeout_ms`: nginx's `client_header_timeout` as careful setups use it.
pub(crate) const HEADER_TIMEOUT_MS: u64 = 10_000;

/// The embedded default config: what `tether` runs with no argument.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// A config error, printed as `path:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

pub mod access_log;
pub mod acl;
pub mod acme;
pub mod certs;
mod cookie_options;
pub mod discover;
mod encode;
mod env;
mod hash_key;
mod health_kind;
pub mod hints;
mod include;
mod json_pos;
pub mod limits;
mod listener;
mod ops;
pub mod rewrite;
pub mod rules;
mod servers;
mod session_id;
mod session_json;
pub mod spec;
pub mod store;
mod tls;
mod upstream;
mod upstream_protocol;
pub mod warnings;
mod xps;

pub use spec::{
    ActionSpec, AffinitySpec, HostSpec, PortRange, Pos, RouteSpec, RouterSpec, SealKeys,
    UpstreamId, UpstreamSpec, UpstreamTlsSpec,
};
pub use tls::{CertFiles, Front, TlsSpec};

pub use ops::{AdminSettings, Ops, SupervisorSettings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Read by `include.rs` before this parse; the files' tables are in the text already.
    #[serde(default)]
    #[allow(dead_code)]
    include: Option<toml::Value>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    workers: Option<Spanned<Workers>>,
    #[serde(default)]
    access_log: Option<Spanned<access_log::RawAccessLog>>,
    #[serde(default)]
    store: Option<Spanned<toml::Value>>,
    #[serde(default)]
    on_store_error: Option<Spanned<String>>,
    #[serde(default)]
    pid_file: Option<PathBuf>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    max_connections_per_ip: Option<Spanned<usize>>,
    #[serde(default)]
    max_body_size: Option<u64>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    drain_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    admin: Option<ops::RawAdmin>,
    #[serde(default)]
    supervisor: Option<ops::RawSupervisor>,
    #[serde(default)]
    listener: Vec<Spanned<listener::RawListener>>,
    #[serde(default)]
    upstream: Vec<Spanned<upstream::RawUpstream>>,
    #[serde(default)]
    server: Vec<Spanned<servers::RawServer>>,
    #[serde(default)]
    broker: Vec<Spanned<BrokerConfig>>,
    #[serde(default)]
    limit: Vec<Spanned<limits::RawLimit>>,
    #[serde(default)]
    acme: Option<Spanned<crate::acme::RawAcme>>,
}

/// `[metrics] listen = "127.0.0.1:8004"`: a listener answering `/api` (eXpServer's metrics
/// JSON) and `/metrics` (Prometheus text).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Spanned<String>,
}

/// `workers = 4` or `workers = "auto"`.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum Workers {
    Count(i64),
    Word(String),
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Http,
}

/// What a listener is wired to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// tcp: tunnel bytes both ways to this address, after a PROXY protocol header when
    /// `send_proxy` says so.
    TcpUpstream(SocketAddr, Option<crate::spec::SendProxy>),
    /// tcp: stream this file on connect, then close.
    TcpFile(PathBuf),
    /// http: requests go through these virtual hosts and routes.
    Http(RouterSpec),
}

/// A checked listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    pub listen: SocketAddr,
    pub target: Target,
    pub connect_timeout: Duration,
    /// For tcp: a tunnel with no byte either way for this long is closed. For http: how long
    /// a connection may wait for the first byte of a request (a new connection, or between
    /// keep-alive requests; then it is closed without an answer), and how long a request
    /// body or a proxied exchange may stay silent.
    pub idle_timeout: Duration,
    /// http: the time allowed for a whole request head, from its first byte (slowloris:
    /// bytes arriving do not extend it); past it the client gets `408` and a close.
    pub header_timeout: Duration,
    /// http: a tunnel after `101 Switching Protocols` (WebSocket) with no byte either way
    /// for this long is closed.
    pub tunnel_timeout: Duration,
    /// TLS, and what the plain listener of an HTTPS site does (`config/tls.rs`).
    pub front: Front,
}

/// A checked config: plain data, compared by value.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server_name: String,
    /// Event-loop threads, each with its own `SO_REUSEPORT` listeners.
    pub workers: usize,
    /// `"off"` (default), `"stderr"`, or a file to append one line per request to, and its
    /// format (`access_log.rs`); a `[[server]]` or route may name its own.
    pub access_log: access_log::AccessLogSpec,
    /// Client connections open at once, over all workers (0: from the descriptor limit).
    pub max_connections: usize,
    /// Client connections of `http` listeners open at once from one client address, over
    /// all workers and listeners; one more is answered `429` (None: no limit).
    pub max_connections_per_ip: Option<usize>,
    /// Where affinity entries live, as logs name it (`"memory"`, the URL without its
    /// password, `sentinel <master> via ...`, `cluster ...`).
    pub store: String,
    /// Where affinity entries live (`store.rs`).
    pub store_spec: store::StoreSpec,
    /// What a request that needs the store gets while the store does not answer.
    pub on_store_error: spec::OnStoreError,
    /// Where the master writes its pid (`tether reload` and friends read it); `None`: the
    /// default (`tether`'s `pidfile::default_path`).
    pub pid_file: Option<PathBuf>,
    pub listeners: Vec<ListenerSpec>,
    /// The upstream pools the routes proxy to (`ActionSpec::Proxy` indexes them).
    pub upstreams: Vec<UpstreamSpec>,
    /// Simulation-server brokers (`[[broker]]`, or Webots' `session.json`), by name.
    pub brokers: Vec<BrokerConfig>,
    /// Webots' `session.json`: log to `<logDir>/session/output.log` (or stdout with `debug`).
    pub session_log: Option<(PathBuf, bool)>,
    /// `[admin]`, `[supervisor]`, `drain_timeout_ms` (`ops.rs`).
    pub ops: Ops,
    /// `[acme]`: certificates ordered and renewed automatically (`acme/`).
    pub acme: Option<AcmeSpec>,
}

impl Settings {
    /// The embedded default config, checked.
    pub fn default_config() -> Result<Settings, ConfigError> {
        parse(DEFAULT_CONFIG, "<default>")
    }

    /// Read and check a config file: eXpServer's JSON when it starts with `{`, else TOML.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: name.clone(),
            line: 1,
            col: 1,
            message: format!("cannot read: {e}"),
        })?;
        Settings::from_text(&text, &name)
    }

    /// Check config text read elsewhere (`name` for messages): eXpServer's JSON when it
    /// starts with `{`, else TOML. A config without any listener (an empty file, say) is an
    /// error: tether would start and serve nothing.
    pub fn from_text(text: &str, name: &str) -> Result<Settings, ConfigError> {
        let settings = if text.trim_start().starts_with('{') {
            if session_json::is_session_json(text) {
                session_json::parse(text, name)?
            } else {
                xps::parse(text, name)?
            }
        } else {
            parse(text, name)?
        };
        if settings.listeners.is_empty() {
            return Err(ConfigError {
                path: name.to_string(),
                line: 1,
                col: 1,
                message: "no listener ([[listener]], [[server]] or [metrics])".into(),
            });
        }
        Ok(settings)
    }
}

/// Check TOML text; `name` (the file's path) is used in error messages and as the base of
/// `include`. `${NAME}` / `${NAME:-default}` are filled from the environment first
/// (`env.rs`), the included files read (`include.rs`); positions stay each file's own.
pub fn parse(file_text: &str, name: &str) -> Result<Settings, ConfigError> {
    let combined = include::combine(file_text, name)?;
    let text = combined.text.as_str();
    let at = |span: Range<usize>, message: String| combined.error(span, message);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = hints::with_hint(e.message().trim());
        let message = if message.contains("duplicate key") {
            combined.duplicate_hint(&span, &message)
        } else {
            message
        };
        at(span, message)
    })?;
    let acme = raw.acme.map(|a| crate::acme::check(a, &at)).transpose()?;
    let has_acme = acme.is_some();
    let mut upstreams: Vec<UpstreamSpec> = Vec::new();
    // Each listener with the span of its `listen` (for errors about the address).
    let mut listeners: Vec<(ListenerSpec, Range<usize>)> = Vec::new();
    for l in raw.listener {
        let span = l.span();
        let l = l.into_inner();
        let listen = l.listen.span();
        let spec = listener::check(l, span, has_acme, &mut upstreams, &at)?;
        listeners.push((spec, listen));
    }
    let mut brokers: Vec<BrokerConfig> = Vec::new();
    for b in raw.broker {
        let span = b.span();
        let b = b.into_inner();
        b.validate()
            .map_err(|m| at(span.clone(), format!("[[broker]]: {m}")))?;
        if brokers.iter().any(|x| x.name == b.name) {
            return Err(at(span, format!("a second [[broker]] named {:?}", b.name)));
        }
        brokers.push(b);
    }
    let names: Vec<String> = brokers.iter().map(|b| b.name.clone()).collect();
    let named_limits = limits::check(raw.limit, &at)?;
    listeners.extend(servers::check(
        raw.upstream,
        raw.server,
        raw.max_body_size,
        &names,
        &named_limits,
        has_acme,
        &mut upstreams,
        &at,
    )?);
    let store_spec = store::check(raw.store, &at)?;
    let store = store_spec.describe();
    let on_store_error = match raw.on_store_error {
        None => spec::OnStoreError::Open,
        Some(s) => match s.get_ref().as_str() {
            "open" => spec::OnStoreError::Open,
            "closed" => spec::OnStoreError::Closed,
            other => {
                return Err(at(
                    s.span(),
                    format!(
                        "`on_store_error`: {other:?} is not \"open\" (decide locally, keep serving) or \"closed\" (503)"
                    ),
                ))
            }
        },
    };
    if let Some(m) = raw.metrics {
        let addr = m.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            at(
                m.listen.span(),
                format!("`listen`: not an address:port: {:?}", m.listen.get_ref()),
            )
        })?;
        listeners.push((metrics_listener(addr), m.listen.span()));
    }
    let workers = match raw.workers {
        None => 1,
        Some(w) => {
            let span = w.span();
            match w.into_inner() {
                Workers::Count(n) if (1..=1024).contains(&n) => n as usize,
                Workers::Word(w) if w == "auto" => auto_workers(),
                _ => {
                    return Err(at(
                        span,
                        "`workers`: a number from 1 to 1024, or \"auto\"".into(),
                    ))
                }
            }
        }
    };
    for (i, (a, span)) in listeners.iter().enumerate() {
        if listeners[..i].iter().any(|(b, _)| b.listen == a.listen) {
            return Err(at(span.clone(), format!("two listeners on {}", a.listen)));
        }
    }
    let admin_span = raw.admin.as_ref().and_then(|a| a.listen_span());
    let ops = ops::check(raw.drain_timeout_ms, raw.admin, raw.supervisor, &at)?;
    if let Some(a) = ops.admin.listen {
        if listeners.iter().any(|(l, _)| l.listen == a) {
            return Err(at(
                admin_span.unwrap_or(0..0),
                format!("the admin listener shares {a} with a listener"),
            ));
        }
    }
    let max_connections_per_ip = match raw.max_connections_per_ip {
        Some(n) if *n.get_ref() == 0 => {
            return Err(at(
                n.span(),
                "`max_connections_per_ip` must be above 0".into(),
            ))
        }
        n => n.map(Spanned::into_inner),
    };
    let acme = crate::acme::bind(acme, &mut listeners, &at)?;
    let access_log = match raw.access_log {
        Some(a) => access_log::check(a, &at)?,
        None => access_log::AccessLogSpec::off(),
    };
    let listeners = listeners.into_iter().map(|(l, _)| l).collect();
    Ok(Settings {
        server_name: raw.server_name.unwrap_or_else(|| "tether".to_string()),
        workers,
        access_log,
        max_connections: raw.max_connections.unwrap_or(0),
        max_connections_per_ip,
        store,
        store_spec,
        on_store_error,
        pid_file: raw.pid_file,
        listeners,
        upstreams,
        brokers,
        session_log: None,
        ops,
        acme,
    })
}

/// The metrics listener: `/api` answers eXpServer's metrics JSON, `/metrics` Prometheus text.
pub(crate) fn metrics_listener(listen: SocketAddr) -> ListenerSpec {
    let route = |path: &str, format| RouteSpec::new(path, ActionSpec::Status(format));
    let host = HostSpec {
        hostnames: Vec::new(),
        routes: vec![
            route("/api", StatusFormat::Json),
            route("/metrics", StatusFormat::Prometheus),
        ],
    };
    ListenerSpec {
        listen,
        target: Target::Http(RouterSpec { hosts: vec![host] }),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        header_timeout: Duration::from_millis(HEADER_TIMEOUT_MS),
        tunnel_timeout: Duration::from_secs(600),
        front: Front::default(),
    }
}

/// The number of cores, for `workers = "auto"`.
fn auto_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Milliseconds from an optional spanned value, with a default; 0 is an error.
pub(crate) fn millis(
    v: Option<Spanned<u64>>,
    default: u64,
    key: &str,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(Duration::from_millis(default)),
        Some(v) if *v.get_ref() == 0 => Err(at(v.span(), format!("`{key}` must be above 0"))),
        Some(v) => Ok(Duration::from_millis(*v.get_ref())),
    }
}

/// `host:port` to one address (the first the resolver gives), at load time only.
pub(crate) fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!("{s:?} has no port (write host:port)"));
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {s:?}: {e}")),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
