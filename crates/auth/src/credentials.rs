//! The two header values of Basic authentication (RFC 7617): decoding the client's
//! `Authorization: Basic <base64(user:password)>` ([`parse_basic`]) and building the
//! `WWW-Authenticate` value of a `401` ([`www_authenticate`]).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Standard base-64, padding optional (some clients leave it out).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest `Authorization` value looked at; longer ones are malformed.
pub(crate) const MAX_AUTHORIZATION: usize = 4096;

/// The user and password a client sent.
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: Vec<u8>,
}

/// Decodes an `Authorization` value of the Basic scheme. `None` when it is not Basic, not
/// base-64, has no `:` or a user that is not UTF-8 (no htpasswd user can match those).
pub(crate) fn parse_basic(value: &[u8]) -> Option<Credentials> {
    if value.len() > MAX_AUTHORIZATION {
        return None;
    }
    let value = trim(value);
    let split = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = trim(rest);
    if token.is_empty() || token.iter().any(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let mut decoded = BASE64.decode(token).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let password = decoded.split_off(colon + 1);
    decoded.truncate(colon);
    let user = String::from_utf8(decoded).ok()?;
    Some(Credentials { user, password })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The `WWW-Authenticate` header value that asks for Basic credentials for `realm`:
/// `Basic realm="<realm>", charset="UTF-8"`. The realm is a quoted-string: `"` and `\` are
/// escaped with `\`, control characters (CR, LF, ...) are dropped so the value can never
/// split the header.
pub fn www_authenticate(realm: &str) -> String {
    let mut out = String::with_capacity(realm.len() + 32);
    out.push_str("Basic realm=\"");
    for c in realm.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push_str("\", charset=\"UTF-8\"");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    #[test]
    fn decodes_user_and_password_with_colons() {
        let c = parse_basic(&basic("alice:pa:ss")).expect("valid");
        assert_eq!(c.user, "alice");
        assert_eq!(c.password, b"pa:ss");
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        // "bob:pw" is "Ym9iOnB3" (no padding needed); "bo:pw" is "Ym86cHc=".
        for v in [
            "basic Ym9iOnB3",
            "BASIC   Ym9iOnB3  ",
            "Basic Ym86cHc=",
            "Basic Ym86cHc",
        ] {
            assert!(parse_basic(v.as_bytes()).is_some(), "{v}");
        }
    }

    #[test]
    fn malformed_values_are_none() {
        for v in [
            &b""[..],
            b"Basic",
            b"Basic ",
            b"Bearer Ym9iOnB3",
            b"Basic !!!!",
            b"Basic Ym9i", // "bob": no colon
            b"Basic Ym9i OnB3",
            b"BasicYm9iOnB3",
        ] {
            assert!(parse_basic(v).is_none(), "{}", String::from_utf8_lossy(v));
        }
        let long = basic(&format!("u:{}", "x".repeat(MAX_AUTHORIZATION)));
        assert!(parse_basic(&long).is_none());
        // A user that is not UTF-8: "\xff:pw".
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(b"\xff:pw")
        );
        assert!(parse_basic(v.as_bytes()).is_none());
    }

    #[test]
    fn realm_is_a_safe_quoted_string() {
        assert_eq!(
            www_authenticate("staff"),
            "Basic realm=\"staff\", charset=\"UTF-8\""
        );
        assert_eq!(
            www_authenticate("a \"b\" \\c\r\nSet-Cookie: x"),
            "Basic realm=\"a \\\"b\\\" \\\\cSet-Cookie: x\", charset=\"UTF-8\""
        );
    }
}
