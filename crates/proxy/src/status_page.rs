//! The proxy's own status page, a `status_page = "html"` route: one HTML page (no script,
//! no external resource) that reloads itself every `REFRESH_SECS` with a
//! `<meta http-equiv='refresh'>`, showing
//! - the process: server name, pid, uptime, workers, connections;
//! - requests: total, in flight, by kind of route, and responses by status class;
//! - the listeners: address, TLS or not, what they serve (routes and their actions);
//! - each upstream pool: its policy and affinity, the affinity hits (pinned server kept),
//!   misses (no usable pin: balanced afresh) and re-pins, then a row per server with its
//!   health, weight, active connections, drain and backup marks.
//!
//! It reads what the JSON already exposes (`metrics::Registry::snapshot`, the pools of
//! `admin::ConfiguredPools`) plus the pools' affinity counts (`Pool::affinity_stats`).
//! `Topology` is made once from the runtime (`Shared::open`) and kept beside the registry.

use std::fmt::Write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tether_http::html_escape;

use tether_balance::policy::Policy;

use crate::metrics::{Registry, Snapshot};
use crate::router::Action;
use crate::runtime::Runtime;
use crate::upstream::{Affinity, Upstream};
use tether_config::acl::StatusFormat;
use tether_config::Target;

/// The page reloads itself this often.
pub const REFRESH_SECS: u64 = 5;

/// What the page lists besides the counters: the listeners and the pools, from the
/// runtime the workers run.
#[derive(Debug, Default)]
pub struct Topology {
    listeners: Vec<ListenerRow>,
    pools: Vec<Arc<Upstream>>,
}

#[derive(Debug)]
struct ListenerRow {
    listen: SocketAddr,
    tls: bool,
    /// `tcp tunnel to …`, `tcp file …`, or `http` with its routes.
    serves: String,
    routes: Vec<String>,
}

impl Topology {
    pub fn from_runtime(runtime: &Runtime) -> Topology {
        let listeners = runtime
            .listeners()
            .iter()
            .map(|l| {
                let (serves, routes) = match (&l.spec.target, &l.router) {
                    (Target::TcpUpstream(a, _), _) => (format!("tcp tunnel to {a}"), Vec::new()),
                    (Target::TcpFile(p), _) => (format!("tcp file {}", p.display()), Vec::new()),
                    (Target::Http(_), None) => ("http".to_string(), Vec::new()),
                    (Target::Http(_), Some(r)) => {
                        let routes = r
                            .hosts
                            .iter()
                            .flat_map(|h| {
                                let host = if h.hostnames.is_empty() {
                                    "*".to_string()
                                } else {
                                    h.hostnames.join(" ")
                                };
                                h.routes.iter().map(move |route| {
                                    format!("{host} {} → {}", route.path, action(&route.action))
                                })
                            })
                            .collect();
                        ("http".to_string(), routes)
                    }
                };
                ListenerRow {
                    listen: l.spec.listen,
                    tls: l.tls.is_some(),
                    serves,
                    routes,
                }
            })
            .collect();
        Topology {
            listeners,
            pools: runtime.pools().to_vec(),
        }
    }
}

fn action(a: &Action) -> String {
    match a {
        Action::Proxy(up) => format!("upstream {}", up.name()),
        Action::Files(f) => format!("files {}", f.root.display()),
        Action::Redirect { status, location } => format!("redirect {status} {location}"),
        Action::Status(StatusFormat::Json) => "status (json)".into(),
        Action::Status(StatusFormat::Prometheus) => "status (prometheus)".into(),
        Action::Status(StatusFormat::Html) => "status (html)".into(),
        Action::Broker(name) => format!("broker {name}"),
        Action::NotFound => "port rewrite only".into(),
    }
}

/// The body and content type of a `status_page` route.
pub fn body(
    format: StatusFormat,
    registry: &Registry,
    topology: &Topology,
) -> (String, &'static str) {
    match format {
        StatusFormat::Json => (registry.json(), "application/json"),
        StatusFormat::Prometheus => (registry.prometheus(), "text/plain; version=0.0.4"),
        StatusFormat::Html => {
            let mut page = render(&registry.snapshot(), topology, Instant::now());
            if let Some(store) = registry.store_json() {
                let end = page.rfind("</body>").unwrap_or(page.len());
                page.insert_str(end, &store_table(&store));
            }
            (page, "text/html; charset=utf-8")
        }
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #ccc;padding:.3em .8em;text-align:left}\
th{background:#eee}td.n{text-align:right}\
.up{color:#080;font-weight:bold}.down{color:#c00;font-weight:bold}\
.draining{color:#b60}small{color:#666}";

/// The whole page.
pub fn render(s: &Snapshot, t: &Topology, now: Instant) -> String {
    let mut h = String::with_capacity(4096);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'/>\
         <meta http-equiv='refresh' content='{REFRESH_SECS}'/>\
         <title>{name} status</title><style>{STYLE}</style></head>\n<body>\
         <h1>{name} status</h1>\n<p id='process'>pid {pid}, up {up}, {workers} worker{ws}; \
         {open} connection{os} open, {acc} accepted. <small>Reloads every {REFRESH_SECS} s.\
         </small></p>\n",
        name = html_escape(&s.server_name),
        pid = s.pid,
        up = uptime(s.uptime_msec),
        workers = s.workers,
        ws = plural(s.workers),
        open = s.conn_current,
        os = plural(s.conn_current),
        acc = s.conn_accepted,
    );
    requests(&mut h, s);
    listeners(&mut h, t);
    pools(&mut h, t, now);
    h.push_str("</body></html>\n");
    h
}

/// The affinity store's state (`Registry::store_json`) as a table.
fn store_table(store: &serde_json::Value) -> String {
    let up = store["up"].as_bool().unwrap_or(true);
    let since = store["seconds_since_last_answer"]
        .as_f64()
        .map_or("-".to_string(), |s| format!("{s:.1} s"));
    format!(
        "<h2>Affinity store</h2>\n<table id='store'><tr><th>kind</th><th>state</th>\
         <th>last answer</th><th>queued writes</th><th>dropped writes</th><th>outages</th></tr>\
         <tr><td>{kind}</td><td class='{class}'>{state}</td><td class='n'>{since}</td>\
         <td class='n'>{queued}</td><td class='n'>{dropped}</td><td class='n'>{outages}</td></tr>\
         </table>\n",
        kind = html_escape(store["kind"].as_str().unwrap_or("")),
        class = if up { "up" } else { "down" },
        state = if up { "up" } else { "down" },
        queued = store["queued_writes"].as_u64().unwrap_or(0),
        dropped = store["dropped_writes"].as_u64().unwrap_or(0),
        outages = store["outages"].as_u64().unwrap_or(0),
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn uptime(ms: u64) -> String {
    let secs = ms / 1000;
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn requests(h: &mut String, s: &Snapshot) {
    let other = s
        .req_total
        .saturating_sub(s.req_file_serve + s.req_reverse_proxy + s.req_redirect);
    let _ = write!(
        h,
        "<h2>Requests</h2>\n<table id='requests'><thead><tr><th>total</th><th>in flight</th>\
         <th>proxied</th><th>files</th><th>redirects</th><th>other</th><th>2xx</th>\
         <th>3xx</th><th>4xx</th><th>5xx</th><th>avg time</th><th>peak time</th></tr></thead>\
         <tbody><tr><td class='n'>{}</td><td class='n'>{}</td><td class='n'>{}</td>\
         <td class='n'>{}</td><td class='n'>{}</td><td class='n'>{other}</td>\
         <td class='n'>{}</td><td class='n'>{}</td><td class='n'>{}</td><td class='n'>{}</td>\
         <td class='n'>{} ms</td><td class='n'>{} ms</td></tr></tbody></table>\n",
        s.req_total,
        s.req_current,
        s.req_reverse_proxy,
        s.req_file_serve,
        s.req_redirect,
        s.res_code_2xx,
        s.res_code_3xx,
        s.res_code_4xx,
        s.res_code_5xx,
        s.res_avg_res_time_msec,
        s.res_peak_res_time_msec,
    );
}

fn listeners(h: &mut String, t: &Topology) {
    h.push_str(
        "<h2>Listeners</h2>\n<table id='listeners'><thead><tr><th>address</th><th>TLS</th>\
         <th>serves</th></tr></thead><tbody>\n",
    );
    for l in &t.listeners {
        let routes: Vec<String> = l.routes.iter().map(|r| html_escape(r)).collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}{}{}</td></tr>",
            l.listen,
            if l.tls { "yes" } else { "no" },
            html_escape(&l.serves),
            if routes.is_empty() {
                ""
            } else {
                "<br/><small>"
            },
            if routes.is_empty() {
                String::new()
            } else {
                routes.join("<br/>") + "</small>"
            },
        );
    }
    h.push_str("</tbody></table>\n");
}

fn policy(p: &Policy) -> &'static str {
    match p {
        Policy::RoundRobin(_) => "round_robin",
        Policy::LeastConnections(_) => "least_connections",
        Policy::IpHash(_) => "ip_hash",
    }
}

fn affinity(a: &Affinity) -> &'static str {
    match a {
        Affinity::None => "none",
        Affinity::Cookie(_) => "cookie",
        Affinity::SessionId(_) => "session_id",
        Affinity::Learn(_) => "learn",
    }
}

fn pools(h: &mut String, t: &Topology, now: Instant) {
    h.push_str("<h2>Upstream pools</h2>\n");
    if t.pools.is_empty() {
        h.push_str("<p>No route proxies to an upstream.</p>\n");
    }
    for up in &t.pools {
        let st = up.pool.affinity_stats();
        let name = html_escape(up.name());
        let _ = write!(
            h,
            "<h3>{name}</h3>\n<p class='pool'>balance {}, affinity {}",
            policy(up.pool.policy()),
            affinity(&up.affinity),
        );
        if matches!(up.affinity, Affinity::None) {
            let _ = writeln!(h, "; {} balanced.</p>", st.balanced);
        } else {
            let _ = writeln!(
                h,
                ": <span class='hits'>{} hits</span>, <span class='misses'>{} misses</span>, \
                 <span class='repins'>{} re-pins</span>, {} refused.</p>",
                st.kept, st.balanced, st.repinned, st.refused
            );
        }
        let _ = writeln!(
            h,
            "<table class='servers' data-pool='{name}'><thead><tr><th>server</th>\
             <th>address</th><th>health</th><th>weight</th><th>active</th><th>drain</th>\
             </tr></thead><tbody>"
        );
        for s in up.pool.servers().iter() {
            let health = if s.is_available(now) {
                "<td class='up'>up</td>"
            } else if s.health().is_check_up() {
                "<td class='down'>ejected</td>"
            } else {
                "<td class='down'>down</td>"
            };
            let leaving = s.leaving().map(|at| {
                format!(
                    "<td class='draining'>leaving ({}), {} ms left</td>",
                    s.origin(),
                    at.saturating_duration_since(now).as_millis()
                )
            });
            let drain = if let Some(l) = &leaving {
                l.as_str()
            } else if s.is_draining() {
                "<td class='draining'>draining</td>"
            } else {
                "<td>no</td>"
            };
            let _ = writeln!(
                h,
                "<tr><td>{}{}</td><td>{}</td>{health}<td class='n'>{}</td>\
                 <td class='n'>{}</td>{drain}</tr>",
                html_escape(s.id()),
                match (s.is_backup(), s.origin()) {
                    (true, tether_balance::Origin::Config) => " <small>backup</small>".into(),
                    (true, o) => format!(" <small>backup, {o}</small>"),
                    (false, tether_balance::Origin::Config) => String::new(),
                    (false, o) => format!(" <small>{o}</small>"),
                },
                s.addr(),
                s.weight(),
                s.active(),
            );
        }
        h.push_str("</tbody></table>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_pools_and_counters() {
        let text = "[[upstream]]\nname = \"app\"\nbalance = \"cookie\"\n\
                    keys = [\"a passphrase for the status page test\"]\n\
                    servers = [\"127.0.0.1:3000\", \"127.0.0.1:3001\"]\n\
                    [[server]]\nlisten = [\"127.0.0.1:8080\"]\n\
                    [[server.route]]\npath = \"/\"\nproxy = \"app\"\n\
                    [[server.route]]\npath = \"/status\"\nstatus_page = \"html\"\n";
        let settings = tether_config::parse(text, "t.toml");
        let settings = match settings {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let runtime = match Runtime::build(&settings) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let t = Topology::from_runtime(&runtime);
        let up = &t.pools[0];
        let now = Instant::now();
        assert!(up.pool.select(None, now).is_some());
        if let Some(s) = up.pool.server("127.0.0.1:3001") {
            s.set_drain(true);
        }
        let snap = Snapshot {
            server_name: "tether<1>".into(),
            req_total: 7,
            res_code_2xx: 5,
            res_code_5xx: 2,
            ..Snapshot::default()
        };
        let h = render(&snap, &t, now);
        assert!(
            h.contains("<meta http-equiv='refresh' content='5'/>"),
            "{h}"
        );
        assert!(h.contains("<title>tether&lt;1&gt; status</title>"), "{h}");
        assert!(
            h.contains("<td>127.0.0.1:8080</td><td>no</td><td>http"),
            "{h}"
        );
        assert!(h.contains("* /status → status (html)"), "{h}");
        assert!(h.contains("balance round_robin, affinity cookie: "), "{h}");
        assert!(h.contains("<span class='misses'>1 misses</span>"), "{h}");
        assert!(
            h.contains("<td class='n'>1</td><td class='draining'>draining</td></tr>")
                || h.contains("<td class='n'>0</td><td class='draining'>draining</td></tr>"),
            "{h}"
        );
        assert!(h.contains("<td class='up'>up</td>"), "{h}");
        assert!(
            h.contains("<td class='n'>7</td><td class='n'>0</td>"),
            "requests row: {h}"
        );
    }
}
