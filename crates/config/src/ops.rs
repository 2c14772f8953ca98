//! The operations part of the config: `[admin]` (the admin listener with `/healthz` and the
//! admin API, and where its key comes from), `[supervisor]` (the master process: heartbeat,
//! the worker's output, crash mails) and the top-level `drain_timeout_ms` (graceful
//! shutdown and reload). See `docs/operations.md`.
//!
//! ```toml
//! drain_timeout_ms = 10000
//!
//! [admin]
//! listen = "127.0.0.1:8005"
//! key_file = "/etc/tether/admin.key"   # optional: read it, or create it (mode 0600)
//! print_key = false                    # log the key itself at start
//!
//! [supervisor]
//! show_worker_output = true
//! worker_log = "/var/log/tether/worker.log"   # optional copy of the worker's output
//! heartbeat_interval_ms = 10000
//! heartbeat_failures = 3
//! mail_log_lines = 50
//! signature = "tether on web-1"
//!
//! [supervisor.mail]                    # tether-mail's MailSettings, as they are
//! server = "127.0.0.1"
//! port = 25
//! sender = "tether@example.org"
//! recipients = ["ops@example.org"]
//! ```

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tether_mail::MailSettings;
use toml::Spanned;

use super::{millis, ConfigError};

/// Everything the supervisor, the admin listener and the drain need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ops {
    /// How long a graceful shutdown (or a reload's old worker) lets requests finish.
    pub drain_timeout: Duration,
    pub admin: AdminSettings,
    pub supervisor: SupervisorSettings,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminSettings {
    /// Where the admin listener binds. `None`: under the supervisor, a loopback port the
    /// master picks (for its heartbeat); without it, no admin listener.
    pub listen: Option<SocketAddr>,
    /// Read the key from this file, or write a new one there (mode 0600) when it is missing.
    pub key_file: Option<PathBuf>,
    /// Log the key itself at start (off: the log says where to find it, never the key).
    pub print_key: bool,
}

/// `[supervisor]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorSettings {
    /// Copy the worker's stdout/stderr to the master's (it is always kept for the crash mail).
    pub show_worker_output: bool,
    /// Also append the worker's output to this file.
    pub worker_log: Option<PathBuf>,
    pub heartbeat_interval: Duration,
    /// Missed heartbeats in a row before the worker is killed and replaced.
    pub heartbeat_failures: u32,
    /// Lines of the worker's output in a crash mail.
    pub mail_log_lines: usize,
    /// Appended to every mail.
    pub signature: String,
    /// SMTP settings and recipients; none: mails are written to the log only.
    pub mail: Option<MailSettings>,
}

impl Default for Ops {
    fn default() -> Ops {
        Ops {
            drain_timeout: Duration::from_secs(10),
            admin: AdminSettings::default(),
            supervisor: SupervisorSettings::default(),
        }
    }
}

impl Default for SupervisorSettings {
    fn default() -> SupervisorSettings {
        SupervisorSettings {
            show_worker_output: true,
            worker_log: None,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_failures: 3,
            mail_log_lines: 50,
            signature: String::new(),
            mail: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<Spanned<String>>,
    key_file: Option<String>,
    print_key: Option<bool>,
}

impl RawAdmin {
    /// Where `listen` is written, for errors about its address.
    pub(super) fn listen_span(&self) -> Option<Range<usize>> {
        self.listen.as_ref().map(Spanned::span)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSupervisor {
    show_worker_output: Option<bool>,
    worker_log: Option<String>,
    heartbeat_interval_ms: Option<Spanned<u64>>,
    heartbeat_failures: Option<Spanned<u32>>,
    mail_log_lines: Option<usize>,
    signature: Option<String>,
    mail: Option<Spanned<MailSettings>>,
}

/// Check the operations tables.
pub(super) fn check(
    drain_timeout_ms: Option<Spanned<u64>>,
    admin: Option<RawAdmin>,
    supervisor: Option<RawSupervisor>,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<Ops, ConfigError> {
    let mut ops = Ops {
        drain_timeout: millis(drain_timeout_ms, 10_000, "drain_timeout_ms", at)?,
        ..Ops::default()
    };
    if let Some(a) = admin {
        let listen = match a.listen {
            None => None,
            Some(l) => Some(l.get_ref().parse::<SocketAddr>().map_err(|_| {
                at(
                    l.span(),
                    format!("`listen`: not an address:port: {:?}", l.get_ref()),
                )
            })?),
        };
        ops.admin = AdminSettings {
            listen,
            key_file: a.key_file.map(PathBuf::from),
            print_key: a.print_key.unwrap_or(false),
        };
    }
    if let Some(s) = supervisor {
        let d = SupervisorSettings::default();
        let failures = match s.heartbeat_failures {
            None => d.heartbeat_failures,
            Some(f) if *f.get_ref() == 0 => {
                return Err(at(f.span(), "`heartbeat_failures` must be above 0".into()))
            }
            Some(f) => f.into_inner(),
        };
        let mail = match s.mail {
            None => None,
            Some(m) => {
                let span = m.span();
                let m = m.into_inner();
                m.validate().map_err(|e| at(span, e))?;
                Some(m)
            }
        };
        ops.supervisor = SupervisorSettings {
            show_worker_output: s.show_worker_output.unwrap_or(d.show_worker_output),
            worker_log: s.worker_log.map(PathBuf::from),
            heartbeat_interval: millis(
                s.heartbeat_interval_ms,
                10_000,
                "heartbeat_interval_ms",
                at,
            )?,
            heartbeat_failures: failures,
            mail_log_lines: s.mail_log_lines.unwrap_or(d.mail_log_lines),
            signature: s.signature.unwrap_or_default(),
            mail,
        };
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use std::time::Duration;

    #[test]
    fn defaults_without_tables() {
        let s = parse("", "t.toml").expect("empty config");
        assert_eq!(s.ops.drain_timeout, Duration::from_secs(10));
        assert_eq!(s.ops.admin.listen, None);
        assert!(s.ops.supervisor.show_worker_output);
        assert_eq!(s.ops.supervisor.heartbeat_failures, 3);
        assert_eq!(s.ops.supervisor.heartbeat_interval, Duration::from_secs(10));
    }

    #[test]
    fn tables_are_read() {
        let s = parse(
            "drain_timeout_ms = 500\n[admin]\nlisten = \"127.0.0.1:9\"\nkey_file = \"k\"\n\
             [supervisor]\nheartbeat_interval_ms = 200\nheartbeat_failures = 2\nsignature = \"sig\"\n\
             [supervisor.mail]\nserver = \"127.0.0.1\"\nport = 2525\nsender = \"t@example.org\"\nrecipients = [\"o@example.org\"]\n",
            "t.toml",
        )
        .expect("valid");
        assert_eq!(s.ops.drain_timeout, Duration::from_millis(500));
        assert_eq!(s.ops.admin.listen, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(s.ops.supervisor.heartbeat_failures, 2);
        assert_eq!(s.ops.supervisor.signature, "sig");
        let mail = s.ops.supervisor.mail.expect("mail");
        assert_eq!(mail.port, 2525);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("[admin]\nlisten = \"nope\"\n", "t.toml").unwrap_err();
        assert_eq!((e.line, e.col), (2, 10), "{e}");
        let e = parse("[supervisor]\nheartbeat_failures = 0\n", "t.toml").unwrap_err();
        assert_eq!((e.line, e.col), (2, 22), "{e}");
        let e = parse("[supervisor]\nheartbeat = 1\n", "t.toml").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1), "{e}");
        let e = parse(
            "[supervisor.mail]\nserver = \"x\"\nsender = \"not an address\"\nrecipients = [\"a@b.org\"]\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("sender"), "{e}");
        assert_eq!(e.line, 1, "{e}");
    }
}
