//! The content codings tether can produce: their HTTP names (`Content-Encoding` and
//! `Accept-Encoding` tokens), the file suffixes of precompressed siblings, and the
//! default compression level of each.

use std::fmt;

/// A content coding (RFC 9110 section 8.4.1) that tether compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `gzip` (RFC 1952), through `flate2`. Every client takes it.
    Gzip,
    /// `br` (RFC 7932), through `brotli`. All current browsers, HTTPS only in practice.
    Brotli,
    /// `zstd` (RFC 8878), through `zstd`. Chrome/Edge 123+, Firefox 126+.
    Zstd,
}

impl Coding {
    /// Every coding, in tether's default order of preference (see [`crate::DEFAULT_OFFERED`]).
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    /// The token in `Content-Encoding` / `Accept-Encoding`: `gzip`, `br`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The suffix of a precompressed sibling file: `.gz`, `.br`, `.zst`
    /// (`app.js` → `app.js.br`), as nginx's `gzip_static` and Caddy's `precompressed`.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Gzip => ".gz",
            Coding::Brotli => ".br",
            Coding::Zstd => ".zst",
        }
    }

    /// The coding an `Accept-Encoding`/`Content-Encoding` token names, case-insensitively.
    /// `x-gzip` is `gzip` (RFC 9110 section 8.4.1.3). `identity`, `*`, `deflate` and
    /// unknown tokens are `None`.
    pub fn from_token(token: &[u8]) -> Option<Coding> {
        if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
            Some(Coding::Gzip)
        } else if token.eq_ignore_ascii_case(b"br") {
            Some(Coding::Brotli)
        } else if token.eq_ignore_ascii_case(b"zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }

    /// The level used when none is configured: gzip 6 (the files module's `gzip_level`
    /// today, zlib's default), brotli 4, zstd 3 (zstd's default). Measured per 100 KiB of
    /// JSON on one core: gzip 6 4.2 ms, brotli 4 1.6 ms, zstd 3 0.3 ms (README, "Cost").
    pub fn default_level(self) -> u32 {
        match self {
            Coding::Gzip => 6,
            Coding::Brotli => 4,
            Coding::Zstd => 3,
        }
    }

    /// The levels the library accepts: gzip 1-9, brotli 0-11, zstd 1-22. Levels outside
    /// are clamped into this range by [`crate::Encoder::new`].
    pub fn level_range(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Coding::Gzip => 1..=9,
            Coding::Brotli => 0..=11,
            Coding::Zstd => 1..=22,
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_suffixes() {
        assert_eq!(Coding::Gzip.name(), "gzip");
        assert_eq!(Coding::Brotli.name(), "br");
        assert_eq!(Coding::Zstd.name(), "zstd");
        assert_eq!(Coding::Zstd.suffix(), ".zst");
        assert_eq!(Coding::Brotli.to_string(), "br");
        for c in Coding::ALL {
            assert_eq!(Coding::from_token(c.name().as_bytes()), Some(c));
            assert!(c.level_range().contains(&c.default_level()));
        }
        assert_eq!(Coding::from_token(b"X-GZip"), Some(Coding::Gzip));
        assert_eq!(Coding::from_token(b"BR"), Some(Coding::Brotli));
        assert_eq!(Coding::from_token(b"identity"), None);
        assert_eq!(Coding::from_token(b"deflate"), None);
        assert_eq!(Coding::from_token(b"*"), None);
        assert_eq!(Coding::from_token(b""), None);
    }
}
