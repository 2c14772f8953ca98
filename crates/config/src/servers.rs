//! The TOML form with named upstream pools and virtual hosts:
//!
//! ```toml
//! [[upstream]]
//! name = "app"
//! servers = ["127.0.0.1:3000", "127.0.0.1:3001"]
//! balance = "round_robin"          # or "ip_hash"
//!
//! [[server]]
//! listen = ["0.0.0.0:8080"]
//! hostnames = ["example.org", "*.example.org"]   # none: any host
//!
//! [[server.route]]
//! path = "/api"                    # longest prefix at a segment boundary wins
//! proxy = "app"                    # or root = "public" / redirect = "https://..."
//! allow = ["127.0.0.1", "10.0.0.0/8"]
//! deny = ["10.9.9.9"]
//! max_body_size = 1048576          # a longer request body gets 413 (default: no limit)
//! encode = true                    # compress proxied answers (`encode.rs`; also on a server)
//! # a `root` route also takes index, listing, gzip, gzip_level, gzip_types, precompressed
//! # status_page = "json" | "prometheus" | "html": this tether's metrics (html: a page)
//! ```
//!
//! Servers sharing a `listen` address are virtual hosts of one listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::spec::{
    ActionSpec, HostSpec, PortRange, RouteSpec, RouterSpec, UpstreamId, UpstreamSpec,
};
use super::tls::FrontPart;
use super::{millis, upstream, ConfigError, ListenerSpec, Target};
use crate::acl::{Acl, Cidr, StatusFormat};
use crate::rewrite::{self, RawErrorPage, Rewrite};
use crate::rules::{self, RawHeaderRules, RawRules, ServerRules};
use tether_files::FileOptions;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    header_timeout_ms: Option<Spanned<u64>>,
    tunnel_timeout_ms: Option<Spanned<u64>>,
    tls: Option<Spanned<super::tls::RawTls>>,
    redirect_http: Option<Spanned<super::tls::RawRedirect>>,
    hsts: Option<String>,
    proxy_protocol: Option<Spanned<super::tls::RawProxyProtocol>>,
    /// HTTP/2 too (ALPN `h2` over TLS, h2c with prior knowledge without).
    http2: Option<Spanned<bool>>,
    /// Header rules and request ids its routes inherit (`rules.rs`).
    request_headers: Option<Spanned<RawHeaderRules>>,
    response_headers: Option<Spanned<RawHeaderRules>>,
    request_id: Option<Spanned<String>>,
    limits: Option<Spanned<Vec<String>>>,
    basic_auth: Option<Spanned<crate::limits::RawBasicAuth>>,
    /// Compression of proxied answers its proxy routes inherit (`encode.rs`).
    encode: Option<Spanned<toml::Value>>,
    /// Error pages and `intercept_errors` its routes inherit (`rewrite.rs`).
    #[serde(default)]
    error_page: Vec<Spanned<RawErrorPage>>,
    intercept_errors: Option<bool>,
    /// This server's access log (`access_log.rs`), for its routes without their own.
    access_log: Option<Spanned<crate::access_log::RawAccessLog>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    path: Spanned<String>,
    proxy: Option<Spanned<String>>,
    root: Option<String>,
    /// Like `root`, but the route's prefix is replaced by this directory.
    alias: Option<Spanned<String>>,
    index: Option<Vec<String>>,
    listing: Option<bool>,
    gzip: Option<bool>,
    gzip_level: Option<Spanned<u32>>,
    gzip_types: Option<Vec<String>>,
    redirect: Option<Spanned<String>>,
    status: Option<Spanned<u16>>,
    status_page: Option<Spanned<String>>,
    broker: Option<Spanned<String>>,
    port_rewrite: Option<Spanned<RawPortRewrite>>,
    max_body_size: Option<u64>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    /// Header rules, path rewriting, request ids (`rules.rs`).
    request_headers: Option<Spanned<RawHeaderRules>>,
    response_headers: Option<Spanned<RawHeaderRules>>,
    request_id: Option<Spanned<String>>,
    strip_prefix: Option<bool>,
    add_prefix: Option<Spanned<String>>,
    limits: Option<Spanned<Vec<String>>>,
    basic_auth: Option<Spanned<crate::limits::RawBasicAuth>>,
    /// Compression of proxied answers (`encode.rs`); `false` turns the server's off.
    encode: Option<Spanned<toml::Value>>,
    /// A files route serves `.zst`/`.br`/`.gz` siblings to clients that accept them.
    precompressed: Option<Spanned<bool>>,
    /// `regex`, `rewrite`, `error_page`, `intercept_errors` (`rewrite.rs`).
    regex: Option<Spanned<String>>,
    rewrite: Option<Spanned<String>>,
    #[serde(default)]
    error_page: Vec<Spanned<RawErrorPage>>,
    intercept_errors: Option<Spanned<bool>>,
    /// This route's access log (`access_log.rs`).
    access_log: Option<Spanned<crate::access_log::RawAccessLog>>,
}

/// `port_rewrite = { host = "127.0.0.1", min = 2000, max = 2999 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPortRewrite {
    #[serde(default = "loopback")]
    host: String,
    min: u16,
    max: u16,
}

fn loopback() -> String {
    "127.0.0.1".into()
}

/// Timeouts of a listener.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    pub connect: Duration,
    pub idle: Duration,
    pub header: Duration,
    pub tunnel: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(5_000),
            idle: Duration::from_millis(60_000),
            header: Duration::from_millis(super::HEADER_TIMEOUT_MS),
            tunnel: Duration::from_millis(600_000),
        }
    }
}

/// A virtual host on one address, with where that address is written.
type Entry = (SocketAddr, Range<usize>, HostSpec, Timeouts, FrontPart);

/// A listener with the span of its first `listen` entry.
type Grouped = (ListenerSpec, Range<usize>);

/// Group virtual hosts by listening address (in order of first appearance) into listeners.
pub(super) fn group(entries: Vec<Entry>, at: At<'_>) -> Result<Vec<Grouped>, ConfigError> {
    type Group = (
        SocketAddr,
        Range<usize>,
        Vec<HostSpec>,
        Timeouts,
        Vec<FrontPart>,
    );
    let mut order: Vec<Group> = Vec::new();
    for (addr, span, host, t, front) in entries {
        match order.iter_mut().find(|(a, ..)| *a == addr) {
            Some((_, _, hosts, _, fronts)) => {
                hosts.push(host);
                fronts.push(front);
            }
            None => order.push((addr, span, vec![host], t, vec![front])),
        }
    }
    order
        .into_iter()
        .map(|(listen, span, hosts, t, fronts)| {
            let spec = ListenerSpec {
                listen,
                target: Target::Http(RouterSpec { hosts }),
                connect_timeout: t.connect,
                idle_timeout: t.idle,
                header_timeout: t.header,
                tunnel_timeout: t.tunnel,
                front: super::tls::merge(fronts, listen, at)?,
            };
            Ok((spec, span))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)] // the top-level names a server's routes refer to
pub(super) fn check(
    upstreams: Vec<Spanned<upstream::RawUpstream>>,
    servers: Vec<Spanned<RawServer>>,
    max_body: Option<u64>,
    brokers: &[String],
    limits: &crate::limits::Limits,
    acme: bool,
    specs: &mut Vec<UpstreamSpec>,
    at: At<'_>,
) -> Result<Vec<Grouped>, ConfigError> {
    let mut pools: HashMap<String, UpstreamId> = HashMap::new();
    for u in upstreams {
        let u = u.into_inner();
        let name = u.name.get_ref().clone();
        if pools.contains_key(&name) {
            return Err(at(
                u.name.span(),
                format!("a second upstream named {name:?}"),
            ));
        }
        specs.push(upstream::check(u, at)?);
        pools.insert(name, UpstreamId(specs.len() - 1));
    }
    let mut entries = Vec::new();
    for s in servers {
        let span = s.span();
        let s = s.into_inner();
        if s.listen.is_empty() {
            return Err(at(
                span,
                "a server needs at least one `listen` address".into(),
            ));
        }
        let timeouts = Timeouts {
            connect: millis(s.connect_timeout_ms, 5_000, "connect_timeout_ms", at)?,
            idle: millis(s.idle_timeout_ms, 60_000, "idle_timeout_ms", at)?,
            header: millis(
                s.header_timeout_ms,
                super::HEADER_TIMEOUT_MS,
                "header_timeout_ms",
                at,
            )?,
            tunnel: millis(s.tunnel_timeout_ms, 600_000, "tunnel_timeout_ms", at)?,
        };
        let mut front = super::tls::part(
            &s.tls,
            acme,
            s.proxy_protocol,
            s.redirect_http,
            s.hsts,
            true,
            s.http2,
            span.clone(),
            at,
        )?;
        let mut inherited = rules::server(
            RawRules {
                request_headers: &s.request_headers,
                response_headers: &s.response_headers,
                request_id: &s.request_id,
            },
            at,
        )?;
        let encode = match &s.encode {
            Some(e) => super::encode::check(e, at)?,
            None => None,
        };
        let server_access = crate::limits::AccessSpec {
            limits: crate::limits::named(&s.limits, limits, at)?.unwrap_or_default(),
            basic_auth: crate::limits::basic_auth(&s.basic_auth, at)?,
        };
        inherited.error_pages = rewrite::error_pages(&s.error_page, s.intercept_errors, at)?;
        let server_log = s
            .access_log
            .map(|a| crate::access_log::check(a, at))
            .transpose()?;
        let mut routes = Vec::new();
        for mut r in s.route {
            let access = crate::limits::route_access(
                crate::limits::named(&r.get_ref().limits, limits, at)?,
                crate::limits::basic_auth(&r.get_ref().basic_auth, at)?,
                &server_access,
            );
            let own = r.get_mut().access_log.take();
            let mut route = check_route(r, &pools, max_body, brokers, &inherited, &encode, at)?;
            route.access = access;
            route.access_log = match own {
                Some(a) => Some(crate::access_log::check(a, at)?),
                None => server_log.clone(),
            };
            routes.push(route);
        }
        let host = HostSpec {
            hostnames: s.hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            routes,
        };
        super::tls::acme_names_from_hosts(&mut front, &host.hostnames, at)?;
        for l in &s.listen {
            let addr = l.get_ref().parse::<SocketAddr>().map_err(|_| {
                at(
                    l.span(),
                    format!("`listen`: not an address:port: {:?}", l.get_ref()),
                )
            })?;
            entries.push((addr, l.span(), host.clone(), timeouts, front.clone()));
        }
    }
    group(entries, at)
}

fn check_route(
    r: Spanned<RawRoute>,
    pools: &HashMap<String, UpstreamId>,
    max_body: Option<u64>,
    brokers: &[String],
    inherited: &ServerRules,
    server_encode: &Option<tether_compress::Policy>,
    at: At<'_>,
) -> Result<RouteSpec, ConfigError> {
    let span = r.span();
    let r = r.into_inner();
    let path = r.path.get_ref().clone();
    if !path.starts_with('/') {
        return Err(at(
            r.path.span(),
            format!("`path` must start with '/': {path:?}"),
        ));
    }
    let kinds = [
        r.proxy.is_some(),
        r.root.is_some() || r.alias.is_some(),
        r.redirect.is_some(),
        r.status_page.is_some(),
        r.broker.is_some(),
    ];
    let n = kinds.iter().filter(|&&k| k).count();
    if n > 1 || (n == 0 && r.port_rewrite.is_none()) {
        return Err(at(
            span,
            "a route needs exactly one of `proxy`, `root` (or `alias`), `redirect`, `status_page`, `broker` \
             (or only `port_rewrite`)"
                .into(),
        ));
    }
    let ports = match &r.port_rewrite {
        None => None,
        Some(p) => {
            let raw = p.get_ref();
            let host = raw.host.parse().map_err(|_| {
                at(
                    p.span(),
                    format!("`port_rewrite.host`: not an IP address: {:?}", raw.host),
                )
            })?;
            if raw.min == 0 || raw.min > raw.max {
                return Err(at(p.span(), "`port_rewrite`: need 1 <= min <= max".into()));
            }
            Some(PortRange {
                host,
                min: raw.min,
                max: raw.max,
            })
        }
    };
    if let (Some(st), None) = (&r.status, &r.redirect) {
        return Err(at(st.span(), "`status` goes with `redirect`".into()));
    }
    let mut action = if let Some(b) = &r.broker {
        if !brokers.contains(b.get_ref()) {
            return Err(at(
                b.span(),
                format!("no [[broker]] named {:?}", b.get_ref()),
            ));
        }
        ActionSpec::Broker(b.get_ref().clone())
    } else if n == 0 {
        ActionSpec::NotFound
    } else if let Some(page) = &r.status_page {
        match page.get_ref().as_str() {
            "json" => ActionSpec::Status(StatusFormat::Json),
            "prometheus" => ActionSpec::Status(StatusFormat::Prometheus),
            "html" => ActionSpec::Status(StatusFormat::Html),
            other => {
                return Err(at(
                    page.span(),
                    format!("`status_page`: {other:?} is not \"json\", \"prometheus\" or \"html\""),
                ))
            }
        }
    } else if let Some(p) = &r.proxy {
        let pool = pools.get(p.get_ref()).ok_or_else(|| {
            let hint = crate::hints::closest(p.get_ref(), pools.keys().map(String::as_str))
                .map(|n| format!(" (did you mean {n:?}?)"))
                .unwrap_or_default();
            at(
                p.span(),
                format!("no upstream named {:?}{hint}", p.get_ref()),
            )
        })?;
        ActionSpec::Proxy(*pool)
    } else if r.root.is_some() || r.alias.is_some() {
        let mut files = match (r.root, &r.alias) {
            (Some(_), Some(a)) => {
                return Err(at(
                    a.span(),
                    "a route has `root` or `alias`, not both".into(),
                ))
            }
            (Some(root), None) => FileOptions::new(PathBuf::from(root)),
            (None, Some(a)) => {
                let mut files = FileOptions::new(PathBuf::from(a.get_ref()));
                files.alias_of = Some(path.trim_end_matches('/').to_string());
                files
            }
            (None, None) => FileOptions::new(PathBuf::new()),
        };
        if let Some(index) = r.index {
            files.index = index;
        }
        if let Some(listing) = r.listing {
            files.listing = listing;
        }
        if let Some(gzip) = r.gzip {
            files.gzip = gzip;
        }
        if let Some(level) = &r.gzip_level {
            if *level.get_ref() > 9 {
                return Err(at(level.span(), "`gzip_level` goes from 0 to 9".into()));
            }
            files.gzip_level = *level.get_ref();
        }
        if let Some(types) = r.gzip_types {
            files.gzip_types = types;
        }
        if let Some(p) = &r.precompressed {
            files.precompressed = *p.get_ref();
        }
        ActionSpec::Files(files)
    } else {
        let status = match &r.status {
            None => 302,
            Some(s) if (300..400).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => return Err(at(s.span(), "`status` of a redirect must be 3xx".into())),
        };
        ActionSpec::Redirect {
            status,
            location: r
                .redirect
                .as_ref()
                .map(|v| v.get_ref().clone())
                .unwrap_or_default(),
        }
    };
    let cidrs = |list: &[Spanned<String>]| -> Result<Vec<Cidr>, ConfigError> {
        list.iter()
            .map(|c| Cidr::parse(c.get_ref()).map_err(|m| at(c.span(), m)))
            .collect()
    };
    let acl = Acl {
        allow: cidrs(&r.allow)?,
        deny: cidrs(&r.deny)?,
    };
    if let (Some(p), false) = (&r.precompressed, matches!(action, ActionSpec::Files(_))) {
        return Err(at(p.span(), "`precompressed` goes with `root`".into()));
    }
    let encode = match &r.encode {
        Some(e) => {
            let policy = super::encode::check(e, at)?;
            if policy.is_some() && !matches!(action, ActionSpec::Proxy(_)) {
                return Err(at(
                    e.span(),
                    "`encode` goes with `proxy` (a `root` route takes `gzip` and `precompressed`)"
                        .into(),
                ));
            }
            policy
        }
        None if matches!(action, ActionSpec::Proxy(_)) => server_encode.clone(),
        None => None,
    };
    let own = [
        (
            "request_headers",
            r.request_headers.as_ref().map(|v| v.span()),
        ),
        (
            "response_headers",
            r.response_headers.as_ref().map(|v| v.span()),
        ),
        ("request_id", r.request_id.as_ref().map(|v| v.span())),
        ("add_prefix", r.add_prefix.as_ref().map(|v| v.span())),
        ("strip_prefix", r.strip_prefix.map(|_| span.clone())),
        ("rewrite", r.rewrite.as_ref().map(|v| v.span())),
        (
            "intercept_errors",
            r.intercept_errors.as_ref().map(|v| v.span()),
        ),
    ];
    if let Some(re) = &r.regex {
        if !matches!(action, ActionSpec::Proxy(_) | ActionSpec::Redirect { .. }) {
            return Err(at(
                re.span(),
                "`regex` goes with `proxy` or `redirect`".into(),
            ));
        }
    }
    if !matches!(action, ActionSpec::Proxy(_)) {
        if let Some((key, Some(at_span))) = own.into_iter().find(|(_, s)| s.is_some()) {
            return Err(at(at_span, format!("`{key}` goes with `proxy`")));
        }
    }
    let mut rules = rules::route(
        inherited,
        RawRules {
            request_headers: &r.request_headers,
            response_headers: &r.response_headers,
            request_id: &r.request_id,
        },
        &path,
        r.strip_prefix,
        &r.add_prefix,
        at,
    )?;
    let pattern = match &r.regex {
        Some(re) => Some(rewrite::pattern(re, at)?),
        None => None,
    };
    rules.rewrite = Rewrite {
        to: match &r.rewrite {
            Some(t) => Some(rewrite::target("rewrite", t, pattern.as_ref(), at)?),
            None => None,
        },
        // A plain location stays as it is (`ActionSpec::Redirect`).
        redirect: match &r.redirect {
            Some(t) => Some(rewrite::target("redirect", t, pattern.as_ref(), at)?)
                .filter(|t| t.literal().is_none()),
            None => None,
        },
        pattern,
    };
    if let (ActionSpec::Redirect { location, .. }, Some(re)) = (&mut action, &r.redirect) {
        // `$$`, `{{` and `}}` in a plain location are a `$` and braces.
        if let Some(text) =
            rewrite::target("redirect", re, rules.rewrite.pattern.as_ref(), at)?.literal()
        {
            *location = text.to_string();
        }
    }
    let own_pages = rewrite::error_pages(&r.error_page, None, at)?;
    rules.error_pages = inherited
        .error_pages
        .under(own_pages, r.intercept_errors.as_ref().map(|v| *v.get_ref()));
    Ok(RouteSpec {
        path,
        action,
        acl,
        max_body: r.max_body_size.or(max_body),
        ports,
        rules,
        access: Default::default(),
        encode,
        access_log: None,
    })
}
