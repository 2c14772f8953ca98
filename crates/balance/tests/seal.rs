//! Sealed cookies and session-id tags: round trips, tampering, expiry, wrong keys, key
//! rotation; and finding a cookie in a `Cookie` header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tether_balance::{find_cookie, parse_key, set_cookie, KeyError, KeyKind, OpenError, Sealer};

const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const K2: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="; // base64 of 32 bytes
const K3: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn sealer(keys: &[&str]) -> Sealer {
    Sealer::new(keys).expect("valid keys")
}

#[test]
fn cookie_round_trip_hides_the_server() {
    let s = sealer(&[K1]);
    let cookie = s.seal_cookie("web-1", 2_000);
    assert!(cookie
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(!cookie.contains("web"));
    assert_eq!(s.open_cookie(&cookie, 1_999), Ok("web-1".to_string()));
    // 1 version + 24 nonce + 8 expiry + 5 id + 16 tag = 54 bytes = 72 base64 characters
    // (as docs/affinity.md says); a tag has no expiry: 46 bytes, 62 characters.
    assert_eq!(cookie.len(), 72);
    assert_eq!(s.tag("web-1").len(), 62);
    // A random nonce: sealing twice gives two different values.
    assert_ne!(cookie, s.seal_cookie("web-1", 2_000));
}

#[test]
fn cookie_expiry() {
    let s = sealer(&[K1]);
    let cookie = s.seal_cookie("web-1", 2_000);
    assert_eq!(s.open_cookie(&cookie, 2_000), Err(OpenError::Expired));
    assert_eq!(s.open_cookie(&cookie, u64::MAX), Err(OpenError::Expired));
}

#[test]
fn every_tampered_byte_is_forged() {
    let s = sealer(&[K1]);
    let cookie = s.seal_cookie("web-1", 2_000);
    let bytes = URL_SAFE_NO_PAD.decode(&cookie).expect("base64url");
    // Byte 0 is the version (tampering it is Malformed); every other byte is covered by
    // the AEAD.
    for i in 1..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        let forged = URL_SAFE_NO_PAD.encode(&t);
        assert_eq!(
            s.open_cookie(&forged, 0),
            Err(OpenError::Forged),
            "byte {i}"
        );
    }
    let mut t = bytes.clone();
    t[0] ^= 0x01;
    assert_eq!(
        s.open_cookie(&URL_SAFE_NO_PAD.encode(&t), 0),
        Err(OpenError::Malformed)
    );
    let truncated = URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1]);
    assert_eq!(s.open_cookie(&truncated, 0), Err(OpenError::Forged));
}

#[test]
fn malformed_values() {
    let s = sealer(&[K1]);
    for v in ["", "not base64!", "a.b", "AAAA", &"A".repeat(40)] {
        assert_eq!(s.open_cookie(v, 0), Err(OpenError::Malformed), "{v:?}");
    }
}

#[test]
fn wrong_key_is_forged() {
    let cookie = sealer(&[K1]).seal_cookie("web-1", 2_000);
    assert_eq!(
        sealer(&[K2]).open_cookie(&cookie, 0),
        Err(OpenError::Forged)
    );
}

#[test]
fn rotation_new_key_seals_old_key_still_opens() {
    let old = sealer(&[K1]);
    let rotated = sealer(&[K2, K1]);
    let old_cookie = old.seal_cookie("web-1", 2_000);
    assert_eq!(rotated.open_cookie(&old_cookie, 0), Ok("web-1".into()));
    let new_cookie = rotated.seal_cookie("web-2", 2_000);
    assert_eq!(
        sealer(&[K2]).open_cookie(&new_cookie, 0),
        Ok("web-2".into())
    );
    assert_eq!(old.open_cookie(&new_cookie, 0), Err(OpenError::Forged));
    // Once the old key is retired, its cookies are refused.
    assert_eq!(
        sealer(&[K2, K3]).open_cookie(&old_cookie, 0),
        Err(OpenError::Forged)
    );
}

#[test]
fn test_keys_are_raw_keys_not_passphrases() {
    assert_eq!(parse_key(K1, 0).map(|k| k.1), Ok(KeyKind::Hex));
    assert_eq!(parse_key(K2, 0).map(|k| k.1), Ok(KeyKind::Base64));
    assert_eq!(parse_key(K3, 0).map(|k| k.1), Ok(KeyKind::Hex));
}

#[test]
fn key_errors() {
    let none: [&str; 0] = [];
    assert_eq!(Sealer::new(&none).err(), Some(KeyError::NoKeys));
    assert_eq!(Sealer::new(&[K1, ""]).err(), Some(KeyError::Empty(1)));
}

#[test]
fn tags_split_with_dots_in_the_original() {
    let s = sealer(&[K1]);
    let tag = s.tag("map-3");
    assert!(!tag.contains('.'));
    let value = s.tag_value("map-3", "abc.def..ghi.");
    assert_eq!(value, format!("{}.abc.def..ghi.", &value[..tag.len()]));
    assert_eq!(
        s.split_tagged(&value),
        Some(("map-3".to_string(), "abc.def..ghi."))
    );
    assert_eq!(
        s.split_tagged(&format!("{tag}.")),
        Some(("map-3".into(), ""))
    );
    assert_eq!(s.split_tagged("plain-session-id"), None);
    assert_eq!(s.split_tagged("forged.value"), None);
    assert_eq!(sealer(&[K2]).split_tagged(&value), None, "another key");
}

#[test]
fn tags_and_cookies_are_not_interchangeable() {
    let s = sealer(&[K1]);
    let tag = s.tag("web-1");
    assert_eq!(s.open_cookie(&tag, 0), Err(OpenError::Forged));
    let cookie = s.seal_cookie("web-1", 2_000);
    assert_eq!(s.open_tag(&cookie), Err(OpenError::Forged));
}

#[test]
fn set_cookie_then_find_it_again() {
    let s = sealer(&[K1]);
    let value = s.seal_cookie("web-1", 1_300);
    let header = set_cookie("TETHER", &value, 1_300, 1_000, true);
    assert!(header.starts_with(&format!("TETHER={value}; ")));
    for attr in [
        "Max-Age=300",
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
    ] {
        assert!(header.split("; ").any(|a| a == attr), "{attr} in {header}");
    }
    let request = format!("theme=dark; TETHER={value}; lang=en");
    let found = find_cookie(&request, "TETHER").expect("cookie present");
    assert_eq!(s.open_cookie(found, 1_000), Ok("web-1".into()));
}

#[test]
fn cookie_header_parsing_edge_cases() {
    assert_eq!(find_cookie("a=1; b=2", "b"), Some("2"));
    assert_eq!(find_cookie("a=1;b=2", "b"), Some("2"));
    assert_eq!(find_cookie("  a = 1 ;\tb=2  ", "a"), Some("1"));
    assert_eq!(find_cookie("a=1; b=2", "c"), None);
    assert_eq!(find_cookie("", "a"), None);
    assert_eq!(find_cookie("ab=1; a=2", "a"), Some("2"), "no prefix match");
    assert_eq!(
        find_cookie("A=1; a=2", "a"),
        Some("2"),
        "names are case-sensitive"
    );
    assert_eq!(find_cookie("a=1; a=2", "a"), Some("1"), "first wins");
    assert_eq!(find_cookie("flag; a=2", "a"), Some("2"), "pair without '='");
    assert_eq!(find_cookie("a=; b=2", "a"), Some(""));
    assert_eq!(find_cookie("a=\"quoted\"", "a"), Some("quoted"));
    assert_eq!(
        find_cookie("a=x=y", "a"),
        Some("x=y"),
        "value keeps its '='"
    );
    assert_eq!(find_cookie(";;a=1;;", "a"), Some("1"));
}
