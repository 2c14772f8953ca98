//! What to compress: the facts of one answer (request method and headers, response status
//! and headers, as plain values) in, a coding or the reason to skip out. The policy holds
//! the configured content types, minimum length, levels and the server's coding order.

use std::io;

use crate::headers::trim;
use crate::negotiate::negotiate;
use crate::{Coding, Encoder};

/// The content types compressed by default, as Caddy's `encode` and most CDNs do: text,
/// JSON, JavaScript, XML and their `+json`/`+xml` relatives, SVG, WebAssembly, and
/// uncompressed fonts. Images, video, archives and woff/woff2 are already compressed.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/x-ndjson",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
];

/// Answers with a known `Content-Length` below this are sent as they are. 1024 rather
/// than 256: an answer under 1 KiB fits one TCP segment (MSS 1460) compressed or not, so
/// compression saves no packet and no round trip, while it still pays the encoder's setup
/// (its tables are allocated and zeroed per answer: see the README's "1 KiB answer" row)
/// and 10-20 bytes of framing. nginx's `gzip_min_length` is 20, Caddy's 512; both
/// compress many answers that gain nothing.
pub const DEFAULT_MIN_LENGTH: u64 = 1024;

/// The server's order of preference, used when the client weighs codings equally
/// (`Accept-Encoding: gzip, deflate, br, zstd` from every current browser): zstd first
/// (at level 3 it is the cheapest per byte and compresses about like brotli 4), then
/// brotli, then gzip.
pub const DEFAULT_OFFERED: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

/// The compression level of each coding (see [`Coding::level_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub gzip: u32,
    pub brotli: u32,
    pub zstd: u32,
}

impl Default for Levels {
    /// gzip 6, brotli 4, zstd 3 ([`Coding::default_level`]).
    fn default() -> Levels {
        Levels {
            gzip: Coding::Gzip.default_level(),
            brotli: Coding::Brotli.default_level(),
            zstd: Coding::Zstd.default_level(),
        }
    }
}

impl Levels {
    /// The level configured for `coding`.
    pub fn of(&self, coding: Coding) -> u32 {
        match coding {
            Coding::Gzip => self.gzip,
            Coding::Brotli => self.brotli,
            Coding::Zstd => self.zstd,
        }
    }
}

/// What the policy needs to know about one answer. Header values are raw bytes as they
/// came; a header sent several times is passed joined with `,` (or its first line, for
/// `Content-Type`). `None`: the header is absent.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnswerFacts<'a> {
    /// The request method (`GET`, `HEAD`, ...).
    pub method: &'a [u8],
    /// The request's `Accept-Encoding`.
    pub accept_encoding: Option<&'a [u8]>,
    /// The request carries a `Range` header.
    pub range: bool,
    /// The response status.
    pub status: u16,
    /// The response's `Content-Type`.
    pub content_type: Option<&'a [u8]>,
    /// The response's `Content-Length`, when known (`None` for chunked or close-delimited).
    pub content_length: Option<u64>,
    /// The response's `Content-Encoding`.
    pub content_encoding: Option<&'a [u8]>,
    /// The response's `Cache-Control`.
    pub cache_control: Option<&'a [u8]>,
}

/// Why an answer is sent uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A status without content: 1xx, 204, 205, 304.
    NoContent,
    /// The backend already encoded it (`Content-Encoding` other than `identity`).
    Encoded,
    /// `Cache-Control: no-transform` (RFC 9111 section 5.2.2.6).
    NoTransform,
    /// No `Content-Type`, or one not in the policy's types.
    Type,
    /// A `206 Partial Content`: its byte ranges refer to the identity body.
    Partial,
    /// A `Content-Length` below the policy's `min_length`.
    Small,
    /// A `HEAD` (no body to compress) or `CONNECT` request.
    Method,
    /// The request asked for a `Range`.
    Range,
    /// The client accepts none of the offered codings.
    NotAccepted,
}

impl Skip {
    /// Whether this answer would have been compressed for another request to the same
    /// resource (a GET without `Range` from a client that accepts a coding): then its
    /// representation varies with `Accept-Encoding`, and it needs `Vary: Accept-Encoding`
    /// so a shared cache keeps the variants apart.
    pub fn varies(self) -> bool {
        matches!(
            self,
            Skip::Partial | Skip::Method | Skip::Range | Skip::NotAccepted
        )
    }
}

/// The compression policy of a listener or route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Media types to compress (parameters ignored, case-insensitive): `text/html` exact,
    /// `text/*` a whole type, `application/*+json` a structured-syntax suffix, `*` all.
    pub types: Vec<String>,
    /// Answers with a known length below this are not compressed.
    pub min_length: u64,
    /// The level of each coding.
    pub levels: Levels,
    /// The codings offered, most preferred first; a coding left out is never used.
    pub offered: Vec<Coding>,
}

impl Default for Policy {
    /// [`DEFAULT_TYPES`], [`DEFAULT_MIN_LENGTH`], [`Levels::default`], [`DEFAULT_OFFERED`].
    fn default() -> Policy {
        Policy {
            types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            min_length: DEFAULT_MIN_LENGTH,
            levels: Levels::default(),
            offered: DEFAULT_OFFERED.to_vec(),
        }
    }
}

impl Policy {
    /// The coding to compress this answer with, or `None` to send it as it is.
    pub fn should_compress(&self, facts: &AnswerFacts) -> Option<Coding> {
        self.check(facts).ok()
    }

    /// Like [`Policy::should_compress`], with the reason when not (for logs and tests).
    /// Facts of the response are checked before facts of the request, so the reason
    /// tells whether the answer [varies](Skip::varies) with `Accept-Encoding`.
    pub fn check(&self, f: &AnswerFacts) -> Result<Coding, Skip> {
        if matches!(f.status, 100..=199 | 204 | 205 | 304) {
            return Err(Skip::NoContent);
        }
        if f.content_encoding.is_some_and(is_encoded) {
            return Err(Skip::Encoded);
        }
        if f.cache_control.is_some_and(has_no_transform) {
            return Err(Skip::NoTransform);
        }
        if !f.content_type.is_some_and(|t| self.type_listed(t)) {
            return Err(Skip::Type);
        }
        if f.status == 206 {
            return Err(Skip::Partial);
        }
        if f.content_length.is_some_and(|n| n < self.min_length) {
            return Err(Skip::Small);
        }
        if f.method.eq_ignore_ascii_case(b"HEAD") || f.method.eq_ignore_ascii_case(b"CONNECT") {
            return Err(Skip::Method);
        }
        if f.range {
            return Err(Skip::Range);
        }
        negotiate(f.accept_encoding.unwrap_or_default(), &self.offered).ok_or(Skip::NotAccepted)
    }

    /// Whether the answer needs `Vary: Accept-Encoding`: it is compressed, or would be
    /// for another client (see [`Skip::varies`]).
    pub fn varies(&self, facts: &AnswerFacts) -> bool {
        self.check(facts).map_or_else(Skip::varies, |_| true)
    }

    /// A streaming encoder for `coding` at this policy's level.
    pub fn encoder(&self, coding: Coding) -> io::Result<Encoder> {
        Encoder::new(coding, self.levels.of(coding))
    }

    /// Whether `content_type` (`text/html; charset=utf-8`) is among the policy's types.
    pub fn type_listed(&self, content_type: &[u8]) -> bool {
        let media = trim(
            content_type
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default(),
        );
        self.types.iter().any(|p| type_matches(p.as_bytes(), media))
    }
}

fn type_matches(pattern: &[u8], media: &[u8]) -> bool {
    if pattern == b"*" || pattern == b"*/*" {
        return true;
    }
    let Some(slash) = media.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (ty, sub) = (&media[..slash], &media[slash + 1..]);
    let Some(pslash) = pattern.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (pty, psub) = (&pattern[..pslash], &pattern[pslash + 1..]);
    if !pty.eq_ignore_ascii_case(ty) || sub.is_empty() {
        return false;
    }
    if psub == b"*" {
        return true;
    }
    if let Some(suffix) = psub.strip_prefix(b"*") {
        // `*+json`: any subtype ending in `+json`.
        return sub.len() > suffix.len()
            && sub[sub.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
    }
    psub.eq_ignore_ascii_case(sub)
}

fn is_encoded(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .map(trim)
        .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"))
}

fn has_no_transform(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|d| {
        let name = d.split(|&b| b == b'=').next().unwrap_or_default();
        trim(name).eq_ignore_ascii_case(b"no-transform")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(p: &str, t: &str) -> bool {
        type_matches(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn type_patterns() {
        assert!(listed("text/*", "text/html"));
        assert!(listed("text/*", "TEXT/CSS"));
        assert!(!listed("text/*", "text/"));
        assert!(!listed("text/*", "textual/html"));
        assert!(listed("application/json", "Application/JSON"));
        assert!(!listed("application/json", "application/jsonx"));
        assert!(listed("application/*+json", "application/ld+json"));
        assert!(!listed("application/*+json", "application/+json"));
        assert!(!listed("application/*+json", "application/json"));
        assert!(!listed("application/*+json", "text/ld+json"));
        assert!(listed("*", "video/mp4"));
        assert!(!listed("image/svg+xml", "image/png"));
        assert!(!listed("text/html", "html"));
        let p = Policy::default();
        assert!(p.type_listed(b"text/html; charset=utf-8"));
        assert!(p.type_listed(b" application/json ;charset=utf-8"));
        assert!(p.type_listed(b"application/problem+json"));
        assert!(p.type_listed(b"application/rss+xml"));
        assert!(!p.type_listed(b"image/png"));
        assert!(!p.type_listed(b"application/octet-stream"));
        assert!(!p.type_listed(b"font/woff2"));
        assert!(!p.type_listed(b""));
    }

    #[test]
    fn header_values() {
        assert!(is_encoded(b"gzip"));
        assert!(is_encoded(b"identity, br"));
        assert!(!is_encoded(b"identity"));
        assert!(!is_encoded(b" "));
        assert!(has_no_transform(b"public, No-Transform"));
        assert!(has_no_transform(b"no-transform"));
        assert!(!has_no_transform(b"no-store, max-age=60"));
        assert!(!has_no_transform(b"no-transformer"));
    }

    #[test]
    fn levels_by_coding() {
        let l = Levels {
            gzip: 1,
            brotli: 5,
            zstd: 7,
        };
        assert_eq!(l.of(Coding::Gzip), 1);
        assert_eq!(l.of(Coding::Brotli), 5);
        assert_eq!(l.of(Coding::Zstd), 7);
        assert_eq!(Levels::default().of(Coding::Brotli), 4);
    }
}
