//! tether-mail: plain-text notification mails for the broker ("simulation server not
//! responding") and the supervisor ("worker restarted"), sent over SMTP by lettre's
//! blocking transport on a background thread, so no event loop ever waits on a mail server.
//!
//! A request's path: `Mailer::send` (`mailer.rs`) pushes the subject and body on a bounded
//! channel and returns; the `tether-mail` thread builds the message (lettre's builder, the
//! addresses checked once by `MailSettings::check` in `settings.rs`), sends it, and on a
//! transient failure waits `RetryPolicy::delay_before` and tries again, up to
//! `RetryPolicy::attempts`. Each failure is a log line (`log` crate).
//!
//! ```no_run
//! use tether_mail::{Mailer, MailSettings};
//! let settings = MailSettings::new("127.0.0.1", 2525, "tether@example.org", &["admin@example.org"]);
//! let mailer = Mailer::new(&settings).expect("valid settings");
//! mailer.send("Simulation server not responding", "Hello,\n\n...");
//! let quiet = Mailer::log_only(); // same call, writes to the log instead
//! quiet.send("subject", "body");
//! ```

#[cfg(feature = "smtp")]
mod mailer;
mod settings;

#[cfg(feature = "smtp")]
pub use mailer::{MailError, MailStats, Mailer, DEFAULT_QUEUE};
pub use settings::{MailSettings, RetryPolicy, DEFAULT_PORT};
