//! `hash_key` of an `ip_hash` pool: what the rendezvous hash is computed over — the client
//! address (the default), or a request header, cookie or query parameter (nginx `hash
//! $http_x_user consistent`, HAProxy `balance hdr(X-User)`, Envoy's `hash_policy`). gRPC
//! metadata are headers, so `"header:x-user-id"` pins a user's calls.

use std::ops::Range;

use toml::Spanned;

use crate::spec::HashKey;
use crate::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// Checks `hash_key`; `hashing`: the pool's `balance` is `ip_hash`.
pub(crate) fn check(
    raw: Option<&Spanned<String>>,
    hashing: bool,
    at: At<'_>,
) -> Result<HashKey, ConfigError> {
    let Some(raw) = raw else {
        return Ok(HashKey::ClientIp);
    };
    if !hashing {
        return Err(at(
            raw.span(),
            "`hash_key` needs `balance = \"ip_hash\"` (the key of the rendezvous hash)".into(),
        ));
    }
    let value = raw.get_ref().trim();
    if value == "client_ip" {
        return Ok(HashKey::ClientIp);
    }
    let bad = |why: &str| {
        at(
            raw.span(),
            format!(
                "`hash_key`: {value:?} {why} (hint: \"client_ip\", \"header:NAME\", \
                 \"cookie:NAME\" or \"query:NAME\")"
            ),
        )
    };
    let Some((kind, name)) = value.split_once(':') else {
        return Err(bad("is not a key"));
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(bad("names no field"));
    }
    match kind.trim() {
        "header" => Ok(HashKey::Header(name.to_ascii_lowercase())),
        "cookie" => Ok(HashKey::Cookie(name.to_string())),
        "query" => Ok(HashKey::Query(name.to_string())),
        _ => Err(bad("is not a key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(span: Range<usize>, message: String) -> ConfigError {
        ConfigError {
            path: String::new(),
            line: span.start,
            col: span.end,
            message,
        }
    }

    fn raw(s: &str) -> Spanned<String> {
        #[derive(serde::Deserialize)]
        struct W {
            k: Spanned<String>,
        }
        let w: W = toml::from_str(&format!("k = {s:?}")).expect("toml");
        w.k
    }

    #[test]
    fn keys_and_errors() {
        assert_eq!(check(None, false, &at).ok(), Some(HashKey::ClientIp));
        let ok = |s: &str| check(Some(&raw(s)), true, &at).ok();
        assert_eq!(ok("client_ip"), Some(HashKey::ClientIp));
        assert_eq!(ok("header:X-User"), Some(HashKey::Header("x-user".into())));
        assert_eq!(ok("cookie:SID"), Some(HashKey::Cookie("SID".into())));
        assert_eq!(ok("query:user"), Some(HashKey::Query("user".into())));
        for bad in ["header:", "body:x", "user", "header:a b"] {
            let e = check(Some(&raw(bad)), true, &at).expect_err(bad);
            assert!(e.message.contains("hint: \"client_ip\""), "{}", e.message);
        }
        let e = check(Some(&raw("header:x")), false, &at).expect_err("not ip_hash");
        assert!(
            e.message.contains("needs `balance = \"ip_hash\"`"),
            "{}",
            e.message
        );
    }
}
