//! `[[upstream]]`: a named pool of servers, its balancing policy, affinity, failover and
//! health checks, checked into an `UpstreamSpec` (plain data; `runtime.rs` builds the
//! `Upstream` with its pool).
//!
//! ```toml
//! [[upstream]]
//! name = "app"
//! servers = ["127.0.0.1:3000", { id = "b", addr = "127.0.0.1:3001", weight = 2, backup = false }]
//! balance = "cookie"        # round_robin | least_connections | ip_hash | cookie | session_id | learn
//! keys = ["<64 hex chars>"] # cookie / session_id: sealing keys (the first seals, all open)
//! failover = "repin"        # or "strict" (503 rather than moving a session)
//! cookie_secure = "auto"    # cookie / session_id: Secure over TLS (or always | never)
//! cookie_samesite = "lax"   # or strict | none (none forces Secure)
//! send_proxy = "v2"         # or "v1": a PROXY protocol header naming the client first
//! protocol = "h2c"          # http1 (default) | h2c | h2 (TLS, ALPN h2) | auto (TLS, ALPN decides)
//! h2_idle_timeout_ms = 60000 # HTTP/2: an upstream connection no call used this long closes
//! h2_ping_interval_ms = 30000 # HTTP/2: PING a silent server while calls are open (0: never)
//! h2_ping_timeout_ms = 10000 # HTTP/2: no PING answer this long fails the connection
//! fail_statuses = ["5xx"]   # answers that count as passive failures (max_fails)
//! # balance = "session_id": session_read / session_write / [upstream.session_body] and
//! # the single carrier keys are checked in `session_id.rs`
//! [upstream.health]
//! path = "/health"
//! ```

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use tether_balance::{
    is_valid_cookie_name, parse_key, CheckConfig, FailoverMode, PassiveConfig, PolicyKind, Pool,
    PoolOptions, ServerConfig, StatusRange,
};
use toml::Spanned;

use super::spec::{AffinitySpec, Pos, SealKeys, UpstreamSpec, UpstreamTlsSpec};
use super::{resolve, ConfigError};
use crate::spec::{LearnAffinity, SendProxy, UnknownTag};

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub name: Spanned<String>,
    servers: Vec<Spanned<RawServerEntry>>,
    balance: Option<Spanned<String>>,
    hash_factor: Option<Spanned<f64>>,
    hash_key: Option<Spanned<String>>,
    failover: Option<Spanned<String>>,
    fail_open: Option<bool>,
    max_fails: Option<u32>,
    fail_timeout_ms: Option<Spanned<u64>>,
    retries: Option<u32>,
    cookie_name: Option<Spanned<String>>,
    cookie_ttl_s: Option<Spanned<u64>>,
    cookie_secure: Option<Spanned<String>>,
    cookie_samesite: Option<Spanned<String>>,
    strict: Option<bool>,
    keys: Option<Vec<Spanned<String>>>,
    key_file: Option<Spanned<String>>,
    session_cookie: Option<Spanned<String>>,
    session_query: Option<Spanned<String>>,
    session_header: Option<Spanned<String>>,
    session_form: Option<Spanned<String>>,
    session_response_header: Option<Spanned<String>>,
    session_read: Option<Spanned<Vec<Spanned<String>>>>,
    session_write: Option<Spanned<Vec<Spanned<String>>>>,
    session_body: Option<Spanned<crate::session_id::RawSessionBody>>,
    session_form_max_bytes: Option<Spanned<u64>>,
    fail_statuses: Option<Spanned<Vec<crate::session_id::RawStatus>>>,
    unknown_tag: Option<Spanned<String>>,
    learn_ttl_s: Option<Spanned<u64>>,
    health: Option<Spanned<RawHealth>>,
    tls: Option<Spanned<RawUpstreamTls>>,
    send_proxy: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    h2_idle_timeout_ms: Option<Spanned<u64>>,
    h2_ping_interval_ms: Option<Spanned<u64>>,
    h2_ping_timeout_ms: Option<Spanned<u64>>,
    /// Servers found in DNS (`discover.rs`).
    resolver: Option<Spanned<Vec<Spanned<String>>>>,
    resolve_min_ms: Option<Spanned<u64>>,
    resolve_max_ms: Option<Spanned<u64>>,
    /// How long a server that leaves at run time (DNS, admin API) drains.
    drain_timeout_ms: Option<Spanned<u64>>,
}

/// `tls = true`, or `tls = { ca = "ca.pem", sni = "name", verify = false, cert, key }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawUpstreamTls {
    On(bool),
    Table(RawUpstreamTlsTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamTlsTable {
    ca: Option<String>,
    sni: Option<String>,
    verify: Option<bool>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawServerEntry {
    Addr(String),
    Table(RawServer),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    addr: Option<String>,
    /// `{ dns = "name", port = 8080 }` or `{ srv = "_app._tcp.name" }` (`discover.rs`).
    dns: Option<String>,
    srv: Option<String>,
    port: Option<u16>,
    id: Option<String>,
    weight: Option<u32>,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    drain: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    /// Default `/`.
    path: Option<Spanned<String>>,
    host: Option<String>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
    /// `[min, max]` accepted statuses (default 200–399).
    status: Option<Spanned<[u16; 2]>>,
    /// `http` (default) or `grpc`, and the gRPC service asked about (`health_kind.rs`).
    kind: Option<Spanned<String>>,
    service: Option<Spanned<String>>,
}

/// Check one `[[upstream]]`.
pub(super) fn check(u: RawUpstream, at: At<'_>) -> Result<UpstreamSpec, ConfigError> {
    let name = u.name.get_ref().clone();
    let mut sources = Vec::new();
    if u.servers.is_empty() {
        return Err(at(
            u.name.span(),
            format!("upstream {name:?} has no servers"),
        ));
    }
    let mut servers = Vec::new();
    let mut https = Vec::new();
    for s in &u.servers {
        let span = s.span();
        let (addr, mut conf) = match s.get_ref() {
            RawServerEntry::Addr(a) => (a.clone(), None),
            RawServerEntry::Table(t) => {
                let e = crate::discover::Entry {
                    addr: t.addr.is_some(),
                    dns: t.dns.as_deref(),
                    srv: t.srv.as_deref(),
                    port: t.port,
                    id: t.id.is_some(),
                    weight: t.weight,
                    backup: t.backup,
                    drain: t.drain,
                };
                if let Some(source) = crate::discover::entry(&e, span.clone(), at)? {
                    sources.push(source);
                    continue;
                }
                (t.addr.clone().unwrap_or_default(), Some(t))
            }
        };
        let (addr, is_https) = match addr.strip_prefix("https://") {
            Some(rest) => (rest.trim_end_matches('/').to_string(), true),
            None => (addr, false),
        };
        https.push((is_https, span.clone(), addr.clone()));
        let sock = resolve(&addr).map_err(|m| at(span.clone(), format!("`servers`: {m}")))?;
        let mut sc = ServerConfig::new(addr.clone(), sock);
        if let Some(t) = conf.take() {
            if let Some(id) = &t.id {
                sc.id = id.clone();
            }
            if let Some(w) = t.weight {
                sc.weight = w;
            }
            sc.backup = t.backup;
            sc.drain = t.drain;
        }
        servers.push(sc);
    }
    let word = |v: &Option<Spanned<String>>, default: &str| -> (String, Range<usize>) {
        v.as_ref().map_or((default.into(), u.name.span()), |s| {
            (s.get_ref().clone(), s.span())
        })
    };
    let (balance, balance_span) = word(&u.balance, "round_robin");
    let policy = match balance.as_str() {
        "round_robin" | "cookie" | "session_id" | "learn" => PolicyKind::RoundRobin,
        "least_connections" => PolicyKind::LeastConnections,
        "ip_hash" => {
            let factor = match &u.hash_factor {
                None => PolicyKind::ip_hash(),
                Some(f) if *f.get_ref() >= 1.0 => PolicyKind::IpHash {
                    balance_factor: Some(*f.get_ref()),
                },
                Some(f) => {
                    return Err(at(f.span(), "`hash_factor` must be at least 1.0".into()));
                }
            };
            factor
        }
        other => {
            return Err(at(
                balance_span,
                format!(
                    "`balance`: {other:?} is not round_robin, least_connections, ip_hash, \
                     cookie, session_id or learn"
                ),
            ))
        }
    };
    let hash_key = crate::hash_key::check(u.hash_key.as_ref(), balance == "ip_hash", at)?;
    let (failover, fspan) = word(&u.failover, "repin");
    let failover = match failover.as_str() {
        "repin" => FailoverMode::Repin,
        "strict" => FailoverMode::Strict,
        other => {
            return Err(at(
                fspan,
                format!("`failover`: {other:?} is not repin or strict"),
            ))
        }
    };
    let passive = PassiveConfig {
        // 0 turns passive ejection off (docs/affinity.md), as nginx's max_fails=0.
        max_fails: u.max_fails.unwrap_or(3),
        fail_timeout: secs_or_ms(&u.fail_timeout_ms, 10_000, at, "fail_timeout_ms")?,
        fail_statuses: crate::session_id::fail_statuses(u.fail_statuses.as_ref(), at)?,
    };
    let check = match &u.health {
        None => None,
        Some(h) => Some(health(h, at)?),
    };
    let options = PoolOptions {
        policy,
        fail_open: u.fail_open.unwrap_or(false),
        passive,
        check,
    };
    let discover = crate::discover::check(
        sources,
        &u.resolver,
        &u.resolve_min_ms,
        &u.resolve_max_ms,
        u.name.span(),
        at,
    )?;
    let drain_timeout = u
        .drain_timeout_ms
        .as_ref()
        .map(|v| secs_or_ms(&Some(v.clone()), 0, at, "drain_timeout_ms"))
        .transpose()?;
    if discover.is_some() {
        Pool::validate_members(&servers, &options)
    } else {
        Pool::validate(&servers, &options)
    }
    .map_err(|e| at(u.name.span(), format!("upstream {name:?}: {e}")))?;
    let affinity = match balance.as_str() {
        "cookie" => {
            let cookie = u.cookie_name.as_ref();
            let name = cookie.map_or("tether_server".to_string(), |c| c.get_ref().clone());
            if !is_valid_cookie_name(&name) {
                let span = cookie.map_or(u.name.span(), |c| c.span());
                return Err(at(
                    span,
                    format!("`cookie_name`: {name:?} is not a cookie name"),
                ));
            }
            AffinitySpec::Cookie {
                name,
                keys: sealer(&u, at)?,
                ttl: Duration::from_secs(positive(&u.cookie_ttl_s, 86_400, at, "cookie_ttl_s")?),
                strict: u.strict.unwrap_or(false),
            }
        }
        "session_id" => {
            let carriers = crate::session_id::check(
                &crate::session_id::RawCarriers {
                    upstream: &u.name,
                    cookie: u.session_cookie.as_ref(),
                    query: u.session_query.as_ref(),
                    header: u.session_header.as_ref(),
                    form: u.session_form.as_ref(),
                    response_header: u.session_response_header.as_ref(),
                    read: u.session_read.as_ref(),
                    write: u.session_write.as_ref(),
                    body: u.session_body.as_ref(),
                    form_max: u.session_form_max_bytes.as_ref(),
                },
                at,
            )?;
            let (unknown, uspan) = word(&u.unknown_tag, "error");
            let unknown = match unknown.as_str() {
                "error" => UnknownTag::Error,
                "repin" => UnknownTag::Repin,
                other => {
                    return Err(at(
                        uspan,
                        format!("`unknown_tag`: {other:?} is not error or repin"),
                    ))
                }
            };
            AffinitySpec::SessionId {
                read: carriers.read,
                write: carriers.write,
                body: carriers.body,
                form_max: carriers.form_max,
                keys: sealer(&u, at)?,
                unknown,
                repin_ttl: Duration::from_secs(positive(
                    &u.learn_ttl_s,
                    86_400,
                    at,
                    "learn_ttl_s",
                )?),
            }
        }
        "learn" => {
            let cookie = u.session_cookie.as_ref().ok_or_else(|| {
                at(
                    u.name.span(),
                    "balance = \"learn\" needs `session_cookie` (the backend's cookie name)".into(),
                )
            })?;
            AffinitySpec::Learn(LearnAffinity {
                cookie: cookie.get_ref().clone(),
                ttl: Duration::from_secs(positive(&u.learn_ttl_s, 3_600, at, "learn_ttl_s")?),
            })
        }
        _ => AffinitySpec::None,
    };
    if matches!(affinity, AffinitySpec::None | AffinitySpec::Learn(_)) {
        if let Some(k) = u.keys.as_ref().and_then(|k| k.first()) {
            return Err(at(
                k.span(),
                "`keys` go with balance = \"cookie\" or \"session_id\"".into(),
            ));
        }
    }
    let cookie = crate::cookie_options::check(
        u.cookie_secure.as_ref(),
        u.cookie_samesite.as_ref(),
        matches!(
            affinity,
            AffinitySpec::Cookie { .. } | AffinitySpec::SessionId { .. }
        ),
        at,
    )?;
    let tls = upstream_tls(&u, &servers, &https, at)?;
    if let (Some(_), Some(_)) = (&discover, &tls) {
        return Err(at(
            u.tls.as_ref().map_or(u.name.span(), |t| t.span()),
            "servers found in DNS do not speak TLS yet: leave `tls` out of this upstream, or \
             list its servers as \"https://host:port\""
                .into(),
        ));
    }
    let send_proxy = send_proxy(u.send_proxy, at)?;
    let protocol = crate::upstream_protocol::check(u.protocol.as_ref(), tls.is_some(), at)?;
    let h2 = crate::upstream_protocol::keep(
        [
            u.h2_idle_timeout_ms,
            u.h2_ping_interval_ms,
            u.h2_ping_timeout_ms,
        ],
        at,
    )?;
    Ok(UpstreamSpec {
        pos: Pos::at(at, u.name.span()),
        name,
        servers,
        options,
        affinity,
        failover,
        retries: u.retries.unwrap_or(1),
        tls,
        send_proxy,
        cookie,
        protocol,
        h2,
        hash_key,
        discover,
        drain_timeout,
    })
}

/// `send_proxy = "v1" | "v2"` (on an `[[upstream]]` or a tcp `[[listener]]`).
pub(super) fn send_proxy(
    raw: Option<Spanned<String>>,
    at: At<'_>,
) -> Result<Option<SendProxy>, ConfigError> {
    raw.map(|v| {
        SendProxy::parse(v.get_ref()).ok_or_else(|| {
            at(
                v.span(),
                format!("`send_proxy`: {:?} is not \"v1\" or \"v2\"", v.get_ref()),
            )
        })
    })
    .transpose()
}

/// TLS to the servers: none for a plain upstream; all servers speak TLS when `tls` is on or
/// their addresses are `https://` (a mix is refused). The CA, client certificate and names
/// are read and checked here; `runtime.rs` makes the clients.
fn upstream_tls(
    u: &RawUpstream,
    servers: &[ServerConfig],
    https: &[(bool, Range<usize>, String)],
    at: At<'_>,
) -> Result<Option<UpstreamTlsSpec>, ConfigError> {
    let any_https = https.iter().any(|(h, ..)| *h);
    if let Some((_, span, _)) = https.iter().find(|(h, ..)| !*h).filter(|_| any_https) {
        return Err(at(
            span.clone(),
            "mix of https:// and plain servers in one upstream".into(),
        ));
    }
    let written = u.tls.as_ref().map(|t| t.get_ref());
    let on = any_https
        || matches!(
            written,
            Some(RawUpstreamTls::On(true) | RawUpstreamTls::Table(_))
        );
    if !on {
        return Ok(None);
    }
    let verified = crate::certs::UpstreamTlsOptions {
        verify: true,
        ..Default::default()
    };
    let (opts, span) = match &u.tls {
        None => (verified, u.name.span()),
        Some(t) => match t.get_ref() {
            RawUpstreamTls::On(_) => (verified, t.span()),
            RawUpstreamTls::Table(x) => {
                let client_cert = match (&x.cert, &x.key) {
                    (Some(c), Some(k)) => Some((c.into(), k.into())),
                    (None, None) => None,
                    _ => return Err(at(t.span(), "`tls`: give both `cert` and `key`".into())),
                };
                (
                    crate::certs::UpstreamTlsOptions {
                        ca: x.ca.as_ref().map(Into::into),
                        sni: x.sni.clone(),
                        verify: x.verify.unwrap_or(true),
                        client_cert,
                    },
                    t.span(),
                )
            }
        },
    };
    crate::certs::check_client(&opts).map_err(|m| at(span.clone(), format!("`tls`: {m}")))?;
    debug_assert_eq!(servers.len(), https.len());
    for (_, _, addr) in https {
        crate::certs::check_client_name(opts.sni.as_deref(), addr)
            .map_err(|m| at(span.clone(), format!("`tls` for server {addr:?}: {m}")))?;
    }
    Ok(Some(UpstreamTlsSpec {
        options: opts,
        servers: https.iter().map(|(_, _, a)| a.clone()).collect(),
        pos: Pos::at(at, span),
    }))
}

/// The sealing keys: `keys = [...]` and/or the lines of `key_file`, read into 32-byte keys.
fn sealer(u: &RawUpstream, at: At<'_>) -> Result<SealKeys, ConfigError> {
    let mut keys: Vec<(String, Range<usize>)> = u
        .keys
        .iter()
        .flatten()
        .map(|k| (k.get_ref().clone(), k.span()))
        .collect();
    if let Some(f) = &u.key_file {
        let text = std::fs::read_to_string(f.get_ref())
            .map_err(|e| at(f.span(), format!("`key_file` {:?}: {e}", f.get_ref())))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| (l.to_string(), f.span())),
        );
    }
    if keys.is_empty() {
        return Err(at(
            u.name.span(),
            "sealed affinity needs `keys` or `key_file` (every instance must share them)".into(),
        ));
    }
    // As `Sealer::new` reads them, so that its errors are the same.
    keys.iter()
        .enumerate()
        .map(|(i, (k, _))| parse_key(k, i).map(|(key, _)| key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let at_fault = e.position().and_then(|i| keys.get(i)).or(keys.first());
            let span = at_fault.map_or(u.name.span(), |(_, s)| s.clone());
            at(span, format!("`keys`: {e}"))
        })
        .map(SealKeys)
}

fn health(h: &Spanned<RawHealth>, at: At<'_>) -> Result<CheckConfig, ConfigError> {
    let span = h.span();
    let h = h.get_ref();
    let d = CheckConfig::default();
    let kind = crate::health_kind::check(
        crate::health_kind::KindKeys {
            kind: h.kind.as_ref(),
            service: h.service.as_ref(),
            path: h.path.as_ref().map(|p| p.span()),
            status: h.status.as_ref().map(|s| s.span()),
        },
        at,
    )?;
    let path = h.path.as_ref().map_or("/", |p| p.get_ref().as_str());
    if !path.starts_with('/') {
        return Err(at(
            span,
            format!("`health.path` must start with '/': {path:?}"),
        ));
    }
    let ms = |v: Option<u64>, default: Duration| match v {
        Some(0) => Err(at(span.clone(), "health times must be above 0".into())),
        Some(v) => Ok(Duration::from_millis(v)),
        None => Ok(default),
    };
    let expect = match h.status.as_ref().map(|s| *s.get_ref()) {
        None => StatusRange::default(),
        Some([min, max]) if (100..=599).contains(&min) && min <= max && max <= 599 => {
            StatusRange { min, max }
        }
        Some(_) => {
            return Err(at(
                span,
                "`health.status` is [min, max] within 100–599".into(),
            ))
        }
    };
    Ok(CheckConfig {
        path: path.to_string(),
        host: h.host.clone(),
        interval: ms(h.interval_ms, d.interval)?,
        timeout: ms(h.timeout_ms, d.timeout)?,
        rise: h.rise.unwrap_or(d.rise).max(1),
        fall: h.fall.unwrap_or(d.fall).max(1),
        expect,
        kind,
    })
}

fn positive(
    v: &Option<Spanned<u64>>,
    default: u64,
    at: At<'_>,
    key: &str,
) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => Err(at(v.span(), format!("`{key}` must be above 0"))),
        Some(v) => Ok(*v.get_ref()),
    }
}

fn secs_or_ms(
    v: &Option<Spanned<u64>>,
    default: u64,
    at: At<'_>,
    key: &str,
) -> Result<Duration, ConfigError> {
    positive(v, default, at, key).map(Duration::from_millis)
}
