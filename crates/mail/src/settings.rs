//! What a `Mailer` needs to know: the SMTP server, the sender, the optional login, the
//! recipients, and how hard to retry. `MailSettings` is a serde table (unknown keys
//! refused) that the broker's and the supervisor's configs embed as it is; `check()` turns
//! it into lettre's checked types once, so a bad address is a config error, not a failed
//! mail at 3 a.m.

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;

/// The SMTP port used when none is given (Webots' `mailServerPort` 0 means the same).
pub const DEFAULT_PORT: u16 = 25;

/// SMTP settings, as written in a config file.
///
/// ```toml
/// server = "smtp.example.org"
/// port = 587                      # default 25
/// sender = "noreply@example.org"
/// sender_name = "Simulation Server"   # optional display name
/// user = "noreply"                # optional; default: the sender address
/// password = "secret"             # optional; given => STARTTLS + login
/// recipients = ["admin@example.org"]
/// timeout_ms = 5000               # per SMTP command, default 5000
/// ```
///
/// Without `password` the mail goes out over plain SMTP with no TLS and no login, as
/// Webots does for a local relay.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub server: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub sender: String,
    #[serde(default)]
    pub sender_name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_timeout_ms() -> u64 {
    5_000
}

impl MailSettings {
    /// Settings with the defaults for everything but the server, sender and recipients.
    pub fn new(server: &str, port: u16, sender: &str, recipients: &[&str]) -> MailSettings {
        MailSettings {
            server: server.to_string(),
            port,
            sender: sender.to_string(),
            sender_name: None,
            user: None,
            password: None,
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            timeout_ms: default_timeout_ms(),
        }
    }

    /// Check the addresses (for a config loader); the error names the field and value.
    pub fn validate(&self) -> Result<(), String> {
        self.check().map(|_| ())
    }

    /// Parse the addresses; the error names the field and the value.
    pub(crate) fn check(&self) -> Result<Checked, String> {
        if self.server.trim().is_empty() {
            return Err("mail `server` is empty".into());
        }
        let address = self
            .sender
            .parse()
            .map_err(|e| format!("mail `sender` {:?}: {e}", self.sender))?;
        let from = Mailbox::new(self.sender_name.clone(), address);
        if self.recipients.is_empty() {
            return Err("mail `recipients` is empty".into());
        }
        let mut to = Vec::with_capacity(self.recipients.len());
        for r in &self.recipients {
            let mailbox: Mailbox = r
                .parse()
                .map_err(|e| format!("mail recipient {r:?}: {e}"))?;
            to.push(mailbox);
        }
        let port = if self.port == 0 {
            DEFAULT_PORT
        } else {
            self.port
        };
        Ok(Checked {
            server: self.server.clone(),
            port,
            from,
            to,
            login: self.password.as_ref().map(|p| {
                let user = self.user.clone().unwrap_or_else(|| self.sender.clone());
                (user, p.clone())
            }),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
        })
    }
}

/// The password stays out of logs and panics.
impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("sender", &self.sender)
            .field("sender_name", &self.sender_name)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("recipients", &self.recipients)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// Settings with parsed addresses, ready for the sending thread (read only with the `smtp`
/// feature; without it, building one is the check).
#[derive(Clone)]
#[cfg_attr(not(feature = "smtp"), allow(dead_code))]
pub(crate) struct Checked {
    pub(crate) server: String,
    pub(crate) port: u16,
    pub(crate) from: Mailbox,
    pub(crate) to: Vec<Mailbox>,
    /// (user, password): STARTTLS is required and the login is done.
    pub(crate) login: Option<(String, String)>,
    pub(crate) timeout: Duration,
}

/// How often and how patiently a failed mail is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further failure...
    pub first_delay: Duration,
    /// ...up to this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 1 s, 2 s, 4 s, 8 s between them (30 s at most).
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next` (2 = the first retry); `None` when no attempt is left.
    pub fn delay_before(&self, next: u32) -> Option<Duration> {
        if next < 2 || next > self.attempts.max(1) {
            return None;
        }
        let doublings = (next - 2).min(31);
        let delay = self.first_delay.saturating_mul(1u32 << doublings);
        Some(delay.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (2..=6).map(|n| p.delay_before(n)).collect();
        let s = Duration::from_secs;
        assert_eq!(
            waits,
            vec![Some(s(1)), Some(s(2)), Some(s(4)), Some(s(8)), None]
        );
        let long = RetryPolicy { attempts: 10, ..p };
        assert_eq!(long.delay_before(7), Some(s(30)));
        assert_eq!(long.delay_before(10), Some(s(30)));
        assert_eq!(long.delay_before(1), None);
    }

    #[test]
    fn toml_defaults_and_unknown_keys() {
        let s: MailSettings =
            toml::from_str("server = \"mx\"\nsender = \"a@b.org\"\nrecipients = [\"c@d.org\"]\n")
                .expect("parses");
        assert_eq!(s.port, 25);
        assert_eq!(s.timeout_ms, 5000);
        assert!(s.password.is_none());
        let e = toml::from_str::<MailSettings>("server = \"mx\"\nsender = \"a@b.org\"\nhost = 1\n")
            .expect_err("unknown key refused")
            .to_string();
        assert!(e.contains("unknown field `host`"), "{e}");
    }

    #[test]
    fn check_parses_addresses_and_login() {
        let mut s = MailSettings::new("mx", 0, "noreply@b.org", &["Admin <admin@b.org>"]);
        let c = s.check().expect("valid");
        assert_eq!(c.port, 25);
        assert!(c.login.is_none());
        s.password = Some("pw".into());
        let c = s.check().expect("valid");
        assert_eq!(c.login, Some(("noreply@b.org".into(), "pw".into())));
        s.recipients = vec!["not an address".into()];
        assert!(s.check().is_err());
        s.recipients.clear();
        assert!(s.validate().unwrap_err().contains("recipients"));
    }

    #[test]
    fn debug_hides_the_password() {
        let mut s = MailSettings::new("mx", 25, "a@b.org", &["c@d.org"]);
        s.password = Some("hunter2".into());
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2") && d.contains("<hidden>"), "{d}");
    }
}
