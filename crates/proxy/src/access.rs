//! The access phase's request limits and basic auth, written once for HTTP/1.1
//! (`http/gate.rs`) and HTTP/2 (`h2/stream.rs`).
//!
//! A route's [`Access`] is built with the runtime (`runtime.rs`): one `RateLimiter` /
//! `ConcurrencyLimiter` per named `[[limit]]`, shared by every route naming it and every
//! worker thread, and one `Verifier` per config build. A request runs a [`Gate`] through
//! its steps — basic auth, then each limit's rate, then its in-flight count — and each step
//! either goes on, refuses (`401`, `429`, `503`), parks the request until a helper thread
//! answers (the htpasswd verification; a Redis rate check) and wakes the session through its
//! `Remote`, or delays it on a loop timer (nginx's delayed `limit_req`). Nothing here blocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_auth::{AuthResult, Htpasswd, Verifier};
use tether_config::limits::{AccessSpec, KeyPart, LimitSpec};
use tether_config::spec::OnStoreError;
use tether_http::{Limits, Parsed, RequestHead};
use tether_limits::{ConcurrencyLimiter, Permit, RateLimiter, Verdict};
use tether_store::{LimitAnswer, Store};

/// What a route checks before its module.
pub struct Access {
    pub limits: Vec<Arc<Limit>>,
    pub auth: Option<Auth>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.limits.iter().map(|l| l.spec.name.as_str()).collect();
        write!(
            f,
            "Access(limits {names:?}, basic auth: {})",
            self.auth.is_some()
        )
    }
}

/// One named limit, with its counters.
pub struct Limit {
    pub spec: Arc<LimitSpec>,
    pub rate: Option<RateLimiter>,
    pub conn: Option<Arc<ConcurrencyLimiter>>,
    /// Verdicts of the shared store (Redis), counted here; the local limiter counts its own.
    pub shared: SharedCounts,
}

/// A limit's verdicts that came from the shared store.
#[derive(Default)]
pub struct SharedCounts {
    pub allowed: AtomicU64,
    pub delayed: AtomicU64,
    pub rejected: AtomicU64,
    /// Checks the store did not answer (`on_store_error` decided).
    pub down: AtomicU64,
}

/// A limit's counters, local and shared together.
#[derive(Debug, Default, Clone, Copy)]
pub struct LimitCounts {
    pub allowed: u64,
    pub delayed: u64,
    pub rejected: u64,
    pub evicted: u64,
    pub keys: u64,
    pub conn_rejected: u64,
    pub conn_held: u64,
    pub store_down: u64,
}

impl Limit {
    pub fn counts(&self) -> LimitCounts {
        let mut c = LimitCounts::default();
        if let Some(r) = &self.rate {
            let s = r.stats();
            c.allowed = s.allowed;
            c.delayed = s.delayed;
            c.rejected = s.rejected;
            c.evicted = s.evicted;
            c.keys = s.keys;
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        c.allowed += load(&self.shared.allowed);
        c.delayed += load(&self.shared.delayed);
        c.rejected += load(&self.shared.rejected);
        c.store_down = load(&self.shared.down);
        if let Some(k) = &self.conn {
            let s = k.stats();
            c.conn_rejected = s.rejected;
            c.conn_held = s.held;
        }
        c
    }
}

/// The limits' counters for `/api`: `{"<name>": {"allowed": n, ...}}`.
pub fn limits_json(limits: &[Arc<Limit>]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for l in limits {
        let c = l.counts();
        map.insert(
            l.spec.name.clone(),
            serde_json::json!({
                "allowed": c.allowed,
                "delayed": c.delayed,
                "rejected": c.rejected,
                "evicted_keys": c.evicted,
                "keys": c.keys,
                "conn_rejected": c.conn_rejected,
                "conn_held": c.conn_held,
                "store_down": c.store_down,
            }),
        );
    }
    serde_json::Value::Object(map)
}

/// The limits' counters in Prometheus text: `tether_limit_requests_total{limit,result}`,
/// `tether_limit_evicted_keys_total`, `tether_limit_conn_rejected_total`,
/// `tether_limit_conn_held`, `tether_limit_store_down_total`.
pub fn limits_prometheus(out: &mut String, limits: &[Arc<Limit>]) {
    use std::fmt::Write;
    if limits.is_empty() {
        return;
    }
    let counts: Vec<(String, LimitCounts)> = limits
        .iter()
        .map(|l| (l.spec.name.escape_default().to_string(), l.counts()))
        .collect();
    let _ = writeln!(
        out,
        "# HELP tether_limit_requests_total Requests checked by a rate limit, by result.\n\
         # TYPE tether_limit_requests_total counter"
    );
    for (name, c) in &counts {
        for (result, v) in [
            ("allowed", c.allowed),
            ("delayed", c.delayed),
            ("rejected", c.rejected),
        ] {
            let _ = writeln!(
                out,
                "tether_limit_requests_total{{limit=\"{name}\",result=\"{result}\"}} {v}"
            );
        }
    }
    let mut one = |metric: &str, kind: &str, help: &str, f: &dyn Fn(&LimitCounts) -> u64| {
        let _ = writeln!(
            out,
            "# HELP tether_limit_{metric} {help}\n# TYPE tether_limit_{metric} {kind}"
        );
        for (name, c) in &counts {
            let _ = writeln!(out, "tether_limit_{metric}{{limit=\"{name}\"}} {}", f(c));
        }
    };
    one(
        "evicted_keys_total",
        "counter",
        "Keys dropped from a full limit (least recently seen first).",
        &|c| c.evicted,
    );
    one(
        "conn_rejected_total",
        "counter",
        "Requests refused by limit_conn.",
        &|c| c.conn_rejected,
    );
    one(
        "conn_held",
        "gauge",
        "Requests in flight counted by limit_conn.",
        &|c| c.conn_held,
    );
    one(
        "store_down_total",
        "counter",
        "Rate checks the shared store did not answer (on_store_error decided).",
        &|c| c.store_down,
    );
}

/// A route's basic auth.
pub struct Auth {
    pub users: Arc<Htpasswd>,
    pub forward_authorization: bool,
    pub verifier: Arc<Verifier>,
    /// `WWW-Authenticate: ...\r\n`.
    pub challenge: String,
}

/// Builds the routes' `Access` for one config build: limits by name, one `Verifier`.
#[derive(Default)]
pub struct Builder {
    limits: HashMap<String, Arc<Limit>>,
    order: Vec<Arc<Limit>>,
    verifier: Option<Arc<Verifier>>,
}

impl Builder {
    /// The `Access` of a route (`None`: nothing to check).
    pub fn access(&mut self, spec: &AccessSpec) -> Result<Option<Arc<Access>>, String> {
        if spec.is_empty() {
            return Ok(None);
        }
        let mut limits = Vec::new();
        for l in &spec.limits {
            let built = match self.limits.get(&l.name) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Limit {
                        spec: l.clone(),
                        rate: l.rate.map(|r| RateLimiter::new(r, l.max_keys)),
                        conn: l.conn.map(ConcurrencyLimiter::new),
                        shared: SharedCounts::default(),
                    });
                    self.limits.insert(l.name.clone(), b.clone());
                    self.order.push(b.clone());
                    b
                }
            };
            limits.push(built);
        }
        let auth = match &spec.basic_auth {
            None => None,
            Some(a) => {
                let verifier = match &self.verifier {
                    Some(v) => v.clone(),
                    None => {
                        let v = Arc::new(Verifier::new(&tether_auth::Options::default())?);
                        self.verifier = Some(v.clone());
                        v
                    }
                };
                Some(Auth {
                    users: a.users.0.clone(),
                    forward_authorization: a.forward_authorization,
                    verifier,
                    challenge: format!(
                        "WWW-Authenticate: {}\r\n",
                        tether_auth::www_authenticate(&a.realm)
                    ),
                })
            }
        };
        Ok(Some(Arc::new(Access { limits, auth })))
    }

    /// Every limit built, in the order first named.
    pub fn limits(&self) -> Vec<Arc<Limit>> {
        self.order.clone()
    }
}

/// What the gate holds for the request's whole life: `limit_conn` permits (released when
/// dropped, with the request) and the authenticated user.
#[derive(Default)]
pub(crate) struct Held {
    _permits: Vec<Permit>,
    pub user: Option<String>,
}

/// What one request's steps need to know of it.
pub(crate) struct Env<'a> {
    pub head: &'a RequestHead,
    pub ip: Option<IpAddr>,
    pub store: &'a dyn Store,
    /// The store is shared with other instances (Redis): rate checks go there.
    pub shared: bool,
    pub on_store_error: OnStoreError,
    pub remote: Option<tether_core::Remote>,
    /// The `Remote` wake key for this request.
    pub wake: u64,
    pub now: Instant,
}

/// A refusal: status, extra header lines, body.
pub(crate) struct Refusal {
    pub status: u16,
    pub extra: String,
    pub body: String,
}

impl Refusal {
    /// The HTTP/1.1 bytes of the refusal.
    pub fn bytes(&self, server: &str, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let mut h = tether_http::reply::Head::new(self.status, server, 128 + self.body.len());
        h.lines(&self.extra)
            .content("text/plain; charset=utf-8", self.body.len());
        let mut out = h.end(keep_alive);
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

pub(crate) enum Outcome {
    /// Go on; `strip`: drop the `Authorization` header before forwarding.
    Pass(Held, bool),
    Refuse(Refusal),
    /// Waiting for a helper thread: resume on the `Remote` wake.
    Park(Box<Gate>),
    /// Delayed (nginx `limit_req` without `nodelay`): resume when a loop timer fires.
    Sleep(Box<Gate>, Duration),
}

enum Pending {
    None,
    Auth(Arc<Mutex<Option<AuthResult>>>),
    Limit(Arc<Mutex<Option<LimitAnswer>>>),
}

/// One request's way through its route's access steps.
pub(crate) struct Gate {
    access: Arc<Access>,
    route: String,
    step: usize,
    pending: Pending,
    held: Held,
}

/// When the last "store down, limiting locally" line was logged (seconds since start).
static DOWN_LOGGED: AtomicU64 = AtomicU64::new(0);

fn log_down_once_a_minute(name: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let now = start.elapsed().as_secs() + 60;
    let last = DOWN_LOGGED.load(Ordering::Relaxed);
    if now >= last + 60
        && DOWN_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log::warn!(
            "limit {name:?}: the shared store does not answer; limiting in this instance only \
             (on_store_error = \"open\"; logged once a minute)"
        );
    }
}

/// The refusal under `on_store_error = "closed"`.
const STORE_DOWN: &str = "The limit store does not answer; try again in a moment.\n";

impl Gate {
    pub fn new(access: Arc<Access>, route: &str) -> Box<Gate> {
        // The route is kept only for a limit keyed by it (no String a request otherwise).
        let keyed =
            (access.limits.iter()).any(|l| l.spec.key.iter().any(|k| matches!(k, KeyPart::Route)));
        Box::new(Gate {
            access,
            route: if keyed {
                route.to_string()
            } else {
                String::new()
            },
            step: 0,
            pending: Pending::None,
            held: Held::default(),
        })
    }

    /// Run the steps from where the gate stands (after a wake or a timer too).
    pub fn run(mut self: Box<Self>, env: &Env<'_>) -> Outcome {
        let access = self.access.clone();
        loop {
            let step = self.step;
            if step == 0 {
                match self.auth(&access, env) {
                    Step::Next => {}
                    Step::Stop(o) => return o.finish(self),
                }
                self.step = 1;
                continue;
            }
            let i = (step - 1) / 2;
            let Some(limit) = access.limits.get(i) else {
                let strip = access
                    .auth
                    .as_ref()
                    .is_some_and(|a| !a.forward_authorization);
                return Outcome::Pass(std::mem::take(&mut self.held), strip);
            };
            let key = key_of(&limit.spec, env, &self.route);
            let step_result = match (&key, (step - 1) % 2) {
                (None, _) => Step::Next, // an empty key is not limited (as nginx)
                (Some(k), 0) => self.rate(limit, k, env),
                (Some(k), _) => self.conn(limit, k),
            };
            match step_result {
                Step::Next => self.step += 1,
                Step::Stop(Stop::Sleep(d)) => {
                    self.step += 1;
                    return Outcome::Sleep(self, d);
                }
                Step::Stop(o) => return o.finish(self),
            }
        }
    }

    fn auth(&mut self, access: &Access, env: &Env<'_>) -> Step {
        let Some(auth) = &access.auth else {
            return Step::Next;
        };
        let answer = match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Auth(slot) => match slot.lock().ok().and_then(|mut a| a.take()) {
                Some(a) => a,
                None => {
                    self.pending = Pending::Auth(slot);
                    return Step::Stop(Stop::Park);
                }
            },
            _ => {
                let Some(remote) = env.remote.clone() else {
                    return Step::Stop(Stop::Refuse(busy()));
                };
                let slot = Arc::new(Mutex::new(None));
                let theirs = slot.clone();
                let wake = env.wake;
                let done = Box::new(move |r: AuthResult| {
                    if let Ok(mut a) = theirs.lock() {
                        *a = Some(r);
                    }
                    remote.wake(wake);
                });
                let header = env.head.header("authorization");
                match auth.verifier.check(&auth.users, header, done) {
                    Some(a) => a,
                    None => {
                        self.pending = Pending::Auth(slot);
                        return Step::Stop(Stop::Park);
                    }
                }
            }
        };
        match answer {
            AuthResult::Ok { user } => {
                self.held.user = Some(user);
                Step::Next
            }
            AuthResult::Denied => Step::Stop(Stop::Refuse(Refusal {
                status: 401,
                extra: auth.challenge.clone(),
                body: "401 Unauthorized: this page needs a user name and password.\n".into(),
            })),
            AuthResult::Busy => Step::Stop(Stop::Refuse(busy())),
        }
    }

    fn rate(&mut self, limit: &Limit, key: &[u8], env: &Env<'_>) -> Step {
        let (Some(local), Some(rule)) = (&limit.rate, &limit.spec.rate) else {
            return Step::Next;
        };
        if env.shared {
            let answer = match std::mem::replace(&mut self.pending, Pending::None) {
                Pending::Limit(slot) => match slot.lock().ok().and_then(|mut a| a.take()) {
                    Some(a) => Some(a),
                    None => {
                        self.pending = Pending::Limit(slot);
                        return Step::Stop(Stop::Park);
                    }
                },
                _ => {
                    let store_rule = tether_store::RateRule {
                        interval: rule.interval,
                        burst: rule.burst,
                        nodelay: rule.nodelay,
                    };
                    let skey = store_key(&limit.spec.name, key);
                    // A token this instance leased (fast rules without delays): no wait.
                    match env.store.limit_now(&skey, &store_rule) {
                        Some(a) => Some(a),
                        None => match env.remote.clone() {
                            None => Some(LimitAnswer::Down),
                            Some(remote) => {
                                self.park_limit(env, remote, &skey, &store_rule);
                                return Step::Stop(Stop::Park);
                            }
                        },
                    }
                }
            };
            let count = |a: &AtomicU64| {
                a.fetch_add(1, Ordering::Relaxed);
            };
            match answer {
                Some(LimitAnswer::Allow) => {
                    count(&limit.shared.allowed);
                    return Step::Next;
                }
                Some(LimitAnswer::Delay(d)) => {
                    count(&limit.shared.delayed);
                    return Step::Stop(Stop::Sleep(d));
                }
                Some(LimitAnswer::Reject { retry_after }) => {
                    count(&limit.shared.rejected);
                    return Step::Stop(Stop::Refuse(rejected(&limit.spec, Some(retry_after))));
                }
                Some(LimitAnswer::Down) | None => {
                    count(&limit.shared.down);
                    if env.on_store_error == OnStoreError::Closed {
                        return Step::Stop(Stop::Refuse(Refusal {
                            status: 503,
                            extra: "Retry-After: 1\r\n".into(),
                            body: STORE_DOWN.into(),
                        }));
                    }
                    log_down_once_a_minute(&limit.spec.name);
                }
            }
        }
        match local.check(key, env.now) {
            Verdict::Allow => Step::Next,
            Verdict::Delay(d) => Step::Stop(Stop::Sleep(d)),
            Verdict::Reject { retry_after } => {
                Step::Stop(Stop::Refuse(rejected(&limit.spec, Some(retry_after))))
            }
        }
    }

    /// Asks the shared store for a rate decision; the answer wakes the request.
    fn park_limit(
        &mut self,
        env: &Env<'_>,
        remote: tether_core::Remote,
        key: &str,
        rule: &tether_store::RateRule,
    ) {
        let slot = Arc::new(Mutex::new(None));
        let theirs = slot.clone();
        let wake = env.wake;
        self.pending = Pending::Limit(slot);
        env.store.limit(
            key,
            rule,
            Box::new(move |a| {
                if let Ok(mut s) = theirs.lock() {
                    *s = Some(a);
                }
                remote.wake(wake);
            }),
        );
    }

    fn conn(&mut self, limit: &Limit, key: &[u8]) -> Step {
        let Some(conn) = &limit.conn else {
            return Step::Next;
        };
        match conn.acquire(key) {
            Some(p) => {
                self.held._permits.push(p);
                Step::Next
            }
            None => Step::Stop(Stop::Refuse(rejected(&limit.spec, None))),
        }
    }
}

enum Step {
    Next,
    Stop(Stop),
}

enum Stop {
    Refuse(Refusal),
    Park,
    Sleep(Duration),
}

impl Stop {
    fn finish(self, gate: Box<Gate>) -> Outcome {
        match self {
            Stop::Refuse(r) => Outcome::Refuse(r),
            Stop::Park => Outcome::Park(gate),
            Stop::Sleep(d) => Outcome::Sleep(gate, d),
        }
    }
}

fn busy() -> Refusal {
    Refusal {
        status: 503,
        extra: "Retry-After: 1\r\n".into(),
        body: "Too many logins at once; try again in a moment.\n".into(),
    }
}

fn rejected(spec: &LimitSpec, retry_after: Option<Duration>) -> Refusal {
    let extra = match retry_after {
        Some(d) => format!("Retry-After: {}\r\n", tether_limits::retry_after_secs(d)),
        None => String::new(),
    };
    Refusal {
        status: spec.status,
        extra,
        body: spec.body.clone(),
    }
}

/// The limit's key for this request; `None` when every part is empty (not limited).
fn key_of(spec: &LimitSpec, env: &Env<'_>, route: &str) -> Option<Vec<u8>> {
    let ip = crate::http::conn::IpText::of(env.ip); // not `Display`: ~2,000 instructions
    let mut out = Vec::with_capacity(64);
    let mut any = false;
    for p in &spec.key {
        let part: &[u8] = match p {
            KeyPart::ClientIp => ip.as_bytes(),
            KeyPart::Header(name) => env.head.header(name).unwrap_or_default(),
            KeyPart::Cookie(name) => cookie(env.head, name).unwrap_or_default(),
            KeyPart::Route => route.as_bytes(),
        };
        any |= !part.is_empty();
        tether_limits::push_key_part(&mut out, part);
    }
    any.then_some(out)
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'h>(head: &'h RequestHead, name: &str) -> Option<&'h [u8]> {
    head.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// The store's key of a limit's key (text: the name and the key's bytes in hex).
fn store_key(name: &str, key: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(name.len() + 1 + key.len() * 2);
    s.push_str(name);
    s.push(':');
    for &b in key {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// `head` without its `Authorization` fields (basic auth not forwarded); `None` if the
/// head could not be written again (not expected: it was parsed once).
pub(crate) fn without_authorization(head: RequestHead, limits: &Limits) -> Option<RequestHead> {
    if head.header("authorization").is_none() {
        return Some(head);
    }
    let mut b = Vec::with_capacity(head.len());
    b.extend_from_slice(head.method_str().as_bytes());
    b.push(b' ');
    b.extend_from_slice(head.target().as_bytes());
    b.extend_from_slice(match head.version {
        tether_http::Version::Http10 => b" HTTP/1.0\r\n",
        _ => b" HTTP/1.1\r\n",
    });
    for (n, v) in head.headers() {
        if n.eq_ignore_ascii_case("authorization") {
            continue;
        }
        b.extend_from_slice(n.as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(v);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"\r\n");
    match tether_http::parse_request(&b, limits) {
        Ok(Parsed::Complete(h)) => Some(h),
        _ => None,
    }
}
