//! The config model: the file a user writes, checked into `Settings` that the sessions run
//! on. Two formats: tether's TOML (this file: `[[listener]]` for the simple forms,
//! `server.rs`-style virtual hosts in `servers.rs`), and eXpServer's `xps_config.json`
//! (`xps.rs`). Every table rejects unknown keys; every error names `path:line:col`.
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

use crate::router::{Acl, Action, Route, Router, StatusFormat, VirtualHost};
use crate::static_files::FileOptions;
use std::sync::Arc;
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

mod json_pos;
mod ops;
mod servers;
mod session_json;
mod tls;
mod upstream;

pub use tls::Front;
mod xps;

pub use ops::{AdminSettings, Ops, SupervisorSettings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    workers: Option<Spanned<Workers>>,
    #[serde(default)]
    access_log: Option<String>,
    #[serde(default)]
    store: Option<Spanned<String>>,
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
    listener: Vec<Spanned<RawListener>>,
    #[serde(default)]
    upstream: Vec<Spanned<upstream::RawUpstream>>,
    #[serde(default)]
    server: Vec<Spanned<servers::RawServer>>,
    #[serde(default)]
    broker: Vec<Spanned<BrokerConfig>>,
    #[serde(default)]
    acme: Option<Spanned<crate::acme::config::RawAcme>>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    listen: Spanned<String>,
    protocol: Protocol,
    upstream: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    header_timeout_ms: Option<Spanned<u64>>,
    tunnel_timeout_ms: Option<Spanned<u64>>,
    tls: Option<Spanned<tls::RawTls>>,
    redirect_http: Option<Spanned<tls::RawRedirect>>,
    hsts: Option<String>,
    proxy_protocol: Option<Spanned<tls::RawProxyProtocol>>,
    /// http: HTTP/2 too (ALPN `h2` over TLS, h2c with prior knowledge without).
    http2: Option<Spanned<bool>>,
    /// tcp: send a PROXY protocol header ("v1" or "v2") to the upstream first.
    send_proxy: Option<Spanned<String>>,
}

/// What a listener is wired to.
#[derive(Debug, Clone)]
pub enum Target {
    /// tcp: tunnel bytes both ways to this address, after a PROXY protocol header when
    /// `send_proxy` says so.
    TcpUpstream(SocketAddr, Option<crate::upstream::SendProxy>),
    /// tcp: stream this file on connect, then close.
    TcpFile(PathBuf),
    /// http: requests go through this router (virtual hosts and routes).
    Http(Arc<Router>),
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::TcpUpstream(a, x), Target::TcpUpstream(b, y)) => a == b && x == y,
            (Target::TcpFile(a), Target::TcpFile(b)) => a == b,
            (Target::Http(a), Target::Http(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Target {}

/// A checked listener.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A checked config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server_name: String,
    /// Event-loop threads, each with its own `SO_REUSEPORT` listeners.
    pub workers: usize,
    /// `"off"` (default), `"stderr"`, or a file to append one line per request to.
    pub access_log: String,
    /// Client connections open at once, over all workers (0: from the descriptor limit).
    pub max_connections: usize,
    /// Client connections of `http` listeners open at once from one client address, over
    /// all workers and listeners; one more is answered `429` (None: no limit).
    pub max_connections_per_ip: Option<usize>,
    /// Where affinity entries live: `"memory"` or a `redis://` URL.
    pub store: String,
    pub listeners: Vec<ListenerSpec>,
    /// Simulation-server brokers (`[[broker]]`, or Webots' `session.json`), by name.
    pub brokers: Vec<BrokerConfig>,
    /// Webots' `session.json`: log to `<logDir>/session/output.log` (or stdout with `debug`).
    pub session_log: Option<(PathBuf, bool)>,
    /// `[admin]`, `[supervisor]`, `drain_timeout_ms` (`ops.rs`).
    pub ops: Ops,
    /// `[acme]`: certificates ordered and renewed automatically (`acme/`).
    pub acme: Option<Arc<crate::acme::Acme>>,
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

/// Check TOML text; `name` is used in error messages.
pub fn parse(text: &str, name: &str) -> Result<Settings, ConfigError> {
    let at = |span: Range<usize>, message: String| {
        let (line, col) = line_col(text, span.start);
        ConfigError {
            path: name.to_string(),
            line,
            col,
            message,
        }
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at(span, e.message().trim().to_string())
    })?;
    let acme = raw
        .acme
        .map(|a| crate::acme::config::check(a, &at))
        .transpose()?;
    let acme_ref = acme.as_ref().map(|p| &p.acme);
    // Each listener with the span of its `listen` (for errors about the address).
    let mut listeners: Vec<(ListenerSpec, Range<usize>)> = Vec::new();
    for l in raw.listener {
        let span = l.span();
        let l = l.into_inner();
        let listen = l.listen.span();
        listeners.push((check_listener(l, span, acme_ref, &at)?, listen));
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
    listeners.extend(servers::check(
        raw.upstream,
        raw.server,
        raw.max_body_size,
        &names,
        acme_ref,
        &at,
    )?);
    let store = match raw.store {
        None => "memory".to_string(),
        Some(s) if s.get_ref() == "memory" || s.get_ref().starts_with("redis://") => s.into_inner(),
        Some(s) => {
            return Err(at(
                s.span(),
                format!(
                    "`store`: {:?} is not \"memory\" or a redis:// URL",
                    s.get_ref()
                ),
            ))
        }
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
    let acme = crate::acme::config::bind(acme, &mut listeners, &at)?;
    let listeners = listeners.into_iter().map(|(l, _)| l).collect();
    Ok(Settings {
        server_name: raw.server_name.unwrap_or_else(|| "tether".to_string()),
        workers,
        access_log: raw.access_log.unwrap_or_else(|| "off".into()),
        max_connections: raw.max_connections.unwrap_or(0),
        max_connections_per_ip,
        store,
        listeners,
        brokers,
        session_log: None,
        ops,
        acme,
    })
}

/// The metrics listener: `/api` answers eXpServer's metrics JSON, `/metrics` Prometheus text.
pub(crate) fn metrics_listener(listen: SocketAddr) -> ListenerSpec {
    let route = |path: &str, format| Route {
        path: path.into(),
        action: Action::Status(format),
        acl: Acl::default(),
        max_body: None,
        ports: None,
    };
    let host = VirtualHost {
        hostnames: Vec::new(),
        routes: vec![
            route("/api", StatusFormat::Json),
            route("/metrics", StatusFormat::Prometheus),
        ],
    };
    ListenerSpec {
        listen,
        target: Target::Http(Arc::new(Router { hosts: vec![host] })),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        header_timeout: Duration::from_millis(HEADER_TIMEOUT_MS),
        tunnel_timeout: Duration::from_secs(600),
        front: Front::default(),
    }
}

fn check_listener(
    l: RawListener,
    span: Range<usize>,
    acme: Option<&Arc<crate::acme::Acme>>,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<ListenerSpec, ConfigError> {
    let listen = l.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
        at(
            l.listen.span(),
            format!("`listen`: not an address:port: {:?}", l.listen.get_ref()),
        )
    })?;
    let part = tls::part(
        &l.tls,
        acme,
        l.proxy_protocol,
        l.redirect_http,
        l.hsts,
        l.protocol == Protocol::Http,
        l.http2,
        span.clone(),
        at,
    )?;
    if l.protocol == Protocol::Tcp && (part.redirect_https.is_some() || part.hsts.is_some()) {
        return Err(at(
            span,
            "`redirect_http` and `hsts` are for http listeners".into(),
        ));
    }
    if let (Protocol::Tcp, Some(h)) = (l.protocol, &l.header_timeout_ms) {
        return Err(at(
            h.span(),
            "`header_timeout_ms` is for http listeners".into(),
        ));
    }
    let front = tls::merge(vec![part], listen, at)?;
    let targets = [l.upstream.is_some(), l.root.is_some(), l.file.is_some()];
    if targets.iter().filter(|&&t| t).count() != 1 {
        return Err(at(
            span,
            "a listener needs exactly one of `upstream`, `root`, `file`".into(),
        ));
    }
    let send_proxy = match (&l.send_proxy, l.protocol, &l.upstream) {
        (Some(v), Protocol::Http, _) | (Some(v), _, None) => {
            return Err(at(
                v.span(),
                "`send_proxy` on a listener is for a tcp `upstream` (an http one: set it on \
                 an [[upstream]])"
                    .into(),
            ))
        }
        _ => upstream::send_proxy(l.send_proxy, at)?,
    };
    let target = match (l.protocol, l.upstream, l.root, l.file) {
        (proto, Some(up), _, _) => {
            let addr =
                resolve(up.get_ref()).map_err(|m| at(up.span(), format!("`upstream`: {m}")))?;
            if proto == Protocol::Tcp {
                Target::TcpUpstream(addr, send_proxy)
            } else {
                let server = tether_balance::ServerConfig::new(up.get_ref().clone(), addr);
                let pool = tether_balance::Pool::new(up.get_ref(), &[server], Default::default())
                    .map_err(|e| at(up.span(), format!("`upstream`: {e}")))?;
                let upstream = crate::upstream::Upstream::plain(pool);
                Target::Http(Arc::new(Router::single(Action::Proxy(Arc::new(upstream)))))
            }
        }
        (Protocol::Http, None, Some(root), _) => {
            let files = FileOptions::new(PathBuf::from(root.into_inner()));
            Target::Http(Arc::new(Router::single(Action::Files(Arc::new(files)))))
        }
        (Protocol::Tcp, None, None, Some(file)) => {
            Target::TcpFile(PathBuf::from(file.into_inner()))
        }
        (Protocol::Tcp, None, Some(root), _) => {
            return Err(at(
                root.span(),
                "`root` needs protocol = \"http\" (tcp serves one `file`)".into(),
            ))
        }
        (Protocol::Http, None, None, Some(file)) => {
            return Err(at(
                file.span(),
                "`file` needs protocol = \"tcp\" (http serves a `root`)".into(),
            ))
        }
        (_, None, None, None) => unreachable!("checked above: exactly one target"),
    };
    let ms = |v: Option<Spanned<u64>>, default: u64, key: &str| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(Duration::from_millis(default)),
            Some(v) if *v.get_ref() == 0 => Err(at(v.span(), format!("`{key}` must be above 0"))),
            Some(v) => Ok(Duration::from_millis(*v.get_ref())),
        }
    };
    let idle_default = if l.protocol == Protocol::Tcp {
        600_000
    } else {
        60_000
    };
    Ok(ListenerSpec {
        listen,
        target,
        connect_timeout: ms(l.connect_timeout_ms, 5_000, "connect_timeout_ms")?,
        idle_timeout: ms(l.idle_timeout_ms, idle_default, "idle_timeout_ms")?,
        header_timeout: ms(l.header_timeout_ms, HEADER_TIMEOUT_MS, "header_timeout_ms")?,
        tunnel_timeout: ms(l.tunnel_timeout_ms, 600_000, "tunnel_timeout_ms")?,
        front,
    })
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
