//! A route's header rules, path rewriting and request ids (`tether_config::rules`), applied
//! in one place for HTTP/1.1 and HTTP/2 alike: both write the heads they forward as
//! HTTP/1.1 bytes (`forward::upstream_request`, `forward::client_response`), and `apply`
//! rewrites those bytes once the server is picked (so `{upstream_addr}` is known).
//!
//! Order: the lines a rule removes or sets are dropped, then `set` lines (an empty value
//! writes nothing: that turns a default like `X-Forwarded-For` off), then `add` lines, then
//! `X-Request-Id`. Headers tether manages (hop-by-hop, framing; `Host` except by a request
//! `set`) are never touched, whatever a rule says. Values are cleaned of control bytes.
//!
//! `rewrite_target`: `strip_prefix` / `add_prefix`, the result normalised (`.` dropped, `..`
//! popped) and refused when it would climb above `/`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tether_config::rules::{is_managed, HeaderRules, Part, RequestIdMode, RouteRules, Var};
use tether_core::tls::TlsInfo;
use tether_http::{write_header, RequestHead};

use super::conn::IpText;

/// What the placeholders of a rule read.
pub(crate) struct Vars<'a> {
    pub client: Option<SocketAddr>,
    pub tls: Option<Arc<TlsInfo>>,
    pub req: &'a RequestHead,
    pub request_id: &'a str,
    pub upstream_name: &'a str,
    pub upstream_addr: SocketAddr,
}

/// The route's rules and the request's id, as a forwarded request carries them.
#[derive(Clone, Copy)]
pub(crate) struct Given<'a> {
    pub rules: &'a RouteRules,
    pub id: Option<&'a str>,
}

impl<'a> Given<'a> {
    pub fn of(rules: &'a Option<Arc<RouteRules>>, id: &'a Option<Box<str>>) -> Option<Given<'a>> {
        rules.as_deref().map(|rules| Given {
            rules,
            id: id.as_deref(),
        })
    }

    /// The request head for the server, rules applied.
    pub fn request(self, head: BytesMut, vars: &Vars<'_>) -> BytesMut {
        apply(head, &self.rules.request, self.id, vars, true)
    }

    /// The response head for the client, rules applied.
    pub fn response(self, head: BytesMut, vars: &Vars<'_>) -> BytesMut {
        apply(head, &self.rules.response, self.id, vars, false)
    }
}

/// The request id of a request under `mode` (`None`: off).
pub(crate) fn request_id(mode: RequestIdMode, req: &RequestHead) -> Option<Box<str>> {
    match mode {
        RequestIdMode::Off => None,
        RequestIdMode::Trust => match req.header("x-request-id") {
            Some(v) if sane_id(v) => std::str::from_utf8(v).ok().map(Into::into),
            _ => Some(new_id().into()),
        },
        RequestIdMode::Generate => Some(new_id().into()),
    }
}

/// A client's id worth trusting: 1 to 128 visible ASCII characters.
fn sane_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len()) && v.iter().all(|b| (0x21..0x7f).contains(b))
}

/// 128 random bits as 32 lower-case hex digits (the OS's generator; should it ever fail,
/// the time and a process counter, still unique).
pub(crate) fn new_id() -> String {
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The target to send for `target` (the client's, or the affinity's rewrite of it) under
/// `rules`: `Ok(None)` when unchanged, `Err` when the path would climb above `/`.
pub(crate) fn rewrite_target(rules: &RouteRules, target: &str) -> Result<Option<String>, ()> {
    if rules.strip_prefix.is_none() && rules.add_prefix.is_none() {
        return Ok(None);
    }
    // Origin form only (an absolute-form target was routed by its path too, but is rare:
    // it is sent as the path it names).
    let split = target.find(['?', '#']).unwrap_or(target.len());
    let (path, query) = target.split_at(split);
    let path = match path.find("://") {
        Some(i) => path[i + 3..].find('/').map_or("/", |j| &path[i + 3 + j..]),
        None => path,
    };
    let mut rest = path;
    if let Some(prefix) = &rules.strip_prefix {
        if let Some(r) = rest.strip_prefix(prefix.as_str()) {
            if r.is_empty() || r.starts_with('/') {
                rest = r;
            }
        }
    }
    let normal = normalise(rest)?;
    let add = rules.add_prefix.as_deref().unwrap_or("");
    let mut out = String::with_capacity(add.len() + normal.len() + query.len());
    out.push_str(add);
    if !(normal == "/" && !add.is_empty() && !rest.ends_with('/')) {
        out.push_str(&normal);
    }
    if out.is_empty() {
        out.push('/');
    }
    // A fragment is never sent.
    out.push_str(query.split('#').next().unwrap_or(""));
    Ok(Some(out))
}

/// `path` with `.` segments dropped and `..` popped (`%2e` counts as a dot); `Err` when a
/// `..` would climb above `/`. Always starts with `/`.
pub(crate) fn normalise(path: &str) -> Result<String, ()> {
    let mut segs: Vec<&str> = Vec::new();
    let trailing = path.ends_with('/') || path.is_empty();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let dots = seg.to_ascii_lowercase().replace("%2e", ".");
        match dots.as_str() {
            "." => {}
            ".." => {
                segs.pop().ok_or(())?;
            }
            _ => segs.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// What `rules` do to one head: which of its fields go, and the `set` and `add` lines
/// written after them. Shared by the HTTP/1.1 bytes (`apply`) and the HTTP/2 header lists
/// (`apply_fields`).
struct Plan<'r> {
    rules: &'r HeaderRules,
    id: Option<&'r str>,
    /// A request's Host is replaced (only by a non-empty value).
    host_set: bool,
    request: bool,
}

impl<'r> Plan<'r> {
    fn new(
        rules: &'r HeaderRules,
        id: Option<&'r str>,
        vars: &Vars<'_>,
        request: bool,
    ) -> Plan<'r> {
        let host_set = request
            && (rules.set.iter())
                .any(|(n, t)| n.eq_ignore_ascii_case("host") && !expand(&t.0, vars).is_empty());
        Plan {
            rules,
            id,
            host_set,
            request,
        }
    }

    /// The head's field `name` is left out.
    fn drops(&self, name: &[u8]) -> bool {
        if name.eq_ignore_ascii_case(b"host") {
            return self.host_set;
        }
        let named = |n: &str| n.as_bytes().eq_ignore_ascii_case(name);
        let hit = (self.id.is_some() && named("x-request-id"))
            || (self.rules.set.iter()).any(|(n, _)| named(n))
            || (!self.rules.remove.is_empty()
                && std::str::from_utf8(name)
                    .is_ok_and(|n| self.rules.remove.iter().any(|m| m.matches(n))));
        // `tether check` refuses rules that name a header tether manages; kept out here too
        // (looked at only for the rare field a rule names).
        hit && !std::str::from_utf8(name).is_ok_and(is_managed)
    }

    /// The fields written after the head's own: `set` lines, `add` lines, the request id.
    fn extra(&self, vars: &Vars<'_>, mut write: impl FnMut(&str, &[u8])) {
        let mut value = Vec::with_capacity(64);
        let sets = self.rules.set.iter().map(|r| (r, true));
        for ((name, t), set) in sets.chain(self.rules.add.iter().map(|r| (r, false))) {
            // Never a header tether manages (refused at check time too), but a request's
            // Host by `set`.
            if is_managed(name) && !(set && self.request && name.eq_ignore_ascii_case("host")) {
                continue;
            }
            expand_into(&t.0, vars, &mut value);
            if !value.is_empty() {
                write(name, &value);
            }
        }
        if let Some(id) = self.id {
            write("X-Request-Id", id.as_bytes());
        }
    }
}

/// The field lines of a head's bytes after its start line, up to the blank line.
fn field_lines(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let nl = memchr::memchr(b'\n', bytes)?;
        let line = &bytes[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        bytes = &bytes[nl + 1..];
        Some(line)
    })
    .take_while(|l| !l.is_empty())
}

/// Whether `plan` drops a field of the lines in `bytes` (up to the blank line).
fn any_dropped(plan: &Plan<'_>, bytes: &[u8]) -> bool {
    field_lines(bytes).any(|l| line_name(l).is_some_and(|n| plan.drops(n)))
}

/// The name of a field line (`Name: value`), if it has one.
fn line_name(line: &[u8]) -> Option<&[u8]> {
    memchr::memchr(b':', line).map(|i| &line[..i])
}

/// `head` (a whole HTTP/1.1 head as tether wrote it) with `rules` applied and
/// `X-Request-Id: id` written when there is an id. `request`: a request head (`Host` may
/// then be set). When no field goes (the usual case: rules that add names the head does
/// not have), the lines are appended to `head` itself, without a copy.
pub(crate) fn apply(
    mut head: BytesMut,
    rules: &HeaderRules,
    id: Option<&str>,
    vars: &Vars<'_>,
    request: bool,
) -> BytesMut {
    if rules.is_empty() && id.is_none() {
        return head;
    }
    let plan = Plan::new(rules, id, vars, request);
    // The field lines: after the start line, up to the blank line.
    let fields_at = head
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |i| i + 1);
    let any_dropped = any_dropped(&plan, &head[fields_at..]);
    if !any_dropped && head.ends_with(b"\r\n\r\n") {
        // Before the blank line's CRLF: the new lines, then the blank line again.
        let end = head.len().saturating_sub(2);
        head.truncate(end);
        plan.extra(vars, |name, value| write_header(&mut head, name, value));
        head.extend_from_slice(b"\r\n");
        return head;
    }
    let mut out = BytesMut::with_capacity(head.len() + 128);
    out.extend_from_slice(&head[..fields_at]);
    for line in field_lines(&head[fields_at..]) {
        if !line_name(line).is_some_and(|n| plan.drops(n)) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    plan.extra(vars, |name, value| write_header(&mut out, name, value));
    out.extend_from_slice(b"\r\n");
    out
}

/// The same rules on an HTTP/2 header list (an HTTP/2 upstream's request or answer): names
/// lowercase, `Host` is the request's `:authority`; the pseudo fields stay.
pub(crate) fn apply_fields(
    fields: &mut Vec<(Bytes, Bytes)>,
    rules: &HeaderRules,
    id: Option<&str>,
    vars: &Vars<'_>,
    request: bool,
) {
    if rules.is_empty() && id.is_none() {
        return;
    }
    let plan = Plan::new(rules, id, vars, request);
    fields.retain(|(n, _)| n.starts_with(b":") || !plan.drops(n));
    plan.extra(vars, |name, value| {
        let value = Bytes::copy_from_slice(value);
        if name.eq_ignore_ascii_case("host") {
            if let Some(a) = fields.iter_mut().find(|(n, _)| &n[..] == b":authority") {
                a.1 = value;
            }
            return;
        }
        fields.push((Bytes::from(name.to_ascii_lowercase()), value));
    });
}

/// A template's value for this request; control bytes (CR, LF, NUL...) are dropped.
fn expand(parts: &[Part], v: &Vars<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    expand_into(parts, v, &mut out);
    out
}

/// [`expand`] into `out` (cleared first), so one buffer serves every rule of a head.
fn expand_into(parts: &[Part], v: &Vars<'_>, out: &mut Vec<u8>) {
    out.clear();
    for p in parts {
        match p {
            Part::Lit(s) => out.extend_from_slice(s.as_bytes()),
            Part::Var(var) => var_value(var, v, out),
        }
    }
    if out.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        out.retain(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    }
    let start = out
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(out.len());
    let end = out
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    if start > 0 || end < out.len() {
        out.truncate(end);
        out.drain(..start);
    }
}

pub(crate) fn var_value(var: &Var, v: &Vars<'_>, out: &mut Vec<u8>) {
    let sni = || {
        v.tls
            .as_ref()
            .and_then(|t| t.sni.clone())
            .unwrap_or_default()
    };
    match var {
        Var::ClientIp => {
            if let Some(a) = v.client {
                // Not `Display`: it costs ~2,000 instructions a request.
                out.extend_from_slice(IpText::of(Some(a.ip())).as_bytes());
            }
        }
        Var::ClientPort => {
            if let Some(a) = v.client {
                let mut digits = [0u8; 5];
                let mut n = a.port();
                let mut i = digits.len();
                loop {
                    i -= 1;
                    digits[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                out.extend_from_slice(&digits[i..]);
            }
        }
        Var::Scheme => {
            out.extend_from_slice(if v.tls.is_some() { b"https" } else { b"http" });
        }
        Var::Host => match v.req.host() {
            Some(h) => out.extend_from_slice(strip_port(h).as_bytes()),
            None => out.extend_from_slice(sni().as_bytes()),
        },
        Var::Path => out.extend_from_slice(v.req.path().as_bytes()),
        Var::Query => {
            let q = v.req.query();
            out.extend_from_slice(q.strip_prefix('?').unwrap_or(q).as_bytes());
        }
        Var::RequestId => out.extend_from_slice(v.request_id.as_bytes()),
        Var::TlsVersion => {
            if let Some(t) = &v.tls {
                out.extend_from_slice(t.version.as_bytes());
            }
        }
        Var::Sni => out.extend_from_slice(sni().as_bytes()),
        Var::Header(name) => {
            let mut first = true;
            for (n, value) in v.req.headers() {
                if n.eq_ignore_ascii_case(name) {
                    if !first {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(value);
                    first = false;
                }
            }
        }
        Var::Cookie(name) => {
            let found = v
                .req
                .headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
                .filter_map(|(_, value)| std::str::from_utf8(value).ok())
                .find_map(|h| tether_balance::find_cookie(h, name));
            if let Some(c) = found {
                out.extend_from_slice(c.as_bytes());
            }
        }
        Var::UpstreamName => out.extend_from_slice(v.upstream_name.as_bytes()),
        Var::UpstreamAddr => out.extend_from_slice(v.upstream_addr.to_string().as_bytes()),
        // Access-log templates only: the config refuses them in header rules.
        Var::Log(_) => {}
    }
}

/// `host[:port]` or `[v6][:port]` without the port.
fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.find(']').map_or(h, |i| &h[..=i]);
    }
    match h.rfind(':') {
        Some(i) if h[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &h[..i],
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_config::rules::{NameMatch, Template};
    use tether_http::{parse_request, Limits, Parsed};

    fn req(raw: &[u8]) -> RequestHead {
        match parse_request(raw, &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn strip(prefix: Option<&str>, add: Option<&str>) -> RouteRules {
        RouteRules {
            strip_prefix: prefix.map(Into::into),
            add_prefix: add.map(Into::into),
            ..RouteRules::default()
        }
    }

    #[test]
    fn targets() {
        let r = strip(Some("/api"), None);
        assert_eq!(rewrite_target(&r, "/api/x?y=1"), Ok(Some("/x?y=1".into())));
        assert_eq!(rewrite_target(&r, "/api"), Ok(Some("/".into())));
        assert_eq!(
            rewrite_target(&r, "/api/a/../b/./c/"),
            Ok(Some("/b/c/".into()))
        );
        assert_eq!(rewrite_target(&r, "/api/../x"), Err(()));
        assert_eq!(rewrite_target(&r, "/api/%2e%2E/x"), Err(()));
        let r = strip(Some("/api"), Some("/v1"));
        assert_eq!(rewrite_target(&r, "/api/x"), Ok(Some("/v1/x".into())));
        assert_eq!(rewrite_target(&r, "/api"), Ok(Some("/v1".into())));
        assert_eq!(rewrite_target(&r, "/api/"), Ok(Some("/v1/".into())));
        let r = strip(None, Some("/v1"));
        assert_eq!(rewrite_target(&r, "/api/x"), Ok(Some("/v1/api/x".into())));
        assert_eq!(rewrite_target(&RouteRules::default(), "/x"), Ok(None));
    }

    #[test]
    fn header_rules() {
        let r = req(b"GET /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-Tenant: t1\r\nCookie: a=1; sid=abc\r\n\r\n");
        let vars = Vars {
            client: Some("10.1.2.3:4567".parse().unwrap()),
            tls: None,
            req: &r,
            request_id: "rid",
            upstream_name: "app",
            upstream_addr: "127.0.0.1:9".parse().unwrap(),
        };
        let rules = HeaderRules {
            remove: vec![
                NameMatch::Prefix("x-internal-".into()),
                NameMatch::Exact("connection".into()),
            ],
            set: vec![
                (
                    "X-Who".into(),
                    Template::parse("{client_ip}:{client_port} {scheme} {host}{path}?{query}")
                        .unwrap(),
                ),
                ("X-Real-IP".into(), Template::parse("").unwrap()),
                ("Connection".into(), Template::parse("x").unwrap()),
            ],
            add: vec![(
                "X-More".into(),
                Template::parse(
                    "{header.x-tenant}/{cookie.sid}/{upstream_name}@{upstream_addr}/{request_id}",
                )
                .unwrap(),
            )],
        };
        let head = BytesMut::from(&b"GET /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-Internal-A: 1\r\nX-Real-IP: 10.1.2.3\r\nConnection: close\r\nX-Request-Id: evil\r\n\r\n"[..]);
        let out = apply(head, &rules, Some("rid"), &vars, true);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            s,
            "GET /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\
             X-Who: 10.1.2.3:4567 http a.example/p?q=1\r\n\
             X-More: t1/abc/app@127.0.0.1:9/rid\r\nX-Request-Id: rid\r\n\r\n"
        );
    }

    #[test]
    fn ids() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id());
        let r = req(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-1\r\n\r\n");
        assert_eq!(
            request_id(RequestIdMode::Trust, &r).as_deref(),
            Some("abc-1")
        );
        assert_ne!(
            request_id(RequestIdMode::Generate, &r).as_deref(),
            Some("abc-1")
        );
        assert_eq!(request_id(RequestIdMode::Off, &r), None);
    }
}
