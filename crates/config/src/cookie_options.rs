//! `cookie_secure` and `cookie_samesite` on an `[[upstream]]`: the `Secure` and `SameSite`
//! of the cookies tether writes (`balance = "cookie"`'s sealed cookie, a `session_id`
//! cookie re-tagged after a re-pin), checked into `tether_balance::CookieOptions`.
//!
//! ```toml
//! cookie_secure = "auto"    # auto (Secure over TLS) | always | never
//! cookie_samesite = "lax"   # lax | strict | none (none forces Secure)
//! ```

use std::ops::Range;

use tether_balance::{CookieOptions, CookieSecure, SameSite};
use toml::Spanned;

use super::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// Check the two keys; `writes_cookies`: the upstream's balance writes a cookie (else
/// giving them is an error, since they would change nothing).
pub(super) fn check(
    secure: Option<&Spanned<String>>,
    same_site: Option<&Spanned<String>>,
    writes_cookies: bool,
    at: At<'_>,
) -> Result<CookieOptions, ConfigError> {
    if !writes_cookies {
        if let Some(given) = secure.or(same_site) {
            return Err(at(
                given.span(),
                "`cookie_secure` and `cookie_samesite` go with balance = \"cookie\" or \
                 \"session_id\" (the cookies tether writes)"
                    .into(),
            ));
        }
    }
    let mut options = CookieOptions::default();
    if let Some(s) = secure {
        options.secure = CookieSecure::parse(s.get_ref()).ok_or_else(|| {
            at(
                s.span(),
                format!(
                    "`cookie_secure`: {:?} is not \"auto\", \"always\" or \"never\"",
                    s.get_ref()
                ),
            )
        })?;
    }
    if let Some(s) = same_site {
        options.same_site = SameSite::parse(s.get_ref()).ok_or_else(|| {
            at(
                s.span(),
                format!(
                    "`cookie_samesite`: {:?} is not \"lax\", \"strict\" or \"none\"",
                    s.get_ref()
                ),
            )
        })?;
    }
    if let (SameSite::None, CookieSecure::Never, Some(s)) =
        (options.same_site, options.secure, secure)
    {
        return Err(at(
            s.span(),
            "`cookie_samesite = \"none\"` needs Secure (browsers drop SameSite=None cookies \
             without it): drop `cookie_secure = \"never\"`"
                .into(),
        ));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use crate::spec::UpstreamSpec;
    use tether_balance::{CookieOptions, CookieSecure, SameSite};

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn upstream(extra: &str) -> Result<UpstreamSpec, String> {
        let text = format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n{extra}\n\
             [[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
        );
        crate::parse(&text, "t.toml")
            .map(|s| s.upstreams[0].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_words_and_refusals() {
        let cookie = format!("balance = \"cookie\"\nkeys = [\"{KEY}\"]");
        assert_eq!(
            upstream(&cookie).map(|u| u.cookie),
            Ok(CookieOptions::default())
        );
        let set = format!("{cookie}\ncookie_secure = \"always\"\ncookie_samesite = \"strict\"");
        assert_eq!(
            upstream(&set).map(|u| u.cookie),
            Ok(CookieOptions {
                secure: CookieSecure::Always,
                same_site: SameSite::Strict
            })
        );
        let e = upstream(&format!("{cookie}\ncookie_secure = \"yes\"")).unwrap_err();
        assert!(
            e.starts_with("t.toml:6:17: `cookie_secure`: \"yes\""),
            "{e}"
        );
        let e = upstream(&format!("{cookie}\ncookie_samesite = \"off\"")).unwrap_err();
        assert!(e.starts_with("t.toml:6:19: `cookie_samesite`"), "{e}");
        let both = format!("{cookie}\ncookie_samesite = \"none\"\ncookie_secure = \"never\"");
        let e = upstream(&both).unwrap_err();
        assert!(
            e.starts_with("t.toml:7:17: `cookie_samesite = \"none\"` needs Secure"),
            "{e}"
        );
        let e = upstream("cookie_secure = \"always\"").unwrap_err();
        assert!(
            e.contains("go with balance = \"cookie\" or \"session_id\""),
            "{e}"
        );
        let sid = format!("balance = \"session_id\"\nsession_cookie = \"SID\"\nkeys = [\"{KEY}\"]\ncookie_samesite = \"none\"");
        assert_eq!(
            upstream(&sid).map(|u| u.cookie.same_site),
            Ok(SameSite::None)
        );
    }
}
