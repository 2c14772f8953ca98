//! The supervisor's mails, sent by tether-mail's `Mailer` (lettre on its own thread, with
//! retries; a failure is a log line, never fatal): the admin key at start, and a crash
//! report when a worker exits unexpectedly. Without `[supervisor.mail]` they go to the log.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use tether_config::Settings;
use tether_mail::Mailer;

/// The mailer for `settings` (log-only without `[supervisor.mail]`).
pub fn mailer(settings: &Settings) -> Mailer {
    let Some(m) = &settings.ops.supervisor.mail else {
        return Mailer::log_only();
    };
    Mailer::new(m).unwrap_or_else(|e| {
        log::error!("mail: {e}; mails will only be logged");
        Mailer::log_only()
    })
}

/// Mail the admin key to the recipients (if mail is configured); returns who gets it.
/// The mail is never logged: without SMTP settings nothing is sent.
pub fn send_key(settings: &Settings, key: &str, admin: SocketAddr) -> Vec<String> {
    send_key_with(&mailer(settings), settings, key, admin)
}

/// `send_key` with a mailer the caller keeps.
pub fn send_key_with(
    mailer: &Mailer,
    settings: &Settings,
    key: &str,
    admin: SocketAddr,
) -> Vec<String> {
    let Some(m) = &settings.ops.supervisor.mail else {
        return Vec::new();
    };
    if mailer.is_log_only() {
        return Vec::new();
    }
    let host = hostname();
    let body = format!(
        "tether (pid {}) started on {host} at {}.\n\n\
         Its admin key for this run:\n\n    {key}\n\n\
         Send it as `Authorization: Bearer <key>` to the admin listener on {admin}, e.g.\n\n    \
         curl -X POST -H 'Authorization: Bearer <key>' http://{admin}/admin/reload\n{}",
        std::process::id(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        signature(settings)
    );
    mailer.send(&format!("tether admin key ({host})"), &body);
    m.recipients.clone()
}

/// What the crash mail reports.
pub struct Crash<'a> {
    pub pid: u32,
    pub status: Option<ExitStatus>,
    /// Why the master killed it, if it did (heartbeat).
    pub killed_for: Option<&'a str>,
    pub uptime: Duration,
    pub restarts: u64,
    pub next_in: Duration,
    pub config_name: &'a str,
    pub last_lines: Vec<String>,
}

/// Mail a crash report.
pub fn send_crash(mailer: &Mailer, settings: &Settings, c: &Crash<'_>) {
    let host = hostname();
    let status = describe_status(c.status);
    let mut body = format!(
        "The tether worker {} on {host} exited unexpectedly.\n\n\
         status:   {status}\n",
        c.pid
    );
    if let Some(why) = c.killed_for {
        body.push_str(&format!("reason:   the master killed it: {why}\n"));
    }
    body.push_str(&format!(
        "time:     {}\n\
         uptime:   {:.1} s\n\
         restarts: {} so far; the next worker starts in {} ms\n\
         master:   pid {}, config {}\n\n\
         The last {} lines of its output:\n\n",
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        c.uptime.as_secs_f64(),
        c.restarts,
        c.next_in.as_millis(),
        std::process::id(),
        c.config_name,
        c.last_lines.len(),
    ));
    for l in &c.last_lines {
        body.push_str("    ");
        body.push_str(l);
        body.push('\n');
    }
    body.push_str(&signature(settings));
    mailer.send(
        &format!("tether: worker {} on {host} exited ({status})", c.pid),
        &body,
    );
}

/// "exit code 3", "killed by signal 9 (SIGKILL)".
pub fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(s) = status else {
        return "unknown".into();
    };
    if let Some(code) = s.code() {
        return format!("exit code {code}");
    }
    match s.signal() {
        Some(sig) => {
            let name = signal_hook::low_level::signal_name(sig).unwrap_or("?");
            format!("killed by signal {sig} ({name})")
        }
        None => format!("{s}"),
    }
}

fn signature(settings: &Settings) -> String {
    let sig = &settings.ops.supervisor.signature;
    if sig.is_empty() {
        String::new()
    } else {
        format!("\n-- \n{sig}\n")
    }
}

/// This machine's name (for subjects), or "localhost".
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if ok && !h.is_empty() => h.to_string(),
        _ => "localhost".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn statuses_read_well() {
        assert_eq!(
            describe_status(Some(ExitStatus::from_raw(3 << 8))),
            "exit code 3"
        );
        assert_eq!(
            describe_status(Some(ExitStatus::from_raw(9))),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(describe_status(None), "unknown");
    }
}
