//! The attributes of the cookies tether writes itself (the sealed affinity cookie, a
//! session id cookie re-tagged after a re-pin): `Secure` and `SameSite`, per upstream
//! (`cookie_secure`, `cookie_samesite`).
//!
//! `Secure` is `auto` by default: on when the client came over TLS. `SameSite=None` is
//! only honoured by browsers on a `Secure` cookie, so it forces `Secure` whatever the
//! connection (the config refuses it together with `cookie_secure = "never"`).

/// `cookie_secure`: when the cookie carries `Secure`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CookieSecure {
    /// When the client's connection to tether is TLS.
    #[default]
    Auto,
    /// Always (a TLS terminator in front of tether, say).
    Always,
    /// Never (the browser then sends it over plain HTTP too).
    Never,
}

/// `cookie_samesite`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, not on their subrequests.
    #[default]
    Lax,
    /// Sent only on requests from the same site.
    Strict,
    /// Sent on every request, other sites' too (needs `Secure`).
    None,
}

/// The `Secure` and `SameSite` of the cookies tether writes for one upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieOptions {
    /// `cookie_secure`.
    pub secure: CookieSecure,
    /// `cookie_samesite`.
    pub same_site: SameSite,
}

impl CookieSecure {
    /// The config word (`"auto"`, `"always"`, `"never"`).
    pub fn parse(word: &str) -> Option<CookieSecure> {
        match word {
            "auto" => Some(CookieSecure::Auto),
            "always" => Some(CookieSecure::Always),
            "never" => Some(CookieSecure::Never),
            _ => None,
        }
    }
}

impl SameSite {
    /// The config word (`"lax"`, `"strict"`, `"none"`).
    pub fn parse(word: &str) -> Option<SameSite> {
        match word {
            "lax" => Some(SameSite::Lax),
            "strict" => Some(SameSite::Strict),
            "none" => Some(SameSite::None),
            _ => None,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

impl CookieOptions {
    /// Whether a cookie sent to a client that came over TLS (`tls`) carries `Secure`.
    pub fn secure(&self, tls: bool) -> bool {
        self.same_site == SameSite::None
            || match self.secure {
                CookieSecure::Auto => tls,
                CookieSecure::Always => true,
                CookieSecure::Never => false,
            }
    }

    /// The attributes after `name=value`: `; Path=/; HttpOnly; SameSite=Lax[; Secure]`.
    pub fn attributes(&self, tls: bool) -> String {
        let secure = if self.secure(tls) { "; Secure" } else { "" };
        format!(
            "; Path=/; HttpOnly; SameSite={}{secure}",
            self.same_site.attribute()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_follows_tls_unless_told_and_none_forces_it() {
        let auto = CookieOptions::default();
        assert_eq!(auto.attributes(false), "; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(
            auto.attributes(true),
            "; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let always = CookieOptions {
            secure: CookieSecure::Always,
            same_site: SameSite::Strict,
        };
        assert_eq!(
            always.attributes(false),
            "; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let never = CookieOptions {
            secure: CookieSecure::Never,
            same_site: SameSite::Lax,
        };
        assert!(!never.secure(true));
        let none = CookieOptions {
            secure: CookieSecure::Auto,
            same_site: SameSite::None,
        };
        assert_eq!(
            none.attributes(false),
            "; Path=/; HttpOnly; SameSite=None; Secure"
        );
        assert_eq!(CookieSecure::parse("sometimes"), None);
        assert_eq!(SameSite::parse("none"), Some(SameSite::None));
    }
}
