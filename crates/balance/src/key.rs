//! Sealing keys as written in the configuration.
//!
//! A key string is read, in this order, as:
//!
//! 1. exactly 64 hexadecimal digits: the 32 key bytes (`openssl rand -hex 32`);
//! 2. base64 (standard or URL-safe alphabet, padded or not) that decodes to exactly 32
//!    bytes: the key bytes (`openssl rand -base64 32`);
//! 3. anything else, as a passphrase: the key is PBKDF2-HMAC-SHA256 of its UTF-8 bytes with
//!    a fixed, tether-specific salt and [`PASSPHRASE_ROUNDS`] rounds. The work factor slows
//!    down guessing a passphrase from a captured cookie, but a random key is better.
//!
//! A key with less than 128 bits of material is refused ([`KeyError::Weak`]): anyone
//! holding one cookie could guess it offline and forge pins. What is accepted: 32 random
//! bytes as 64 hex digits or as base64 (`tether genkey`, `openssl rand -hex 32`), or a
//! passphrase of at least [`MIN_PASSPHRASE_CHARS`] characters. The empty string is
//! refused too. Keys never appear in logs or errors (only their position).

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use sha2::Sha256;

/// PBKDF2 rounds for passphrase keys (paid once, when the configuration is loaded).
pub const PASSPHRASE_ROUNDS: u32 = 100_000;

/// The shortest passphrase accepted, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 20;

const PASSPHRASE_SALT: &[u8] = b"tether-balance sealer key v1";

/// Why the configured keys cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// No key was given.
    NoKeys,
    /// The key at this position (from 0) is empty.
    Empty(usize),
    /// The key at this position (from 0) is neither 32 bytes in hex or base64 nor a
    /// passphrase of at least [`MIN_PASSPHRASE_CHARS`] characters.
    Weak(usize),
}

impl KeyError {
    /// The position (from 0) of the key at fault, if one is.
    pub fn position(&self) -> Option<usize> {
        match self {
            KeyError::NoKeys => None,
            KeyError::Empty(i) | KeyError::Weak(i) => Some(*i),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NoKeys => write!(f, "no sealing key configured"),
            KeyError::Empty(i) => write!(f, "sealing key #{} is empty", i + 1),
            KeyError::Weak(i) => write!(
                f,
                "sealing key #{} is too weak (under 128 bits): give 32 random bytes as 64 hex \
                 digits or base64 (`tether genkey` prints one), or a passphrase of at least \
                 {MIN_PASSPHRASE_CHARS} characters",
                i + 1
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// How a key string was read (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// 64 hexadecimal digits.
    Hex,
    /// Base64 of 32 bytes.
    Base64,
    /// A passphrase, derived with PBKDF2.
    Passphrase,
}

/// Read the key string at `position` into 32 key bytes.
pub fn parse_key(text: &str, position: usize) -> Result<([u8; 32], KeyKind), KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty(position));
    }
    if let Some(found) = decode_key(text) {
        return Ok(found);
    }
    if text.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeyError::Weak(position));
    }
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        text.as_bytes(),
        PASSPHRASE_SALT,
        PASSPHRASE_ROUNDS,
        &mut key,
    );
    Ok((key, KeyKind::Passphrase))
}

/// The key bytes of a hex or base64 key string; `None` for a passphrase.
fn decode_key(text: &str) -> Option<([u8; 32], KeyKind)> {
    let mut key = [0u8; 32];
    if text.len() == 64 && hex::decode_to_slice(text, &mut key).is_ok() {
        return Some((key, KeyKind::Hex));
    }
    decode_base64_key(text).map(|key| (key, KeyKind::Base64))
}

fn decode_base64_key(text: &str) -> Option<[u8; 32]> {
    // 32 bytes are 43 characters unpadded, 44 padded.
    if !(43..=44).contains(&text.len()) {
        return None;
    }
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [alphabet::STANDARD, alphabet::URL_SAFE]
        .iter()
        .find_map(|a| {
            let bytes = GeneralPurpose::new(a, config).decode(text).ok()?;
            <[u8; 32]>::try_from(bytes.as_slice()).ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_key() {
        let text = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let (key, kind) = parse_key(text, 0).expect("hex key");
        assert_eq!(kind, KeyKind::Hex);
        assert_eq!(key[1], 0x11);
        assert_eq!(key[31], 0xff);
    }

    #[test]
    fn base64_keys_in_both_alphabets_with_or_without_padding() {
        let bytes = [0xfbu8; 32];
        let std = base64::engine::general_purpose::STANDARD.encode(bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert!(std.contains('+') || std.contains('/'));
        for text in [std.as_str(), std.trim_end_matches('='), url.as_str()] {
            assert_eq!(parse_key(text, 0), Ok((bytes, KeyKind::Base64)), "{text}");
        }
    }

    #[test]
    fn near_misses_are_passphrases() {
        let b64_31 = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        let b64_33 = base64::engine::general_purpose::STANDARD.encode([7u8; 33]);
        for text in [
            "a".repeat(63),
            "g".repeat(64),
            "a".repeat(65),
            b64_31,
            b64_33,
        ] {
            assert_eq!(decode_key(&text), None, "{text}");
        }
    }

    #[test]
    fn passphrase_is_pbkdf2_hmac_sha256() {
        // Known answer computed independently with Python:
        // hashlib.pbkdf2_hmac("sha256", passphrase, b"tether-balance sealer key v1", 100000)
        let (key, kind) = parse_key("correct horse battery staple", 0).expect("passphrase");
        assert_eq!(kind, KeyKind::Passphrase);
        assert_eq!(
            hex::encode(key),
            "7e52ab2fd9dbd5b100eb150a8fb3df5c4b32bdbf4a93cc595ff23c5ad3f86f3b"
        );
    }

    #[test]
    fn short_passphrases_and_near_miss_keys_are_weak() {
        // 19 characters, 16 hex digits (64 bits), a 3-letter word: all refused.
        for text in ["abc", "nineteen characters", "0011223344556677"] {
            assert_eq!(parse_key(text, 1), Err(KeyError::Weak(1)), "{text}");
        }
        assert_eq!(
            parse_key(&"a".repeat(MIN_PASSPHRASE_CHARS), 0).map(|k| k.1),
            Ok(KeyKind::Passphrase)
        );
        assert_eq!(parse_key("a_nineteen_char_key", 3), Err(KeyError::Weak(3)));
        assert!(KeyError::Weak(0).to_string().contains("tether genkey"));
    }

    #[test]
    fn empty_key_is_refused() {
        assert_eq!(parse_key("", 2), Err(KeyError::Empty(2)));
    }
}
