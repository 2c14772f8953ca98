//! `BrokerConfig`: the broker's settings as tether's TOML writes them (one `[[broker]]`
//! table that the proxy's config embeds; unknown keys refused). Webots' `session.json` is
//! read by `session_json.rs` and turned into the same struct. A server is a string or a
//! table (`spec.rs`); the optional `/session` token is `token` or `token_file` (`access.rs`).
//!
//! ```toml
//! [[broker]]
//! name = "sim"                       # how routes refer to it (default "broker")
//! servers = ["localhost:2000", { entry = "sim2.example.org/2000", weight = 2,
//!            allowed_repositories = ["https://github.com/cyberbotics/"] }]
//! token_file = "/etc/tether/session.token"   # or token = "..."; /session needs it
//! ssl = false                        # true: wss:// in /session, https:// to poll
//! ca = "farm-ca.pem"                 # with ssl: verify the polls against it (default: Mozilla's roots)
//! max_load = 95                      # a server at or above this is never chosen
//! poll_interval_ms = 5000
//! timeout_ms = 5000                  # per /load request
//! public_url = "http://localhost:1999"   # where /monitor is, for the mails
//! administrator = "admin@example.org"    # receives the mails
//! history = 60                       # samples per server shown on /monitor
//!
//! [broker.mail]                      # tether_mail::MailSettings; absent: mails go to the log
//! server = "smtp.example.org"
//! sender = "noreply@example.org"
//! ```

use std::time::Duration;

use serde::Deserialize;
use tether_mail::MailSettings;
#[cfg(feature = "runtime")]
use tether_mail::{MailError, Mailer};

use crate::access::{read_token_file, Secret};
use crate::spec::ServerSpec;

/// The broker's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    #[serde(default = "default_name")]
    pub name: String,
    /// Simulation servers: `host:port` or `host/port` (behind a rewriting front door),
    /// exactly as `/session` hands them out, with their weight and allowed repositories.
    pub servers: Vec<ServerSpec>,
    #[serde(default)]
    pub ssl: bool,
    #[serde(default = "default_max_load")]
    pub max_load: f64,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The broker's own public base URL; the mails link to `<public_url>/monitor`.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub administrator: Option<String>,
    #[serde(default)]
    pub mail: Option<MailSettings>,
    #[serde(default = "default_history")]
    pub history: usize,
    /// `/session` needs `Authorization: Bearer <token>` (or `?token=`).
    #[serde(default)]
    pub token: Option<Secret>,
    /// The same, read from a file (one line; a path relative to the working directory).
    #[serde(default)]
    pub token_file: Option<String>,
    /// With `ssl`: verify the servers' certificates on the `https://` polls against the
    /// certificates of this PEM file instead of the built-in (Mozilla) roots — a private
    /// CA, or the front door's own when the entries go through it.
    #[serde(default)]
    pub ca: Option<String>,
}

fn default_name() -> String {
    "broker".into()
}
fn default_max_load() -> f64 {
    95.0
}
fn default_poll_interval_ms() -> u64 {
    5_000
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_history() -> usize {
    60
}

impl BrokerConfig {
    /// A config with every default and these servers.
    pub fn new(servers: &[&str]) -> BrokerConfig {
        BrokerConfig {
            name: default_name(),
            servers: servers.iter().map(|s| ServerSpec::new(s)).collect(),
            ssl: false,
            max_load: default_max_load(),
            poll_interval_ms: default_poll_interval_ms(),
            timeout_ms: default_timeout_ms(),
            public_url: None,
            administrator: None,
            mail: None,
            history: default_history(),
            token: None,
            token_file: None,
            ca: None,
        }
    }

    /// The servers' entries, as `/session` hands them out.
    pub fn entries(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.entry.as_str()).collect()
    }

    /// The roots `ca` names (`None`: the built-in ones); an unreadable file, or one with no
    /// certificate, is an error that names it.
    #[cfg(feature = "runtime")]
    pub fn poll_roots(&self) -> Result<Option<Vec<ureq::tls::Certificate<'static>>>, String> {
        let Some(path) = &self.ca else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| format!("`ca`: {path}: {e}"))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => return Err(format!("`ca`: {path}: {e}")),
            }
        }
        if certs.is_empty() {
            return Err(format!("`ca`: {path}: no certificate in it"));
        }
        Ok(Some(certs))
    }

    /// `ca` readable and holding a certificate (what `poll_roots` will need).
    fn check_ca(&self) -> Result<(), String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        let Some(path) = &self.ca else {
            return Ok(());
        };
        let pem = std::fs::read(path).map_err(|e| format!("`ca`: {path}: {e}"))?;
        let mut found = 0;
        for c in CertificateDer::pem_slice_iter(&pem) {
            c.map_err(|e| format!("`ca`: {path}: {e}"))?;
            found += 1;
        }
        if found == 0 {
            return Err(format!("`ca`: {path}: no certificate in it"));
        }
        Ok(())
    }

    /// Check what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.check_ca()?;
        if self.servers.is_empty() {
            return Err("`servers` is empty: list at least one simulation server".into());
        }
        for s in &self.servers {
            s.validate()?;
        }
        self.access_token()?;
        if !(self.max_load.is_finite() && self.max_load > 0.0) {
            return Err(format!("`max_load` = {} must be above 0", self.max_load));
        }
        if self.poll_interval_ms < 100 {
            return Err("`poll_interval_ms` must be at least 100".into());
        }
        if self.timeout_ms == 0 {
            return Err("`timeout_ms` must be above 0".into());
        }
        if self.history == 0 || self.history > 10_000 {
            return Err("`history` must be between 1 and 10000".into());
        }
        if let Some(m) = self.mail_settings() {
            if m.recipients.is_empty() {
                return Err("`mail` needs `administrator` (or `mail.recipients`)".into());
            }
            m.validate().map_err(|e| format!("`mail`: {e}"))?;
        }
        Ok(())
    }

    /// The token `/session` asks for: `token`, or the content of `token_file` (read now),
    /// or `None`. Both keys, or a bad token, is an error naming the key.
    pub fn access_token(&self) -> Result<Option<Secret>, String> {
        match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => Err("give `token` or `token_file`, not both".into()),
            (Some(t), None) => t
                .check_token()
                .map(|_| Some(t.clone()))
                .map_err(|m| format!("`token`: {m}")),
            (None, Some(path)) => read_token_file(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The mail settings with `administrator` among the recipients; `None` without `mail`
    /// (then the transitions go to the log only).
    pub fn mail_settings(&self) -> Option<MailSettings> {
        let mut m = self.mail.clone()?;
        if let Some(admin) = &self.administrator {
            if !m.recipients.contains(admin) {
                m.recipients.push(admin.clone());
            }
        }
        Some(m)
    }

    /// The mailer these settings ask for: SMTP with `mail`, the log without.
    #[cfg(feature = "runtime")]
    pub fn mailer(&self) -> Result<Mailer, MailError> {
        Mailer::from_settings(self.mail_settings().as_ref())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// `ws:` or `wss:`, for `/session`.
    pub fn ws_scheme(&self) -> &'static str {
        if self.ssl {
            "wss"
        } else {
            "ws"
        }
    }

    /// `http` or `https`, to poll `/load` and to link each server's `/monitor`.
    pub fn http_scheme(&self) -> &'static str {
        if self.ssl {
            "https"
        } else {
            "http"
        }
    }

    /// Where the mails point: `<public_url>/monitor`, or just `/monitor` without one.
    pub fn monitor_link(&self) -> String {
        match &self.public_url {
            Some(u) => format!("{}/monitor", u.trim_end_matches('/')),
            None => "/monitor".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_must_be_a_readable_file_with_certificates() {
        let mut c = BrokerConfig::new(&["a:1"]);
        c.ca = Some("/nonexistent/ca.pem".into());
        let e = c.validate().expect_err("missing file");
        assert!(e.starts_with("`ca`: /nonexistent/ca.pem: "), "{e}");
        let empty = std::env::temp_dir().join(format!("tether-empty-ca-{}", std::process::id()));
        std::fs::write(&empty, "no pem here\n").expect("write");
        c.ca = Some(empty.display().to_string());
        let e = c.validate().expect_err("no certificate");
        assert!(e.ends_with("no certificate in it"), "{e}");
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn defaults_from_toml() {
        let c: BrokerConfig = toml::from_str("servers = [\"localhost:2000\"]\n").expect("parses");
        assert_eq!(c, BrokerConfig::new(&["localhost:2000"]));
        assert_eq!(c.max_load, 95.0);
        assert_eq!(c.poll_interval(), Duration::from_secs(5));
        assert_eq!(c.timeout(), Duration::from_secs(5));
        assert!(c.validate().is_ok());
        assert_eq!((c.ws_scheme(), c.http_scheme()), ("ws", "http"));
    }

    #[test]
    fn unknown_key_is_refused_with_its_position() {
        let e = toml::from_str::<BrokerConfig>("servers = [\"a:1\"]\nmax_laod = 90\n")
            .expect_err("refused");
        assert!(e.to_string().contains("unknown field `max_laod`"), "{e}");
        assert_eq!(e.span().map(|s| s.start), Some(18)); // line 2, column 1
    }

    #[test]
    fn mail_table_and_administrator() {
        let c: BrokerConfig = toml::from_str(
            "servers = [\"a:1\"]\nadministrator = \"admin@x.org\"\npublic_url = \"https://x.org/s/\"\n\
             [mail]\nserver = \"127.0.0.1\"\nport = 2525\nsender = \"noreply@x.org\"\n",
        )
        .expect("parses");
        let m = c.mail_settings().expect("mail");
        assert_eq!(m.recipients, vec!["admin@x.org".to_string()]);
        assert_eq!(m.port, 2525);
        assert!(c.validate().is_ok());
        assert_eq!(c.monitor_link(), "https://x.org/s/monitor");
        let mut no_admin = c.clone();
        no_admin.administrator = None;
        assert!(no_admin.validate().unwrap_err().contains("administrator"));
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = BrokerConfig::new(&[]);
        assert!(c.validate().unwrap_err().contains("`servers`"));
        c.servers = vec![ServerSpec::new("http://a:1")];
        assert!(c.validate().unwrap_err().contains("scheme"));
        c.servers = vec![ServerSpec::new("a:1")];
        c.max_load = 0.0;
        assert!(c.validate().unwrap_err().contains("`max_load`"));
        c.max_load = 95.0;
        c.poll_interval_ms = 10;
        assert!(c.validate().unwrap_err().contains("`poll_interval_ms`"));
    }

    #[test]
    fn token_or_token_file() {
        let c: BrokerConfig =
            toml::from_str("servers = [\"a:1\"]\ntoken = \"0123456789abcdef\"\n").expect("parses");
        assert!(c.validate().is_ok());
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "hidden in Debug"
        );
        assert_eq!(
            c.access_token()
                .ok()
                .flatten()
                .map(|t| t.expose().to_string()),
            Some("0123456789abcdef".into())
        );
        let mut short = c.clone();
        short.token = Some(Secret::new("short"));
        assert!(short.validate().unwrap_err().contains("`token`"));
        let mut both = c.clone();
        both.token_file = Some("/nonexistent".into());
        assert!(both.validate().unwrap_err().contains("not both"));
        both.token = None;
        assert!(both.validate().unwrap_err().contains("`token_file`"));
        assert_eq!(BrokerConfig::new(&["a:1"]).access_token(), Ok(None));
    }

    #[test]
    fn servers_as_tables() {
        let c: BrokerConfig =
            toml::from_str("servers = [\"a:1\", { entry = \"b:2\", weight = 3 }]\n")
                .expect("parses");
        assert_eq!(c.entries(), ["a:1", "b:2"]);
        assert_eq!(c.servers[1].weight, 3);
        assert!(c.validate().is_ok());
        let bad: BrokerConfig = toml::from_str(
            "servers = [{ entry = \"b:2\", allowed_repositories = [\"https://x.org\"] }]\n",
        )
        .expect("parses");
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("`allowed_repositories`"));
    }
}
