//! A route's regex rewrite, its redirect target and its error pages
//! (`tether_config::rewrite`), as steps shared by HTTP/1.1 and HTTP/2:
//!
//! - `rewrite_path` (phase 7, with `rules::rewrite_target`, in `Proxied::decide`): `regex`
//!   matched against the client's path, `rewrite` expanded with its captures, the result
//!   normalised again (`..` popped, refused above `/`); the client's query follows unless
//!   the target has its own `?`.
//! - `redirect_location` (phase 6): a redirect route's `Location` with captures and
//!   placeholders filled.
//! - `ErrorPage` (phase 9): the route's page for a status tether answers itself (`Conn`'s
//!   status pages, the HTTP/2 stream's), and with `intercept_errors` for the backend's own
//!   error answer. A gRPC request (`content-type: application/grpc…`) never gets one.

use std::sync::Arc;

use regex::Captures;
use tether_config::rewrite::{Capture, ErrorPages, Target, TargetPart};
use tether_config::rules::RouteRules;
use tether_http::reply::Head;
use tether_http::RequestHead;

use super::rules::{normalise, var_value, Vars};

/// The target (path and query) for the request under the route's `regex` / `rewrite`:
/// `Ok(None)` when there is none or the regex does not match, `Err` when the result climbs
/// above `/`. `base`: the target as it stands (its query is kept).
pub(crate) fn rewrite_path(
    rules: &RouteRules,
    req: &RequestHead,
    id: Option<&str>,
    base: &str,
) -> Result<Option<String>, ()> {
    let Some(to) = &rules.rewrite.to else {
        return Ok(None);
    };
    let caps = match &rules.rewrite.pattern {
        Some(p) => match p.0.captures(req.path()) {
            Some(c) => Some(c),
            None => return Ok(None),
        },
        None => None,
    };
    let text = expand(to, caps.as_ref(), req, id);
    let (path, query) = match text.find('?') {
        Some(i) => (&text[..i], text[i..].to_string()),
        None => {
            let q = base.find('?').map_or("", |i| &base[i..]);
            (text.as_str(), q.split('#').next().unwrap_or("").to_string())
        }
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut out = normalise(&path)?;
    out.push_str(&query);
    Ok(Some(out))
}

/// A redirect route's `Location` when its target has captures or placeholders (a regex
/// that does not match leaves every capture empty).
pub(crate) fn redirect_location(rules: &RouteRules, req: &RequestHead) -> Option<String> {
    let target = rules.rewrite.redirect.as_ref()?;
    let caps = rules
        .rewrite
        .pattern
        .as_ref()
        .and_then(|p| p.0.captures(req.path()));
    Some(expand(target, caps.as_ref(), req, None))
}

/// `target` filled in; control bytes and spaces are dropped (a target goes on a request
/// line or in a `Location`).
fn expand(
    target: &Target,
    caps: Option<&Captures<'_>>,
    req: &RequestHead,
    id: Option<&str>,
) -> String {
    let vars = Vars {
        client: None,
        tls: None,
        req,
        request_id: id.unwrap_or(""),
        upstream_name: "",
        upstream_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let mut out: Vec<u8> = Vec::new();
    for part in &target.0 {
        match part {
            TargetPart::Lit(s) => out.extend_from_slice(s.as_bytes()),
            TargetPart::Var(v) => var_value(v, &vars, &mut out),
            TargetPart::Capture(c) => {
                let m = caps.and_then(|caps| match c {
                    Capture::Index(n) => caps.get(*n),
                    Capture::Name(n) => caps.name(n),
                });
                if let Some(m) = m {
                    out.extend_from_slice(m.as_str().as_bytes());
                }
            }
        }
    }
    out.retain(|&b| b > 0x20 && b != 0x7f);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a request is gRPC (its errors are gRPC's own, never an HTML page).
pub(crate) fn is_grpc(req: &RequestHead) -> bool {
    req.header("content-type")
        .is_some_and(|v| v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/grpc"))
}

/// How the errors of the request being answered are written: the route's pages, or, for
/// a gRPC request, no page at all (`grpc-status` instead).
#[derive(Clone)]
pub(crate) enum PagesFor {
    Route(Arc<RouteRules>),
    Grpc,
}

impl PagesFor {
    /// For `req` under a route with these rules (`None`: tether's built-in pages).
    pub fn of(rules: Option<&Arc<RouteRules>>, req: &RequestHead) -> Option<PagesFor> {
        if is_grpc(req) {
            return Some(PagesFor::Grpc);
        }
        let rules = rules.filter(|r| !r.error_pages.is_empty())?;
        Some(PagesFor::Route(rules.clone()))
    }

    fn pages(&self) -> Option<&ErrorPages> {
        match self {
            PagesFor::Route(r) => Some(&r.error_pages),
            PagesFor::Grpc => None,
        }
    }

    /// Whether the backend's `status` is replaced (`intercept_errors`; never for gRPC).
    pub fn intercepts(&self, status: u16) -> bool {
        self.pages()
            .is_some_and(|p| p.intercept && p.find(status).is_some())
    }

    /// The whole answer for `status` (head and body), if the route has a page for it.
    /// `extra`: header lines, each ending in CRLF.
    pub fn page(
        &self,
        status: u16,
        server: &str,
        extra: &str,
        head_only: bool,
        keep_alive: bool,
    ) -> Option<Vec<u8>> {
        if let PagesFor::Grpc = self {
            // No body: the gRPC status says what happened (a "trailers-only" answer).
            let mut head = Head::new(status, server, extra.len() + 96);
            head.content("application/grpc", 0)
                .header("grpc-status", crate::h2up::grpc::status_for(status).0)
                .header(
                    "grpc-message",
                    tether_http::reply::reason(status).replace(' ', "%20"),
                )
                .lines(extra);
            return Some(head.end(keep_alive));
        }
        let page = self.pages()?.find(status)?;
        let mut head = Head::new(status, server, extra.len() + page.content_type.len() + 64);
        head.content(&page.content_type, page.body.len())
            .lines(extra);
        let mut out = head.end(keep_alive);
        if !head_only {
            out.extend_from_slice(&page.body);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_config::rewrite::{Pattern, Rewrite};
    use tether_http::{parse_request, Limits, Parsed};

    fn req(target: &str) -> RequestHead {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: a.example\r\n\r\n");
        match parse_request(raw.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            _ => panic!("bad test request"),
        }
    }

    fn rules(re: &str, to: Vec<TargetPart>) -> RouteRules {
        RouteRules {
            rewrite: Rewrite {
                pattern: Some(Pattern(regex::Regex::new(re).unwrap())),
                to: Some(Target(to)),
                redirect: None,
            },
            ..RouteRules::default()
        }
    }

    #[test]
    fn rewrites_with_captures_and_keeps_the_query() {
        let r = rules(
            "^/a/(.*)$",
            vec![
                TargetPart::Lit("/b/".into()),
                TargetPart::Capture(Capture::Index(1)),
            ],
        );
        let q = req("/a/x/y?k=1");
        assert_eq!(
            rewrite_path(&r, &q, None, q.target()),
            Ok(Some("/b/x/y?k=1".into()))
        );
        let q = req("/other");
        assert_eq!(rewrite_path(&r, &q, None, q.target()), Ok(None));
        let q = req("/a/../../etc");
        assert_eq!(rewrite_path(&r, &q, None, q.target()), Err(()));
        let q = req("/a/x/%2e%2e/%2E%2E/..");
        assert_eq!(rewrite_path(&r, &q, None, q.target()), Err(()));
    }

    #[test]
    fn grpc_is_seen() {
        let raw = b"POST /s/M HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc+proto\r\nContent-Length: 0\r\n\r\n";
        let Ok(Parsed::Complete(h)) = parse_request(raw, &Limits::default()) else {
            panic!("bad test request");
        };
        assert!(is_grpc(&h));
        assert!(!is_grpc(&req("/")));
        assert!(PagesFor::of(None, &h).is_some_and(|p| !p.intercepts(500)));
        let page = PagesFor::of(None, &h)
            .and_then(|p| p.page(502, "t", "", false, true))
            .unwrap();
        let text = String::from_utf8(page).unwrap();
        assert!(
            text.contains("grpc-status: 14\r\n") && text.ends_with("\r\n\r\n"),
            "{text}"
        );
    }
}
