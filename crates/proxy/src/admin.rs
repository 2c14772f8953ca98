//! The admin listener's session, served by a worker's event loop (so a hung loop fails the
//! heartbeat): one request per connection, answered and closed.
//!
//! - `GET /healthz` → `200 ok` with no key: the supervisor's heartbeat.
//! - everything under `/admin/` needs `Authorization: Bearer <key>` (compared in constant
//!   time); missing or wrong: `401` and a log line.
//!   - `POST /admin/shutdown`, `POST /admin/restart`, `POST /admin/reload`: handed to the
//!     process through [`AdminControl`] (the binary implements it: the supervised worker
//!     asks its master, a lone worker drains itself);
//!   - `POST /admin/drain/<pool>/<server>`: through [`PoolControl`] (`404` for an unknown
//!     pool or server); `DELETE /admin/drain/<pool>/<server>` undrains it;
//!   - `POST /admin/servers/<pool>?addr=..`, `DELETE /admin/servers/<pool>/<server>`,
//!     `PUT /admin/servers/<pool>/<server>?weight=N`: servers changed at run time, through
//!     [`PoolControl`] (`admin_servers.rs`);
//!   - `GET /admin/status`: JSON, [`AdminControl::status`] plus `"pools"`.
//!
//! Every answer under `/admin/` is a JSON object of named fields: a text reply becomes
//! `{"status": <code>, "message": "<text>"}` (`/healthz` stays the heartbeat's `ok`).
//! Every action (anything but `GET /admin/status`) is logged with the caller's address and
//! what changed. The key is never logged here; the session only compares it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;
use tether_core::{ConnId, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};
use tether_http::{parse_request, Limits, Method, Parsed, RequestHead};

use crate::runtime::Runtime;
use crate::upstream::Upstream;
use tether_http::reply;

/// A request must arrive whole within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The timer key of `HEAD_TIMEOUT` (the session's only timer).
const KEY_HEAD: u64 = 0;

/// What an admin action answers: a status and a short text (or JSON) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }
}

/// The process side of the admin API. Called on the event-loop thread: must not block.
pub trait AdminControl: Send + Sync {
    /// `POST /admin/shutdown`: stop gracefully.
    fn shutdown(&self) -> Reply;
    /// `POST /admin/restart`: replace the worker.
    fn restart(&self) -> Reply;
    /// `POST /admin/reload`: re-read the config.
    fn reload(&self) -> Reply;
    /// `GET /admin/status`: fields about the processes (`"pools"` is added to them).
    fn status(&self) -> Map<String, Value>;
}

/// The pools side: marking a server draining (no new sessions), and the pools' state.
pub trait PoolControl: Send + Sync {
    /// `POST /admin/drain/<pool>/<server>` (`drain`) and `DELETE` (`!drain`): `404` for an
    /// unknown pool or server.
    fn drain(&self, pool: &str, server: &str, drain: bool) -> Reply;
    /// The `"pools"` of `/admin/status`.
    fn pools(&self) -> Value;
    /// `POST /admin/servers/<pool>?addr=..`: add a server (`admin_servers.rs`).
    fn add_server(&self, pool: &str, _query: &str) -> Reply {
        Reply::new(404, format!("no pool {pool:?}\n"))
    }
    /// `DELETE /admin/servers/<pool>/<server>`: the server leaves (drained, then dropped).
    fn remove_server(&self, pool: &str, _server: &str) -> Reply {
        Reply::new(404, format!("no pool {pool:?}\n"))
    }
    /// `PUT /admin/servers/<pool>/<server>?weight=N`.
    fn set_weight(&self, pool: &str, _server: &str, _query: &str) -> Reply {
        Reply::new(404, format!("no pool {pool:?}\n"))
    }
    /// The `"certificates"` of `/admin/status`: each listener certificate's names and
    /// expiry.
    fn certificates(&self) -> Value {
        Value::Array(Vec::new())
    }
}

/// What every admin session of a listener shares.
pub struct Admin {
    /// The bearer key; `None`: every `/admin/` request is refused.
    key: Option<Vec<u8>>,
    server: Arc<str>,
    control: Arc<dyn AdminControl>,
    pools: Arc<dyn PoolControl>,
}

impl Admin {
    pub fn new(
        key: Option<String>,
        server: &str,
        control: Arc<dyn AdminControl>,
        pools: Arc<dyn PoolControl>,
    ) -> Arc<Admin> {
        Arc::new(Admin {
            key: key.map(String::into_bytes),
            server: Arc::from(server),
            control,
            pools,
        })
    }

    /// Whether `header` (an `Authorization` value) carries the key.
    fn authorized(&self, header: Option<&[u8]>) -> bool {
        let (Some(key), Some(h)) = (self.key.as_deref(), header) else {
            return false;
        };
        let Some(given) = bearer(h) else {
            return false;
        };
        // Lengths differ: refused at once (the key's length is no secret).
        given.ct_eq(key).into()
    }

    /// Answer one complete request.
    fn answer(&self, req: &RequestHead, peer: Option<SocketAddr>) -> Reply {
        let path = req.path();
        let m = req.method;
        if path == "/healthz" {
            return match m {
                Method::Get | Method::Head => Reply::new(200, "ok\n"),
                _ => Reply::new(405, "GET /healthz\n"),
            };
        }
        if path != "/admin" && !path.starts_with("/admin/") {
            return Reply::new(404, "not found\n");
        }
        let who = peer.map_or_else(|| "?".into(), |p| p.to_string());
        if !self.authorized(req.header("authorization")) {
            let why = if req.header("authorization").is_some() {
                "wrong key"
            } else {
                "no key"
            };
            log::warn!(
                "admin: {} {path} from {who} refused: {why}",
                req.method_str()
            );
            return Reply::new(401, "a valid `Authorization: Bearer <key>` is needed\n");
        }
        let reply = self.act(req, path);
        let action = !matches!(m, Method::Get | Method::Head);
        if action {
            // What changed is the reply's message (or an error saying nothing did).
            let parsed = serde_json::from_str::<Value>(&reply.body).ok();
            let message = parsed.as_ref().and_then(|v| v["message"].as_str());
            let said = message.unwrap_or(reply.body.trim_end());
            log::info!(
                "admin: {} {path} from {who}: {} {said}",
                req.method_str(),
                reply.status
            );
        } else {
            log::debug!("admin: {} {path} from {who}", req.method_str());
        }
        reply
    }

    /// The answer of an authorized `/admin/` request.
    fn act(&self, req: &RequestHead, path: &str) -> Reply {
        let m = req.method;
        let post = m == Method::Post;
        let delete = m == Method::Delete;
        match path.trim_end_matches('/') {
            "/admin/shutdown" if post => self.control.shutdown(),
            "/admin/restart" if post => self.control.restart(),
            "/admin/reload" if post => self.control.reload(),
            "/admin/status" if matches!(m, Method::Get | Method::Head) => {
                let mut s = self.control.status();
                s.insert("pools".into(), self.pools.pools());
                s.insert("certificates".into(), self.pools.certificates());
                if let Some(acme) = tether_acme::running() {
                    s.insert("acme".into(), acme.status_json());
                }
                Reply::new(200, Value::Object(s).to_string())
            }
            "/admin/shutdown" | "/admin/restart" | "/admin/reload" => Reply::new(405, "use POST\n"),
            "/admin/status" => Reply::new(405, "use GET\n"),
            p if p.starts_with("/admin/servers/") => {
                let rest = p.trim_start_matches("/admin/servers/");
                match (m, rest.split_once('/')) {
                    (Method::Post, None) => self.pools.add_server(rest, req.query()),
                    (Method::Delete, Some((pool, server))) if !server.contains('/') => {
                        self.pools.remove_server(pool, server)
                    }
                    (Method::Put, Some((pool, server))) if !server.contains('/') => {
                        self.pools.set_weight(pool, server, req.query())
                    }
                    (_, None) => Reply::new(405, "use POST /admin/servers/<pool>?addr=ip:port\n"),
                    (_, Some((_, server))) if !server.contains('/') => Reply::new(
                        405,
                        "use DELETE (remove) or PUT ?weight=N on /admin/servers/<pool>/<server>\n",
                    ),
                    _ => Reply::new(404, "not found\n"),
                }
            }
            p => match p
                .strip_prefix("/admin/drain/")
                .and_then(|r| r.split_once('/'))
            {
                Some((pool, server)) if (post || delete) && !server.contains('/') => {
                    self.pools.drain(pool, server, post)
                }
                Some(_) if !post && !delete => {
                    Reply::new(405, "use POST (drain) or DELETE (undrain)\n")
                }
                _ => Reply::new(404, "not found\n"),
            },
        }
    }

    /// The bytes of a whole response that closes the connection. `json`: a text body is
    /// sent as `{"status": .., "message": ..}` (every answer under `/admin/`).
    fn response(&self, reply: &Reply, head_only: bool, json: bool) -> Vec<u8> {
        let wrapped;
        let reply = if json && !reply.body.starts_with('{') {
            wrapped = Reply::new(reply.status, as_json(reply));
            &wrapped
        } else {
            reply
        };
        let ctype = if reply.body.starts_with('{') {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut head = reply::Head::new(reply.status, &self.server, reply.body.len() + 64);
        head.content(ctype, reply.body.len())
            .lines("Cache-Control: no-store\r\nConnection: close\r\n");
        if reply.status == 401 {
            head.lines("WWW-Authenticate: Bearer realm=\"tether admin\"\r\n");
        }
        let mut out = head.end(true);
        if !head_only {
            out.extend_from_slice(reply.body.as_bytes());
        }
        out
    }
}

/// A text reply as a JSON object: `{"status": 404, "message": "no pool \"x\""}`.
fn as_json(reply: &Reply) -> String {
    json!({"status": reply.status, "message": reply.body.trim_end()}).to_string()
}

/// Whether the answer to `path` is JSON (everything under `/admin`, not `/healthz`).
fn json_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The key of an `Authorization: Bearer <key>` value.
fn bearer(h: &[u8]) -> Option<&[u8]> {
    let h = h.trim_ascii();
    let (scheme, rest) = h.split_at(h.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// One admin connection.
pub struct AdminSession {
    admin: Arc<Admin>,
    client: Option<ConnId>,
    peer: Option<SocketAddr>,
    reader: Option<PipeId>,
    buf: BytesMut,
    answered: bool,
}

impl AdminSession {
    pub fn new(admin: Arc<Admin>) -> AdminSession {
        AdminSession {
            admin,
            client: None,
            peer: None,
            reader: None,
            buf: BytesMut::new(),
            answered: false,
        }
    }

    fn send(&mut self, cx: &mut Cx<'_>, reply: &Reply, head_only: bool, json: bool) {
        self.answered = true;
        if let Some(r) = self.reader.take() {
            cx.close_pipe(r);
        }
        let Some(client) = self.client else {
            return cx.close();
        };
        let bytes = self.admin.response(reply, head_only, json);
        let p = cx.pipe_with(Source::Session, Sink::Conn(client), PipeOpts::default());
        cx.push(p, bytes.into());
        cx.end(p);
    }
}

impl Session for AdminSession {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        self.peer = cx.peer_addr(client);
        self.reader = Some(cx.pipe(Source::Conn(client), Sink::Session));
        cx.set_timer(HEAD_TIMEOUT, KEY_HEAD);
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if self.answered {
            return;
        }
        while let Some(b) = cx.take(pipe) {
            self.buf.extend_from_slice(&b);
        }
        match parse_request(&self.buf, &Limits::default()) {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Complete(req)) => {
                let reply = self.admin.answer(&req, self.peer);
                let json = json_path(req.path());
                self.send(cx, &reply, req.method == Method::Head, json);
            }
            Err(e) => {
                let reply = Reply::new(e.status, format!("{}\n", e.reason));
                self.send(cx, &reply, false, true)
            }
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, _end: PipeEnd) {
        if Some(pipe) == self.reader {
            // The client stopped sending before a whole request: nothing to answer.
            cx.close();
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, _key: u64) {
        cx.close();
    }
}

/// A [`PoolControl`] over the pools of the router as configured (`tether_balance::Pool`,
/// shared with the sessions): drain marks a server so it takes no new sessions (its pinned
/// sessions stay); status reports each server's health, drain mark and active count.
pub struct ConfiguredPools {
    /// Every pool once, in config order.
    pools: Vec<Arc<Upstream>>,
    certificates: Vec<tether_config::certs::LoadedCert>,
    /// How long a server removed through the API drains, per pool (by name); else 10 s.
    drains: Vec<(String, Duration)>,
}

/// The drain time of a removed server when the settings are not known.
const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

impl ConfiguredPools {
    pub fn new(runtime: &Runtime) -> ConfiguredPools {
        ConfiguredPools {
            pools: runtime.pools().to_vec(),
            certificates: runtime.certificates(),
            drains: Vec::new(),
        }
    }

    /// The pools' drain times of `settings`: each upstream's `drain_timeout_ms`, else the
    /// top-level one.
    pub fn with_drains(mut self, settings: &tether_config::Settings) -> ConfiguredPools {
        self.drains = settings
            .upstreams
            .iter()
            .map(|u| {
                let d = u.drain_timeout.unwrap_or(settings.ops.drain_timeout);
                (u.name.clone(), d)
            })
            .collect();
        self
    }

    fn pool(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.pools.iter().find(|u| u.name() == name)
    }
}

impl PoolControl for ConfiguredPools {
    fn add_server(&self, pool: &str, query: &str) -> Reply {
        match self.pool(pool) {
            Some(up) => crate::admin_servers::add(up, query),
            None => Reply::new(404, format!("no pool {pool:?}\n")),
        }
    }

    fn remove_server(&self, pool: &str, server: &str) -> Reply {
        let Some(up) = self.pool(pool) else {
            return Reply::new(404, format!("no pool {pool:?}\n"));
        };
        let drain = (self.drains.iter())
            .find(|(n, _)| n == pool)
            .map_or(DEFAULT_DRAIN, |(_, d)| *d);
        crate::admin_servers::remove(up, server, drain)
    }

    fn set_weight(&self, pool: &str, server: &str, query: &str) -> Reply {
        match self.pool(pool) {
            Some(up) => crate::admin_servers::set_weight(up, server, query),
            None => Reply::new(404, format!("no pool {pool:?}\n")),
        }
    }

    fn drain(&self, pool: &str, server: &str, drain: bool) -> Reply {
        let Some(up) = self.pools.iter().find(|u| u.name() == pool) else {
            return Reply::new(404, format!("no pool {pool:?}\n"));
        };
        let Some(s) = up.pool.server(server) else {
            return Reply::new(404, format!("no server {server:?} in pool {pool:?}\n"));
        };
        let was = s.is_draining();
        up.pool.set_drain(server, drain);
        let state = |d: bool| if d { "draining" } else { "taking new sessions" };
        let change = if was == drain { "unchanged" } else { "changed" };
        Reply::new(
            200,
            json!({
                "pool": pool,
                "server": server,
                "draining": drain,
                "was_draining": was,
                "message": format!(
                    "server {server:?} of pool {pool:?}: {} → {} ({change})",
                    state(was),
                    state(drain)
                ),
            })
            .to_string(),
        )
    }

    fn certificates(&self) -> Value {
        let now = std::time::SystemTime::now();
        let list = self.certificates.iter().map(|c| {
            let at = c
                .not_after
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            json!({
                "file": c.cert_path.display().to_string(),
                "names": c.names,
                "not_after": httpdate::fmt_http_date(c.not_after),
                "not_after_unix": at,
                "days_left": c.days_left(now),
                "expiring": c.days_left(now) < crate::runtime::EXPIRY_WARNING_DAYS,
            })
        });
        Value::Array(list.collect())
    }

    fn pools(&self) -> Value {
        let now = std::time::Instant::now();
        let list = self.pools.iter().map(|up| {
            up.pool.sweep(now);
            let servers: Vec<Value> = up
                .pool
                .servers()
                .iter()
                .map(|s| {
                    json!({
                        "id": s.id(),
                        "server": s.addr().to_string(),
                        "health": if s.is_available(now) { "up" } else { "down" },
                        "draining": s.is_draining(),
                        "active": s.active(),
                        "weight": s.weight(),
                        "backup": s.is_backup(),
                        "origin": s.origin().to_string(),
                        "leaving_in_ms": s.leaving().map(|at| {
                            at.saturating_duration_since(now).as_millis() as u64
                        }),
                    })
                })
                .collect();
            json!({
                "name": up.name(),
                "balance": balance_name(up),
                "policy": policy_name(up.pool.policy()),
                "servers": servers,
            })
        });
        Value::Array(list.collect())
    }
}

/// The `balance` word of the upstream's config: its affinity kind, else its policy.
fn balance_name(up: &Upstream) -> &'static str {
    match &up.affinity {
        crate::upstream::Affinity::Cookie(_) => "cookie",
        crate::upstream::Affinity::SessionId(_) => "session_id",
        crate::upstream::Affinity::Learn(_) => "learn",
        crate::upstream::Affinity::None => policy_name(up.pool.policy()),
    }
}

/// The selection policy's config word.
fn policy_name(p: &tether_balance::policy::Policy) -> &'static str {
    use tether_balance::policy::Policy;
    match p {
        Policy::RoundRobin(_) => "round_robin",
        Policy::LeastConnections(_) => "least_connections",
        Policy::IpHash(_) => "ip_hash",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl AdminControl for Fixed {
        fn shutdown(&self) -> Reply {
            Reply::new(202, "shutting down\n")
        }
        fn restart(&self) -> Reply {
            Reply::new(202, "restarting\n")
        }
        fn reload(&self) -> Reply {
            Reply::new(202, "reloading\n")
        }
        fn status(&self) -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("pid".into(), json!(1));
            m
        }
    }

    fn admin() -> Arc<Admin> {
        let settings = tether_config::parse(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n",
            "t.toml",
        )
        .expect("config");
        let runtime = Runtime::build(&settings).expect("runtime");
        let pools = Arc::new(ConfiguredPools::new(&runtime));
        Admin::new(Some("s3cret".into()), "tether", Arc::new(Fixed), pools)
    }

    fn ask(a: &Admin, req: &str) -> Reply {
        let head = parse_request(req.as_bytes(), &Limits::default())
            .expect("valid")
            .complete()
            .expect("complete");
        a.answer(&head, None)
    }

    #[test]
    fn healthz_needs_no_key() {
        let r = ask(&admin(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r, Reply::new(200, "ok\n"));
    }

    #[test]
    fn admin_needs_the_key() {
        let a = admin();
        let none = ask(&a, "POST /admin/reload HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(none.status, 401);
        let wrong =
            "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3creT\r\n\r\n";
        assert_eq!(ask(&a, wrong).status, 401);
        let short = "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3c\r\n\r\n";
        assert_eq!(ask(&a, short).status, 401);
        let basic = "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Basic s3cret\r\n\r\n";
        assert_eq!(ask(&a, basic).status, 401);
        let ok = "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: bearer  s3cret \r\n\r\n";
        assert_eq!(ask(&a, ok), Reply::new(202, "reloading\n"));
        let no_key = Admin::new(
            None,
            "t",
            Arc::new(Fixed),
            Arc::new(ConfiguredPools {
                pools: vec![],
                certificates: vec![],
                drains: vec![],
            }),
        );
        assert_eq!(ask(&no_key, ok).status, 401);
    }

    #[test]
    fn routes_methods_and_drain() {
        let a = admin();
        let auth = "Host: x\r\nAuthorization: Bearer s3cret\r\n\r\n";
        let get = |p: &str| ask(&a, &format!("GET {p} HTTP/1.1\r\n{auth}"));
        let post = |p: &str| ask(&a, &format!("POST {p} HTTP/1.1\r\n{auth}"));
        let status = get("/admin/status");
        assert_eq!(status.status, 200);
        let v: Value = serde_json::from_str(&status.body).expect("json");
        assert_eq!(v["pid"], 1);
        assert_eq!(v["pools"][0]["name"], "app");
        assert_eq!(v["pools"][0]["servers"][0]["server"], "127.0.0.1:3000");
        assert_eq!(v["pools"][0]["balance"], "round_robin");
        assert_eq!(get("/admin/reload").status, 405);
        assert_eq!(post("/admin/status").status, 405);
        assert_eq!(post("/admin/nope").status, 404);
        assert_eq!(post("/admin/drain/app/127.0.0.1:3000").status, 200);
        let del = |p: &str| ask(&a, &format!("DELETE {p} HTTP/1.1\r\n{auth}"));
        let undrained = del("/admin/drain/app/127.0.0.1:3000");
        assert_eq!(undrained.status, 200);
        let v: Value = serde_json::from_str(&undrained.body).expect("json");
        assert_eq!(
            (v["draining"].clone(), v["was_draining"].clone()),
            (json!(false), json!(true))
        );
        assert_eq!(del("/admin/drain/app/127.0.0.1:3001").status, 404);
        assert_eq!(get("/admin/drain/app/127.0.0.1:3000").status, 405);
        assert_eq!(post("/admin/drain/app/127.0.0.1:3001").status, 404);
        assert_eq!(post("/admin/drain/web/127.0.0.1:3000").status, 404);
        assert_eq!(post("/admin/drain/app").status, 404);
        assert_eq!(get("/elsewhere").status, 404);
    }

    #[test]
    fn servers_routes() {
        let a = admin();
        let auth = "Host: x\r\nAuthorization: Bearer s3cret\r\n\r\n";
        let req = |m: &str, p: &str| ask(&a, &format!("{m} {p} HTTP/1.1\r\n{auth}"));
        let added = req("POST", "/admin/servers/app?addr=127.0.0.1:3001&weight=2");
        assert_eq!(added.status, 201, "{}", added.body);
        let v: Value = serde_json::from_str(&added.body).expect("json");
        assert_eq!(
            (v["server"].as_str(), v["weight"].as_u64()),
            (Some("127.0.0.1:3001"), Some(2))
        );
        assert_eq!(
            req("POST", "/admin/servers/app?addr=127.0.0.1:3001").status,
            409
        );
        assert_eq!(req("POST", "/admin/servers/app?addr=x:1").status, 400);
        assert_eq!(
            req("POST", "/admin/servers/app?addr=127.0.0.1:9&bogus=1").status,
            400
        );
        assert_eq!(req("POST", "/admin/servers/app").status, 400);
        assert_eq!(
            req("POST", "/admin/servers/web?addr=127.0.0.1:9").status,
            404
        );
        assert_eq!(req("GET", "/admin/servers/app").status, 405);
        let w = req("PUT", "/admin/servers/app/127.0.0.1:3001?weight=5");
        assert_eq!(w.status, 200, "{}", w.body);
        assert_eq!(
            req("PUT", "/admin/servers/app/127.0.0.1:3001?weight=0").status,
            400
        );
        assert_eq!(
            req("PUT", "/admin/servers/app/127.0.0.1:3009?weight=1").status,
            404
        );
        assert_eq!(req("GET", "/admin/servers/app/127.0.0.1:3001").status, 405);
        assert_eq!(
            req("DELETE", "/admin/servers/app/127.0.0.1:3001").status,
            202
        );
        let status: Value = serde_json::from_str(&req("GET", "/admin/status").body).expect("json");
        let s = &status["pools"][0]["servers"][1];
        assert_eq!(
            (s["origin"].as_str(), s["weight"].as_u64()),
            (Some("admin"), Some(5))
        );
        assert!(
            s["leaving_in_ms"].as_u64().is_some_and(|ms| ms <= 10_000),
            "{s}"
        );
        assert_eq!(
            req("DELETE", "/admin/servers/app/127.0.0.1:3009").status,
            404
        );
    }
}
