//! eXpServer's `xps_config.json`, read as it is: `server_name`, `workers`,
//! `servers[].listeners[{host, port}]`, `hostnames`, `routes[]` with `req_path`, `type`
//! (`file_serve`, `reverse_proxy`, `redirect`), `dir_path`, `index`, `upstreams`,
//! `load_balancing` (`round_robin`, `ip_hash`), `http_status_code`, `redirect_url`,
//! `ip_whitelist`, `ip_blacklist`, `gzip_enable`, `gzip_level`, `gzip_mime_types`.
//! Unknown keys are refused with `path:line:col` (serde_json reports the position).
//! Relative paths are taken from the working directory, as eXpServer does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::servers::{group, Timeouts};
use super::{metrics_listener, resolve, ConfigError, Settings};
use crate::router::{Acl, Action, Cidr, Route, VirtualHost};
use crate::static_files::FileOptions;
use crate::upstream::Upstream;
use tether_balance::{PolicyKind, Pool as BalancePool, PoolOptions, ServerConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XpsConfig {
    server_name: Option<String>,
    workers: Option<u32>,
    #[serde(default)]
    servers: Vec<XpsServer>,
    /// tether's addition: where the metrics listener (`/api`, `/metrics`) listens, or
    /// `false` for none. Absent: 127.0.0.1:8004, where eXpServer's dashboard looks.
    #[serde(default)]
    metrics: Option<XpsMetrics>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum XpsMetrics {
    Off(bool),
    At(XpsListener),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XpsServer {
    #[serde(default)]
    listeners: Vec<XpsListener>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    routes: Vec<XpsRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XpsListener {
    host: String,
    port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XpsRoute {
    req_path: String,
    #[serde(rename = "type")]
    kind: String,
    dir_path: Option<String>,
    index: Option<Vec<String>>,
    upstreams: Option<Vec<String>>,
    load_balancing: Option<String>,
    http_status_code: Option<u16>,
    redirect_url: Option<String>,
    ip_whitelist: Option<Vec<String>>,
    ip_blacklist: Option<Vec<String>>,
    gzip_enable: Option<bool>,
    gzip_level: Option<u32>,
    gzip_mime_types: Option<Vec<String>>,
}

pub(super) fn parse(text: &str, name: &str) -> Result<Settings, ConfigError> {
    let err = |line: usize, col: usize, message: String| ConfigError {
        path: name.to_string(),
        line,
        col,
        message,
    };
    let cfg: XpsConfig = serde_json::from_str(text)
        .map_err(|e| err(e.line().max(1), e.column().max(1), strip_position(&e)))?;
    let mut entries = Vec::new();
    for (si, s) in cfg.servers.into_iter().enumerate() {
        let mut routes = Vec::new();
        for (ri, r) in s.routes.into_iter().enumerate() {
            let here = format!("servers[{si}].routes[{ri}]");
            routes.push(route(r).map_err(|m| err(1, 1, format!("{here}: {m}")))?);
        }
        let host = VirtualHost {
            hostnames: s.hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            routes,
        };
        for (li, l) in s.listeners.iter().enumerate() {
            let addr = resolve(&format!("{}:{}", l.host, l.port))
                .map_err(|m| err(1, 1, format!("servers[{si}].listeners[{li}]: {m}")))?;
            entries.push((
                addr,
                0..0,
                host.clone(),
                Timeouts::default(),
                Default::default(),
            ));
        }
    }
    let workers = match cfg.workers {
        None | Some(0) => 1,
        Some(n) => n.min(1024) as usize,
    };
    let mut listeners: Vec<_> = group(entries, &|_, m| err(1, 1, m))?
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let metrics = match cfg.metrics {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8004))),
        Some(XpsMetrics::Off(false)) => None,
        Some(XpsMetrics::Off(true)) => Some(SocketAddr::from(([127, 0, 0, 1], 8004))),
        Some(XpsMetrics::At(l)) => Some(
            resolve(&format!("{}:{}", l.host, l.port))
                .map_err(|m| err(1, 1, format!("metrics: {m}")))?,
        ),
    };
    if let Some(addr) = metrics.filter(|a| !listeners.iter().any(|l| l.listen.port() == a.port())) {
        listeners.push(metrics_listener(addr));
    }
    Ok(Settings {
        server_name: cfg.server_name.unwrap_or_else(|| "tether".into()),
        workers,
        access_log: "off".into(),
        max_connections: 0,
        max_connections_per_ip: None,
        store: "memory".into(),
        brokers: Vec::new(),
        session_log: None,
        listeners,
        ops: super::Ops::default(),
        acme: None,
    })
}

/// serde_json's message without its trailing " at line L column C" (we print our own).
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn route(r: XpsRoute) -> Result<Route, String> {
    if !r.req_path.starts_with('/') {
        return Err(format!("`req_path` must start with '/': {:?}", r.req_path));
    }
    let action = match r.kind.as_str() {
        "file_serve" => {
            let dir = r.dir_path.ok_or("a file_serve route needs `dir_path`")?;
            let mut files = FileOptions::new(PathBuf::from(dir));
            if let Some(index) = r.index {
                files.index = index;
            }
            files.gzip = r.gzip_enable.unwrap_or(false);
            if let Some(level) = r.gzip_level {
                files.gzip_level = level.min(9);
            }
            if let Some(types) = r.gzip_mime_types {
                files.gzip_types = types;
            }
            Action::Files(Arc::new(files))
        }
        "reverse_proxy" => {
            let ups = r
                .upstreams
                .ok_or("a reverse_proxy route needs `upstreams`")?;
            if ups.is_empty() {
                return Err("`upstreams` is empty".into());
            }
            let servers = ups
                .iter()
                .map(|u| resolve(u).map(|a| ServerConfig::new(u.clone(), a)))
                .collect::<Result<Vec<_>, _>>()?;
            let lb = r.load_balancing.as_deref().unwrap_or("round_robin");
            let policy = match lb {
                "round_robin" => PolicyKind::RoundRobin,
                "ip_hash" => PolicyKind::ip_hash(),
                _ => {
                    return Err(format!(
                        "`load_balancing`: {lb:?} is not round_robin or ip_hash"
                    ))
                }
            };
            let options = PoolOptions {
                policy,
                ..PoolOptions::default()
            };
            let pool =
                BalancePool::new(&r.req_path, &servers, options).map_err(|e| e.to_string())?;
            Action::Proxy(Arc::new(Upstream::plain(pool)))
        }
        "redirect" => {
            let status = r.http_status_code.unwrap_or(302);
            if !(300..400).contains(&status) {
                return Err(format!(
                    "`http_status_code` of a redirect must be 3xx, not {status}"
                ));
            }
            let location = r
                .redirect_url
                .ok_or("a redirect route needs `redirect_url`")?;
            Action::Redirect { status, location }
        }
        other => {
            return Err(format!(
                "`type`: {other:?} is not file_serve, reverse_proxy or redirect"
            ))
        }
    };
    let cidrs = |list: Option<Vec<String>>| -> Result<Vec<Cidr>, String> {
        list.unwrap_or_default()
            .iter()
            .map(|c| Cidr::parse(c))
            .collect()
    };
    let acl = Acl {
        allow: cidrs(r.ip_whitelist)?,
        deny: cidrs(r.ip_blacklist)?,
    };
    Ok(Route {
        path: r.req_path,
        action,
        acl,
        max_body: None,
        ports: None,
    })
}
