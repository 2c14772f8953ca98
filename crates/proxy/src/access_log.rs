//! The access log: one line per request, written through a `tether_logwriter::LogWriter`
//! (a bounded queue and a writer thread: the loop never waits on the disk; a stuck target
//! drops lines and counts them). The format is the config's (`tether_config::access_log`):
//! combined (Apache/nginx, the default), JSON, tether's own line, or a template; the lines
//! themselves are made in `access_log_format.rs`.
//!
//! One writer per distinct target (a file path, or stderr): the top-level `access_log` and
//! those of servers and routes naming the same file share it. `reopen` (SIGUSR1) opens
//! every file again by path (logrotate).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tether_config::access_log::{AccessLogSpec, LogTarget};
use tether_config::Settings;
use tether_logwriter::{LogWriter, Stats, Target};

/// Bytes of lines one target may hold waiting for its writer thread.
const QUEUE_BYTES: usize = 1 << 20;

/// The access logs of a config: the writers, and the top-level format.
pub struct AccessLogs {
    writers: HashMap<LogTarget, LogWriter>,
    default: Arc<AccessLogSpec>,
    /// Request headers some template names (`{header.x}`), lower case: noted per request.
    pub(crate) headers: Vec<String>,
}

/// What the upstream side of a proxied request did (none for a request tether answered).
#[derive(Debug, Clone, Default)]
pub struct UpInfo {
    pub name: Arc<str>,
    pub addr: Option<SocketAddr>,
    /// `hit`, `miss`, `repin`, `new`, or `-` (no affinity).
    pub affinity: &'static str,
    pub status: Option<u16>,
    pub connect: Option<Duration>,
    pub header: Option<Duration>,
}

/// What one line says.
pub struct Entry<'a> {
    pub client: Option<IpAddr>,
    pub client_port: Option<u16>,
    /// `GET /x HTTP/1.1`.
    pub request_line: &'a str,
    pub status: u16,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub duration: Duration,
    pub tls: Option<&'a tether_core::tls::TlsInfo>,
    pub request_id: Option<&'a str>,
    pub upstream: Option<&'a UpInfo>,
    /// Bytes read from / sent to the client for this request (None: not known).
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    /// The response head's length, to tell the body's bytes from `bytes_out`.
    pub head_len: Option<u64>,
    pub host: Option<&'a str>,
    /// Request headers templates asked for (lower-case names).
    pub headers: &'a [(String, String)],
}

/// The running access logs, for SIGUSR1 (`reopen_all`) and `/metrics` (`stats_all`).
fn running() -> &'static Mutex<Vec<Weak<AccessLogs>>> {
    static RUNNING: OnceLock<Mutex<Vec<Weak<AccessLogs>>>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(Vec::new()))
}

/// Reopen every access-log file of this process (SIGUSR1, logrotate). Never blocks: the
/// writer threads do it before their next line.
pub fn reopen_all() {
    if let Ok(mut all) = running().lock() {
        all.retain(|w| w.strong_count() > 0);
        for logs in all.iter().filter_map(Weak::upgrade) {
            for w in logs.writers.values() {
                w.reopen();
            }
        }
    }
}

/// Every access-log target's counters (written, dropped, bytes), by target name.
pub fn stats_all() -> Vec<(String, Stats)> {
    let mut out: Vec<(String, Stats)> = Vec::new();
    if let Ok(all) = running().lock() {
        for logs in all.iter().filter_map(Weak::upgrade) {
            for w in logs.writers.values() {
                let name = w.target().to_string();
                let s = w.stats();
                match out.iter_mut().find(|(n, _)| *n == name) {
                    // A reload's old and new writers of one file: one series.
                    Some((_, t)) => {
                        t.written += s.written;
                        t.dropped += s.dropped;
                        t.bytes += s.bytes;
                    }
                    None => out.push((name, s)),
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn specs(settings: &Settings) -> Vec<&AccessLogSpec> {
    let mut all = vec![&settings.access_log];
    for l in &settings.listeners {
        if let tether_config::Target::Http(router) = &l.target {
            for h in &router.hosts {
                all.extend(h.routes.iter().filter_map(|r| r.access_log.as_ref()));
            }
        }
    }
    all
}

impl AccessLogs {
    /// Open one writer per distinct target of `settings` (files created, appended to); None
    /// when no access log is on anywhere. Call at start-up or reload, not on a loop.
    pub fn open(settings: &Settings) -> Result<Option<Arc<AccessLogs>>, String> {
        let all = specs(settings);
        let mut writers = HashMap::new();
        let mut headers = Vec::new();
        for spec in &all {
            if let tether_config::access_log::LogFormat::Template(t) = &spec.format {
                for part in &t.0 {
                    if let tether_config::rules::Part::Var(tether_config::rules::Var::Header(h)) =
                        part
                    {
                        if !headers.contains(h) {
                            headers.push(h.clone());
                        }
                    }
                }
            }
            let Some(target) = &spec.target else { continue };
            if writers.contains_key(target) {
                continue;
            }
            let t = match target {
                LogTarget::Stderr => Target::Stderr,
                LogTarget::File(p) => Target::File(p.clone()),
            };
            let w = LogWriter::open(t, QUEUE_BYTES)?;
            writers.insert(target.clone(), w);
        }
        if writers.is_empty() {
            return Ok(None);
        }
        let logs = Arc::new(AccessLogs {
            writers,
            default: Arc::new(settings.access_log.clone()),
            headers,
        });
        if let Ok(mut all) = running().lock() {
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&logs));
        }
        Ok(Some(logs))
    }

    /// Write `e` in the format of `spec` (a route's or server's), else the top-level one.
    pub fn write(&self, spec: Option<&AccessLogSpec>, e: &Entry<'_>) {
        let spec = spec.unwrap_or(&self.default);
        let Some(w) = spec.target.as_ref().and_then(|t| self.writers.get(t)) else {
            return;
        };
        let line = crate::access_log_format::line(&spec.format, e);
        w.write_line(line.as_bytes());
    }
}
