//! The `Mailer`: `send(subject, body)` puts a mail on a bounded queue and returns at once;
//! one background thread per mailer takes mails off the queue and hands them to lettre's
//! blocking `SmtpTransport`, trying a failed mail again with a growing wait
//! (`RetryPolicy`). Every failure is a log line; nothing reaches the caller. A mailer with
//! no SMTP settings (`Mailer::log_only`) writes the same subject and body to the log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::Message;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};

use crate::settings::{Checked, MailSettings, RetryPolicy};

/// Mails waiting to be sent, at most (beyond that `send` drops the mail and logs it).
pub const DEFAULT_QUEUE: usize = 64;

/// A mailer that could not be built (bad address, no thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError(pub String);

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MailError {}

/// Counters since the mailer was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailStats {
    /// Mails the SMTP server accepted.
    pub sent: u64,
    /// Attempts that failed (a mail sent at its third attempt counts 2).
    pub failed_attempts: u64,
    /// Mails abandoned: attempts exhausted, refused for good, or mailer stopped.
    pub given_up: u64,
    /// Mails refused by `send` because the queue was full.
    pub dropped: u64,
}

/// Sends plain-text mails without ever blocking its caller. Cheap to clone; clones share
/// the queue and the thread.
#[derive(Clone)]
pub struct Mailer {
    tx: Option<SyncSender<Job>>,
    shared: Arc<Shared>,
}

struct Job {
    subject: String,
    body: String,
}

#[derive(Default)]
struct Shared {
    /// Mails queued or being sent.
    pending: Mutex<usize>,
    idle: Condvar,
    stopped: Mutex<bool>,
    stop: Condvar,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Mailer {
    /// A mailer that only writes each mail to the log (`info`), for setups without SMTP.
    pub fn log_only() -> Mailer {
        Mailer {
            tx: None,
            shared: Arc::new(Shared::default()),
        }
    }

    /// A mailer over SMTP with the default retry policy and queue size.
    pub fn new(settings: &MailSettings) -> Result<Mailer, MailError> {
        Mailer::with_policy(settings, RetryPolicy::default(), DEFAULT_QUEUE)
    }

    /// `Some(settings)` → `new`, `None` → `log_only`.
    pub fn from_settings(settings: Option<&MailSettings>) -> Result<Mailer, MailError> {
        match settings {
            Some(s) => Mailer::new(s),
            None => Ok(Mailer::log_only()),
        }
    }

    /// A mailer over SMTP: checks the settings, starts the sending thread.
    pub fn with_policy(
        settings: &MailSettings,
        policy: RetryPolicy,
        queue: usize,
    ) -> Result<Mailer, MailError> {
        let checked = settings.check().map_err(MailError)?;
        let transport = transport(&checked)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            checked,
            transport,
            policy,
            shared: Arc::clone(&shared),
        };
        std::thread::Builder::new()
            .name("tether-mail".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| MailError(format!("cannot start the mail thread: {e}")))?;
        Ok(Mailer {
            tx: Some(tx),
            shared,
        })
    }

    /// True for a mailer built by `log_only`.
    pub fn is_log_only(&self) -> bool {
        self.tx.is_none()
    }

    /// Queue a plain-text mail to every recipient; returns at once. `false` when the mail
    /// was dropped (queue full, mailer gone); the reason is logged.
    pub fn send(&self, subject: &str, body: &str) -> bool {
        let Some(tx) = &self.tx else {
            log::info!("mail (no SMTP settings, logged only): {subject}\n{body}");
            return true;
        };
        *lock(&self.shared.pending) += 1;
        let job = Job {
            subject: subject.to_string(),
            body: body.to_string(),
        };
        let failure = match tx.try_send(job) {
            Ok(()) => return true,
            Err(TrySendError::Full(job)) => ("queue full", job),
            Err(TrySendError::Disconnected(job)) => ("mail thread gone", job),
        };
        self.shared.done();
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        let (why, job) = failure;
        log::error!("mail dropped ({why}): {}\n{}", job.subject, job.body);
        false
    }

    /// Wait until every queued mail is sent or given up, at most `limit`. True if so.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut pending = lock(&self.shared.pending);
        while *pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = match self.shared.idle.wait_timeout(pending, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Give up the mail being retried and everything queued (each is logged); later `send`
    /// calls are logged and dropped. For shutdown.
    pub fn stop(&self) {
        *lock(&self.shared.stopped) = true;
        self.shared.stop.notify_all();
    }

    pub fn stats(&self) -> MailStats {
        let s = &self.shared;
        MailStats {
            sent: s.sent.load(Ordering::Relaxed),
            failed_attempts: s.failed_attempts.load(Ordering::Relaxed),
            given_up: s.given_up.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("log_only", &self.is_log_only())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Shared {
    fn done(&self) {
        let mut pending = lock(&self.pending);
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            self.idle.notify_all();
        }
    }

    fn is_stopped(&self) -> bool {
        *lock(&self.stopped)
    }

    /// Sleep `d` unless `stop()` comes first; true if stopped.
    fn sleep(&self, d: Duration) -> bool {
        let guard = lock(&self.stopped);
        match self.stop.wait_timeout_while(guard, d, |stopped| !*stopped) {
            Ok((stopped, _)) => *stopped,
            Err(poisoned) => *poisoned.into_inner().0,
        }
    }
}

/// lettre's blocking transport: plain SMTP without a password; STARTTLS (required) and
/// login with one.
fn transport(c: &Checked) -> Result<SmtpTransport, MailError> {
    let mut builder = SmtpTransport::builder_dangerous(c.server.as_str())
        .port(c.port)
        .timeout(Some(c.timeout));
    if let Some((user, password)) = &c.login {
        let tls = TlsParameters::new(c.server.clone())
            .map_err(|e| MailError(format!("TLS settings for {}: {e}", c.server)))?;
        builder = builder
            .tls(Tls::Required(tls))
            .credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

struct Worker {
    checked: Checked,
    transport: SmtpTransport,
    policy: RetryPolicy,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(self, rx: Receiver<Job>) {
        // Ends when every `Mailer` clone is gone and the queue is empty.
        for job in rx {
            if self.shared.is_stopped() {
                self.give_up(&job, "mailer stopped");
            } else {
                self.deliver(&job);
            }
            self.shared.done();
        }
    }

    fn give_up(&self, job: &Job, why: &str) {
        self.shared.given_up.fetch_add(1, Ordering::Relaxed);
        log::error!("mail not sent ({why}): {}\n{}", job.subject, job.body);
    }

    fn deliver(&self, job: &Job) {
        let message = match self.message(job) {
            Ok(m) => m,
            Err(e) => return self.give_up(job, &format!("cannot build it: {e}")),
        };
        let server = format!("{}:{}", self.checked.server, self.checked.port);
        let mut attempt = 1;
        loop {
            let error = match self.transport.send(&message) {
                Ok(_) => {
                    self.shared.sent.fetch_add(1, Ordering::Relaxed);
                    log::info!("mail sent through {server}: {}", job.subject);
                    return;
                }
                Err(e) => e,
            };
            self.shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if error.is_permanent() {
                let why = format!("{server} refused it: {error}");
                return self.give_up(job, &why);
            }
            let Some(wait) = self.policy.delay_before(attempt + 1) else {
                let why = format!("{attempt} attempts through {server}, last: {error}");
                return self.give_up(job, &why);
            };
            log::warn!(
                "mail {:?}: attempt {attempt} through {server} failed ({error}); retry in {wait:?}",
                job.subject
            );
            if self.shared.sleep(wait) {
                return self.give_up(job, "mailer stopped");
            }
            attempt += 1;
        }
    }

    fn message(&self, job: &Job) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.checked.from.clone())
            .subject(job.subject.as_str())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.checked.to {
            builder = builder.to(to.clone());
        }
        builder.body(job.body.clone())
    }
}
