//! Regex rewrites, redirect targets and error pages of a route, checked into plain data:
//!
//! ```toml
//! [[server]]
//! error_page = [{ status = "5xx", file = "errors/5xx.html" }]   # its routes inherit
//! intercept_errors = false         # true: the backend's own error answers get them too
//!
//! [[server.route]]
//! path = "/api"
//! proxy = "app"
//! regex = '^/api/v1/(?P<rest>.*)$' # matched against the client's path (without the query)
//! rewrite = "/v2/$rest"            # the path sent upstream; `$1`, `${1}`, `$name`, `$$`
//! error_page = [{ status = 404, body = "<h1>no such thing</h1>" }]
//!
//! [[server.route]]
//! path = "/old"
//! regex = '^/old/(.*)$'
//! redirect = "https://new.example/$1"
//! ```
//!
//! A target is a template: literal text, `{placeholder}`s of the request (`{path}`, `{query}`,
//! `{host}`, `{header.NAME}`, `{cookie.NAME}`, `{request_id}`) and the regex's captures (`$1`,
//! `${1}`, `$name`; `$$` is a `$`, and so is a `$` that names no capture). In a TOML file
//! `${NAME}` is an environment variable (`env.rs`, filled first): write a named capture
//! `$name`. A capture the regex does not have, or a `$`
//! without a `regex`, is a `path:line:col` error; so is a bad pattern (compiled here, once).

use std::ops::Range;

use regex::Regex;
use toml::Spanned;

use super::ConfigError;
use crate::rules::{Part, Template, Var};

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// A compiled pattern; compares by its text (so configs compare by value).
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// A capture named in a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    Index(usize),
    Name(String),
}

/// One piece of a rewrite or redirect target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPart {
    Lit(String),
    Var(Var),
    Capture(Capture),
}

/// A rewrite or redirect target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target(pub Vec<TargetPart>);

impl Target {
    /// Whether it is plain text (no placeholder, no capture).
    pub fn literal(&self) -> Option<&str> {
        match &self.0[..] {
            [] => Some(""),
            [TargetPart::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

/// A route's `regex` with its `rewrite` and redirect targets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rewrite {
    /// `regex`: matched against the client's path (without the query).
    pub pattern: Option<Pattern>,
    /// `rewrite`: the path (and maybe query) sent upstream when the pattern matches.
    pub to: Option<Target>,
    /// `redirect` of a redirect route: the `Location`.
    pub redirect: Option<Target>,
}

impl Rewrite {
    pub fn is_empty(&self) -> bool {
        self.pattern.is_none() && self.to.is_none() && self.redirect.is_none()
    }
}

/// One error page: the statuses it answers, its body and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub low: u16,
    pub high: u16,
    pub body: Vec<u8>,
    pub content_type: String,
}

/// A route's error pages (its own first, exact statuses before ranges, then its server's)
/// and whether the backend's error answers are replaced by them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorPages {
    pub pages: Vec<ErrorPage>,
    pub intercept: bool,
}

impl ErrorPages {
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The page for `status`, if any.
    pub fn find(&self, status: u16) -> Option<&ErrorPage> {
        self.pages
            .iter()
            .find(|p| (p.low..=p.high).contains(&status))
    }

    /// `own`'s pages before `self`'s (a route's before its server's); `intercept` given by
    /// the route wins.
    pub(super) fn under(&self, own: ErrorPages, intercept: Option<bool>) -> ErrorPages {
        let mut pages = own.pages;
        pages.extend(self.pages.iter().cloned());
        ErrorPages {
            pages,
            intercept: intercept.unwrap_or(self.intercept),
        }
    }
}

/// `status = 502` or `status = "5xx"`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(super) enum RawStatus {
    Code(u16),
    Text(String),
}

/// `error_page = [{ status = "5xx", file = "..." }]` (or `body = "..."`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawErrorPage {
    status: Spanned<RawStatus>,
    file: Option<Spanned<String>>,
    body: Option<String>,
    content_type: Option<String>,
}

/// Check a list of error pages (files are read now; their text is the page).
pub(super) fn error_pages(
    raw: &[Spanned<RawErrorPage>],
    intercept: Option<bool>,
    at: At<'_>,
) -> Result<ErrorPages, ConfigError> {
    let mut exact = Vec::new();
    let mut ranges = Vec::new();
    for r in raw {
        let span = r.span();
        let r = r.get_ref();
        let (low, high) = match r.status.get_ref() {
            RawStatus::Code(n) => (*n, *n),
            RawStatus::Text(t) => status_range(t).ok_or_else(|| {
                at(
                    r.status.span(),
                    format!("`error_page.status`: {t:?} is not a status (400-599) or a range like \"5xx\""),
                )
            })?,
        };
        if !(400..=599).contains(&low) || !(400..=599).contains(&high) {
            return Err(at(
                r.status.span(),
                "`error_page.status`: error pages are for statuses 400 to 599".into(),
            ));
        }
        let (body, ctype) = match (&r.file, &r.body) {
            (Some(f), None) => {
                let body = std::fs::read(f.get_ref()).map_err(|e| {
                    at(
                        f.span(),
                        format!("`error_page.file`: cannot read {:?}: {e}", f.get_ref()),
                    )
                })?;
                let ctype = tether_files::paths::content_type(std::path::Path::new(f.get_ref()));
                (body, ctype)
            }
            (None, Some(b)) => (b.clone().into_bytes(), "text/html; charset=utf-8".into()),
            _ => {
                return Err(at(
                    span,
                    "an `error_page` needs exactly one of `file` and `body`".into(),
                ))
            }
        };
        let page = ErrorPage {
            low,
            high,
            body,
            content_type: r.content_type.clone().unwrap_or(ctype),
        };
        if low == high {
            exact.push(page);
        } else {
            ranges.push(page);
        }
    }
    exact.extend(ranges);
    Ok(ErrorPages {
        pages: exact,
        intercept: intercept.unwrap_or(false),
    })
}

/// `"502"` → (502, 502); `"5xx"` → (500, 599); `"50x"` → (500, 509).
fn status_range(t: &str) -> Option<(u16, u16)> {
    let b = t.as_bytes();
    if b.len() != 3 || !b[0].is_ascii_digit() {
        return None;
    }
    let x = |c: u8| c == b'x' || c == b'X';
    let mut low = 0u16;
    let mut high = 0u16;
    let mut wild = false;
    for &c in b {
        if x(c) {
            wild = true;
            low *= 10;
            high = high * 10 + 9;
        } else if c.is_ascii_digit() && !wild {
            low = low * 10 + u16::from(c - b'0');
            high = high * 10 + u16::from(c - b'0');
        } else {
            return None;
        }
    }
    Some((low, high))
}

/// Compile `regex`.
pub(super) fn pattern(raw: &Spanned<String>, at: At<'_>) -> Result<Pattern, ConfigError> {
    Regex::new(raw.get_ref()).map(Pattern).map_err(|e| {
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .trim_start_matches("error: ")
            .to_string();
        at(raw.span(), format!("`regex`: bad pattern: {why}"))
    })
}

/// Parse `text` (the value of `key`, written at `span`) as a target under `pattern`.
pub(super) fn target(
    key: &str,
    raw: &Spanned<String>,
    pattern: Option<&Pattern>,
    at: At<'_>,
) -> Result<Target, ConfigError> {
    let text = raw.get_ref();
    // The value's span starts at its opening quote.
    let here = |off: usize| {
        let start = raw.span().start + 1 + off;
        start..start + 1
    };
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let b = text.as_bytes();
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => {
                lit.push('$');
                i += 2;
            }
            b'$' => {
                // A `$` that names no capture is itself (the file's `$$` already became one
                // `$` when the environment's `${NAME}`s were filled: `env.rs`).
                let Some((cap, len)) = capture(&text[i + 1..]) else {
                    lit.push('$');
                    i += 1;
                    continue;
                };
                let Some(p) = pattern else {
                    if let Capture::Name(_) = cap {
                        // No regex: `$word` is text (`https://x/$x`), only `$1` is a slip.
                        lit.push('$');
                        i += 1;
                        continue;
                    }
                    return Err(at(
                        here(i),
                        format!(
                            "`{key}`: `${}` needs a `regex` on the route",
                            &text[i + 1..i + 1 + len]
                        ),
                    ));
                };
                let known = match &cap {
                    Capture::Index(n) => *n < p.0.captures_len(),
                    Capture::Name(n) => p.0.capture_names().flatten().any(|c| c == n),
                };
                if !known {
                    return Err(at(
                        here(i),
                        format!(
                            "`{key}`: `{}` is not a capture of the regex {:?} ({} group(s))",
                            &text[i..i + 1 + len],
                            p.0.as_str(),
                            p.0.captures_len() - 1
                        ),
                    ));
                }
                if !lit.is_empty() {
                    parts.push(TargetPart::Lit(std::mem::take(&mut lit)));
                }
                parts.push(TargetPart::Capture(cap));
                i += 1 + len;
            }
            b'{' | b'}' => {
                // A placeholder (or `{{`/`}}`): the header-rule syntax.
                let end = if b[i] == b'{' && b.get(i + 1) != Some(&b'{') {
                    text[i..].find('}').map_or(b.len(), |j| i + j + 1)
                } else {
                    i + 2
                };
                let piece = &text[i..end.min(b.len())];
                let t = Template::parse(piece)
                    .map_err(|(off, m)| at(here(i + off), format!("`{key}`: {m}")))?;
                for part in t.0 {
                    match part {
                        Part::Lit(s) => lit.push_str(&s),
                        Part::Var(v) => {
                            if !request_var(&v) {
                                return Err(at(
                                    here(i),
                                    format!("`{key}`: `{piece}` is not known when the path is rewritten (use {{path}}, {{query}}, {{host}}, {{header.NAME}}, {{cookie.NAME}}, {{request_id}})"),
                                ));
                            }
                            if !lit.is_empty() {
                                parts.push(TargetPart::Lit(std::mem::take(&mut lit)));
                            }
                            parts.push(TargetPart::Var(v));
                        }
                    }
                }
                i = end;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                lit.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if !lit.is_empty() {
        parts.push(TargetPart::Lit(lit));
    }
    Ok(Target(parts))
}

/// Placeholders a rewrite can fill (what the request alone says).
fn request_var(v: &Var) -> bool {
    matches!(
        v,
        Var::Path | Var::Query | Var::Host | Var::Header(_) | Var::Cookie(_) | Var::RequestId
    )
}

/// The capture after a `$`: `1`, `{1}`, `name`, `{name}`; and how many bytes it took.
fn capture(s: &str) -> Option<(Capture, usize)> {
    let (inner, len) = if let Some(rest) = s.strip_prefix('{') {
        let end = rest.find('}')?;
        (&rest[..end], end + 2)
    } else {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let n = if digits > 0 {
            digits
        } else {
            s.bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count()
        };
        (&s[..n], n)
    };
    if inner.is_empty() {
        return None;
    }
    if inner.bytes().all(|b| b.is_ascii_digit()) {
        return inner.parse().ok().map(|n| (Capture::Index(n), len));
    }
    let ok = inner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !inner.as_bytes()[0].is_ascii_digit();
    ok.then(|| (Capture::Name(inner.to_string()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(span: Range<usize>, m: String) -> ConfigError {
        ConfigError {
            path: "t".into(),
            line: 1,
            col: span.start + 1,
            message: m,
        }
    }

    fn spanned(s: &str) -> Spanned<String> {
        #[derive(serde::Deserialize)]
        struct W {
            v: Spanned<String>,
        }
        let w: W = toml::from_str(&format!("v = {s:?}")).unwrap();
        w.v
    }

    #[test]
    fn targets_and_captures() {
        let p = pattern(&spanned("^/a/(?P<rest>.*)/(x)$"), &at).unwrap();
        let t = target("rewrite", &spanned("/b/$rest/${2}$$/{path}"), Some(&p), &at).unwrap();
        assert_eq!(
            t.0,
            vec![
                TargetPart::Lit("/b/".into()),
                TargetPart::Capture(Capture::Name("rest".into())),
                TargetPart::Lit("/".into()),
                TargetPart::Capture(Capture::Index(2)),
                TargetPart::Lit("$/".into()),
                TargetPart::Var(Var::Path),
            ]
        );
        let e = target("rewrite", &spanned("/b/$3"), Some(&p), &at).unwrap_err();
        assert!(e.message.contains("not a capture"), "{}", e.message);
        assert_eq!(e.col, 1 + 5 + 3);
        let e = target("redirect", &spanned("/b/$1"), None, &at).unwrap_err();
        assert!(e.message.contains("needs a `regex`"), "{}", e.message);
        assert!(target("r", &spanned("/{upstream_addr}"), None, &at).is_err());
        assert_eq!(
            target("r", &spanned("/x"), None, &at).unwrap().literal(),
            Some("/x")
        );
    }

    #[test]
    fn bad_pattern() {
        let e = pattern(&spanned("^/a/(unclosed"), &at).unwrap_err();
        assert!(
            e.message.starts_with("`regex`: bad pattern"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(status_range("5xx"), Some((500, 599)));
        assert_eq!(status_range("50x"), Some((500, 509)));
        assert_eq!(status_range("404"), Some((404, 404)));
        assert_eq!(status_range("5x0"), None);
        assert_eq!(status_range("x00"), None);
    }
}
