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
