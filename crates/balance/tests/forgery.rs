//! Forgery resistance in bulk. For each format (cookie and session-id tag), none of these
//! is accepted, while the genuine tokens they were made from all are:
//!
//! - 20,000 tampered: 10,000 with 1–3 bits flipped in the sealed bytes (version, nonce,
//!   ciphertext or tag), 10,000 with the text edited (a character replaced, dropped or
//!   added, or the value cut short);
//! - 20,000 forged: 10,000 random tokens (half with the genuine version byte), and 10,000
//!   checks of 500 tokens sealed with a key that is not configured or in the other format
//!   (a tag presented as a cookie, a cookie as a tag);
//! - for cookies, 10,000 expired: genuine cookies at or after their expiry.
//!
//! The mutations come from a seeded generator: the same run every time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tether_balance::{OpenError, Sealer};

const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const K2: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const K3: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const N: usize = 10_000;
/// Tokens sealed with a foreign key or in the other format (sealing is slow in a debug
/// build; each is checked N / POOL times).
const POOL: usize = 500;
const NOW: u64 = 1_800_000_000;
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// xorshift64*: deterministic, good enough to pick positions and bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The configured sealer: K1 seals, K1 and K2 open (as during a rotation).
fn configured() -> Sealer {
    Sealer::new(&[K1, K2]).expect("valid keys")
}

/// `token` with 1–3 bits flipped in its sealed bytes (version, nonce, ciphertext or tag).
fn flip_bits(rng: &mut Rng, token: &str) -> String {
    let genuine = URL_SAFE_NO_PAD
        .decode(token)
        .expect("genuine token decodes");
    let mut bytes = genuine.clone();
    let flips = 1 + rng.below(3);
    // Flipping the same bit twice would give the genuine token back: flip until it differs.
    for n in 0.. {
        if n >= flips && bytes != genuine {
            break;
        }
        let i = rng.below(bytes.len());
        bytes[i] ^= 1 << rng.below(8);
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with its text edited: a character replaced, dropped or added, or cut short.
fn edit_text(rng: &mut Rng, token: &str) -> String {
    let mut t = token.as_bytes().to_vec();
    let i = rng.below(t.len());
    match rng.below(4) {
        0 => {
            let mut c = B64[rng.below(64)];
            if c == t[i] {
                c = if c == b'A' { b'B' } else { b'A' };
            }
            t[i] = c;
        }
        1 => {
            t.remove(i);
        }
        2 => t.insert(i, B64[rng.below(64)]),
        _ => t.truncate(i),
    }
    String::from_utf8(t).expect("ascii")
}

/// A random token: version byte 1 (as if genuine) or random, random length, random bytes.
fn random_token(rng: &mut Rng) -> String {
    let len = rng.below(80);
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    if let Some(first) = bytes.first_mut() {
        if rng.below(2) == 0 {
            *first = 1;
        }
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn ten_thousand_tampered_forged_and_expired_cookies_are_refused() {
    let sealer = configured();
    let stranger = Sealer::new(&[K3]).expect("valid key");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let genuine: Vec<(String, String)> = (0..100)
        .map(|i| {
            let id = format!("web-{i}");
            (sealer.seal_cookie(&id, NOW + 1_000), id)
        })
        .collect();
    for (cookie, id) in &genuine {
        assert_eq!(sealer.open_cookie(cookie, NOW).as_ref(), Ok(id));
    }
    // Sealed with a key that is not configured, and tags presented as cookies.
    let others: Vec<(String, &str)> = (0..POOL)
        .map(|i| match i % 2 {
            0 => (stranger.seal_cookie("web-1", NOW + 1_000), "foreign-key"),
            _ => (sealer.tag("web-1"), "tag-as-cookie"),
        })
        .collect();
    let mut refused = [0usize; 3]; // malformed, forged, expired
    let mut count = |r: Result<String, OpenError>, what: &str, token: &str| match r {
        Ok(id) => panic!("{what} cookie accepted as {id:?}: {token}"),
        Err(OpenError::Malformed) => refused[0] += 1,
        Err(OpenError::Forged) => refused[1] += 1,
        Err(OpenError::Expired) => refused[2] += 1,
    };
    for i in 0..N {
        let (cookie, _) = &genuine[i % genuine.len()];
        let t = flip_bits(&mut rng, cookie);
        count(sealer.open_cookie(&t, NOW), "bit-flipped", &t);
        let t = edit_text(&mut rng, cookie);
        count(sealer.open_cookie(&t, NOW), "edited", &t);
        let t = random_token(&mut rng);
        count(sealer.open_cookie(&t, NOW), "random", &t);
        let (t, what) = &others[i % others.len()];
        count(sealer.open_cookie(t, NOW), what, t);
        // Expired: at its expiry or any time after.
        let expiry = NOW - rng.next() % 1_000_000;
        let t = sealer.seal_cookie("web-1", expiry);
        let r = sealer.open_cookie(&t, NOW);
        assert_eq!(r, Err(OpenError::Expired), "expired cookie: {t}");
        count(r, "expired", &t);
    }
    assert_eq!(refused.iter().sum::<usize>(), 5 * N);
    assert_eq!(
        refused[2], N,
        "exactly the expired ones are refused as expired"
    );
    // Authentication, not parsing, refused most of them.
    assert!(refused[1] > 2 * N, "{refused:?}");
}

#[test]
fn ten_thousand_tampered_and_forged_session_tags_are_refused() {
    let sealer = configured();
    let stranger = Sealer::new(&[K3]).expect("valid key");
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let genuine: Vec<(String, String)> = (0..100)
        .map(|i| {
            let id = format!("app-{i}");
            (sealer.tag(&id), id)
        })
        .collect();
    for (tag, id) in &genuine {
        let value = format!("{tag}.sess.{id}");
        let (opened, original) = sealer.split_tagged(&value).expect("genuine tag");
        assert_eq!((&opened, original), (id, format!("sess.{id}").as_str()));
    }
    let others: Vec<(String, &str)> = (0..POOL)
        .map(|i| match i % 2 {
            0 => (stranger.tag("app-1"), "foreign-key"),
            _ => (sealer.seal_cookie("app-1", NOW + 1_000), "cookie-as-tag"),
        })
        .collect();
    let check = |tag: &str, what: &str| {
        let value = format!("{tag}.original-session-id");
        assert_eq!(
            sealer.split_tagged(&value),
            None,
            "{what} tag accepted: {value}"
        );
    };
    for i in 0..N {
        let (tag, _) = &genuine[i % genuine.len()];
        check(&flip_bits(&mut rng, tag), "bit-flipped");
        check(&edit_text(&mut rng, tag), "edited");
        check(&random_token(&mut rng), "random");
        let (t, what) = &others[i % others.len()];
        check(t, what);
    }
    // A value without a dot is untagged whatever it holds.
    assert_eq!(sealer.split_tagged(&genuine[0].0), None);
}
