//! Header helpers a proxy needs when it rewrites a head: which fields are hop-by-hop (never
//! forwarded as they are), the tokens of a `Connection` value, and writing one field line.
//!
//! Hop-by-hop is the RFC 9110 §7.6.1 set — `Connection`, `Proxy-Connection`, `Keep-Alive`,
//! `TE`, `Transfer-Encoding`, `Upgrade` — plus whatever the message's own `Connection` header
//! names (check those with [`connection_tokens`]). `Trailer` is not in the RFC 9110 set and is
//! not treated as hop-by-hop: when a chunked body is forwarded as it is, its trailers travel
//! with it and the `Trailer` field still describes them. A proxy that drops
//! `Transfer-Encoding` but forwards a chunked body unchanged must write
//! `Transfer-Encoding: chunked` again.

use bytes::{BufMut, BytesMut};

/// Whether `name` (any case) is a hop-by-hop field: connection, proxy-connection,
/// keep-alive, te, transfer-encoding, upgrade.
pub fn is_hop_by_hop(name: &str) -> bool {
    // By length first: this runs for every field of every message a proxy forwards.
    use crate::name::LowerName;
    const CONNECTION: LowerName = LowerName::new(b"connection");
    const KEEP_ALIVE: LowerName = LowerName::new(b"keep-alive");
    const PROXY_CONNECTION: LowerName = LowerName::new(b"proxy-connection");
    const TRANSFER_ENCODING: LowerName = LowerName::new(b"transfer-encoding");
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    let b = name.as_bytes();
    match name.len() {
        2 => is("te"),
        7 => is("upgrade"),
        10 => CONNECTION.matches(b) || KEEP_ALIVE.matches(b),
        16 => PROXY_CONNECTION.matches(b),
        17 => TRANSFER_ENCODING.matches(b),
        _ => false,
    }
}

/// The elements of a comma-separated list value (`Connection`, `Transfer-Encoding`, ...),
/// trimmed of spaces and tabs, empty elements skipped, in order. The case is kept as sent:
/// compare with `eq_ignore_ascii_case`. Elements that are not UTF-8 are skipped (a token is
/// ASCII).
pub fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    list_elements(value).filter_map(|e| std::str::from_utf8(e).ok())
}

/// Split a `#rule` list value on commas and trim OWS; empty elements are kept (callers that
/// must be strict about them can see them).
pub(crate) fn list_elements_raw(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

/// [`list_elements_raw`] without the empty elements (RFC 9110 §5.6.1: a recipient ignores
/// them).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    list_elements_raw(value).filter(|e| !e.is_empty())
}

/// `value` without leading and trailing spaces and tabs.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Append `name: value\r\n` to `out`.
///
/// `name` must be a header token (it is when it comes from a parsed head or from code).
/// A CR, LF or NUL in `value` would let a value inject a field or end the head, so each one is
/// written as a space: the output is always one well-formed field line.
pub fn write_header(out: &mut BytesMut, name: &str, value: &[u8]) {
    debug_assert!(
        !name.is_empty() && name.bytes().all(is_token_byte),
        "header name {name:?} is not a token"
    );
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    if may_break_line(value) && value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        for &b in value {
            out.put_u8(if b == b'\r' || b == b'\n' || b == 0 {
                b' '
            } else {
                b
            });
        }
    } else {
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether `value` has a byte below 14 (CR, LF and NUL are; so is a tab). A loop without an
/// early exit, which the compiler turns into vector code: the precise check runs only for
/// the rare value that passes this one.
fn may_break_line(value: &[u8]) -> bool {
    value.iter().fold(0u8, |acc, &b| acc | u8::from(b < 14)) != 0
}

/// RFC 9110 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_set() {
        for name in [
            "Connection",
            "connection",
            "Proxy-Connection",
            "Keep-Alive",
            "TE",
            "Transfer-Encoding",
            "UPGRADE",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "Host",
            "Trailer",
            "Content-Length",
            "Proxy-Authenticate",
            "Proxy-Authorization",
            "X-Forwarded-For",
            "",
            "tee",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn tokens_are_trimmed_and_empty_ones_skipped() {
        let t: Vec<&str> = connection_tokens(b" keep-alive ,, Upgrade\t,close").collect();
        assert_eq!(t, ["keep-alive", "Upgrade", "close"]);
        assert_eq!(connection_tokens(b"").count(), 0);
        assert_eq!(connection_tokens(b" , ,").count(), 0);
        let t: Vec<&str> = connection_tokens(b"a,\xff\xfe,b").collect();
        assert_eq!(t, ["a", "b"]);
    }

    #[test]
    fn trim_ows_edges() {
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b" a b\t"), b"a b");
        assert_eq!(trim_ows(b"x"), b"x");
    }

    #[test]
    fn write_header_writes_one_line() {
        let mut out = BytesMut::new();
        write_header(&mut out, "Host", b"example.com");
        write_header(&mut out, "X-Empty", b"");
        assert_eq!(&out[..], b"Host: example.com\r\nX-Empty: \r\n");
    }

    #[test]
    fn write_header_cannot_inject_a_field() {
        let mut out = BytesMut::new();
        write_header(&mut out, "X-A", b"1\r\nSet-Cookie: evil\n\0");
        assert_eq!(&out[..], b"X-A: 1  Set-Cookie: evil  \r\n");
        // Long values (the vectorised check) and a tab (kept) too.
        let mut long = vec![b'a'; 100];
        long[77] = b'\n';
        long[3] = b'\t';
        let mut out = BytesMut::new();
        write_header(&mut out, "X-B", &long);
        let mut want = b"X-B: ".to_vec();
        want.extend(long.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
        want.extend_from_slice(b"\r\n");
        assert_eq!(&out[..], &want[..]);
    }
}
