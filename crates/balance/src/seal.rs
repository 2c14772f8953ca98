//! Sealed affinity tokens: a server id, encrypted and authenticated, for the client to carry.
//!
//! Two formats, both URL- and cookie-safe base64 (`A–Z a–z 0–9 - _`, no padding, so no
//! `.`, `;`, `,` or `=`) of
//!
//! ```text
//! version (1 byte, = 1) | nonce (24 random bytes) | ciphertext | Poly1305 tag (16 bytes)
//! ```
//!
//! sealed with XChaCha20-Poly1305 (the 24-byte random nonce never repeats in practice, so
//! no counter has to be shared between workers or proxy instances):
//!
//! - a **cookie** ([`Sealer::seal_cookie`]) encrypts `expiry (u64, big-endian unix
//!   seconds) | server id`; [`Sealer::open_cookie`] refuses it at or after its expiry;
//! - a **tag** ([`Sealer::tag`]) encrypts the server id alone, for prefixing an
//!   application's session id as `<tag>.<original>` ([`Sealer::split_tagged`]).
//!
//! Each format has its own associated data, so a tag cannot be replayed as a cookie or the
//! reverse. The server address never appears; the id is opaque to the client.
//!
//! **Rotation.** A [`Sealer`] holds several keys: the first seals, every key opens. To
//! rotate, put the new key first and keep the old one second until the old cookies have
//! expired.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::key::{parse_key, KeyError};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const EXPIRY_LEN: usize = 8;
const COOKIE_AAD: &[u8] = b"tether-balance affinity cookie v1";
const TAG_AAD: &[u8] = b"tether-balance session tag v1";

/// Why a sealed value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Not something this proxy could have sealed (bad base64, too short, unknown
    /// version).
    Malformed,
    /// Well-formed but no key authenticates it: tampered, or sealed with a key that is no
    /// longer configured.
    Forged,
    /// Authentic but past its expiry.
    Expired,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::Malformed => "malformed sealed value",
            OpenError::Forged => "sealed value fails authentication",
            OpenError::Expired => "sealed value has expired",
        })
    }
}

impl std::error::Error for OpenError {}

/// Seals and opens affinity cookies and session-id tags (see the module documentation).
pub struct Sealer {
    /// The first configured key.
    sealing: XChaCha20Poly1305,
    /// Every configured key, the sealing one first.
    ciphers: Vec<XChaCha20Poly1305>,
}

impl Sealer {
    /// A sealer from configured key strings (hex, base64 or passphrase: see
    /// [`parse_key`]); the first key seals.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Result<Sealer, KeyError> {
        let bytes = keys
            .iter()
            .enumerate()
            .map(|(i, k)| parse_key(k.as_ref(), i).map(|(key, _)| key))
            .collect::<Result<Vec<_>, _>>()?;
        Sealer::from_keys(&bytes)
    }

    /// A sealer from raw 32-byte keys; the first key seals.
    pub fn from_keys(keys: &[[u8; 32]]) -> Result<Sealer, KeyError> {
        let ciphers: Vec<_> = keys
            .iter()
            .map(|k| XChaCha20Poly1305::new(k.into()))
            .collect();
        let sealing = ciphers.first().cloned().ok_or(KeyError::NoKeys)?;
        Ok(Sealer { sealing, ciphers })
    }

    /// A cookie value naming `server_id`, valid until `expiry_unix` (seconds since the Unix
    /// epoch).
    pub fn seal_cookie(&self, server_id: &str, expiry_unix: u64) -> String {
        let mut plain = Vec::with_capacity(EXPIRY_LEN + server_id.len());
        plain.extend_from_slice(&expiry_unix.to_be_bytes());
        plain.extend_from_slice(server_id.as_bytes());
        self.seal(&plain, COOKIE_AAD)
    }

    /// The server id in a cookie value, if it is authentic and `now_unix` is before its
    /// expiry.
    pub fn open_cookie(&self, value: &str, now_unix: u64) -> Result<String, OpenError> {
        let plain = self.open(value, COOKIE_AAD)?;
        let (expiry, id) = plain
            .split_at_checked(EXPIRY_LEN)
            .ok_or(OpenError::Malformed)?;
        let expiry = u64::from_be_bytes(expiry.try_into().map_err(|_| OpenError::Malformed)?);
        if now_unix >= expiry {
            return Err(OpenError::Expired);
        }
        String::from_utf8(id.to_vec()).map_err(|_| OpenError::Malformed)
    }

    /// A tag naming `server_id`, to prefix a session id with (`<tag>.<original>`). Tags do
    /// not expire; they live as long as the session id they are part of.
    pub fn tag(&self, server_id: &str) -> String {
        self.seal(server_id.as_bytes(), TAG_AAD)
    }

    /// `<tag>.<original>` for `original`, pinned to `server_id`.
    pub fn tag_value(&self, server_id: &str, original: &str) -> String {
        let mut out = self.tag(server_id);
        out.push('.');
        out.push_str(original);
        out
    }

    /// The server id in a tag.
    pub fn open_tag(&self, tag: &str) -> Result<String, OpenError> {
        let plain = self.open(tag, TAG_AAD)?;
        String::from_utf8(plain).map_err(|_| OpenError::Malformed)
    }

    /// Split a tagged value `<tag>.<original>` at its first dot into the server id sealed in
    /// the tag and the original value (which may contain dots). `None` when the value has
    /// no dot or its prefix is not an authentic tag (an untagged or foreign value: route it
    /// by policy and pass it on unchanged).
    pub fn split_tagged<'a>(&self, value: &'a str) -> Option<(String, &'a str)> {
        let (tag, original) = value.split_once('.')?;
        let id = self.open_tag(tag).ok()?;
        Some((id, original))
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        // The AEAD refuses only messages longer than 256 GiB; server ids are short.
        let sealed = self
            .sealing
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("XChaCha20-Poly1305 seals any message shorter than 256 GiB");
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    fn open(&self, text: &str, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() < 1 + NONCE_LEN + TAG_LEN || bytes[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = bytes[1..].split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        self.ciphers
            .iter()
            .find_map(|c| c.decrypt(nonce, Payload { msg: sealed, aad }).ok())
            .ok_or(OpenError::Forged)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Sealer")
            .field("keys", &self.ciphers.len())
            .finish()
    }
}
