//! Password hash schemes: which entries of an htpasswd file are accepted
//! ([`classify`], at load time, with a hint for the refused ones) and how a password is
//! checked against an accepted entry ([`verify`], on a helper thread).
//!
//! Accepted: bcrypt (`$2y$`, `$2b$`, `$2a$`; the `bcrypt` crate), SHA-crypt (`$5$`, `$6$`;
//! RustCrypto `sha-crypt`) and argon2 PHC strings (`$argon2id$`, `$argon2i$`, `$argon2d$`;
//! RustCrypto `argon2`). Each crate compares the computed hash with the stored one in
//! constant time.

use argon2::{Argon2, PasswordHash, PasswordVerifier as _};
use sha_crypt::ShaCrypt;

/// An accepted hash scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bcrypt,
    Sha256Crypt,
    Sha512Crypt,
    Argon2,
}

/// What to tell the user about a refused entry.
const HINT: &str =
    "re-create the entry with `htpasswd -B` (bcrypt) or `htpasswd -5` (SHA-512-crypt)";

/// Most memory an argon2 entry may ask for, in KiB (1 GiB): one check of a larger one
/// would let a single request exhaust the machine.
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;

/// The crypt(3) base-64 alphabet (DES crypt, SHA-crypt).
fn is_crypt_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// Says which scheme `hash` uses, or why the entry is refused (a message with a hint that
/// never repeats the hash: a refused entry may be a plaintext password).
pub(crate) fn classify(hash: &str) -> Result<Scheme, String> {
    if hash.is_empty() {
        return Err(format!("empty password hash: {HINT}"));
    }
    if let Some(rest) = hash.strip_prefix('$') {
        let id = rest.split('$').next().unwrap_or("");
        return match id {
            "2y" | "2b" | "2a" => check_bcrypt(hash),
            "2x" => Err(format!(
                "`$2x$` (bcrypt of the buggy crypt_blowfish) is refused: {HINT}"
            )),
            "5" => check_sha_crypt(hash, 43).map(|()| Scheme::Sha256Crypt),
            "6" => check_sha_crypt(hash, 86).map(|()| Scheme::Sha512Crypt),
            "argon2id" | "argon2i" | "argon2d" => check_argon2(hash),
            "apr1" => Err(format!("`$apr1$` (MD5-crypt) is refused: {HINT}")),
            "1" => Err(format!("`$1$` (MD5-crypt) is refused: {HINT}")),
            "y" | "7" | "gy" => Err(format!(
                "`${id}$` (yescrypt/scrypt) is not supported: {HINT}"
            )),
            _ => Err(format!("unknown hash scheme `${}$`: {HINT}", shorten(id))),
        };
    }
    if hash.starts_with("{SHA}") {
        return Err(format!("`{{SHA}}` (unsalted SHA-1) is refused: {HINT}"));
    }
    if hash.starts_with("{SSHA}") {
        return Err(format!("`{{SSHA}}` (salted SHA-1) is refused: {HINT}"));
    }
    if hash.len() == 13 && hash.bytes().all(is_crypt_char) {
        return Err(format!(
            "this looks like a DES crypt hash (`htpasswd -d`), which is refused: {HINT}"
        ));
    }
    Err(format!(
        "this looks like a plaintext password (`htpasswd -p`), which is refused: {HINT}"
    ))
}

/// An unknown scheme id is echoed in the message, cut short in case it is a password.
fn shorten(id: &str) -> String {
    id.chars().take(12).collect()
}

fn check_bcrypt(hash: &str) -> Result<Scheme, String> {
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|e| format!("malformed bcrypt hash ({e}): {HINT}"))?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is out of range (4 to 31): {HINT}"
        ));
    }
    Ok(Scheme::Bcrypt)
}

/// `$5$[rounds=N$]salt$hash`: the hash is `hash_len` crypt base-64 characters, the salt at
/// most 16 characters, the rounds between 1000 and 999999999.
fn check_sha_crypt(hash: &str, hash_len: usize) -> Result<(), String> {
    let bad = |why: &str| Err(format!("malformed SHA-crypt hash ({why}): {HINT}"));
    let fields: Vec<&str> = hash.split('$').skip(2).collect();
    let (salt, digest) = match fields.as_slice() {
        [salt, digest] => (*salt, *digest),
        [rounds, salt, digest] => {
            let Some(n) = rounds.strip_prefix("rounds=") else {
                return bad("expected `rounds=N` before the salt");
            };
            match n.parse::<u32>() {
                Ok(n) if (1000..=999_999_999).contains(&n) => {}
                _ => return bad("rounds must be a number from 1000 to 999999999"),
            }
            (*salt, *digest)
        }
        _ => return bad("expected `$id$[rounds=N$]salt$hash`"),
    };
    if salt.len() > 16 || salt.is_empty() {
        return bad("the salt must have 1 to 16 characters");
    }
    if digest.len() != hash_len || !digest.bytes().all(is_crypt_char) {
        return bad("the hash part has the wrong length or characters");
    }
    Ok(())
}

fn check_argon2(hash: &str) -> Result<Scheme, String> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| format!("malformed argon2 hash ({e}): {HINT}"))?;
    let params = argon2::Params::try_from(&parsed)
        .map_err(|e| format!("bad argon2 parameters ({e}): {HINT}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(format!("argon2 hash without a salt or an output: {HINT}"));
    }
    if params.m_cost() > ARGON2_MAX_M_KIB {
        return Err(format!(
            "argon2 memory m={} KiB is over the limit of {ARGON2_MAX_M_KIB} KiB (1 GiB): \
             re-create the entry with a smaller m",
            params.m_cost()
        ));
    }
    Ok(Scheme::Argon2)
}

/// Whether `password` matches `hash`, an entry that [`classify`] accepted as `scheme`.
/// Slow on purpose (milliseconds): call it on a helper thread only.
pub(crate) fn verify(scheme: Scheme, hash: &str, password: &[u8]) -> bool {
    match scheme {
        Scheme::Bcrypt => bcrypt::verify(password, hash).unwrap_or(false),
        Scheme::Sha256Crypt | Scheme::Sha512Crypt => {
            sha_crypt::PasswordVerifier::verify_password(&ShaCrypt::default(), password, hash)
                .is_ok()
        }
        Scheme::Argon2 => match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
            Err(_) => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `htpasswd -nbB -C 4 u pw`.
    const BCRYPT: &str = "$2y$04$jjKYdTuOKN8IjO0ce/16k.X5pSKeZ3VpDMIQzIRP0yg679GS5xLZC";

    #[test]
    fn refused_schemes_name_themselves_and_hint() {
        for (hash, says) in [
            (
                "$apr1$ZUCkOhCO$Yj5pZp0QiOUccE9Y9JBIf.",
                "`$apr1$` (MD5-crypt) is refused",
            ),
            ("$1$abc$defdefdefdefdefdefdefd", "`$1$` (MD5-crypt)"),
            ("{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=", "`{SHA}`"),
            ("{SSHA}GpHWL3ymc5liWkNopqtdSjuqYHM=", "`{SSHA}`"),
            ("3Voxu.6CCISEc", "DES crypt"),
            ("hunter2", "plaintext"),
            ("$y$j9T$abc$def", "yescrypt"),
            ("$9$whatever", "unknown hash scheme `$9$`"),
            ("", "empty password hash"),
        ] {
            let err = classify(hash).expect_err(hash);
            assert!(err.contains(says), "{hash}: {err}");
            assert!(err.contains("htpasswd -B"), "{hash}: {err}");
        }
    }

    #[test]
    fn messages_never_repeat_a_plaintext_password() {
        let err = classify("my-secret-password").expect_err("plaintext");
        assert!(!err.contains("my-secret"), "{err}");
    }

    #[test]
    fn malformed_hashes_of_accepted_schemes() {
        for (hash, says) in [
            ("$2y$04$short", "malformed bcrypt hash"),
            (
                "$2y$99$6Q3zwCNRo1Vfxr4KqEfr2OnF9dxmOPd3mPMpKOIqq5ZiWUU8h0r6m",
                "cost 99",
            ),
            ("$5$salt$tooshort", "malformed SHA-crypt"),
            ("$6$rounds=10$salt$x", "rounds must be"),
            ("$6$a$b$c$d", "expected `$id$[rounds=N$]salt$hash`"),
            ("$argon2id$v=19$m=zzz$abc$def", "argon2"),
            (
                "$2x$04$6Q3zwCNRo1Vfxr4KqEfr2OnF9dxmOPd3mPMpKOIqq5ZiWUU8h0r6m",
                "`$2x$`",
            ),
        ] {
            let err = classify(hash).expect_err(hash);
            assert!(err.contains(says), "{hash}: {err}");
        }
    }

    #[test]
    fn bcrypt_right_and_wrong() {
        assert_eq!(classify(BCRYPT), Ok(Scheme::Bcrypt));
        assert!(verify(Scheme::Bcrypt, BCRYPT, b"pw"));
        assert!(!verify(Scheme::Bcrypt, BCRYPT, b"pW"));
    }

    #[test]
    fn huge_argon2_memory_is_refused() {
        let hash = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQxMjM$\
                    YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY";
        let err = classify(hash).expect_err("too big");
        assert!(err.contains("over the limit"), "{err}");
    }
}
