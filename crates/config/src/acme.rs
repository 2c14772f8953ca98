//! The `[acme]` table, checked into [`AcmeSettings`], and binding it to the listeners:
//! which challenge is used, and that something can answer it.
//!
//! ```toml
//! [acme]
//! directory = "staging"          # default: Let's Encrypt production; or an https:// URL
//! email = "admin@example.org"
//! agree_tos = true               # required: you accept the CA's terms of service
//! storage = "acme"               # default ./acme (account, certificates, leases)
//! challenge = "http-01"          # or "tls-alpn-01"; default: http-01 when a plain http
//!                                # listener is on port 80, else tls-alpn-01
//! # eab = { kid = "...", hmac_key = "base64url" }   # external account binding
//! # ca = "pebble-ca.pem"         # trust this CA for the directory's HTTPS (tests)
//!
//! [[server]]
//! listen = ["0.0.0.0:443"]
//! hostnames = ["example.org", "www.example.org"]
//! tls = { certificates = "acme" }   # or acme_domains = ["example.org"]
//! ```

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::{ConfigError, ListenerSpec, Target};

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// Let's Encrypt's production directory (the default).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory = "staging"`).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    directory: Option<Spanned<String>>,
    email: Option<Spanned<String>>,
    agree_tos: Option<bool>,
    storage: Option<String>,
    challenge: Option<Spanned<String>>,
    eab: Option<Spanned<RawEab>>,
    ca: Option<Spanned<String>>,
    retry_initial_ms: Option<Spanned<u64>>,
    retry_max_ms: Option<Spanned<u64>>,
    lease_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEab {
    kid: String,
    hmac_key: String,
}

/// How the CA checks that tether answers for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `http://<name>/.well-known/acme-challenge/<token>` on a plain listener (port 80).
    Http01,
    /// A TLS handshake with ALPN `acme-tls/1` on a TLS listener (port 443).
    TlsAlpn01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// External account binding: the key id and the HMAC key the CA gave.
#[derive(Clone, PartialEq, Eq)]
pub struct Eab {
    pub kid: String,
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for Eab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Eab({:?}, <key>)", self.kid)
    }
}

/// A checked `[acme]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The directory URL.
    pub directory: String,
    pub email: Option<String>,
    pub storage: PathBuf,
    pub eab: Option<Eab>,
    /// Trust this CA (PEM) for the directory's HTTPS instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The first wait after a failure; doubled each time, up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long an instance may hold a name's lease while it orders.
    pub lease: Duration,
}

/// A checked `[acme]` bound to the listeners: its settings, the challenge answered and the
/// names managed, in config order. `Acme::build` makes the state the loops and the helper
/// thread share (in the worker; checking a config starts nothing and reads no storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSpec {
    pub settings: AcmeSettings,
    pub challenge: Challenge,
    pub names: Vec<String>,
}

/// The checked `[acme]` before the listeners are read, with what `bind` still needs.
pub(crate) struct Pending {
    settings: AcmeSettings,
    challenge: Option<(Challenge, Range<usize>)>,
    span: Range<usize>,
}

/// Check `[acme]`.
pub(crate) fn check(raw: Spanned<RawAcme>, at: At<'_>) -> Result<Pending, ConfigError> {
    let span = raw.span();
    let r = raw.into_inner();
    if r.agree_tos != Some(true) {
        return Err(at(
            span,
            "[acme]: `agree_tos = true` is required (you accept the CA's terms of service)".into(),
        ));
    }
    let directory = match r.directory {
        None => LETS_ENCRYPT.to_string(),
        Some(d) => match d.get_ref().as_str() {
            "staging" => LETS_ENCRYPT_STAGING.to_string(),
            "production" | "letsencrypt" => LETS_ENCRYPT.to_string(),
            u if u.starts_with("https://") && u.len() > "https://".len() => u.to_string(),
            u => {
                return Err(at(
                    d.span(),
                    format!(
                        "`directory`: {u:?} is not \"staging\", \"production\" or an https:// URL"
                    ),
                ))
            }
        },
    };
    let email = match r.email {
        Some(e) if !valid_email(e.get_ref()) => {
            return Err(at(
                e.span(),
                format!("`email`: {:?} is not an address", e.get_ref()),
            ))
        }
        e => e.map(Spanned::into_inner),
    };
    let challenge = match r.challenge {
        None => None,
        Some(c) => match c.get_ref().as_str() {
            "http-01" => Some((Challenge::Http01, c.span())),
            "tls-alpn-01" => Some((Challenge::TlsAlpn01, c.span())),
            other => {
                return Err(at(
                    c.span(),
                    format!("`challenge`: {other:?} is not \"http-01\" or \"tls-alpn-01\""),
                ))
            }
        },
    };
    let eab = match r.eab {
        None => None,
        Some(e) => {
            let s = e.span();
            let e = e.into_inner();
            let key = base64_url(&e.hmac_key)
                .ok_or_else(|| at(s.clone(), "`eab.hmac_key`: not base64url".into()))?;
            if e.kid.is_empty() || key.is_empty() {
                return Err(at(
                    s,
                    "`eab`: `kid` and `hmac_key` must not be empty".into(),
                ));
            }
            Some(Eab {
                kid: e.kid,
                hmac_key: key,
            })
        }
    };
    let ca = match r.ca {
        None => None,
        Some(c) => {
            let path = PathBuf::from(c.get_ref());
            if let Err(e) = std::fs::metadata(&path) {
                return Err(at(c.span(), format!("`ca`: {}: {e}", path.display())));
            }
            Some(path)
        }
    };
    let ms = |v, d, k| crate::millis(v, d, k, at);
    let retry_initial = ms(r.retry_initial_ms, 60_000, "retry_initial_ms")?;
    let retry_max = ms(r.retry_max_ms, 6 * 3_600_000, "retry_max_ms")?.max(retry_initial);
    let settings = AcmeSettings {
        directory,
        email,
        storage: PathBuf::from(r.storage.unwrap_or_else(|| "acme".into())),
        eab,
        ca,
        retry_initial,
        retry_max,
        lease: ms(r.lease_ms, 600_000, "lease_ms")?,
    };
    Ok(Pending {
        settings,
        challenge,
        span,
    })
}

/// A name a certificate can be ordered for by HTTP-01 / TLS-ALPN-01: a DNS name, not a
/// wildcard, not an address.
pub(crate) fn check_name(name: &str) -> Result<String, String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n.starts_with("*.") {
        return Err(format!(
            "{name:?}: a wildcard needs the DNS-01 challenge, which tether does not answer"
        ));
    }
    if n.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("{name:?}: an address, not a DNS name"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if n.len() > 253 || !n.contains('.') || !n.split('.').all(label_ok) {
        return Err(format!("{name:?} is not a DNS name (like example.org)"));
    }
    Ok(n)
}

/// With every listener read: decide the challenge, check something answers it, have the
/// plain http listeners answer HTTP-01, and gather the names to manage.
pub(crate) fn bind(
    pending: Option<Pending>,
    listeners: &mut [(ListenerSpec, Range<usize>)],
    at: At<'_>,
) -> Result<Option<AcmeSpec>, ConfigError> {
    let Some(p) = pending else {
        return Ok(None);
    };
    let acme_listeners: Vec<&ListenerSpec> = listeners
        .iter()
        .map(|(l, _)| l)
        .filter(|l| {
            l.front
                .tls
                .as_ref()
                .is_some_and(|t| !t.acme_names.is_empty())
        })
        .collect();
    if acme_listeners.is_empty() {
        return Err(at(
            p.span,
            "[acme]: no listener uses it (`tls = { certificates = \"acme\" }` or `acme_domains`)"
                .into(),
        ));
    }
    let plain_http =
        |l: &ListenerSpec| l.front.tls.is_none() && matches!(l.target, Target::Http(_));
    let port80 = listeners
        .iter()
        .any(|(l, _)| plain_http(l) && l.listen.port() == 80);
    let (challenge, cspan) = p.challenge.clone().unwrap_or_else(|| {
        let c = if port80 {
            Challenge::Http01
        } else {
            Challenge::TlsAlpn01
        };
        (c, p.span.clone())
    });
    match challenge {
        Challenge::Http01 => {
            if !listeners.iter().any(|(l, _)| plain_http(l)) {
                return Err(at(
                    cspan,
                    "[acme]: HTTP-01 needs a plain http listener (port 80) to answer \
                     /.well-known/acme-challenge/"
                        .into(),
                ));
            }
            if !port80 {
                log::warn!(
                    "acme: HTTP-01 is validated on port 80 and no plain http listener is on it \
                     (fine behind a port forward)"
                );
            }
        }
        Challenge::TlsAlpn01 => {
            for l in &acme_listeners {
                // `acme-tls/1` is offered by ACME listeners that speak ALPN at all.
                let answers = l.front.tls.as_ref().is_some_and(|t| !t.alpn.is_empty());
                if !answers {
                    return Err(at(
                        cspan,
                        format!(
                            "[acme]: TLS-ALPN-01 is answered by listeners that speak ALPN; {} \
                             has no `alpn` (set `challenge = \"http-01\"` or an `alpn` list)",
                            l.listen
                        ),
                    ));
                }
            }
            if !acme_listeners.iter().any(|l| l.listen.port() == 443) {
                log::warn!(
                    "acme: TLS-ALPN-01 is validated on port 443 and no ACME listener is on it \
                     (fine behind a port forward)"
                );
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for n in acme_listeners
        .iter()
        .filter_map(|l| l.front.tls.as_ref())
        .flat_map(|t| t.acme_names.iter())
    {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    for (l, _) in listeners.iter_mut() {
        if plain_http(l) {
            l.front.acme = true;
        }
    }
    Ok(Some(AcmeSpec {
        settings: p.settings,
        challenge,
        names,
    }))
}

fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((user, host)) => {
            !user.is_empty() && host.contains('.') && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Decode base64url (padding optional).
fn base64_url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}
