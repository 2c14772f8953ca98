//! gRPC as a proxy must speak it: a request is gRPC when its `content-type` is
//! `application/grpc` or `application/grpc+<codec>`; tether's own errors on one are gRPC
//! answers (HTTP 200, `content-type: application/grpc`, `grpc-status` and `grpc-message`
//! in a trailers-only response), and its `grpc-timeout` bounds the wait for the upstream.

use std::time::Duration;

/// Whether a `content-type` value names gRPC (not gRPC-Web).
pub(crate) fn is_grpc(content_type: &[u8]) -> bool {
    let ct = content_type.trim_ascii();
    let Some(rest) = ct
        .get(..16)
        .filter(|p| p.eq_ignore_ascii_case(b"application/grpc"))
        .map(|_| &ct[16..])
    else {
        return false;
    };
    rest.is_empty() || rest[0] == b'+' || rest[0] == b';'
}

/// The gRPC status code (and its name, the message) for the HTTP status tether would have
/// answered: no server → 14 UNAVAILABLE, an upstream timeout → 4 DEADLINE_EXCEEDED, a limit
/// → 8 RESOURCE_EXHAUSTED (the rest follows gRPC's HTTP-to-gRPC status mapping).
pub(crate) fn status_for(http: u16) -> (u8, &'static str) {
    match http {
        502 | 503 => (14, "UNAVAILABLE"),
        504 | 408 => (4, "DEADLINE_EXCEEDED"),
        429 | 413 | 431 => (8, "RESOURCE_EXHAUSTED"),
        401 => (16, "UNAUTHENTICATED"),
        403 => (7, "PERMISSION_DENIED"),
        404 | 405 | 501 => (12, "UNIMPLEMENTED"),
        400 => (13, "INTERNAL"),
        _ => (2, "UNKNOWN"),
    }
}

/// A trailers-only gRPC answer's fields (sent as one HEADERS frame with END_STREAM after
/// `:status: 200`).
pub(crate) fn error_fields(http: u16, detail: &str) -> Vec<(&'static [u8], Vec<u8>)> {
    let (code, name) = status_for(http);
    let message = if detail.is_empty() {
        format!("tether: {name} ({http})")
    } else {
        format!("tether: {name}: {detail}")
    };
    vec![
        (b"content-type", b"application/grpc".to_vec()),
        (b"grpc-status", code.to_string().into_bytes()),
        (b"grpc-message", percent_encode(&message)),
    ]
}

/// `grpc-message` is percent-encoded (the gRPC HTTP/2 protocol spec).
fn percent_encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`); `None` if
/// absent or malformed (then the listener's timeouts apply).
pub(crate) fn timeout(value: &[u8]) -> Option<Duration> {
    let v = value.trim_ascii();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_grpc(b"application/grpc"));
        assert!(is_grpc(b"application/grpc+proto"));
        assert!(is_grpc(b"Application/GRPC; charset=x"));
        assert!(!is_grpc(b"application/grpc-web"));
        assert!(!is_grpc(b"application/json"));
        assert!(!is_grpc(b"application/grp"));
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout(b"123456789S"), None);
        assert_eq!(timeout(b"S"), None);
        assert_eq!(timeout(b"5x"), None);
        assert_eq!(timeout(b""), None);
    }

    #[test]
    fn statuses_and_messages() {
        assert_eq!(status_for(502).0, 14);
        assert_eq!(status_for(504).0, 4);
        assert_eq!(status_for(429).0, 8);
        let f = error_fields(503, "no server 100%");
        assert_eq!(f[1].1, b"14");
        assert_eq!(f[2].1, b"tether: UNAVAILABLE: no server 100%25".to_vec());
    }
}
