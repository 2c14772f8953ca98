//! Reading the fields that decide where a message ends and whether its connection stays
//! open: `Content-Length`, `Transfer-Encoding` and `Connection` (RFC 9112 §6, §9.3).
//!
//! `Framing` collects them in one pass over the header fields and refuses what two parties
//! could read differently: a `Content-Length` that is not plain digits or disagrees with
//! another one, a malformed `Transfer-Encoding` list, `chunked` twice, and header names that
//! only differ from a framing field by `_` for `-` (some servers fold those together, and a
//! field we ignore but a backend obeys is a smuggling gap). The request and response parsers
//! turn its findings into a `BodyKind` with their own rules and statuses.

use crate::headers::{list_elements, list_elements_raw, trim_ows};
use crate::name::LowerName;
use crate::Version;

/// What the framing fields of one head say.
#[derive(Debug, Default)]
pub(crate) struct Framing {
    /// The `Content-Length`, if any (all copies agree).
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` field was present.
    pub transfer_encoding: bool,
    /// How many codings were `chunked`.
    pub chunked_count: u32,
    /// The last coding seen was `chunked`.
    pub chunked_last: bool,
    /// `Connection` named `close`.
    pub close: bool,
    /// `Connection` named `keep-alive`.
    pub keep_alive: bool,
    /// `Connection` named `upgrade`.
    pub upgrade: bool,
}

impl Framing {
    /// Look at one header field. Fields other than the framing ones are ignored.
    ///
    /// Inlined into the scanners' field loops: every framing name (`Connection`,
    /// `Content-Length`, `Transfer-Encoding` and their underscore look-alikes) is 10, 14 or
    /// 17 bytes long and starts with `c` or `t`, so most fields leave after two compares,
    /// without a call.
    #[inline]
    pub(crate) fn add(&mut self, name: &str, value: &[u8]) -> Result<(), &'static str> {
        let b = name.as_bytes();
        let first = b.first().map_or(0, |c| c | 0x20);
        let maybe = match b.len() {
            10 | 14 => first == b'c',
            17 => first == b't',
            _ => false,
        };
        if !maybe {
            return Ok(());
        }
        self.add_framing(name, value)
    }

    /// [`Framing::add`] for a name that may be a framing one.
    #[inline(never)]
    fn add_framing(&mut self, name: &str, value: &[u8]) -> Result<(), &'static str> {
        const CONNECTION: LowerName = LowerName::new(b"connection");
        const CONTENT_LENGTH: LowerName = LowerName::new(b"content-length");
        const CONTENT_LENGTH_: LowerName = LowerName::new(b"content_length");
        const TRANSFER_ENCODING: LowerName = LowerName::new(b"transfer-encoding");
        const TRANSFER_ENCODING_: LowerName = LowerName::new(b"transfer_encoding");
        let n = name.as_bytes();
        match n.len() {
            10 if CONNECTION.matches(n) => self.add_connection(value),
            14 if CONTENT_LENGTH.matches(n) => self.add_content_length(value)?,
            14 if CONTENT_LENGTH_.matches(n) => return Err("Content_Length header (underscore)"),
            17 if TRANSFER_ENCODING.matches(n) => self.add_transfer_encoding(value)?,
            17 if TRANSFER_ENCODING_.matches(n) => {
                return Err("Transfer_Encoding header (underscore)")
            }
            _ => {}
        }
        Ok(())
    }

    /// `Content-Length = 1*DIGIT`, possibly as a list of identical values (`5, 5`), possibly
    /// repeated in several fields with identical values.
    fn add_content_length(&mut self, value: &[u8]) -> Result<(), &'static str> {
        for element in list_elements_raw(value) {
            let n = parse_digits(element)?;
            match self.content_length {
                Some(prev) if prev != n => return Err("conflicting Content-Length values"),
                _ => self.content_length = Some(n),
            }
        }
        Ok(())
    }

    /// `Transfer-Encoding = #transfer-coding`. Codings are compared case-insensitively;
    /// only the last one's position and the `chunked` count matter to framing. An empty
    /// value or list element is refused rather than skipped: a list some parser reads as
    /// ending in `chunked` and another does not must not pass.
    fn add_transfer_encoding(&mut self, value: &[u8]) -> Result<(), &'static str> {
        self.transfer_encoding = true;
        for element in list_elements_raw(value) {
            if element.is_empty() {
                return Err("empty Transfer-Encoding element");
            }
            let (coding, params) = match element.iter().position(|&b| b == b';') {
                Some(i) => (trim_ows(&element[..i]), Some(&element[i..])),
                None => (element, None),
            };
            if coding.is_empty() || !coding.iter().all(|&b| crate::headers::is_token_byte(b)) {
                return Err("invalid Transfer-Encoding coding");
            }
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            if chunked {
                if params.is_some() {
                    return Err("parameters on chunked");
                }
                self.chunked_count += 1;
                if self.chunked_count > 1 {
                    return Err("chunked applied more than once");
                }
            }
            self.chunked_last = chunked;
        }
        Ok(())
    }

    fn add_connection(&mut self, value: &[u8]) {
        // The usual value, one token: no list to split.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep_alive = true;
            return;
        }
        for token in list_elements(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }

    /// Whether the connection persists after this message, from the version and the
    /// `Connection` tokens alone (RFC 9112 §9.3): 1.1 unless `close`, 1.0 only with
    /// `keep-alive` (and no `close`).
    pub(crate) fn persistent(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        }
    }
}

/// Decimal digits only (no sign, no space inside, not empty), fitting in a `u64`.
pub(crate) fn parse_digits(s: &[u8]) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("empty Content-Length");
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err("Content-Length is not a number");
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or("Content-Length overflows")?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(fields: &[(&str, &str)]) -> Result<Framing, &'static str> {
        let mut f = Framing::default();
        for (n, v) in fields {
            f.add(n, v.as_bytes())?;
        }
        Ok(f)
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits(b"0"), Ok(0));
        assert_eq!(parse_digits(b"0042"), Ok(42));
        assert_eq!(parse_digits(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"1e3",
        ] {
            assert!(parse_digits(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_length_lists() {
        assert_eq!(
            framing(&[("Content-Length", "5, 5")]).map(|f| f.content_length),
            Ok(Some(5))
        );
        assert_eq!(
            framing(&[("content-length", "5"), ("CONTENT-LENGTH", "5")]).map(|f| f.content_length),
            Ok(Some(5))
        );
        assert!(framing(&[("Content-Length", "5, 6")]).is_err());
        assert!(framing(&[("Content-Length", "5,")]).is_err());
        assert!(framing(&[("Content-Length", "5"), ("Content-Length", "6")]).is_err());
        assert!(framing(&[("Content_Length", "5")]).is_err());
    }

    #[test]
    fn transfer_codings() {
        let f = framing(&[("Transfer-Encoding", "gzip, Chunked")]).unwrap();
        assert!(f.transfer_encoding && f.chunked_last && f.chunked_count == 1);
        let f = framing(&[
            ("Transfer-Encoding", "chunked"),
            ("Transfer-Encoding", "gzip"),
        ])
        .unwrap();
        assert!(!f.chunked_last);
        let f = framing(&[("Transfer-Encoding", "gzip;q=1")]).unwrap();
        assert!(!f.chunked_last);
        for bad in [
            "",
            "chunked,",
            ",chunked",
            "chunked, chunked",
            "chunked;x=1",
            "chu nked",
            "\"chunked\"",
        ] {
            assert!(framing(&[("Transfer-Encoding", bad)]).is_err(), "{bad:?}");
        }
        assert!(framing(&[("Transfer_Encoding", "chunked")]).is_err());
    }

    #[test]
    fn persistence() {
        let f = framing(&[]).unwrap();
        assert!(f.persistent(Version::Http11));
        assert!(!f.persistent(Version::Http10));
        let f = framing(&[("Connection", "Keep-Alive")]).unwrap();
        assert!(f.persistent(Version::Http10));
        let f = framing(&[("Connection", "keep-alive, close")]).unwrap();
        assert!(!f.persistent(Version::Http10));
        assert!(!f.persistent(Version::Http11));
        let f = framing(&[("Connection", "Upgrade")]).unwrap();
        assert!(f.upgrade);
    }
}
