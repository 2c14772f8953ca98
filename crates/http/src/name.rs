//! Comparing a field name with a known lowercase name, case-insensitively, eight bytes at a
//! time: what `eq_ignore_ascii_case` answers, at a few instructions per word instead of a
//! few per byte. The names a proxy looks for on every message (`Connection`,
//! `Content-Length`, `Transfer-Encoding`...) are compared this way.
//!
//! The known name is prepared at compile time ([`LowerName::new`]): its bytes as words,
//! and per word a mask with bit 5 (`0x20`, the ASCII case bit) set where the byte is a
//! letter. A field name matches when, word by word, `name | mask == lower`: at a letter,
//! the name's byte is that letter in either case; anywhere else ('-', '_', digits) it is
//! exactly the byte. That is `eq_ignore_ascii_case` exactly, for any input bytes.

/// A lowercase name of 8 to 32 bytes, ready for [`LowerName::matches`].
pub struct LowerName {
    len: usize,
    /// Word `i` is at byte `8 * i`, except the last, at `len - 8` (it may overlap).
    words: [u64; 4],
    masks: [u64; 4],
    n: usize,
}

impl LowerName {
    /// Prepare `lower` (lowercase ASCII, 8 to 32 bytes; anything else fails the build when
    /// used in a `const`).
    pub const fn new(lower: &'static [u8]) -> LowerName {
        let len = lower.len();
        assert!(len >= 8 && len <= 32, "8 to 32 bytes");
        let n = len.div_ceil(8);
        let mut words = [0u64; 4];
        let mut masks = [0u64; 4];
        let mut i = 0;
        while i < n {
            let off = if i + 1 == n { len - 8 } else { i * 8 };
            let mut k = 0;
            while k < 8 {
                let b = lower[off + k];
                assert!(!b.is_ascii_uppercase(), "lowercase only");
                words[i] |= (b as u64) << (8 * k);
                if b.is_ascii_lowercase() {
                    masks[i] |= 0x20 << (8 * k);
                }
                k += 1;
            }
            i += 1;
        }
        LowerName {
            len,
            words,
            masks,
            n,
        }
    }

    /// Whether `name` equals this name, ASCII case ignored (`eq_ignore_ascii_case`).
    #[inline]
    pub fn matches(&self, name: &[u8]) -> bool {
        if name.len() != self.len {
            return false;
        }
        let mut i = 0;
        while i < self.n {
            let off = if i + 1 == self.n { self.len - 8 } else { i * 8 };
            let Some(w) = name.get(off..).and_then(|s| s.first_chunk::<8>()) else {
                return false;
            };
            if u64::from_le_bytes(*w) | self.masks[i] != self.words[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&[u8]; 7] = [
        b"connection",
        b"content-length",
        b"content_length",
        b"transfer-encoding",
        b"transfer_encoding",
        b"x-forwarded-for",
        b"12345678-abcdefgh-ijklmnop_0",
    ];

    /// Against `eq_ignore_ascii_case`: each name in mixed cases, and every one-byte change
    /// of it to every byte value (the case bit flipped on a non-letter, CR for '-', DEL for
    /// '_' ...), and names of other lengths.
    #[test]
    fn matches_is_eq_ignore_ascii_case() {
        for lower in NAMES {
            let known = LowerName::new(lower);
            let upper = lower.to_ascii_uppercase();
            assert!(known.matches(lower) && known.matches(&upper));
            for i in 0..lower.len() {
                for b in 0..=255u8 {
                    let mut v = lower.to_vec();
                    v[i] = b;
                    assert_eq!(
                        known.matches(&v),
                        v.eq_ignore_ascii_case(lower),
                        "{:?} at {i} = {b:#x}",
                        String::from_utf8_lossy(lower)
                    );
                    let mut u = upper.clone();
                    u[i] = b;
                    assert_eq!(known.matches(&u), u.eq_ignore_ascii_case(lower));
                }
            }
            assert!(!known.matches(&lower[1..]));
            assert!(!known.matches(&[lower, b"x"].concat()));
            assert!(!known.matches(b""));
        }
    }
}
