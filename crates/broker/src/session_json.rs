//! Webots' `session.json`, read as it is, with the defaults of Webots' session server:
//! `server` "localhost", `portRewrite` false, `logDir` "log" (`~` and `$VAR` expanded),
//! `debug` false, `mailServerPort` 0 (= 25); `port` and `simulationServers` are required.
//! `ssl` is accepted, and so are Webots' `sslKey` + `sslCertificate` (both given means TLS,
//! as in Webots; tether's listener does the TLS, the broker only needs to know the scheme).
//! `wss://`/`https://` are used when any of `ssl`, `portRewrite` or the key pair says so.
//! Unknown keys are refused; every error is `path:line:col: message`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tether_mail::MailSettings;

use crate::config::BrokerConfig;
use crate::spec::ServerSpec;

/// A config error, printed as `path:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Keys only Webots' session.json has (tether's own JSON, eXpServer's, has none of them).
const WEBOTS_KEYS: [&str; 10] = [
    "simulationServers",
    "portRewrite",
    "mailServer",
    "mailServerPort",
    "mailSender",
    "mailSenderUser",
    "mailSenderPassword",
    "logDir",
    "sslKey",
    "sslCertificate",
];

/// Every key of Webots' session.json (the ones above and those it shares in spelling with
/// no eXpServer key: `server`, `ssl`, `port`, `administrator`, `debug`).
const ALL_WEBOTS_KEYS: [&str; 15] = [
    "server",
    "ssl",
    "port",
    "administrator",
    "debug",
    "simulationServers",
    "portRewrite",
    "mailServer",
    "mailServerPort",
    "mailSender",
    "mailSenderUser",
    "mailSenderPassword",
    "logDir",
    "sslKey",
    "sslCertificate",
];

/// The top-level keys of eXpServer's `xps_config.json`.
const XPS_KEYS: [&str; 4] = ["server_name", "workers", "servers", "metrics"];

/// True for a JSON object that is meant to be a Webots `session.json`, so a loader can
/// pick the right parser and its error messages: it has one of the keys only that file
/// has, or more of Webots' keys than of eXpServer's (`{"port": 1999, "simulationServer":
/// [...]}` — a typo — is a session.json whose unknown key is reported against Webots'
/// list, not an eXpServer file missing `servers`).
pub fn looks_like_session_json(value: &serde_json::Value) -> bool {
    let Some(o) = value.as_object() else {
        return false;
    };
    if WEBOTS_KEYS.iter().any(|k| o.contains_key(*k)) {
        return true;
    }
    let webots = ALL_WEBOTS_KEYS
        .iter()
        .filter(|k| o.contains_key(**k))
        .count();
    let xps = XPS_KEYS.iter().filter(|k| o.contains_key(**k)).count();
    webots > xps
}

/// The file's content.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionJson {
    #[serde(default = "default_server")]
    pub server: String,
    #[serde(default)]
    pub ssl: bool,
    pub port: u16,
    #[serde(default)]
    pub port_rewrite: bool,
    pub simulation_servers: Vec<String>,
    #[serde(default)]
    pub administrator: Option<String>,
    #[serde(default)]
    pub mail_server: Option<String>,
    #[serde(default)]
    pub mail_server_port: Option<u16>,
    #[serde(default)]
    pub mail_sender: Option<String>,
    #[serde(default)]
    pub mail_sender_user: Option<String>,
    #[serde(default)]
    pub mail_sender_password: Option<String>,
    #[serde(default = "default_log_dir")]
    pub log_dir: String,
    #[serde(default)]
    pub debug: bool,
    #[serde(default)]
    pub ssl_key: Option<String>,
    #[serde(default)]
    pub ssl_certificate: Option<String>,
}

fn default_server() -> String {
    "localhost".into()
}

fn default_log_dir() -> String {
    "log".into()
}

impl fmt::Debug for SessionJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionJson")
            .field("server", &self.server)
            .field("ssl", &self.ssl)
            .field("port", &self.port)
            .field("port_rewrite", &self.port_rewrite)
            .field("simulation_servers", &self.simulation_servers)
            .field("administrator", &self.administrator)
            .field("mail_server", &self.mail_server)
            .field("mail_server_port", &self.mail_server_port)
            .field("mail_sender", &self.mail_sender)
            .field("mail_sender_user", &self.mail_sender_user)
            .field(
                "mail_sender_password",
                &self.mail_sender_password.as_ref().map(|_| "<hidden>"),
            )
            .field("log_dir", &self.log_dir)
            .field("debug", &self.debug)
            .field("ssl_key", &self.ssl_key)
            .field("ssl_certificate", &self.ssl_certificate)
            .finish()
    }
}

/// Read and check a session.json file.
pub fn load_session_json(path: &Path) -> Result<SessionJson, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: name.clone(),
        line: 1,
        col: 1,
        message: format!("cannot read: {e}"),
    })?;
    parse_session_json(&text, &name)
}

/// Parse and check session.json text; `path` names it in errors.
pub fn parse_session_json(text: &str, path: &str) -> Result<SessionJson, ConfigError> {
    let parsed: SessionJson = serde_json::from_str(text).map_err(|e| ConfigError {
        path: path.to_string(),
        line: e.line().max(1),
        col: e.column().max(1),
        message: without_position(&e),
    })?;
    if let Err((key, message)) = parsed.check() {
        let (line, col) = key_position(text, key);
        return Err(ConfigError {
            path: path.to_string(),
            line,
            col,
            message,
        });
    }
    Ok(parsed)
}

/// serde_json's message without its " at line L column C" tail (we print our own).
fn without_position(e: &serde_json::Error) -> String {
    let m = e.to_string();
    match m.rfind(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m,
    }
}

/// 1-based line and column of `"key"` in the text (1:1 when absent).
fn key_position(text: &str, key: &str) -> (usize, usize) {
    let Some(offset) = text.find(&format!("\"{key}\"")) else {
        return (1, 1);
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl SessionJson {
    /// What serde cannot check: (the key to point at, the message).
    fn check(&self) -> Result<(), (&'static str, String)> {
        let cfg = self.broker_config();
        cfg.validate().map_err(|m| {
            let key = if m.contains("`servers`") {
                "simulationServers"
            } else if m.contains("`mail`") {
                "mailSender"
            } else {
                "port"
            };
            (key, m.replace("`servers`", "`simulationServers`"))
        })
    }

    /// wss/https when `ssl`, `portRewrite`, or both `sslKey` and `sslCertificate`.
    pub fn secure(&self) -> bool {
        self.ssl || self.port_rewrite || (self.ssl_key.is_some() && self.ssl_certificate.is_some())
    }

    /// Where the session server answers, as the mails link it: Webots' `server` + `:port`,
    /// or `/port` behind a rewriting front door (`portRewrite`).
    pub fn public_url(&self) -> String {
        let scheme = if self.secure() { "https" } else { "http" };
        let sep = if self.port_rewrite { '/' } else { ':' };
        format!("{scheme}://{}{sep}{}", self.server, self.port)
    }

    /// `logDir` with `~` and `$VAR`/`${VAR}` expanded, as Webots does.
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(expand_path(&self.log_dir))
    }

    /// The mail settings, when `administrator`, `mailServer` and `mailSender` are all
    /// there (otherwise, as in Webots, mails are off: see `mail_disabled_reason`).
    pub fn mail_settings(&self) -> Option<MailSettings> {
        let admin = self.administrator.as_ref()?;
        let (server, sender) = (self.mail_server.as_ref()?, self.mail_sender.as_ref()?);
        let mut m = MailSettings::new(server, self.mail_server_port.unwrap_or(0), sender, &[]);
        m.sender_name = Some("Simulation Server".into());
        m.user = self.mail_sender_user.clone();
        m.password = self.mail_sender_password.clone();
        m.recipients = vec![format!("Administrator <{admin}>")];
        if m.port == 0 {
            m.port = tether_mail::DEFAULT_PORT;
        }
        Some(m)
    }

    /// Webots' log line when an `administrator` is given but mails cannot be sent.
    pub fn mail_disabled_reason(&self) -> Option<String> {
        let admin = self.administrator.as_ref()?;
        let missing = if self.mail_server.is_none() {
            "mail server"
        } else if self.mail_sender.is_none() {
            "mail sender"
        } else {
            return None;
        };
        Some(format!(
            "No {missing} defined in configuration, disabling e-mail notifications to {admin}."
        ))
    }

    /// The broker settings this file means.
    pub fn broker_config(&self) -> BrokerConfig {
        let mut c = BrokerConfig::new(&[]);
        c.servers = self
            .simulation_servers
            .iter()
            .map(|s| ServerSpec::new(s))
            .collect();
        c.ssl = self.secure();
        c.public_url = Some(self.public_url());
        c.mail = self.mail_settings();
        c
    }
}

/// `~` (alone or before `/`) → `$HOME`; `$NAME` and `${NAME}` → the variable, left as
/// written when unset (like Python's `os.path.expandvars`).
pub fn expand_path(path: &str) -> String {
    let home = std::env::var("HOME").ok();
    let mut rest = path;
    let mut out = String::new();
    if let Some(h) = &home {
        if rest == "~" || rest.starts_with("~/") {
            out.push_str(h);
            rest = &rest[1..];
        }
    }
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, written_len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 3),
                None => ("", 1),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end + 1)
        };
        match std::env::var(name).ok().filter(|_| !name.is_empty()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + written_len]),
        }
        rest = &rest[i + written_len..];
    }
    out.push_str(rest);
    out
}
