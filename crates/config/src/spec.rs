//! The checked config as plain data: what an http listener routes (`RouterSpec`), the
//! upstream pools its routes name (`UpstreamSpec`), and where each was written (`Pos`).
//! Nothing here holds a pool, a counter, a store or a thread: these values are cloned and
//! compared by value, and `runtime.rs` builds the routers, pools and upstreams from them once
//! per worker process.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use tether_balance::{FailoverMode, PoolOptions, ServerConfig};

use super::ConfigError;
use crate::acl::{Acl, StatusFormat};
use crate::certs::UpstreamTlsOptions;
use crate::rules::RouteRules;
use tether_files::FileOptions;

/// Where something was written (`path:line:col`), for an error only found when it is built.
/// Not part of what a config means: two `Pos` are always equal, so configs that differ only
/// in layout compare equal.
#[derive(Debug, Clone, Default)]
pub struct Pos {
    pub path: String,
    pub line: usize,
    pub col: usize,
}

impl PartialEq for Pos {
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

impl Eq for Pos {}

impl Pos {
    /// The position of a config error (its message dropped).
    pub fn of(e: &ConfigError) -> Pos {
        Pos {
            path: e.path.clone(),
            line: e.line,
            col: e.col,
        }
    }

    /// The position of `span`, as `at` (the check's error maker) places it.
    pub(super) fn at(
        at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
        span: std::ops::Range<usize>,
    ) -> Pos {
        Pos::of(&at(span, String::new()))
    }

    /// An error at this position.
    pub fn error(&self, message: String) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line: self.line,
            col: self.col,
            message,
        }
    }
}

/// The virtual hosts of one http listener.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterSpec {
    pub hosts: Vec<HostSpec>,
}

impl RouterSpec {
    /// One catch-all host with one route `/`.
    pub fn single(action: ActionSpec) -> RouterSpec {
        RouterSpec {
            hosts: vec![HostSpec {
                hostnames: Vec::new(),
                routes: vec![RouteSpec::new("/", action)],
            }],
        }
    }
}

/// A virtual host: the names it answers to (none: any) and its routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSpec {
    pub hostnames: Vec<String>,
    pub routes: Vec<RouteSpec>,
}

/// One route: a path prefix, what it does, who may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub path: String,
    pub action: ActionSpec,
    pub acl: Acl,
    /// A longer request body is refused with `413` (none: no limit).
    pub max_body: Option<u64>,
    /// `port_rewrite`: `/<port>/...` goes to `host:<port>` for ports in the range.
    pub ports: Option<PortRange>,
    /// Header rules, path rewriting and request ids (`rules.rs`).
    pub rules: RouteRules,
    /// Request limits and basic auth (`limits.rs`).
    pub access: crate::limits::AccessSpec,
    /// `encode`: compression of proxied answers (`encode.rs`); `None`: off.
    pub encode: Option<tether_compress::Policy>,
    /// The route's own access log (or its server's); None: the top-level one.
    pub access_log: Option<crate::access_log::AccessLogSpec>,
}

impl RouteSpec {
    /// A route with no ACL, no body limit and no port rewrite.
    pub fn new(path: &str, action: ActionSpec) -> RouteSpec {
        RouteSpec {
            path: path.into(),
            action,
            acl: Acl::default(),
            max_body: None,
            ports: None,
            rules: RouteRules::default(),
            access: Default::default(),
            encode: None,
            access_log: None,
        }
    }
}

/// What a route does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionSpec {
    /// Proxy to this upstream of `Settings::upstreams` (routes naming one `[[upstream]]`
    /// share its pool).
    Proxy(UpstreamId),
    Files(FileOptions),
    Redirect {
        status: u16,
        location: String,
    },
    Status(StatusFormat),
    Broker(String),
    /// Nothing but the route's `port_rewrite`.
    NotFound,
}

/// An index into `Settings::upstreams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamId(pub usize);

/// `port_rewrite = { host, min, max }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub host: IpAddr,
    pub min: u16,
    pub max: u16,
}

/// A checked upstream pool: its servers and policy, affinity, failover, TLS and PROXY header.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub name: String,
    pub servers: Vec<ServerConfig>,
    pub options: PoolOptions,
    pub affinity: AffinitySpec,
    pub failover: FailoverMode,
    pub retries: u32,
    pub tls: Option<UpstreamTlsSpec>,
    pub send_proxy: Option<SendProxy>,
    /// `cookie_secure`, `cookie_samesite`: the attributes of the cookies tether writes.
    pub cookie: tether_balance::CookieOptions,
    /// `protocol`: what the servers speak (HTTP/1.1 by default).
    pub protocol: UpstreamProtocol,
    /// `h2_idle_timeout_ms`, `h2_ping_interval_ms`, `h2_ping_timeout_ms`: how HTTP/2
    /// upstream connections are kept.
    pub h2: H2Keep,
    /// `hash_key`: what `ip_hash` hashes (the client address by default).
    pub hash_key: HashKey,
    /// Where the pool is written (errors found when it is built).
    pub pos: Pos,
    /// Servers found in DNS (`{ dns = ... }`, `{ srv = ... }`), if any.
    pub discover: Option<crate::discover::DiscoverSpec>,
    /// `drain_timeout_ms` of the upstream: how long a server that leaves at run time (gone
    /// from DNS, removed through the admin API) drains; `None`: the top-level
    /// `drain_timeout_ms`.
    pub drain_timeout: Option<Duration>,
}

impl UpstreamSpec {
    /// A pool with no affinity, repin failover and one retry (the default options).
    pub fn plain(name: &str, servers: Vec<ServerConfig>, pos: Pos) -> UpstreamSpec {
        UpstreamSpec {
            name: name.to_string(),
            servers,
            options: PoolOptions::default(),
            affinity: AffinitySpec::None,
            failover: FailoverMode::Repin,
            retries: 1,
            tls: None,
            send_proxy: None,
            cookie: tether_balance::CookieOptions::default(),
            protocol: UpstreamProtocol::Http1,
            h2: H2Keep::default(),
            hash_key: HashKey::ClientIp,
            pos,
            discover: None,
            drain_timeout: None,
        }
    }
}

/// How requests of one session find their server again (`crate::spec::Affinity`).
#[derive(Debug, Clone, PartialEq)]
pub enum AffinitySpec {
    None,
    Cookie {
        name: String,
        keys: SealKeys,
        ttl: Duration,
        strict: bool,
    },
    SessionId {
        /// Where a request's session id is read, in order: the first carrier holding a
        /// tagged id decides; every carrier's tag is stripped.
        read: Vec<IdCarrier>,
        /// Where a response's new session id is tagged.
        write: Vec<IdWriter>,
        /// `session_body`: ids in the answer's body, for the requests it names.
        body: Option<BodyTagSpec>,
        /// `session_form_max_bytes`: the largest urlencoded request body read for a
        /// `form` carrier.
        form_max: usize,
        keys: SealKeys,
        unknown: UnknownTag,
        repin_ttl: Duration,
    },
    Learn(LearnAffinity),
}

/// Sealing keys as 32-byte keys (the first seals, all open); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKeys(pub Vec<[u8; 32]>);

impl fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKeys(<{} key(s)>)", self.0.len())
    }
}

/// TLS to the servers of an upstream: the client options and each server's address text
/// (its host is the default SNI).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTlsSpec {
    pub options: UpstreamTlsOptions,
    pub servers: Vec<String>,
    /// Where `tls` (or the pool) is written.
    pub pos: Pos,
}

/// How an HTTP/2 upstream connection is kept (`upstream_protocol.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H2Keep {
    /// `h2_idle_timeout_ms`: a connection no call used this long closes (GOAWAY).
    pub idle: Duration,
    /// `h2_ping_interval_ms`: while calls are open, a PING when the server was silent this
    /// long (`None`: `0`, no PINGs).
    pub ping_every: Option<Duration>,
    /// `h2_ping_timeout_ms`: a PING unanswered this long fails the connection.
    pub ping_timeout: Duration,
}

impl Default for H2Keep {
    fn default() -> H2Keep {
        H2Keep {
            idle: Duration::from_secs(60),
            ping_every: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(10),
        }
    }
}

/// `hash_key` of an `ip_hash` pool: what the rendezvous hash is computed over.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum HashKey {
    /// `"client_ip"` (the default): the client's address (after the PROXY protocol).
    #[default]
    ClientIp,
    /// `"header:NAME"` (lower case): a request header's value; gRPC metadata too.
    Header(String),
    /// `"cookie:NAME"`: a request cookie's value.
    Cookie(String),
    /// `"query:NAME"`: a query parameter's raw value.
    Query(String),
}

/// `protocol` of an `[[upstream]]`: how tether speaks to its servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// `"http1"`: HTTP/1.1 (pooled keep-alive connections), the default.
    #[default]
    Http1,
    /// `"h2c"`: HTTP/2 over plain TCP with prior knowledge (gRPC backends, mostly).
    H2c,
    /// `"h2"`: HTTP/2 over TLS, ALPN `h2` offered and required.
    H2,
    /// `"auto"`: TLS with ALPN `h2` and `http/1.1` offered; the server's choice decides.
    Auto,
}

impl UpstreamProtocol {
    /// `"http1"`, `"h2c"`, `"h2"` or `"auto"`.
    pub fn parse(text: &str) -> Option<UpstreamProtocol> {
        match text {
            "http1" => Some(UpstreamProtocol::Http1),
            "h2c" => Some(UpstreamProtocol::H2c),
            "h2" => Some(UpstreamProtocol::H2),
            "auto" => Some(UpstreamProtocol::Auto),
            _ => None,
        }
    }
}

/// The PROXY protocol version sent to servers that want to know the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendProxy {
    V1,
    V2,
}

impl SendProxy {
    /// `"v1"` or `"v2"`.
    pub fn parse(text: &str) -> Option<SendProxy> {
        match text {
            "v1" => Some(SendProxy::V1),
            "v2" => Some(SendProxy::V2),
            _ => None,
        }
    }
}

/// Where the application carries its session id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdCarrier {
    Cookie(String),
    Query(String),
    Header(String),
    /// A field of an `application/x-www-form-urlencoded` request body.
    Form(String),
}

/// Where a response carries a new session id, to be tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdWriter {
    /// The value of this cookie in a `Set-Cookie`.
    SetCookie(String),
    /// This response header's value.
    Header(String),
    /// The answer's body (`session_body` says for which requests and where in it).
    Body,
}

/// `[upstream.session_body]`: answers whose body holds a new session id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTagSpec {
    /// Query parameters (or urlencoded form fields) the request must have, all of them:
    /// names and values compared without regard to ASCII case.
    pub when: Vec<(String, String)>,
    /// The request path must start with this, when given.
    pub path: Option<String>,
    /// Where the id is in the body.
    pub find: BodyFind,
    /// Bodies longer than this stream through untouched.
    pub max_bytes: usize,
}

/// Where the session id is in an answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFind {
    /// The whole body (surrounding white space kept as it is).
    Whole,
    /// The first capture group of this regular expression (checked to compile).
    Regex(String),
    /// The string at this JSON pointer (RFC 6901) of a JSON body.
    Pointer(String),
}

/// What to do with a tag naming a server no longer in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownTag {
    /// Answer `503` with a clear body.
    Error,
    /// Balance the request to a server of the pool and re-tag the session there.
    Repin,
}

/// The backend's session cookie, learned from its Set-Cookie into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnAffinity {
    pub cookie: String,
    /// Time to live of a learned entry, refreshed on use.
    pub ttl: Duration,
}

/// `on_store_error`: what a request that needs the shared store (a session to look up)
/// gets while the store does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Decide locally and keep serving (the default): the session is balanced as a new one
    /// and its pin written when the store is back.
    #[default]
    Open,
    /// Answer `503`.
    Closed,
}
