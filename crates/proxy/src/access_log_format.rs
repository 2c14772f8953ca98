//! The text of an access-log line (`access_log.rs` writes it):
//!
//! - combined, exactly Apache's and nginx's (GoAccess `COMBINED`):
//!   `127.0.0.1 - - [21/Nov/2026:17:20:00 +0000] "GET /x HTTP/1.1" 200 512 "-" "curl/8"`
//!   (the size is the response body's bytes sent, `-` for none);
//! - tether's own line (the one before the formats): combined without the size, then the
//!   request time in seconds, TLS (`tls=... sni=... alpn=...`) and `rid=<request id>`;
//! - JSON: one object a line, numbers as numbers, `null` for what is not known;
//! - a template: the config's `{placeholder}`s (`tether_config::rules::Var`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use tether_config::access_log::{LogFormat, LogVar};
use tether_config::rules::{Part, Template, Var};

use crate::access_log::Entry;

/// The line for `e` in `format`, with its `\n`.
pub(crate) fn line(format: &LogFormat, e: &Entry<'_>) -> String {
    let now = SystemTime::now();
    let mut s = match format {
        LogFormat::Combined => combined(e, now),
        LogFormat::Tether => tether(e, now),
        LogFormat::Json => json(e, now),
        LogFormat::Template(t) => template(t, e, now),
    };
    s.push('\n');
    s
}

fn ip(e: &Entry<'_>) -> String {
    e.client
        .map_or_else(|| "-".to_string(), |ip| ip.to_string())
}

/// Body bytes sent: what went out less the head (None when nothing is known).
fn body_bytes(e: &Entry<'_>) -> Option<u64> {
    e.bytes_out
        .map(|out| out.saturating_sub(e.head_len.unwrap_or(0)))
}

/// `GET`, `/x?y`, `HTTP/1.1` of the request line.
fn split_line(line: &str) -> (&str, &str, &str) {
    let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (uri, version) = rest.rsplit_once(' ').unwrap_or((rest, ""));
    (method, uri, version)
}

fn combined(e: &Entry<'_>, now: SystemTime) -> String {
    let size = body_bytes(e)
        .filter(|n| *n > 0)
        .map_or_else(|| "-".to_string(), |n| n.to_string());
    format!(
        "{} - - [{}] \"{}\" {} {size} \"{}\" \"{}\"",
        ip(e),
        clf_time(now),
        e.request_line.escape_default(),
        e.status,
        e.referer.escape_default(),
        e.user_agent.escape_default(),
    )
}

fn tether(e: &Entry<'_>, now: SystemTime) -> String {
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
    format!(
        "{} - - [{}] \"{}\" {} \"{}\" \"{}\" {:.3}{tls}{rid}",
        ip(e),
        clf_time(now),
        e.request_line.escape_default(),
        e.status,
        e.referer.escape_default(),
        e.user_agent.escape_default(),
        e.duration.as_secs_f64()
    )
}

fn secs(d: Option<Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| {
        serde_json::json!((d.as_secs_f64() * 1000.0).round() / 1000.0)
    })
}

fn json(e: &Entry<'_>, now: SystemTime) -> String {
    let (method, uri, version) = split_line(e.request_line);
    let up = e.upstream;
    let text = |s: &str| (s != "-").then(|| s.to_string());
    let v = serde_json::json!({
        "time": iso_time(now),
        "client_ip": e.client.map(|a| a.to_string()),
        "client_port": e.client_port,
        "host": e.host,
        "method": method,
        "uri": uri,
        "http_version": version,
        "status": e.status,
        "request_time": secs(Some(e.duration)),
        "bytes_in": e.bytes_in,
        "bytes_out": e.bytes_out,
        "body_bytes": body_bytes(e),
        "referer": text(e.referer),
        "user_agent": text(e.user_agent),
        "request_id": e.request_id,
        "tls_version": e.tls.map(|t| t.version.to_string()),
        "sni": e.tls.and_then(|t| t.sni.clone()),
        "upstream_name": up.map(|u| u.name.to_string()),
        "upstream_addr": up.and_then(|u| u.addr).map(|a| a.to_string()),
        "upstream_status": up.and_then(|u| u.status),
        "upstream_connect_time": secs(up.and_then(|u| u.connect)),
        "upstream_header_time": secs(up.and_then(|u| u.header)),
        "upstream_response_time": secs(up.map(|_| e.duration)),
        "affinity": up.map(|u| u.affinity),
    });
    v.to_string()
}

fn template(t: &Template, e: &Entry<'_>, now: SystemTime) -> String {
    let mut out = String::new();
    for part in &t.0 {
        match part {
            Part::Lit(s) => out.push_str(s),
            Part::Var(v) => var(v, e, now, &mut out),
        }
    }
    out
}

fn opt<T: std::fmt::Display>(out: &mut String, v: Option<T>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push('-'),
    }
}

fn opt_secs(out: &mut String, d: Option<Duration>) {
    opt(out, d.map(|d| format!("{:.3}", d.as_secs_f64())));
}

fn var(v: &Var, e: &Entry<'_>, now: SystemTime, out: &mut String) {
    let up = e.upstream;
    let (method, uri, version) = split_line(e.request_line);
    match v {
        Var::ClientIp => out.push_str(&ip(e)),
        Var::ClientPort => opt(out, e.client_port),
        Var::Scheme => out.push_str(if e.tls.is_some() { "https" } else { "http" }),
        Var::Host => opt(out, e.host),
        Var::Path => out.push_str(uri.split_once('?').map_or(uri, |(p, _)| p)),
        Var::Query => out.push_str(uri.split_once('?').map_or("", |(_, q)| q)),
        Var::RequestId => opt(out, e.request_id),
        Var::TlsVersion => opt(out, e.tls.map(|t| t.version.to_string())),
        Var::Sni => opt(out, e.tls.and_then(|t| t.sni.clone())),
        Var::Header(name) => opt(
            out,
            e.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.escape_default().to_string()),
        ),
        Var::Cookie(_) => out.push('-'),
        Var::UpstreamName => opt(out, up.map(|u| u.name.clone())),
        Var::UpstreamAddr => opt(out, up.and_then(|u| u.addr)),
        Var::Log(l) => match l {
            LogVar::Time => out.push_str(&clf_time(now)),
            LogVar::TimeIso => out.push_str(&iso_time(now)),
            LogVar::Method => out.push_str(method),
            LogVar::Uri => out.push_str(&uri.escape_default().to_string()),
            LogVar::HttpVersion => out.push_str(version),
            LogVar::Status => {
                let _ = write!(out, "{}", e.status);
            }
            LogVar::UpstreamStatus => opt(out, up.and_then(|u| u.status)),
            LogVar::RequestTime => opt_secs(out, Some(e.duration)),
            LogVar::UpstreamConnectTime => opt_secs(out, up.and_then(|u| u.connect)),
            LogVar::UpstreamHeaderTime => opt_secs(out, up.and_then(|u| u.header)),
            LogVar::UpstreamResponseTime => opt_secs(out, up.map(|_| e.duration)),
            LogVar::BytesIn => opt(out, e.bytes_in),
            LogVar::BytesOut => opt(out, e.bytes_out),
            LogVar::BodyBytes => opt(out, body_bytes(e)),
            LogVar::Affinity => out.push_str(up.map_or("-", |u| u.affinity)),
            LogVar::Referer => out.push_str(&e.referer.escape_default().to_string()),
            LogVar::UserAgent => out.push_str(&e.user_agent.escape_default().to_string()),
        },
    }
}

/// `21/Nov/2026:17:20:00 +0000`.
fn clf_time(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = parts(t);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get((m as usize).wrapping_sub(1)).unwrap_or(&"Jan");
    format!("{d:02}/{month}/{y}:{hh:02}:{mm:02}:{ss:02} +0000")
}

/// `2026-11-21T17:20:00Z`.
fn iso_time(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = parts(t);
    format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

fn parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
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
        assert_eq!(iso_time(t), "2026-11-21T01:02:03Z");
    }

    fn entry<'a>(up: Option<&'a crate::access_log::UpInfo>) -> Entry<'a> {
        Entry {
            client: Some("10.0.0.1".parse().unwrap()),
            client_port: Some(5000),
            request_line: "GET /a?b=1 HTTP/1.1",
            status: 200,
            referer: "-",
            user_agent: "ua/1",
            duration: Duration::from_millis(12),
            tls: None,
            request_id: None,
            upstream: up,
            bytes_in: Some(80),
            bytes_out: Some(150),
            head_len: Some(100),
            host: Some("example.org"),
            headers: &[],
        }
    }

    #[test]
    fn combined_has_the_body_size() {
        let l = line(&LogFormat::Combined, &entry(None));
        assert!(l.starts_with("10.0.0.1 - - ["), "{l}");
        assert!(
            l.ends_with("] \"GET /a?b=1 HTTP/1.1\" 200 50 \"-\" \"ua/1\"\n"),
            "{l}"
        );
    }

    #[test]
    fn json_is_typed() {
        let up = crate::access_log::UpInfo {
            name: "app".into(),
            addr: Some("127.0.0.1:9".parse().unwrap()),
            affinity: "new",
            status: Some(201),
            connect: Some(Duration::from_millis(1)),
            header: Some(Duration::from_millis(5)),
        };
        let l = line(&LogFormat::Json, &entry(Some(&up)));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream_status"], 201);
        assert_eq!(v["bytes_out"], 150);
        assert_eq!(v["affinity"], "new");
        assert_eq!(v["uri"], "/a?b=1");
        assert_eq!(v["referer"], serde_json::Value::Null);
    }

    #[test]
    fn templates() {
        let t =
            Template::parse_log("{method} {path} {status} {affinity} {bytes_out} {upstream_addr}")
                .unwrap();
        let l = line(&LogFormat::Template(t), &entry(None));
        assert_eq!(l, "GET /a 200 - 150 -\n");
    }
}
