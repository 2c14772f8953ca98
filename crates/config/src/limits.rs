//! Access controls beside the allow/deny lists: named request limits (nginx's
//! `limit_req_zone` + `limit_req`, and `limit_conn`) and basic auth from an htpasswd file.
//!
//! ```toml
//! [[limit]]
//! name = "api"
//! rate = "10r/s"                   # limit_req: a rate ("r/s" or "r/m")
//! burst = 5                        # requests in excess of the rate (default 0)
//! nodelay = true                   # pass the burst at once (default false: delayed)
//! conn = 2                         # limit_conn: requests in flight per key (default none)
//! key = ["client_ip", "header.X-Api-Key"]  # also "cookie.NAME", "route" (default client_ip)
//! status = 429                     # the refusal (default 429)
//! body = "slow down\n"             # its body (default a short text)
//! max_keys = 100000                # keys kept in memory, least recently seen out first
//!
//! [[server.route]]
//! path = "/api"
//! proxy = "app"
//! limits = ["api"]
//! basic_auth = { realm = "admin", htpasswd = "/etc/tether/users", forward_authorization = false }
//! ```
//!
//! `limits` and `basic_auth` on a `[[server]]` apply to its routes that do not set their own.
//! The htpasswd file is read and checked here (a refused hash is an error at the
//! `htpasswd` value, with the file's own line in the message).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// `[[limit]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimit {
    name: Spanned<String>,
    rate: Option<Spanned<String>>,
    burst: Option<u32>,
    nodelay: Option<bool>,
    conn: Option<Spanned<u32>>,
    key: Option<Spanned<Vec<String>>>,
    status: Option<Spanned<u16>>,
    body: Option<String>,
    max_keys: Option<Spanned<usize>>,
}

/// `basic_auth = { ... }` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasicAuth {
    #[serde(default = "default_realm")]
    realm: String,
    htpasswd: Spanned<String>,
    #[serde(default)]
    forward_authorization: bool,
}

fn default_realm() -> String {
    "restricted".into()
}

/// One part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client's address (after the PROXY protocol).
    ClientIp,
    /// A request header's value (name in lower case).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The route's path.
    Route,
}

/// A checked `[[limit]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSpec {
    pub name: String,
    /// `rate`, `burst`, `nodelay` (none: no rate limit, only `conn`).
    pub rate: Option<tether_limits::RateRule>,
    /// `conn`: requests in flight per key.
    pub conn: Option<u32>,
    pub key: Vec<KeyPart>,
    pub status: u16,
    pub body: String,
    pub max_keys: usize,
}

/// The default refusal body.
pub const DEFAULT_LIMIT_BODY: &str = "Too many requests; try again later.\n";

/// An htpasswd file read at check time. Two loads compare equal only if they are the same
/// load (a reload that reads the file again is a change).
#[derive(Clone)]
pub struct Users(pub Arc<tether_auth::Htpasswd>);

impl PartialEq for Users {
    fn eq(&self, other: &Users) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Users({}, {} user(s))", self.0.path(), self.0.len())
    }
}

/// A checked `basic_auth`.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuthSpec {
    pub realm: String,
    pub users: Users,
    pub forward_authorization: bool,
}

/// What a route checks before its module: limits, basic auth.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessSpec {
    pub limits: Vec<Arc<LimitSpec>>,
    pub basic_auth: Option<BasicAuthSpec>,
}

impl AccessSpec {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.basic_auth.is_none()
    }
}

/// The named limits, by name.
pub(crate) type Limits = HashMap<String, Arc<LimitSpec>>;

/// Check every `[[limit]]`.
pub(crate) fn check(raw: Vec<Spanned<RawLimit>>, at: At<'_>) -> Result<Limits, ConfigError> {
    let mut out = Limits::new();
    for l in raw {
        let span = l.span();
        let l = l.into_inner();
        let name = l.name.get_ref().clone();
        if name.is_empty() {
            return Err(at(l.name.span(), "`name` of a [[limit]] is empty".into()));
        }
        if out.contains_key(&name) {
            return Err(at(
                l.name.span(),
                format!("a second [[limit]] named {name:?}"),
            ));
        }
        let burst = l.burst.unwrap_or(0);
        let nodelay = l.nodelay.unwrap_or(false);
        let rate = match &l.rate {
            None => None,
            Some(r) => Some(
                tether_limits::RateRule::parse(r.get_ref(), burst, nodelay)
                    .map_err(|e| at(r.span(), format!("`rate`: {e}")))?,
            ),
        };
        if rate.is_none() && (l.burst.is_some() || l.nodelay.is_some()) {
            return Err(at(span, "`burst` and `nodelay` go with `rate`".into()));
        }
        let conn = match &l.conn {
            Some(c) if *c.get_ref() == 0 => {
                return Err(at(c.span(), "`conn` must be above 0".into()))
            }
            c => c.as_ref().map(|c| *c.get_ref()),
        };
        if rate.is_none() && conn.is_none() {
            return Err(at(
                span,
                format!("[[limit]] {name:?} needs `rate` (limit_req) or `conn` (limit_conn)"),
            ));
        }
        let key = match &l.key {
            None => vec![KeyPart::ClientIp],
            Some(k) => {
                if k.get_ref().is_empty() {
                    return Err(at(k.span(), "`key` is empty".into()));
                }
                k.get_ref()
                    .iter()
                    .map(|p| key_part(p).map_err(|m| at(k.span(), m)))
                    .collect::<Result<_, _>>()?
            }
        };
        let status = match &l.status {
            None => 429,
            Some(s) if (400..600).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => return Err(at(s.span(), "`status` must be 4xx or 5xx".into())),
        };
        let max_keys = match &l.max_keys {
            None => tether_limits::DEFAULT_MAX_KEYS,
            Some(m) if *m.get_ref() == 0 => {
                return Err(at(m.span(), "`max_keys` must be above 0".into()))
            }
            Some(m) => *m.get_ref(),
        };
        let spec = LimitSpec {
            name: name.clone(),
            rate,
            conn,
            key,
            status,
            body: l.body.unwrap_or_else(|| DEFAULT_LIMIT_BODY.into()),
            max_keys,
        };
        out.insert(name, Arc::new(spec));
    }
    Ok(out)
}

fn key_part(text: &str) -> Result<KeyPart, String> {
    match text {
        "client_ip" => return Ok(KeyPart::ClientIp),
        "route" => return Ok(KeyPart::Route),
        _ => {}
    }
    if let Some(h) = text.strip_prefix("header.").filter(|h| !h.is_empty()) {
        return Ok(KeyPart::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = text.strip_prefix("cookie.").filter(|c| !c.is_empty()) {
        return Ok(KeyPart::Cookie(c.to_string()));
    }
    Err(format!(
        "`key`: {text:?} is not \"client_ip\", \"route\", \"header.NAME\" or \"cookie.NAME\""
    ))
}

/// The limits a route (or server) names.
pub(crate) fn named(
    names: &Option<Spanned<Vec<String>>>,
    limits: &Limits,
    at: At<'_>,
) -> Result<Option<Vec<Arc<LimitSpec>>>, ConfigError> {
    let Some(names) = names else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for n in names.get_ref() {
        let l = limits
            .get(n)
            .ok_or_else(|| at(names.span(), format!("`limits`: no [[limit]] named {n:?}")))?;
        out.push(l.clone());
    }
    Ok(Some(out))
}

/// Check a `basic_auth`: its htpasswd file is read now.
pub(crate) fn basic_auth(
    raw: &Option<Spanned<RawBasicAuth>>,
    at: At<'_>,
) -> Result<Option<BasicAuthSpec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let r = raw.get_ref();
    let path = r.htpasswd.get_ref();
    let users = tether_auth::Htpasswd::load(path).map_err(|e| {
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        at(
            r.htpasswd.span(),
            format!("`basic_auth.htpasswd`: {}", lines.join("; ")),
        )
    })?;
    if r.realm.contains(['"', '\r', '\n']) {
        return Err(at(
            raw.span(),
            "`realm` may not hold '\"' or a line break".into(),
        ));
    }
    Ok(Some(BasicAuthSpec {
        realm: r.realm.clone(),
        users: Users(Arc::new(users)),
        forward_authorization: r.forward_authorization,
    }))
}

/// A route's access spec: its own `limits`/`basic_auth`, else its server's.
pub(crate) fn route_access(
    limits: Option<Vec<Arc<LimitSpec>>>,
    basic_auth: Option<BasicAuthSpec>,
    server: &AccessSpec,
) -> AccessSpec {
    AccessSpec {
        limits: limits.unwrap_or_else(|| server.limits.clone()),
        basic_auth: basic_auth.or_else(|| server.basic_auth.clone()),
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    const BASE: &str = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n\n[[server]]\nlisten = [\"127.0.0.1:8080\"]\n";

    fn err(text: &str) -> String {
        match parse(text, "t.toml") {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn limits_are_checked_with_positions() {
        let ok = format!(
            "[[limit]]\nname = \"api\"\nrate = \"10r/s\"\nburst = 5\nnodelay = true\nkey = [\"client_ip\", \"header.X-Api-Key\", \"cookie.sid\", \"route\"]\n\n[[limit]]\nname = \"c\"\nconn = 2\n\n{BASE}\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\nlimits = [\"api\", \"c\"]\n"
        );
        let s = parse(&ok, "t.toml").expect("a good config");
        let crate::Target::Http(r) = &s.listeners[0].target else {
            panic!("http")
        };
        let access = &r.hosts[0].routes[0].access;
        assert_eq!(access.limits.len(), 2);
        assert_eq!(access.limits[0].status, 429);
        assert_eq!(access.limits[0].max_keys, 100_000);
        assert_eq!(access.limits[0].key.len(), 4);
        assert_eq!(access.limits[1].conn, Some(2));

        let e = err(&format!(
            "{BASE}\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\nlimits = [\"nope\"]\n"
        ));
        assert!(
            e.starts_with("t.toml:11:10: `limits`: no [[limit]] named \"nope\""),
            "{e}"
        );
        let e = err(&format!(
            "[[limit]]\nname = \"a\"\nrate = \"10r/x\"\n{BASE}"
        ));
        assert!(e.starts_with("t.toml:3:8: `rate`: "), "{e}");
        let e = err(&format!(
            "[[limit]]\nname = \"a\"\nrate = \"1r/s\"\nkey = [\"ip\"]\n{BASE}"
        ));
        assert!(e.starts_with("t.toml:4:7: `key`: \"ip\" is not"), "{e}");
        let e = err(&format!("[[limit]]\nname = \"a\"\n{BASE}"));
        assert!(
            e.contains("needs `rate` (limit_req) or `conn` (limit_conn)"),
            "{e}"
        );
        let e = err(&format!("[[limit]]\nname = \"a\"\nconn = 0\n{BASE}"));
        assert!(e.starts_with("t.toml:3:8: `conn` must be above 0"), "{e}");
    }

    #[test]
    fn basic_auth_reads_the_file_at_check_time() {
        let dir = std::env::temp_dir().join(format!("tether-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        std::fs::write(&file, "md5:$apr1$abc$def\n").unwrap();
        let text = format!(
            "{BASE}basic_auth = {{ htpasswd = \"{}\" }}\n\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n",
            file.display()
        );
        let e = err(&text);
        assert!(e.starts_with("t.toml:7:27: `basic_auth.htpasswd`: "), "{e}");
        assert!(e.contains(&format!("{}:1:", file.display())), "{e}");
        let missing = text.replace("users", "absent");
        assert!(err(&missing).contains("absent"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
