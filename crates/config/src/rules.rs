//! Header rules, path rewriting and request ids of a `[[server]]` and its routes, checked
//! into plain data (`RouteRules`):
//!
//! ```toml
//! [[server]]
//! request_id = "generate"          # "off" (default) | "generate" | "trust"
//! request_headers = { set = { "X-Client" = "{client_ip}:{client_port}" } }
//!
//! [[server.route]]
//! path = "/api"
//! proxy = "app"
//! strip_prefix = true              # /api/x reaches the backend as /x
//! add_prefix = "/v1"               # ... and then as /v1/x
//! request_headers = { set = { "X-Tenant" = "{header.x-tenant}" }, remove = ["X-Internal-*"] }
//! response_headers = { add = { "X-Served-By" = "{upstream_name}" }, remove = ["Server"] }
//! ```
//!
//! A value is a template: literal text and `{placeholder}`s (`Template`), with `{{` and `}}`
//! for literal braces. An unknown placeholder is a `path:line:col` error with a hint.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// A placeholder of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    ClientIp,
    ClientPort,
    /// `http` or `https` (how the client came).
    Scheme,
    /// The request's `Host` (without a port), or the SNI.
    Host,
    /// The request's path (the client's, before any rewrite), without the query.
    Path,
    /// The query string without its `?` (empty if none).
    Query,
    RequestId,
    /// `TLSv1_3`, ... (empty over plain TCP).
    TlsVersion,
    Sni,
    /// A request header, by name (lower case); all its values joined by `, `.
    Header(String),
    /// A cookie of the request, by name.
    Cookie(String),
    /// The upstream pool's name.
    UpstreamName,
    /// The picked server's `ip:port`.
    UpstreamAddr,
    /// Access-log templates only (`access_log.rs`).
    Log(crate::access_log::LogVar),
}

/// The placeholders without an argument, by name.
const NAMES: [(&str, Var); 11] = [
    ("client_ip", Var::ClientIp),
    ("client_port", Var::ClientPort),
    ("scheme", Var::Scheme),
    ("host", Var::Host),
    ("path", Var::Path),
    ("query", Var::Query),
    ("request_id", Var::RequestId),
    ("tls_version", Var::TlsVersion),
    ("sni", Var::Sni),
    ("upstream_name", Var::UpstreamName),
    ("upstream_addr", Var::UpstreamAddr),
];

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(Var),
}

/// A header value with placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(pub Vec<Part>);

impl Template {
    /// Parse `text`; an error gives the byte offset in `text` and a message.
    pub fn parse(text: &str) -> Result<Template, (usize, String)> {
        Template::parse_with(text, false)
    }

    /// Parse an access-log template: the log-only placeholders too.
    pub fn parse_log(text: &str) -> Result<Template, (usize, String)> {
        Template::parse_with(text, true)
    }

    fn parse_with(text: &str, log: bool) -> Result<Template, (usize, String)> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' if b.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'}' => return Err((i, "a lone `}` (write `}}` for a brace)".into())),
                b'{' => {
                    let Some(len) = text[i + 1..].find('}') else {
                        return Err((i, "a `{` without its `}` (write `{{` for a brace)".into()));
                    };
                    let name = &text[i + 1..i + 1 + len];
                    let var = var(name, log).map_err(|m| (i, m))?;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(var));
                    i += len + 2;
                }
                _ => {
                    // Copy the whole character (text is UTF-8).
                    let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                    lit.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template(parts))
    }
}

/// The placeholder `name` (what is between the braces).
fn var(name: &str, log: bool) -> Result<Var, String> {
    if let Some((_, v)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(v.clone());
    }
    let log_names = if log {
        &crate::access_log::LOG_NAMES[..]
    } else {
        &[]
    };
    if let Some((_, v)) = log_names.iter().find(|(n, _)| *n == name) {
        return Ok(Var::Log(*v));
    }
    for (prefix, make) in [
        ("header.", Var::Header as fn(String) -> Var),
        ("cookie.", Var::Cookie as fn(String) -> Var),
    ] {
        if let Some(arg) = name.strip_prefix(prefix) {
            if arg.is_empty() || !arg.bytes().all(is_tchar) {
                return Err(format!(
                    "`{{{name}}}`: {prefix}NAME needs a header or cookie name"
                ));
            }
            let arg = if prefix == "header." {
                arg.to_ascii_lowercase()
            } else {
                arg.to_string()
            };
            return Ok(make(arg));
        }
    }
    let mut known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    known.extend(log_names.iter().map(|(n, _)| *n));
    known.extend(["header.NAME", "cookie.NAME"]);
    let hint = crate::hints::closest(name, known.iter().copied())
        .map(|k| format!(" (did you mean `{{{k}}}`?)"))
        .unwrap_or_default();
    Err(format!(
        "unknown placeholder `{{{name}}}`{hint}; known: {}",
        known.join(", ")
    ))
}

/// A header-name character (RFC 9110 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The header names to remove: exact, or every name starting with a prefix (`X-Internal-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Lower case.
    Exact(String),
    /// Lower case, without the `*`.
    Prefix(String),
}

impl NameMatch {
    /// Whether header `name` is matched (case-insensitive).
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(n) => name.eq_ignore_ascii_case(n),
            NameMatch::Prefix(p) => {
                name.len() >= p.len()
                    && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
        }
    }
}

/// Rules for one head (the request going upstream, or the answer going to the client):
/// `remove` first, then `set` (replaces every line of that name; an empty result removes
/// it), then `add` (one more line).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderRules {
    pub remove: Vec<NameMatch>,
    pub set: Vec<(String, Template)>,
    pub add: Vec<(String, Template)>,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// These rules, then `later`'s (a route's after its server's).
    fn then(mut self, later: &HeaderRules) -> HeaderRules {
        // What the later rules remove, the earlier do not write.
        let removed = |n: &String| later.remove.iter().any(|m| m.matches(n));
        self.set.retain(|(n, _)| !removed(n));
        self.add.retain(|(n, _)| !removed(n));
        self.remove.extend(later.remove.iter().cloned());
        self.set
            .retain(|(n, _)| !later.set.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)));
        self.set.extend(later.set.iter().cloned());
        self.add.extend(later.add.iter().cloned());
        self
    }
}

/// `request_id`: `X-Request-Id` on the request sent upstream and on the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestIdMode {
    /// Nothing added (the client's header, if any, passes like any other).
    #[default]
    Off,
    /// A new id (128 random bits, 32 hex digits) for each request; the client's is replaced.
    Generate,
    /// The client's `X-Request-Id` when it sends a sane one (1-128 visible characters),
    /// else a new one.
    Trust,
}

/// What a route does to the requests it proxies and their answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRules {
    pub request: HeaderRules,
    pub response: HeaderRules,
    /// `strip_prefix = true`: this prefix (the route's path) is taken off the target.
    pub strip_prefix: Option<String>,
    /// `add_prefix`: put before the (stripped) path.
    pub add_prefix: Option<String>,
    pub request_id: RequestIdMode,
    /// `regex`, `rewrite` and a redirect's target (`rewrite.rs`).
    pub rewrite: crate::rewrite::Rewrite,
    /// `error_page` (the route's, then its server's) and `intercept_errors`.
    pub error_pages: crate::rewrite::ErrorPages,
}

impl RouteRules {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty()
            && self.response.is_empty()
            && self.strip_prefix.is_none()
            && self.add_prefix.is_none()
            && self.request_id == RequestIdMode::Off
            && self.rewrite.is_empty()
            && self.error_pages.is_empty()
    }

    /// Header rules, prefixes or a request id to apply to a forwarded request.
    pub fn forwards_anything(&self) -> bool {
        !(self.request.is_empty()
            && self.response.is_empty()
            && self.strip_prefix.is_none()
            && self.add_prefix.is_none()
            && self.request_id == RequestIdMode::Off)
    }
}

/// `request_headers = { set = {...}, add = {...}, remove = [...] }`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderRules {
    #[serde(default)]
    set: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    add: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
}

/// Headers no rule may write or remove: the framing and hop-by-hop fields tether manages.
const MANAGED: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "content-length",
    "host",
];

/// Whether `name` is managed by tether whatever a rule says (`host` may be set, on requests).
pub fn is_managed(name: &str) -> bool {
    MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name))
}

/// The header rules of a server (what its routes inherit).
#[derive(Default, Clone)]
pub(super) struct ServerRules {
    request: HeaderRules,
    response: HeaderRules,
    request_id: Option<RequestIdMode>,
    /// `error_page` and `intercept_errors` (`rewrite.rs`).
    pub error_pages: crate::rewrite::ErrorPages,
}

/// The shared keys of `[[server]]` and a route.
pub(super) struct RawRules<'a> {
    pub request_headers: &'a Option<Spanned<RawHeaderRules>>,
    pub response_headers: &'a Option<Spanned<RawHeaderRules>>,
    pub request_id: &'a Option<Spanned<String>>,
}

impl RawRules<'_> {
    fn check(&self, at: At<'_>) -> Result<ServerRules, ConfigError> {
        let head = |raw: &Option<Spanned<RawHeaderRules>>, request: bool| match raw {
            None => Ok(HeaderRules::default()),
            Some(r) => header_rules(r.get_ref(), request, at),
        };
        let request_id = match self.request_id {
            None => None,
            Some(m) => Some(match m.get_ref().as_str() {
                "off" => RequestIdMode::Off,
                "generate" => RequestIdMode::Generate,
                "trust" => RequestIdMode::Trust,
                other => {
                    return Err(at(
                        m.span(),
                        format!(
                            "`request_id`: {other:?} is not \"off\", \"generate\" or \"trust\""
                        ),
                    ))
                }
            }),
        };
        Ok(ServerRules {
            request: head(self.request_headers, true)?,
            response: head(self.response_headers, false)?,
            request_id,
            error_pages: Default::default(),
        })
    }
}

/// A server's rules.
pub(super) fn server(raw: RawRules<'_>, at: At<'_>) -> Result<ServerRules, ConfigError> {
    raw.check(at)
}

/// A route's rules: its server's, then its own; `path` is the route's prefix.
pub(super) fn route(
    server: &ServerRules,
    raw: RawRules<'_>,
    path: &str,
    strip_prefix: Option<bool>,
    add_prefix: &Option<Spanned<String>>,
    at: At<'_>,
) -> Result<RouteRules, ConfigError> {
    let own = raw.check(at)?;
    let add_prefix = match add_prefix {
        None => None,
        Some(p) => {
            let text = p.get_ref();
            let bad = !text.starts_with('/')
                || text.split('/').any(|s| s == "." || s == "..")
                || text
                    .bytes()
                    .any(|b| b <= b' ' || b == b'?' || b == b'#' || b == 0x7f);
            if bad {
                return Err(at(
                    p.span(),
                    format!("`add_prefix` must be a path starting with '/', without `.`/`..` segments, spaces, `?` or `#`: {text:?}"),
                ));
            }
            Some(text.trim_end_matches('/').to_string()).filter(|t| !t.is_empty())
        }
    };
    Ok(RouteRules {
        request: server.request.clone().then(&own.request),
        response: server.response.clone().then(&own.response),
        strip_prefix: strip_prefix
            .unwrap_or(false)
            .then(|| path.trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty()),
        add_prefix,
        request_id: own.request_id.or(server.request_id).unwrap_or_default(),
        rewrite: Default::default(),
        error_pages: Default::default(),
    })
}

fn header_rules(
    raw: &RawHeaderRules,
    request: bool,
    at: At<'_>,
) -> Result<HeaderRules, ConfigError> {
    let mut rules = HeaderRules::default();
    for r in &raw.remove {
        let text = r.get_ref();
        let (name, prefix) = match text.strip_suffix('*') {
            Some(p) => (p, true),
            None => (text.as_str(), false),
        };
        if name.is_empty() || !name.bytes().all(is_tchar) || name.contains('*') {
            return Err(at(
                r.span(),
                format!("`remove`: {text:?} is not a header name (or a `prefix*`)"),
            ));
        }
        if MANAGED.iter().any(|m| {
            if prefix {
                m.starts_with(&name.to_ascii_lowercase())
            } else {
                m.eq_ignore_ascii_case(name)
            }
        }) {
            return Err(at(
                r.span(),
                format!("`remove`: {text:?} names a header tether manages (hop-by-hop, framing or Host)"),
            ));
        }
        let name = name.to_ascii_lowercase();
        rules.remove.push(if prefix {
            NameMatch::Prefix(name)
        } else {
            NameMatch::Exact(name)
        });
    }
    for (key, list) in [("set", &raw.set), ("add", &raw.add)] {
        for (name, value) in list {
            let host_ok = request && key == "set" && name.eq_ignore_ascii_case("host");
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(at(
                    value.span(),
                    format!("`{key}`: {name:?} is not a header name"),
                ));
            }
            if is_managed(name) && !host_ok {
                return Err(at(
                    value.span(),
                    format!("`{key}`: {name:?} is a header tether manages (hop-by-hop, framing or Host)"),
                ));
            }
            let template = Template::parse(value.get_ref()).map_err(|(off, m)| {
                // The value's span starts at its opening quote.
                let start = value.span().start + 1 + off;
                at(start..start + 1, format!("`{key}.{name}`: {m}"))
            })?;
            let pair = (name.clone(), template);
            if key == "set" {
                rules.set.push(pair);
            } else {
                rules.add.push(pair);
            }
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("a{client_ip}:{{x}}{header.X-Y}").unwrap();
        assert_eq!(
            t.0,
            vec![
                Part::Lit("a".into()),
                Part::Var(Var::ClientIp),
                Part::Lit(":{x}".into()),
                Part::Var(Var::Header("x-y".into())),
            ]
        );
        let (off, m) = Template::parse("ab{clinet_ip}").unwrap_err();
        assert_eq!(off, 2);
        assert!(m.contains("did you mean `{client_ip}`"), "{m}");
        assert!(Template::parse("{x").is_err());
        assert!(Template::parse("x}").is_err());
        assert!(Template::parse("{header.}").is_err());
        assert_eq!(
            Template::parse("é{{").unwrap().0,
            vec![Part::Lit("é{".into())]
        );
    }

    #[test]
    fn a_route_rule_wins_over_its_server_rule() {
        let t = |v: &str| Template::parse(v).unwrap();
        let server = HeaderRules {
            remove: vec![],
            set: vec![("X-A".into(), t("1")), ("X-B".into(), t("1"))],
            add: vec![("X-C".into(), t("1"))],
        };
        let route = HeaderRules {
            remove: vec![NameMatch::Prefix("x-c".into())],
            set: vec![("x-a".into(), t("2"))],
            add: vec![],
        };
        let both = server.then(&route);
        assert_eq!(
            both.set,
            vec![("X-B".into(), t("1")), ("x-a".into(), t("2"))]
        );
        assert!(both.add.is_empty());
    }

    #[test]
    fn name_match() {
        assert!(NameMatch::Prefix("x-internal-".into()).matches("X-Internal-A"));
        assert!(!NameMatch::Prefix("x-internal-".into()).matches("X-Intern"));
        assert!(NameMatch::Exact("x-a".into()).matches("X-A"));
    }
}
