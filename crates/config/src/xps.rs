//! eXpServer's `xps_config.json`, read as it is: `server_name`, `workers`,
//! `servers[].listeners[{host, port}]`, `hostnames`, `routes[]` with `req_path`, `type`
//! (`file_serve`, `reverse_proxy`, `redirect`), `dir_path`, `index`, `upstreams`,
//! `load_balancing` (`round_robin`, `ip_hash`), `http_status_code`, `redirect_url`,
//! `ip_whitelist`, `ip_blacklist`, `gzip_enable`, `gzip_level`, `gzip_mime_types`.
//! Unknown keys and syntax errors are refused at serde_json's `path:line:col`; the checks
//! here report theirs at the value at fault (the route, its `type`, `upstreams[1]`, a
//! listener's `host` or `port`), found by path in `json_pos.rs`.
//! Relative paths are taken from the working directory, as eXpServer does.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::json_pos::{key, Positions, Step};
use super::servers::{group, Timeouts};
use super::spec::{ActionSpec, HostSpec, Pos, RouteSpec, UpstreamId, UpstreamSpec};
use super::{line_col, metrics_listener, resolve, ConfigError, Settings};
use crate::acl::{Acl, Cidr};
use tether_balance::{PolicyKind, Pool, PoolOptions, ServerConfig};
use tether_files::FileOptions;

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
    let cfg: XpsConfig = serde_json::from_str(text).map_err(|e| ConfigError {
        path: name.to_string(),
        line: e.line().max(1),
        col: e.column().max(1),
        message: crate::hints::with_hint(&strip_position(&e)),
    })?;
    // serde_json keeps no positions: the checks below name the value at fault by its path.
    let positions = Positions::scan(text);
    let at_offset = |offset: usize, message: String| {
        let (line, col) = line_col(text, offset);
        ConfigError {
            path: name.to_string(),
            line,
            col,
            message,
        }
    };
    let at = |path: &[Step], message: String| at_offset(positions.offset(path), message);
    let mut entries = Vec::new();
    let mut upstreams = Vec::new();
    for (si, s) in cfg.servers.into_iter().enumerate() {
        let server = [key("servers"), Step::Index(si)];
        let mut routes = Vec::new();
        for (ri, r) in s.routes.into_iter().enumerate() {
            let here = format!("servers[{si}].routes[{ri}]");
            let place = [&server[..], &[key("routes"), Step::Index(ri)]].concat();
            let pool_at = [&place[..], &[key("upstreams")]].concat();
            let pos = Pos::of(&at(&pool_at, String::new()));
            routes.push(route(r, &mut upstreams, pos).map_err(|(inner, m)| {
                at(&[&place[..], &inner[..]].concat(), format!("{here}: {m}"))
            })?);
        }
        let host = HostSpec {
            hostnames: s.hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            routes,
        };
        // Servers sharing an address are virtual hosts of one listener (`group`); one server
        // naming an address twice is a mistake, reported at the second.
        let mut seen: Vec<(SocketAddr, usize)> = Vec::new();
        for (li, l) in s.listeners.iter().enumerate() {
            let here = format!("servers[{si}].listeners[{li}]");
            let place = [&server[..], &[key("listeners"), Step::Index(li)]].concat();
            let field = |k: &str| [&place[..], &[key(k)]].concat();
            let addr = listen_addr(l).map_err(|m| at(&field("host"), format!("{here}: {m}")))?;
            if let Some((_, first)) = seen.iter().find(|(a, _)| *a == addr) {
                return Err(at(
                    &field("port"),
                    format!("{here}: {addr} is already servers[{si}].listeners[{first}]"),
                ));
            }
            seen.push((addr, li));
            let offset = positions.offset(&field("port"));
            entries.push((
                addr,
                offset..offset,
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
    let mut listeners: Vec<_> = group(entries, &|span, m| at_offset(span.start, m))?
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    let metrics = match cfg.metrics {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8004))),
        Some(XpsMetrics::Off(false)) => None,
        Some(XpsMetrics::Off(true)) => Some(SocketAddr::from(([127, 0, 0, 1], 8004))),
        Some(XpsMetrics::At(l)) => Some(
            listen_addr(&l)
                .map_err(|m| at(&[key("metrics"), key("host")], format!("metrics: {m}")))?,
        ),
    };
    if let Some(addr) = metrics.filter(|a| !listeners.iter().any(|l| l.listen.port() == a.port())) {
        listeners.push(metrics_listener(addr));
    }
    Ok(Settings {
        server_name: cfg.server_name.unwrap_or_else(|| "tether".into()),
        workers,
        access_log: crate::access_log::AccessLogSpec::off(),
        max_connections: 0,
        max_connections_per_ip: None,
        store: "memory".into(),
        store_spec: Default::default(),
        on_store_error: Default::default(),
        pid_file: None,
        brokers: Vec::new(),
        session_log: None,
        listeners,
        upstreams,
        ops: super::Ops::default(),
        acme: None,
    })
}

/// The address of `{host, port}`.
fn listen_addr(l: &XpsListener) -> Result<SocketAddr, String> {
    resolve(&format!("{}:{}", l.host, l.port))
}

/// serde_json's message without its trailing " at line L column C" (we print our own).
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A mistake in a route: the path of the value at fault inside the route object (empty: the
/// object itself, as for a missing key), and what is wrong.
type Fault = (Vec<Step>, String);

fn fault(path: &[Step], message: impl Into<String>) -> Fault {
    (path.to_vec(), message.into())
}

/// Check one route; the pool of a `reverse_proxy` one is added to `upstreams` (`pos`: where
/// its `upstreams` are written).
fn route(r: XpsRoute, upstreams: &mut Vec<UpstreamSpec>, pos: Pos) -> Result<RouteSpec, Fault> {
    if !r.req_path.starts_with('/') {
        return Err(fault(
            &[key("req_path")],
            format!("`req_path` must start with '/': {:?}", r.req_path),
        ));
    }
    let action = match r.kind.as_str() {
        "file_serve" => {
            let dir = r
                .dir_path
                .ok_or_else(|| fault(&[], "a file_serve route needs `dir_path`"))?;
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
            ActionSpec::Files(files)
        }
        "reverse_proxy" => {
            let ups = r
                .upstreams
                .ok_or_else(|| fault(&[], "a reverse_proxy route needs `upstreams`"))?;
            if ups.is_empty() {
                return Err(fault(&[key("upstreams")], "`upstreams` is empty"));
            }
            let servers = ups
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    resolve(u)
                        .map(|a| ServerConfig::new(u.clone(), a))
                        .map_err(|m| fault(&[key("upstreams"), Step::Index(i)], m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let lb = r.load_balancing.as_deref().unwrap_or("round_robin");
            let policy = match lb {
                "round_robin" => PolicyKind::RoundRobin,
                "ip_hash" => PolicyKind::ip_hash(),
                _ => {
                    return Err(fault(
                        &[key("load_balancing")],
                        format!("`load_balancing`: {lb:?} is not round_robin or ip_hash"),
                    ))
                }
            };
            let mut spec = UpstreamSpec::plain(&r.req_path, servers, pos);
            spec.options = PoolOptions {
                policy,
                ..PoolOptions::default()
            };
            Pool::validate(&spec.servers, &spec.options)
                .map_err(|e| fault(&[key("upstreams")], e.to_string()))?;
            upstreams.push(spec);
            ActionSpec::Proxy(UpstreamId(upstreams.len() - 1))
        }
        "redirect" => {
            let status = r.http_status_code.unwrap_or(302);
            if !(300..400).contains(&status) {
                return Err(fault(
                    &[key("http_status_code")],
                    format!("`http_status_code` of a redirect must be 3xx, not {status}"),
                ));
            }
            let location = r
                .redirect_url
                .ok_or_else(|| fault(&[], "a redirect route needs `redirect_url`"))?;
            ActionSpec::Redirect { status, location }
        }
        other => {
            return Err(fault(
                &[key("type")],
                format!("`type`: {other:?} is not file_serve, reverse_proxy or redirect"),
            ))
        }
    };
    let cidrs = |list: Option<Vec<String>>, field: &str| -> Result<Vec<Cidr>, Fault> {
        list.unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| Cidr::parse(c).map_err(|m| fault(&[key(field), Step::Index(i)], m)))
            .collect()
    };
    let acl = Acl {
        allow: cidrs(r.ip_whitelist, "ip_whitelist")?,
        deny: cidrs(r.ip_blacklist, "ip_blacklist")?,
    };
    Ok(RouteSpec {
        path: r.req_path,
        action,
        acl,
        max_body: None,
        ports: None,
        rules: Default::default(),
        access: Default::default(),
        encode: None,
        access_log: None,
    })
}
