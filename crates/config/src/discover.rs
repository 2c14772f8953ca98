//! Servers of an `[[upstream]]` found in DNS (checked here; `tether-discover` asks, the
//! proxy applies the answers to the pool):
//!
//! ```toml
//! [[upstream]]
//! name = "app"
//! servers = [
//!   "127.0.0.1:3000",                                # a fixed server, as before
//!   { dns = "app.internal", port = 8080 },          # every A/AAAA address, port 8080
//!   { srv = "_app._tcp.internal" },                 # SRV: targets, ports and weights
//! ]
//! resolver = ["127.0.0.1:5353"]  # default: the system's (/etc/resolv.conf); port 53 if none
//! resolve_min_ms = 1000          # re-resolve at the record's TTL, at least this apart
//! resolve_max_ms = 300000        # and at most this apart
//! drain_timeout_ms = 10000       # a server gone from DNS drains this long, then is dropped
//! ```
//!
//! Plain data only: nothing is resolved at check time.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// The DNS side of one upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverSpec {
    /// The names to follow, in config order (their position is the servers' origin).
    pub sources: Vec<DnsSource>,
    /// `resolver`: the DNS servers to ask; empty: the system's.
    pub resolvers: Vec<SocketAddr>,
    /// `resolve_min_ms` (default 1000): the shortest wait between two lookups of a name.
    pub min_refresh: Duration,
    /// `resolve_max_ms` (default 300000): the longest wait between two lookups of a name.
    pub max_refresh: Duration,
}

/// One `{ dns = ... }` or `{ srv = ... }` entry of `servers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSource {
    pub name: String,
    pub kind: DnsKind,
    /// `weight` of a `dns` entry (every address gets it); SRV records carry their own.
    pub weight: u32,
    /// `backup = true`: every server of this entry is a backup.
    pub backup: bool,
}

/// A/AAAA with a port, or SRV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsKind {
    Host { port: u16 },
    Srv,
}

/// The default of `resolve_min_ms`.
pub const DEFAULT_MIN_MS: u64 = 1_000;
/// The default of `resolve_max_ms`.
pub const DEFAULT_MAX_MS: u64 = 300_000;

/// The fields of a `servers` table entry that concern DNS.
pub(super) struct Entry<'a> {
    pub addr: bool,
    pub dns: Option<&'a str>,
    pub srv: Option<&'a str>,
    pub port: Option<u16>,
    pub id: bool,
    pub weight: Option<u32>,
    pub backup: bool,
    pub drain: bool,
}

/// A table entry that names `dns` or `srv`: its source; `Ok(None)` for an `addr` entry.
pub(super) fn entry(
    e: &Entry<'_>,
    span: Range<usize>,
    at: At<'_>,
) -> Result<Option<DnsSource>, ConfigError> {
    let given = [e.addr, e.dns.is_some(), e.srv.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err(at(
                span,
                "a server table needs `addr`, `dns` (with `port`) or `srv` (e.g. \
                 { addr = \"127.0.0.1:3000\" }, { dns = \"app.internal\", port = 8080 }, \
                 { srv = \"_app._tcp.internal\" })"
                    .into(),
            ))
        }
        1 => {}
        _ => {
            return Err(at(
                span,
                "give one of `addr`, `dns` and `srv` per server entry (write one entry each)"
                    .into(),
            ))
        }
    }
    if e.addr {
        if e.port.is_some() {
            return Err(at(
                span,
                "`port` goes with `dns`; write the port in `addr` (\"host:port\")".into(),
            ));
        }
        return Ok(None);
    }
    if e.id {
        return Err(at(
            span,
            "a server found in DNS is named by its address (ip:port): `id` goes with `addr`".into(),
        ));
    }
    if e.drain {
        return Err(at(
            span,
            "`drain` goes with `addr`; drain a server found in DNS through the admin API \
             (POST /admin/drain/<pool>/<ip:port>)"
                .into(),
        ));
    }
    let (name, kind) = match (e.dns, e.srv) {
        (Some(name), _) => {
            let Some(port) = e.port.filter(|p| *p != 0) else {
                return Err(at(
                    span,
                    format!(
                        "`dns = {name:?}` needs a `port` (1-65535), e.g. \
                         {{ dns = {name:?}, port = 8080 }}"
                    ),
                ));
            };
            (name, DnsKind::Host { port })
        }
        (None, Some(name)) => {
            if e.port.is_some() {
                return Err(at(
                    span,
                    "`port` goes with `dns`: SRV records give each server's port".into(),
                ));
            }
            if e.weight.is_some() {
                return Err(at(
                    span,
                    "`weight` goes with `addr` or `dns`: SRV records give each server's weight"
                        .into(),
                ));
            }
            (name, DnsKind::Srv)
        }
        (None, None) => return Ok(None),
    };
    check_name(name).map_err(|m| at(span.clone(), m))?;
    let weight = e.weight.unwrap_or(1);
    if weight == 0 {
        return Err(at(span, "`weight` must be at least 1".into()));
    }
    Ok(Some(DnsSource {
        name: name.trim_end_matches('.').to_string(),
        kind,
        weight,
        backup: e.backup,
    }))
}

/// A DNS name: labels of letters, digits, `-` and `_`, 1 to 63 bytes, 253 in all.
fn check_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(ok_label) {
        return Err(format!(
            "{name:?} is not a DNS name (labels of letters, digits, '-' and '_', separated by \
             dots)"
        ));
    }
    Ok(())
}

/// `resolver`, `resolve_min_ms`, `resolve_max_ms` with the sources found in `servers`.
/// `None` when the upstream has no DNS entries (then those keys are refused).
pub(super) fn check(
    sources: Vec<DnsSource>,
    resolver: &Option<Spanned<Vec<Spanned<String>>>>,
    min_ms: &Option<Spanned<u64>>,
    max_ms: &Option<Spanned<u64>>,
    name_span: Range<usize>,
    at: At<'_>,
) -> Result<Option<DiscoverSpec>, ConfigError> {
    if sources.is_empty() {
        let stray = [
            resolver.as_ref().map(|r| ("resolver", r.span())),
            min_ms.as_ref().map(|r| ("resolve_min_ms", r.span())),
            max_ms.as_ref().map(|r| ("resolve_max_ms", r.span())),
        ];
        if let Some((key, span)) = stray.into_iter().flatten().next() {
            return Err(at(
                span,
                format!(
                    "`{key}` is for servers found in DNS, and this upstream has none (add \
                     {{ dns = \"name\", port = 8080 }} or {{ srv = \"_app._tcp.name\" }} to \
                     `servers`)"
                ),
            ));
        }
        return Ok(None);
    }
    let mut resolvers = Vec::new();
    for r in resolver.iter().flat_map(|r| r.get_ref()) {
        let text = r.get_ref();
        let addr = text
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| {
                text.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .ok_or_else(|| {
                at(
                    r.span(),
                    format!(
                        "`resolver`: {text:?} is not an IP address with an optional port \
                         (write \"127.0.0.1:5353\", \"10.0.0.2\" or \"[::1]:53\")"
                    ),
                )
            })?;
        resolvers.push(addr);
    }
    if let Some(r) = resolver.as_ref().filter(|r| r.get_ref().is_empty()) {
        return Err(at(
            r.span(),
            "`resolver` is empty: name at least one, or leave it out to use the system's".into(),
        ));
    }
    let ms = |v: &Option<Spanned<u64>>, default: u64, key: &str| match v {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => Err(at(v.span(), format!("`{key}` must be above 0"))),
        Some(v) => Ok(*v.get_ref()),
    };
    let min = ms(min_ms, DEFAULT_MIN_MS, "resolve_min_ms")?;
    let max = ms(max_ms, DEFAULT_MAX_MS, "resolve_max_ms")?;
    if min > max {
        let span = max_ms
            .as_ref()
            .or(min_ms.as_ref())
            .map_or(name_span, |v| v.span());
        return Err(at(
            span,
            format!("`resolve_max_ms` ({max}) is below `resolve_min_ms` ({min})"),
        ));
    }
    Ok(Some(DiscoverSpec {
        sources,
        resolvers,
        min_refresh: Duration::from_millis(min),
        max_refresh: Duration::from_millis(max),
    }))
}

#[cfg(test)]
mod tests {
    use crate::{parse, Settings};

    fn config(servers: &str, extra: &str) -> String {
        format!(
            "[[upstream]]\nname = \"app\"\nservers = {servers}\n{extra}\n\
             [[server]]\nlisten = [\"127.0.0.1:8080\"]\n\
             [[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
        )
    }

    fn ok(servers: &str, extra: &str) -> Settings {
        match parse(&config(servers, extra), "t.toml") {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(servers: &str, extra: &str) -> crate::ConfigError {
        match parse(&config(servers, extra), "t.toml") {
            Ok(_) => panic!("accepted: {servers} {extra}"),
            Err(e) => e,
        }
    }

    #[test]
    fn dns_and_srv_entries() {
        let s = ok(
            "[\"127.0.0.1:3000\", { dns = \"app.internal\", port = 8080, weight = 2 }, \
             { srv = \"_app._tcp.internal.\", backup = true }]",
            "resolver = [\"127.0.0.1:5353\", \"10.0.0.1\"]\nresolve_min_ms = 500\n\
             drain_timeout_ms = 3000",
        );
        let up = &s.upstreams[0];
        assert_eq!(up.servers.len(), 1);
        assert_eq!(
            up.drain_timeout,
            Some(std::time::Duration::from_millis(3000))
        );
        let d = up.discover.as_ref().expect("discover");
        assert_eq!(d.sources.len(), 2);
        assert_eq!(d.sources[0].name, "app.internal");
        assert_eq!(d.sources[0].kind, super::DnsKind::Host { port: 8080 });
        assert_eq!(d.sources[0].weight, 2);
        assert_eq!(d.sources[1].name, "_app._tcp.internal");
        assert_eq!(d.sources[1].kind, super::DnsKind::Srv);
        assert!(d.sources[1].backup);
        assert_eq!(
            d.resolvers,
            vec![
                "127.0.0.1:5353".parse().expect("addr"),
                "10.0.0.1:53".parse().expect("addr")
            ]
        );
        assert_eq!(d.min_refresh.as_millis(), 500);
        assert_eq!(d.max_refresh.as_millis(), 300_000);
        // Only DNS entries: the pool may start empty.
        let s = ok("[{ srv = \"_app._tcp.internal\" }]", "");
        assert!(s.upstreams[0].servers.is_empty());
        assert!(s.upstreams[0]
            .discover
            .as_ref()
            .expect("d")
            .resolvers
            .is_empty());
    }

    #[test]
    fn errors_have_positions_and_hints() {
        let e = err("[{ dns = \"app.internal\" }]", "");
        assert_eq!((e.line, e.col), (3, 12), "{e}");
        assert!(e.message.contains("needs a `port`"), "{e}");
        let e = err("[{ srv = \"_a._tcp.x\", port = 1 }]", "");
        assert!(e.message.contains("SRV records give"), "{e}");
        let e = err("[{ dns = \"a b\", port = 1 }]", "");
        assert!(e.message.contains("not a DNS name"), "{e}");
        let e = err("[{ dns = \"a\", port = 1, addr = \"127.0.0.1:1\" }]", "");
        assert!(e.message.contains("one of `addr`, `dns` and `srv`"), "{e}");
        let e = err("[{ dns = \"a\", port = 1, id = \"x\" }]", "");
        assert!(e.message.contains("`id` goes with `addr`"), "{e}");
        let e = err("[{ weight = 2 }]", "");
        assert!(e.message.contains("needs `addr`, `dns`"), "{e}");
        let e = err("[{ dns = \"a\", port = 1 }]", "resolver = [\"localhost\"]");
        assert_eq!((e.line, e.col), (4, 13), "{e}");
        assert!(e.message.contains("not an IP address"), "{e}");
        let e = err("[\"127.0.0.1:1\"]", "resolver = [\"127.0.0.1\"]");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("has none"), "{e}");
        let e = err(
            "[{ dns = \"a\", port = 1 }]",
            "resolve_min_ms = 5000\nresolve_max_ms = 1000",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("below"), "{e}");
        let e = err("[{ dns = \"a\", port = 1 }]", "tls = true");
        assert!(e.message.contains("do not speak TLS"), "{e}");
    }
}
