//! `Accept-Encoding` negotiation (RFC 9110 section 12.5.3): parse the client's codings with
//! their q-values and pick the one tether offers that the client likes best.
//!
//! The rules, in order:
//! - Elements are split on `,`; tokens and the `q` parameter name are case-insensitive;
//!   `x-gzip` counts as `gzip`. An element whose token or q-value is malformed is ignored
//!   (garbage never makes a coding acceptable). When a coding is listed twice, the first
//!   listing counts.
//! - A coding's weight is its own q-value if listed, else the `*` q-value if `*` is listed,
//!   else 0 (not acceptable). `q=0` means "not acceptable".
//! - The offered coding with the highest weight wins; ties go to the earliest in `offered`
//!   (the server's preference order).
//! - `identity` competes only when the client lists it explicitly: a listed identity with
//!   a strictly higher q than the best coding means "send it uncompressed" (`None`).
//! - No header, an empty header, or nothing acceptable: `None` (send identity).

use crate::headers::trim;
use crate::Coding;

/// q-values in thousandths: 0..=1000.
type Q = u16;

/// The client's stated weights, as far as tether cares.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Weights {
    /// Per coding, indexed by [`slot`].
    codings: [Option<Q>; 3],
    star: Option<Q>,
    identity: Option<Q>,
}

fn slot(c: Coding) -> usize {
    match c {
        Coding::Gzip => 0,
        Coding::Brotli => 1,
        Coding::Zstd => 2,
    }
}

/// Pick the content coding for an answer: the coding of `offered` the client weighs
/// highest in `accept_encoding` (the header's value; several header lines joined with
/// `,`), ties broken by the order of `offered`. `None`: send the answer uncompressed.
///
/// ```
/// use tether_compress::{negotiate, Coding::*};
/// let offered = [Zstd, Brotli, Gzip];
/// assert_eq!(negotiate(b"gzip, deflate, br, zstd", &offered), Some(Zstd));
/// assert_eq!(negotiate(b"gzip;q=1, br;q=0.8", &offered), Some(Gzip));
/// assert_eq!(negotiate(b"*;q=0", &offered), None);
/// ```
pub fn negotiate(accept_encoding: &[u8], offered: &[Coding]) -> Option<Coding> {
    negotiate_where(accept_encoding, offered, |_| true)
}

/// [`negotiate`] among the offered codings for which `available` is true (used for
/// precompressed siblings, which may exist for some codings only).
pub(crate) fn negotiate_where(
    accept_encoding: &[u8],
    offered: &[Coding],
    available: impl Fn(Coding) -> bool,
) -> Option<Coding> {
    let w = parse(accept_encoding);
    let mut best: Option<(Coding, Q)> = None;
    for &c in offered {
        let q = w.codings[slot(c)].or(w.star).unwrap_or(0);
        if q == 0 || best.is_some_and(|(_, bq)| q <= bq) || !available(c) {
            continue;
        }
        best = Some((c, q));
    }
    let (coding, q) = best?;
    match w.identity {
        Some(iq) if iq > q => None,
        _ => Some(coding),
    }
}

fn parse(header: &[u8]) -> Weights {
    let mut w = Weights::default();
    for element in header.split(|&b| b == b',') {
        let mut parts = element.split(|&b| b == b';');
        let token = trim(parts.next().unwrap_or_default());
        if token.is_empty() || !token.iter().all(|&b| is_tchar(b)) {
            continue;
        }
        let mut q: Q = 1000;
        let mut valid = true;
        for param in parts {
            let param = trim(param);
            let (name, value) = match param.iter().position(|&b| b == b'=') {
                Some(i) => (trim(&param[..i]), trim(&param[i + 1..])),
                None => (param, &b""[..]),
            };
            if name.eq_ignore_ascii_case(b"q") {
                match parse_q(value) {
                    Some(v) => q = v,
                    None => valid = false,
                }
            }
        }
        if !valid {
            continue;
        }
        let target = if token == b"*" {
            &mut w.star
        } else if token.eq_ignore_ascii_case(b"identity") {
            &mut w.identity
        } else if let Some(c) = Coding::from_token(token) {
            &mut w.codings[slot(c)]
        } else {
            continue;
        };
        if target.is_none() {
            *target = Some(q);
        }
    }
    w
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(v: &[u8]) -> Option<Q> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Q = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Q::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    const ALL: [Coding; 3] = [Zstd, Brotli, Gzip];

    #[test]
    fn q_values() {
        assert_eq!(parse_q(b"0"), Some(0));
        assert_eq!(parse_q(b"0."), Some(0));
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"0.05"), Some(50));
        assert_eq!(parse_q(b"0.001"), Some(1));
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        for bad in [
            &b""[..],
            b"1.5",
            b"2",
            b"0.1234",
            b"-1",
            b"0.x",
            b".5",
            b"00.5",
            b"1.001",
        ] {
            assert_eq!(parse_q(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn plain_lists_follow_the_server_order() {
        assert_eq!(negotiate(b"gzip, deflate, br, zstd", &ALL), Some(Zstd));
        assert_eq!(negotiate(b"gzip, deflate, br", &ALL), Some(Brotli));
        assert_eq!(negotiate(b"gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate(b"gzip, br", &[Gzip, Brotli]), Some(Gzip));
        assert_eq!(negotiate(b"br, gzip", &[Gzip, Brotli]), Some(Gzip));
        assert_eq!(negotiate(b"zstd", &[Gzip, Brotli]), None);
        assert_eq!(negotiate(b"gzip", &[]), None);
    }

    #[test]
    fn q_values_beat_the_server_order() {
        assert_eq!(negotiate(b"zstd;q=0.5, gzip", &ALL), Some(Gzip));
        assert_eq!(
            negotiate(b"br;q=0.9, zstd;q=0.8, gzip;q=0.1", &ALL),
            Some(Brotli)
        );
        // Equal weights: the server's order decides.
        assert_eq!(negotiate(b"gzip;q=0.7, br;q=0.7", &ALL), Some(Brotli));
        assert_eq!(
            negotiate(b"gzip;q=0.7, br;q=0.7", &[Gzip, Brotli]),
            Some(Gzip)
        );
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(negotiate(b"zstd;q=0, br;q=0, gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate(b"gzip;q=0", &ALL), None);
        assert_eq!(negotiate(b"gzip;q=0.000", &ALL), None);
        assert_eq!(negotiate(b"*;q=0", &ALL), None);
        assert_eq!(negotiate(b"*;q=0, gzip", &ALL), Some(Gzip));
    }

    #[test]
    fn star_covers_unlisted_codings_only() {
        assert_eq!(negotiate(b"*", &ALL), Some(Zstd));
        assert_eq!(negotiate(b"*", &[Gzip]), Some(Gzip));
        assert_eq!(negotiate(b"zstd;q=0, *", &ALL), Some(Brotli));
        assert_eq!(negotiate(b"gzip, *;q=0.5", &ALL), Some(Gzip));
        assert_eq!(negotiate(b"gzip;q=0.2, *;q=0.5", &ALL), Some(Zstd));
    }

    #[test]
    fn identity() {
        // Refusing identity does not refuse the codings.
        assert_eq!(negotiate(b"identity;q=0, gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate(b"identity;q=0", &ALL), None);
        // A client that prefers identity gets it...
        assert_eq!(negotiate(b"gzip;q=0.5, identity", &ALL), None);
        assert_eq!(negotiate(b"identity;q=0.5, gzip;q=0.2", &ALL), None);
        // ... but a tie, or an unlisted identity, goes to compression.
        assert_eq!(negotiate(b"identity, gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate(b"identity;q=0.5, gzip;q=0.5", &ALL), Some(Gzip));
        assert_eq!(negotiate(b"identity", &ALL), None);
    }

    #[test]
    fn case_and_whitespace() {
        assert_eq!(negotiate(b"GZIP", &ALL), Some(Gzip));
        assert_eq!(
            negotiate(b"  Br ;  Q=1 ,\tgzip ; q = 0.5 ", &ALL),
            Some(Brotli)
        );
        assert_eq!(negotiate(b"ZSTD;Q=0", &[Zstd]), None);
        assert_eq!(negotiate(b"x-gzip", &ALL), Some(Gzip));
        assert_eq!(negotiate(b",,gzip,,", &ALL), Some(Gzip));
    }

    #[test]
    fn garbage_is_ignored_never_accepted() {
        assert_eq!(negotiate(b"", &ALL), None);
        assert_eq!(negotiate(b" , ;", &ALL), None);
        assert_eq!(negotiate(b"gzip;q=2", &ALL), None);
        assert_eq!(negotiate(b"gzip;q=abc", &ALL), None);
        assert_eq!(negotiate(b"gzip;q=", &ALL), None);
        assert_eq!(negotiate(b"gzip;q=0.5000, br", &ALL), Some(Brotli));
        assert_eq!(negotiate(b"g zip, br\xff, zstd\"", &ALL), None);
        assert_eq!(negotiate(b"gzipx, brr, zst", &ALL), None);
        assert_eq!(negotiate(b"\xff\xfe\x00", &ALL), None);
        // Other parameters are ignored, not fatal.
        assert_eq!(negotiate(b"gzip;level=9", &ALL), Some(Gzip));
    }

    #[test]
    fn first_listing_wins() {
        assert_eq!(negotiate(b"gzip;q=0, gzip", &ALL), None);
        assert_eq!(negotiate(b"gzip, x-gzip;q=0", &ALL), Some(Gzip));
    }

    #[test]
    fn availability_filters() {
        let only_gzip = |c: Coding| c == Gzip;
        assert_eq!(
            negotiate_where(b"br, zstd, gzip;q=0.1", &ALL, only_gzip),
            Some(Gzip)
        );
        assert_eq!(negotiate_where(b"br, zstd", &ALL, only_gzip), None);
    }
}
