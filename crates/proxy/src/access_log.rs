//! The access log: one line per request, in the combined format nginx and Apache write,
//! followed by the request time in seconds:
//!
//! `127.0.0.1 - - [21/Nov/2026:17:20:00 +0000] "GET /x HTTP/1.1" 200 "-" "curl/7.88.1" 0.003`
//!
//! A request a route gives an id (`request_id`) ends its line with ` rid=<id>`.
//!
//! Written to stderr or appended to a file (`access_log = "stderr" | "off" | "/path"`), one
//! `write` per line under a short lock shared by the workers.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where access lines go.
pub struct AccessLog {
    out: Mutex<Box<dyn Write + Send>>,
}

/// What one line says.
pub struct Entry<'a> {
    pub client: Option<IpAddr>,
    pub request_line: &'a str,
    pub status: u16,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub duration: Duration,
    /// On a TLS connection: version, cipher, SNI and ALPN, after the duration.
    pub tls: Option<&'a tether_core::tls::TlsInfo>,
    /// The request's `X-Request-Id` (a route with `request_id`), last as `rid=...`.
    pub request_id: Option<&'a str>,
}

impl AccessLog {
    /// `"off"` → none; `"stderr"`; anything else is a file path, appended to.
    pub fn open(target: &str) -> io::Result<Option<Arc<AccessLog>>> {
        let out: Box<dyn Write + Send> = match target {
            "off" | "" => return Ok(None),
            "stderr" => Box::new(io::stderr()),
            path => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        };
        Ok(Some(Arc::new(AccessLog {
            out: Mutex::new(out),
        })))
    }

    pub fn write(&self, e: &Entry<'_>) {
        let ip = e
            .client
            .map_or_else(|| "-".to_string(), |ip| ip.to_string());
        let tls = e.tls.map_or(String::new(), |t| {
            format!(
                " tls={} {} sni={} alpn={}",
                t.version,
                t.cipher,
                t.sni.as_deref().unwrap_or("-"),
                t.alpn.as_deref().unwrap_or("-")
            )
        });
        let rid = e
            .request_id
            .map_or(String::new(), |id| format!(" rid={}", id.escape_default()));
        let line = format!(
            "{ip} - - [{}] \"{}\" {} \"{}\" \"{}\" {:.3}{tls}{rid}\n",
            clf_time(SystemTime::now()),
            e.request_line.escape_default(),
            e.status,
            e.referer.escape_default(),
            e.user_agent.escape_default(),
            e.duration.as_secs_f64()
        );
        if let Ok(mut out) = self.out.lock() {
            if let Err(err) = out.write_all(line.as_bytes()) {
                log::warn!("access log: {err}");
            }
        }
    }
}

/// `21/Nov/2026:17:20:00 +0000`.
fn clf_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_222_923);
        assert_eq!(clf_time(t), "21/Nov/2026:01:02:03 +0000");
    }
}
