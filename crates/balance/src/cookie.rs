//! The affinity cookie on the wire: building its `Set-Cookie` value and finding a cookie in
//! a request's `Cookie` header (RFC 6265).
//!
//! The value itself comes from [`Sealer::seal_cookie`](crate::Sealer::seal_cookie) and is
//! base64url, which is valid `cookie-octet`s, so it is never quoted.

/// The `Set-Cookie` header value for cookie `name` = `value`, expiring at `expiry_unix`
/// (`Max-Age` counts from `now_unix`; an expiry in the past gives `Max-Age=0`, which
/// deletes the cookie): `name=value; Max-Age=N; Path=/; HttpOnly; SameSite=Lax`, plus
/// `; Secure` when `secure`.
pub fn set_cookie(
    name: &str,
    value: &str,
    expiry_unix: u64,
    now_unix: u64,
    secure: bool,
) -> String {
    let max_age = expiry_unix.saturating_sub(now_unix);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// [`set_cookie`] with the upstream's `Secure`/`SameSite` options, for a client that came
/// over TLS (`tls`) or not.
pub fn set_cookie_with(
    name: &str,
    value: &str,
    expiry_unix: u64,
    now_unix: u64,
    options: &crate::CookieOptions,
    tls: bool,
) -> String {
    let max_age = expiry_unix.saturating_sub(now_unix);
    format!(
        "{name}={value}; Max-Age={max_age}{}",
        options.attributes(tls)
    )
}

/// The value of the first cookie called `name` (case-sensitive, as RFC 6265 compares
/// names) in a `Cookie` header value such as `a=1; b=2`. Tolerates missing or extra
/// spaces and tabs around `;` and `=`, pairs without `=` (skipped), and a value in double
/// quotes (returned without them). Call it for each `Cookie` header if there are several.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (n, v) = pair.split_once('=')?;
        if n.trim_matches(is_space) != name {
            return None;
        }
        let v = v.trim_matches(is_space);
        Some(
            v.strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(v),
        )
    })
}

/// Whether `name` can be a cookie name (an RFC 9110 token), for checking configuration.
pub fn is_valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_attributes() {
        assert_eq!(
            set_cookie("srv", "abc", 1_100, 1_000, false),
            "srv=abc; Max-Age=100; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            set_cookie("srv", "abc", 900, 1_000, true),
            "srv=abc; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn cookie_names() {
        assert!(is_valid_cookie_name("TETHER_srv-1"));
        assert!(!is_valid_cookie_name(""));
        assert!(!is_valid_cookie_name("a b"));
        assert!(!is_valid_cookie_name("a=b"));
        assert!(!is_valid_cookie_name("a;b"));
    }
}
