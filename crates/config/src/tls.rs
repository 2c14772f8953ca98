//! `tls = { ... }` on a `[[server]]` or `[[listener]]`, and what a plain listener does for
//! HTTPS (`redirect_http`, and `hsts` on a TLS one): checked into `Front`.
//!
//! ```toml
//! [[server]]
//! listen = ["0.0.0.0:443"]
//! hostnames = ["example.org"]
//! tls = { certificates = [{ cert = "fullchain.pem", key = "key.pem" }] }
//! hsts = "max-age=63072000"
//!
//! [[server]]
//! listen = ["0.0.0.0:80"]
//! redirect_http = true     # every request: 308 to https://<host><path>
//! ```
//!
//! Every key of `tls`: `certificates` (the first is the default for a client whose SNI
//! names none of them, unless `strict_sni = true`), `min_version` ("1.2" default, or
//! "1.3"), `alpn` (default `["http/1.1"]` on http listeners — `["h2", "http/1.1"]` with
//! `http2 = true` —, none on tcp ones),
//! `client_ca` (require and verify client certificates), `session_tickets` (default true),
//! `session_cache` (entries, default 10000; 0 turns the cache off), `handshake_timeout_ms`
//! (default 10000). Servers sharing a `listen` address share its certificates: SNI picks.
//!
//! `http2 = true` (http only, off by default): HTTP/2 as well — ALPN `h2` on a TLS
//! listener, h2c with prior knowledge on a plain one (the same port keeps HTTP/1.1).
//!
//! `proxy_protocol = { trusted = ["10.0.0.0/8"] }` (on a `[[server]]` or `[[listener]]`,
//! plain or TLS): every connection starts with a PROXY protocol v1 or v2 header from a
//! load balancer in one of these networks (others are closed); the client it names is the
//! client everywhere (ip_hash, allow/deny, X-Forwarded-For, the access log).
//!
//! The check reads every certificate and key (they must parse and match) and the client CA;
//! what it keeps is `TlsSpec`, paths and options. `runtime.rs` reads them again and makes the
//! rustls config (session cache, ticket keys, the ACME resolver) in the worker.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::spec::Pos;
use super::ConfigError;
use crate::certs::load_cert;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    certificates: Option<Spanned<RawCerts>>,
    /// The names to get certificates for by ACME (`[acme]`); `certificates = "acme"`
    /// alone takes the virtual hosts' `hostnames`.
    acme_domains: Option<Vec<Spanned<String>>>,
    min_version: Option<Spanned<String>>,
    alpn: Option<Vec<String>>,
    client_ca: Option<String>,
    #[serde(default)]
    strict_sni: bool,
    session_tickets: Option<bool>,
    session_cache: Option<usize>,
    handshake_timeout_ms: Option<Spanned<u64>>,
}

/// `certificates = [{ cert, key }, ...]` or `certificates = "acme"`. Not `untagged`: that
/// buffers the value and loses the entries' spans.
enum RawCerts {
    Files(Vec<Spanned<RawCert>>),
    Word(String),
}

impl<'de> Deserialize<'de> for RawCerts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawCerts, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawCerts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"acme\" or a list of { cert, key }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCerts, E> {
                Ok(RawCerts::Word(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<RawCerts, A::Error> {
                let mut files = Vec::new();
                while let Some(c) = a.next_element()? {
                    files.push(c);
                }
                Ok(RawCerts::Files(files))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    cert: String,
    key: String,
}

/// `redirect_http = true` (to port 443) or `redirect_http = 8443`.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
pub(super) enum RawRedirect {
    On(bool),
    Port(u16),
}

/// `proxy_protocol = { trusted = ["10.0.0.0/8", "::1"] }`: a PROXY protocol header (v1
/// or v2) comes first on every connection, from these networks only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyProtocol {
    trusted: Vec<Spanned<String>>,
}

/// What one `[[server]]` (or `[[listener]]`) says about its listeners' front.
#[derive(Clone, Default)]
pub(super) struct FrontPart {
    pub tls: Option<TlsPart>,
    pub proxy_protocol: Option<Arc<[String]>>,
    pub redirect_https: Option<u16>,
    pub hsts: Option<String>,
    /// `http2 = true`: HTTP/2 (ALPN `h2` with TLS, h2c with prior knowledge without).
    pub http2: bool,
    pub span: Range<usize>,
}

/// Merge the fronts of the servers sharing one address into the listener's `Front`.
pub(super) fn merge(
    parts: Vec<FrontPart>,
    addr: std::net::SocketAddr,
    at: At<'_>,
) -> Result<Front, ConfigError> {
    let tls_count = parts.iter().filter(|p| p.tls.is_some()).count();
    let span = parts.first().map_or(0..0, |p| p.span.clone());
    if tls_count != 0 && tls_count != parts.len() {
        return Err(at(
            span,
            format!("the servers on {addr} must all have `tls` or none"),
        ));
    }
    let redirect_https = parts.iter().find_map(|p| p.redirect_https);
    if redirect_https.is_some() && tls_count > 0 {
        return Err(at(
            span,
            format!("`redirect_http` on {addr}, a TLS listener: it goes on the plain one"),
        ));
    }
    let proxy_protocol = parts.first().and_then(|p| p.proxy_protocol.clone());
    if let Some(p) = parts.iter().find(|p| p.proxy_protocol != proxy_protocol) {
        return Err(at(
            p.span.clone(),
            format!("the servers on {addr} must all have the same `proxy_protocol` or none"),
        ));
    }
    let http2 = parts.first().is_some_and(|p| p.http2);
    if let Some(p) = parts.iter().find(|p| p.http2 != http2) {
        return Err(at(
            p.span.clone(),
            format!("the servers on {addr} must all have the same `http2`"),
        ));
    }
    if http2 && redirect_https.is_some() {
        return Err(at(
            span,
            format!("`http2` on {addr} with `redirect_http`: h2c is not redirected; drop one"),
        ));
    }
    let hsts = parts.iter().find_map(|p| p.hsts.clone());
    if hsts.is_some() && tls_count == 0 {
        return Err(at(
            span,
            format!("`hsts` on {addr}, a plain listener: browsers take it over HTTPS only"),
        ));
    }
    let tls_parts: Vec<TlsPart> = parts.into_iter().filter_map(|p| p.tls).collect();
    let built = merge_tls(tls_parts, span, at)?;
    let (tls, handshake_timeout) = match built {
        Some((t, d)) => (Some(t), d),
        None => (None, Duration::from_secs(10)),
    };
    Ok(Front {
        tls,
        handshake_timeout,
        proxy_protocol,
        redirect_https,
        hsts,
        acme: false,
        http2,
    })
}

/// Read the front keys of one server (`acme`: the config has an `[acme]` table).
#[allow(clippy::too_many_arguments)]
pub(super) fn part(
    tls: &Option<Spanned<RawTls>>,
    acme: bool,
    proxy_protocol: Option<Spanned<RawProxyProtocol>>,
    redirect_http: Option<Spanned<RawRedirect>>,
    hsts: Option<String>,
    http: bool,
    http2: Option<Spanned<bool>>,
    span: Range<usize>,
    at: At<'_>,
) -> Result<FrontPart, ConfigError> {
    if let Some(h) = http2.as_ref().filter(|h| *h.get_ref() && !http) {
        return Err(at(h.span(), "`http2` is for http listeners".into()));
    }
    let http2 = http2.is_some_and(|h| h.into_inner());
    Ok(FrontPart {
        tls: (tls.as_ref())
            .map(|t| check(t, http, http2, acme, at))
            .transpose()?,
        http2,
        proxy_protocol: proxy_protocol.map(|p| trusted(p, at)).transpose()?,
        redirect_https: redirect(redirect_http, at)?,
        hsts,
        span,
    })
}

/// The networks of a `proxy_protocol` table; an empty list is refused (no connection
/// could ever be accepted).
fn trusted(raw: Spanned<RawProxyProtocol>, at: At<'_>) -> Result<Arc<[String]>, ConfigError> {
    let span = raw.span();
    let raw = raw.into_inner();
    if raw.trusted.is_empty() {
        return Err(at(
            span,
            "`proxy_protocol.trusted` lists no network: no connection could be accepted".into(),
        ));
    }
    let mut networks = Vec::new();
    for t in &raw.trusted {
        let span = t.span();
        let n = crate::acl::Cidr::parse(t.get_ref()).map_err(|m| {
            let t = t.get_ref();
            at(
                span,
                format!("`proxy_protocol.trusted`: invalid network {t:?}: {m}"),
            )
        })?;
        networks.push(n.canonical());
    }
    Ok(networks.into())
}

/// How a listener meets its clients: a PROXY protocol header first or not, TLS or not,
/// and what HTTP over the plain one does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Front {
    pub tls: Option<TlsSpec>,
    /// The handshake deadline: PROXY header and TLS handshake together.
    pub handshake_timeout: Duration,
    /// Read a PROXY protocol header from these peers (and close others).
    pub proxy_protocol: Option<Arc<[String]>>,
    /// A plain listener answering every request `308` to `https://host[:port]/path`:
    /// the HTTPS port (443 is left out of the URL).
    pub redirect_https: Option<u16>,
    /// `Strict-Transport-Security` added to every response of a TLS listener.
    pub hsts: Option<String>,
    /// A plain http listener answering the ACME HTTP-01 challenges of the process' running
    /// `[acme]` (`acme/`).
    pub acme: bool,
    /// HTTP/2 as well as HTTP/1.1: offered by ALPN (`h2` first) on a TLS listener, taken
    /// with prior knowledge (h2c: the client opens with the connection preface) on a
    /// plain one. Off by default.
    pub http2: bool,
}

/// A listener's checked TLS: certificate files and options (`runtime.rs` builds the rustls
/// config from them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// In order: the first is the default for a client whose SNI names none.
    pub certs: Vec<CertFiles>,
    pub strict_sni: bool,
    /// Allow TLS 1.2 (else 1.3 only).
    pub tls12: bool,
    pub alpn: Vec<String>,
    /// Verify client certificates against these CAs (and require one).
    pub client_ca: Option<PathBuf>,
    pub session_tickets: bool,
    pub session_cache: usize,
    /// The names whose certificates ACME provides (`[acme]`), before the files; empty: none.
    pub acme_names: Vec<String>,
    /// Where the listener is written (errors found when the config is built).
    pub pos: Pos,
}

/// One `{ cert, key }` of `certificates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub pos: Pos,
}

/// A server's (or listener's) TLS part before the listener's certificates are merged.
#[derive(Clone)]
pub(super) struct TlsPart {
    certs: Vec<CertFiles>,
    strict_sni: bool,
    tls12: bool,
    alpn: Vec<String>,
    client_ca: Option<PathBuf>,
    session_tickets: bool,
    session_cache: usize,
    /// ACME on, for these names (more may come from `hostnames`).
    acme: Option<Vec<String>>,
    handshake_timeout: Duration,
    /// `certificates = "acme"` without `acme_domains`: the names come from `hostnames`.
    acme_from_hosts: bool,
    span: Range<usize>,
}

/// Read the certificates and options of one `tls` table.
pub(super) fn check(
    raw: &Spanned<RawTls>,
    http: bool,
    http2: bool,
    acme: bool,
    at: At<'_>,
) -> Result<TlsPart, ConfigError> {
    let span = raw.span();
    let r = raw.get_ref();
    let mut certs = Vec::new();
    let mut wants_acme = r.acme_domains.is_some();
    match r.certificates.as_ref().map(|c| (c.get_ref(), c.span())) {
        None if wants_acme => {}
        None => {
            return Err(at(
                span,
                "`tls` needs `certificates` (files, or \"acme\") or `acme_domains`".into(),
            ))
        }
        Some((RawCerts::Word(w), _)) if w == "acme" => wants_acme = true,
        Some((RawCerts::Word(w), s)) => {
            return Err(at(
                s,
                format!("`certificates`: {w:?} is not \"acme\" or a list of {{ cert, key }}"),
            ))
        }
        Some((RawCerts::Files(files), s)) => {
            if files.is_empty() && !wants_acme {
                return Err(at(s, "`tls` needs at least one of `certificates`".into()));
            }
            for c in files {
                let (cert, key) = (&c.get_ref().cert, &c.get_ref().key);
                load_cert(cert.as_ref(), key.as_ref()).map_err(|m| at(c.span(), m))?;
                certs.push(CertFiles {
                    cert: cert.into(),
                    key: key.into(),
                    pos: Pos::at(at, c.span()),
                });
            }
        }
    }
    let acme = match (wants_acme, acme) {
        (false, _) => None,
        (true, false) => {
            return Err(at(
                span,
                "ACME certificates need an [acme] table (email, agree_tos = true)".into(),
            ))
        }
        (true, true) => {
            let mut names = Vec::new();
            for d in r.acme_domains.iter().flatten() {
                let n = crate::acme::check_name(d.get_ref())
                    .map_err(|m| at(d.span(), format!("`acme_domains`: {m}")))?;
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            Some(names)
        }
    };
    let tls12 = match r
        .min_version
        .as_ref()
        .map(|v| (v.get_ref().as_str(), v.span()))
    {
        None | Some(("1.2", _)) => true,
        Some(("1.3", _)) => false,
        Some((other, s)) => {
            return Err(at(
                s,
                format!("`min_version`: {other:?} is not \"1.2\" or \"1.3\""),
            ))
        }
    };
    let alpn = r.alpn.clone().unwrap_or_else(|| {
        if http && http2 {
            vec!["h2".to_string(), "http/1.1".to_string()]
        } else if http {
            vec!["http/1.1".to_string()]
        } else {
            Vec::new()
        }
    });
    if let Some(bad) = alpn.iter().find(|p| p.is_empty() || p.len() > 255) {
        return Err(at(span, format!("`alpn`: {bad:?} is not a protocol name")));
    }
    let served = |p: &str| p == "http/1.1" || (http2 && p == "h2");
    if let Some(bad) = alpn.iter().find(|p| http && !served(p)) {
        let what = if http2 {
            "h2 and http/1.1 are"
        } else {
            "http/1.1 is; h2 needs `http2 = true`"
        };
        return Err(at(
            span,
            format!("`alpn`: {bad:?} is not served here ({what})"),
        ));
    }
    let handshake_timeout = super::millis(
        r.handshake_timeout_ms.clone(),
        10_000,
        "handshake_timeout_ms",
        at,
    )?;
    Ok(TlsPart {
        certs,
        strict_sni: r.strict_sni,
        tls12,
        alpn,
        client_ca: r.client_ca.as_ref().map(PathBuf::from),
        session_tickets: r.session_tickets.unwrap_or(true),
        session_cache: r.session_cache.unwrap_or(10_000),
        acme,
        handshake_timeout,
        acme_from_hosts: wants_acme && r.acme_domains.is_none(),
        span,
    })
}

/// Merge the TLS parts of the servers of one address (the first one's options win, every
/// certificate is offered) and check what the listener's config will be built from.
fn merge_tls(
    mut parts: Vec<TlsPart>,
    span: Range<usize>,
    at: At<'_>,
) -> Result<Option<(TlsSpec, Duration)>, ConfigError> {
    if parts.is_empty() {
        return Ok(None);
    }
    let mut first = parts.remove(0);
    for p in parts {
        first.certs.extend(p.certs);
        match (&mut first.acme, p.acme) {
            (Some(names), Some(more)) => {
                for n in more {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            (first_acme @ None, Some(more)) => *first_acme = Some(more),
            (_, None) => {}
        }
    }
    if let Some(names) = &first.acme {
        if names.is_empty() {
            return Err(at(
                first.span,
                "ACME certificates for no name: give `acme_domains` (or `hostnames` on a \
                 [[server]])"
                    .into(),
            ));
        }
    }
    if first.acme.is_none() && first.certs.is_empty() {
        return Err(at(
            span,
            "`tls` needs at least one of `certificates`".into(),
        ));
    }
    crate::certs::check_server(first.tls12, first.client_ca.as_deref())
        .map_err(|m| at(span.clone(), format!("`tls`: {m}")))?;
    let tls = TlsSpec {
        certs: first.certs,
        strict_sni: first.strict_sni,
        tls12: first.tls12,
        alpn: first.alpn,
        client_ca: first.client_ca,
        session_tickets: first.session_tickets,
        session_cache: first.session_cache,
        acme_names: first.acme.unwrap_or_default(),
        pos: Pos::at(at, span),
    };
    Ok(Some((tls, first.handshake_timeout)))
}

/// `redirect_http` to the HTTPS port.
pub(super) fn redirect(
    r: Option<Spanned<RawRedirect>>,
    at: At<'_>,
) -> Result<Option<u16>, ConfigError> {
    match r.map(|r| (r.span(), *r.get_ref())) {
        None | Some((_, RawRedirect::On(false))) => Ok(None),
        Some((_, RawRedirect::On(true))) => Ok(Some(443)),
        Some((s, RawRedirect::Port(0))) => Err(at(s, "`redirect_http`: port 0".into())),
        Some((_, RawRedirect::Port(p))) => Ok(Some(p)),
    }
}

/// `certificates = "acme"` on a `[[server]]` without `acme_domains`: its `hostnames`.
pub(super) fn acme_names_from_hosts(
    part: &mut FrontPart,
    hostnames: &[String],
    at: At<'_>,
) -> Result<(), ConfigError> {
    let Some(tls) = part.tls.as_mut().filter(|t| t.acme_from_hosts) else {
        return Ok(());
    };
    let Some(names) = tls.acme.as_mut() else {
        return Ok(());
    };
    for h in hostnames {
        let n = crate::acme::check_name(h).map_err(|m| {
            at(
                tls.span.clone(),
                format!("`certificates = \"acme\"` for `hostnames`: {m} (list `acme_domains`)"),
            )
        })?;
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(())
}
