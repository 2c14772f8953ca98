//! Who may ask `/session`, and what a request says: the optional bearer token (`Secret`,
//! never printed; compared in constant time with `subtle`), read from `token` or
//! `token_file`, and the query parameters `/session` understands (`url`, `token`), decoded
//! with `form_urlencoded`. `/`, `/load`, `/monitor` and the CORS preflight are not gated.

use std::fmt;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest token accepted (it must fit in a header line and a URL).
pub const MAX_TOKEN_LEN: usize = 512;

/// A secret string: `Debug` and `Display` print `<hidden>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: &str) -> Secret {
        Secret(s.to_string())
    }

    /// The secret itself (to compare it or send it; never to log it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Equal to `candidate`? Constant time in the content (a length mismatch returns early:
    /// the length is not the secret).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }

    /// A token must be `MIN_TOKEN_LEN`..=`MAX_TOKEN_LEN` visible ASCII characters, none of
    /// which needs escaping in a header or a query (`A-Z a-z 0-9 - . _ ~ + /`, and `=` at the
    /// end, RFC 6750's token68).
    pub fn check_token(&self) -> Result<(), String> {
        let t = &self.0;
        if t.len() < MIN_TOKEN_LEN || t.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long \
                 (e.g. `openssl rand -hex 32`); it has {}",
                t.len()
            ));
        }
        let body = t.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(
                "the token may hold only A-Z a-z 0-9 - . _ ~ + / (and = at the end)".into(),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The token in a `token_file`: its content without surrounding whitespace (one line).
pub fn read_token_file(path: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("`token_file` {path:?}: {e}"))?;
    let t = text.trim();
    if t.lines().count() != 1 {
        return Err(format!(
            "`token_file` {path:?}: write the token on one line"
        ));
    }
    let s = Secret::new(t);
    s.check_token()
        .map_err(|m| format!("`token_file` {path:?}: {m}"))?;
    Ok(s)
}

/// What `/session` reads from its query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    /// `url=`: the repository the client wants to run (first one; empty means none).
    pub url: Option<String>,
    /// `token=`: the bearer token, for clients that cannot set a header.
    pub token: Option<String>,
}

impl SessionQuery {
    /// From the request target (`/session?url=...&token=...`); a `#fragment` is ignored.
    pub fn parse(target: &str) -> SessionQuery {
        let mut q = SessionQuery::default();
        let Some((_, query)) = target.split_once('?') else {
            return q;
        };
        let query = query.split('#').next().unwrap_or("");
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "url" if q.url.is_none() && !v.is_empty() => q.url = Some(v.into_owned()),
                "token" if q.token.is_none() => q.token = Some(v.into_owned()),
                _ => {}
            }
        }
        q
    }
}

/// Does an `Authorization` value or a `token=` parameter carry `token`? The header wins
/// when both are there: a wrong header is not rescued by a right query.
#[cfg_attr(not(feature = "runtime"), allow(dead_code))]
pub fn authorized(token: &Secret, authorization: Option<&[u8]>, query_token: Option<&str>) -> bool {
    match authorization {
        Some(value) => bearer(value).is_some_and(|t| token.matches(t)),
        None => query_token.is_some_and(|t| token.matches(t.as_bytes())),
    }
}

/// The credentials of `Bearer <token>` (scheme in any case, spaces around ignored).
#[cfg_attr(not(feature = "runtime"), allow(dead_code))]
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    Some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn secret_hides_and_matches() {
        let s = Secret::new(TOKEN);
        assert_eq!(format!("{s:?} {s}"), "<hidden> <hidden>");
        assert!(s.matches(TOKEN.as_bytes()));
        assert!(!s.matches(b"0123456789abcdef-tokeN"));
        assert!(!s.matches(b"0123456789abcdef-toke"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn token_shape() {
        assert!(Secret::new(TOKEN).check_token().is_ok());
        assert!(Secret::new("abc/+DEF_~.-12345678==").check_token().is_ok());
        assert!(Secret::new("short").check_token().is_err());
        assert!(Secret::new("has a space in it ok").check_token().is_err());
        assert!(Secret::new("has=in=the=middle=x").check_token().is_err());
        assert!(Secret::new(&"x".repeat(513)).check_token().is_err());
    }

    #[test]
    fn bearer_header_or_query() {
        let s = Secret::new(TOKEN);
        let h = format!("Bearer {TOKEN}");
        assert!(authorized(&s, Some(h.as_bytes()), None));
        assert!(authorized(
            &s,
            Some(format!("  bearer   {TOKEN} ").as_bytes()),
            None
        ));
        assert!(!authorized(&s, Some(b"Bearer nope"), Some(TOKEN)));
        assert!(!authorized(
            &s,
            Some(format!("Basic {TOKEN}").as_bytes()),
            None
        ));
        assert!(!authorized(
            &s,
            Some(format!("Bearer{TOKEN}").as_bytes()),
            None
        ));
        assert!(!authorized(&s, Some(b"Bearer"), None));
        assert!(!authorized(&s, None, None));
        assert!(authorized(&s, None, Some(TOKEN)));
        assert!(!authorized(&s, None, Some("x")));
    }

    #[test]
    fn query_is_decoded() {
        let q = SessionQuery::parse(
            "/session?url=https%3A%2F%2Fgithub.com%2Fa%2Fb%2Fw.wbt&token=t%2Bk&url=second#frag",
        );
        assert_eq!(q.url.as_deref(), Some("https://github.com/a/b/w.wbt"));
        assert_eq!(q.token.as_deref(), Some("t+k"));
        assert_eq!(SessionQuery::parse("/session"), SessionQuery::default());
        assert_eq!(SessionQuery::parse("/session?url=").url, None);
        assert_eq!(
            SessionQuery::parse("/session?url=https://x.org/a/")
                .url
                .as_deref(),
            Some("https://x.org/a/")
        );
    }

    #[test]
    fn token_file_is_one_trimmed_line() {
        let dir = std::env::temp_dir().join(format!("tether-token-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("token");
        std::fs::write(&p, format!("{TOKEN}\n")).expect("write");
        let path = p.to_string_lossy().into_owned();
        assert_eq!(
            read_token_file(&path).map(|s| s.expose().to_string()),
            Ok(TOKEN.into())
        );
        std::fs::write(&p, format!("{TOKEN}\n{TOKEN}\n")).expect("write");
        assert!(read_token_file(&path).unwrap_err().contains("one line"));
        std::fs::write(&p, "\n").expect("write");
        assert!(read_token_file(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(read_token_file(&path).unwrap_err().contains("`token_file`"));
    }
}
