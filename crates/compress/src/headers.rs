//! The header edits a compressed answer needs (`Vary`, `ETag`), and the byte-level helpers
//! the parsers of this crate share.

/// The `Vary` value to send when the answer [varies](crate::Policy::varies) with
/// `Accept-Encoding`, given the backend's `Vary` (`None`: absent). `None` back: the
/// existing value already covers it (`Accept-Encoding` or `*` is listed), keep it.
///
/// ```
/// use tether_compress::vary_with_accept_encoding as vary;
/// assert_eq!(vary(None).as_deref(), Some(&b"Accept-Encoding"[..]));
/// assert_eq!(vary(Some(b"Origin")).as_deref(), Some(&b"Origin, Accept-Encoding"[..]));
/// assert_eq!(vary(Some(b"accept-encoding")), None);
/// ```
pub fn vary_with_accept_encoding(existing: Option<&[u8]>) -> Option<Vec<u8>> {
    let existing = trim(existing.unwrap_or_default());
    if existing.is_empty() {
        return Some(b"Accept-Encoding".to_vec());
    }
    let covered = existing
        .split(|&b| b == b',')
        .map(trim)
        .any(|f| f == b"*" || f.eq_ignore_ascii_case(b"accept-encoding"));
    if covered {
        return None;
    }
    let mut v = existing.to_vec();
    v.extend_from_slice(b", Accept-Encoding");
    Some(v)
}

/// The `ETag` of a compressed answer: a strong validator names exact bytes, and the
/// compressed bytes differ, so it becomes weak (`"abc"` → `W/"abc"`), as nginx does.
/// A weak one stays as it is.
pub fn weak_etag(etag: &[u8]) -> Vec<u8> {
    let etag = trim(etag);
    if etag.starts_with(b"W/") {
        return etag.to_vec();
    }
    let mut v = b"W/".to_vec();
    v.extend_from_slice(etag);
    v
}

/// `s` without leading and trailing spaces and tabs (HTTP's OWS).
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary() {
        assert_eq!(
            vary_with_accept_encoding(Some(b"  ")).unwrap(),
            b"Accept-Encoding"
        );
        assert_eq!(
            vary_with_accept_encoding(Some(b"Origin, Cookie")).unwrap(),
            b"Origin, Cookie, Accept-Encoding"
        );
        assert_eq!(
            vary_with_accept_encoding(Some(b"Origin, ACCEPT-ENCODING")),
            None
        );
        assert_eq!(vary_with_accept_encoding(Some(b"*")), None);
        assert_eq!(
            vary_with_accept_encoding(Some(b"Accept-Encoding-X")).unwrap(),
            b"Accept-Encoding-X, Accept-Encoding"
        );
    }

    #[test]
    fn etags() {
        assert_eq!(weak_etag(b"\"abc\""), b"W/\"abc\"");
        assert_eq!(weak_etag(b"W/\"abc\""), b"W/\"abc\"");
        assert_eq!(weak_etag(b" \"x\" "), b"W/\"x\"");
    }

    #[test]
    fn trims_ows_only() {
        assert_eq!(trim(b" \t a b \t"), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b"\r\na"), b"\r\na");
    }
}
