//! `access_log`: where the access log goes and in which format, at the top level, on a
//! `[[server]]` or on a `[[server.route]]` (a route's wins over its server's, which wins
//! over the top-level one):
//!
//! ```toml
//! access_log = "/var/log/tether/access.log"          # combined format; "stderr"; "off"
//! access_log = { path = "/var/log/tether/access.json", format = "json" }
//! # format = "combined" (default) | "json" | "tether" | a template:
//! access_log = { path = "stderr", format = "{client_ip} {status} {upstream_addr} {request_time}" }
//! ```
//!
//! A template takes the header rules' placeholders (`rules.rs`) and the log-only ones
//! (`LogVar`).

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use crate::rules::Template;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// `access_log = "path"` or `access_log = { path = "...", format = "..." }`.
pub(crate) enum RawAccessLog {
    Path(String),
    Table(RawTable),
}

// By hand rather than `#[serde(untagged)]`: an untagged enum buffers its input, and the
// table's `Spanned` positions would be lost.
impl<'de> Deserialize<'de> for RawAccessLog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawAccessLog, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawAccessLog;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path, \"stderr\", \"off\", or { path = ..., format = ... }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAccessLog, E> {
                Ok(RawAccessLog::Path(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<RawAccessLog, A::Error> {
                RawTable::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(RawAccessLog::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTable {
    path: Spanned<String>,
    #[serde(default)]
    format: Option<Spanned<String>>,
}

/// Where access lines go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogTarget {
    Stderr,
    /// Appended to; reopened by path on SIGUSR1 (logrotate).
    File(PathBuf),
}

/// How a line is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// Apache/nginx combined, exactly (GoAccess `COMBINED`).
    Combined,
    /// One JSON object per line, typed fields.
    Json,
    /// tether's own line before 0.x: combined without the size, then the request time,
    /// TLS and the request id.
    Tether,
    /// `{placeholder}`s and literal text.
    Template(Template),
}

/// A checked `access_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSpec {
    /// None: `"off"`.
    pub target: Option<LogTarget>,
    pub format: LogFormat,
}

impl AccessLogSpec {
    /// `"off"`: no line.
    pub fn off() -> AccessLogSpec {
        AccessLogSpec {
            target: None,
            format: LogFormat::Combined,
        }
    }
}

/// A placeholder only an access-log template knows (what the request became).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVar {
    /// `[07/Dec/2026:11:46:47 +0000]`'s inside: the time the line is written.
    Time,
    /// RFC 3339 time, UTC.
    TimeIso,
    Method,
    /// The request target as the client sent it (path and query).
    Uri,
    /// `HTTP/1.1`, `HTTP/2.0`.
    HttpVersion,
    /// The status sent to the client.
    Status,
    /// The upstream's status (`-` when none answered).
    UpstreamStatus,
    /// Seconds (millisecond precision) from the request's head to its last byte.
    RequestTime,
    /// Seconds to connect the upstream (0 on a reused connection), to its response head,
    /// to the end of its response (`-` when no upstream).
    UpstreamConnectTime,
    UpstreamHeaderTime,
    UpstreamResponseTime,
    /// Bytes read from the client for this request (head and body).
    BytesIn,
    /// Bytes sent to the client for this response (head and body).
    BytesOut,
    /// Body bytes sent to the client (combined's size field).
    BodyBytes,
    /// The affinity decision: `hit`, `miss`, `repin`, `new` (`-`: no affinity).
    Affinity,
    Referer,
    UserAgent,
}

/// The log-only placeholders, by name.
pub(crate) const LOG_NAMES: [(&str, LogVar); 18] = [
    ("time", LogVar::Time),
    ("time_iso", LogVar::TimeIso),
    ("method", LogVar::Method),
    ("uri", LogVar::Uri),
    ("http_version", LogVar::HttpVersion),
    ("status", LogVar::Status),
    ("upstream_status", LogVar::UpstreamStatus),
    ("request_time", LogVar::RequestTime),
    ("upstream_connect_time", LogVar::UpstreamConnectTime),
    ("upstream_header_time", LogVar::UpstreamHeaderTime),
    ("upstream_response_time", LogVar::UpstreamResponseTime),
    ("bytes_in", LogVar::BytesIn),
    ("bytes_out", LogVar::BytesOut),
    ("body_bytes", LogVar::BodyBytes),
    ("affinity", LogVar::Affinity),
    ("referer", LogVar::Referer),
    ("user_agent", LogVar::UserAgent),
    ("time_local", LogVar::Time),
];

/// Check an `access_log` value.
pub(crate) fn check(raw: Spanned<RawAccessLog>, at: At<'_>) -> Result<AccessLogSpec, ConfigError> {
    let span = raw.span();
    let (path, path_span, format) = match raw.into_inner() {
        RawAccessLog::Path(p) => (p, span.clone(), None),
        RawAccessLog::Table(t) => {
            let s = t.path.span();
            (t.path.into_inner(), s, t.format)
        }
    };
    let target = match path.as_str() {
        "off" => None,
        "stderr" => Some(LogTarget::Stderr),
        "" => {
            return Err(at(
                path_span,
                "`access_log`: an empty path (\"off\" turns the log off)".into(),
            ))
        }
        p => Some(LogTarget::File(PathBuf::from(p))),
    };
    let format = match format {
        None => LogFormat::Combined,
        Some(f) => {
            let fspan = f.span();
            match f.get_ref().as_str() {
                "combined" => LogFormat::Combined,
                "json" => LogFormat::Json,
                "tether" => LogFormat::Tether,
                t if t.contains('{') => {
                    let tpl = Template::parse_log(t).map_err(|(off, m)| {
                        // The value's text starts after its opening quote.
                        let start = fspan.start + 1 + off;
                        at(start..start + 1, format!("`format`: {m}"))
                    })?;
                    LogFormat::Template(tpl)
                }
                other => {
                    return Err(at(
                        fspan,
                        format!(
                            "`format`: {other:?} is not \"combined\", \"json\", \"tether\" \
                             or a template with {{placeholders}}"
                        ),
                    ))
                }
            }
        }
    };
    Ok(AccessLogSpec { target, format })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::Settings, ConfigError> {
        crate::parse(text, "t.toml")
    }

    const L: &str = "\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:2\"\n";

    #[test]
    fn forms() {
        let s = parse(&format!("access_log = \"/tmp/a.log\"{L}")).unwrap();
        assert_eq!(
            s.access_log.target,
            Some(LogTarget::File("/tmp/a.log".into()))
        );
        assert_eq!(s.access_log.format, LogFormat::Combined);
        let s = parse(L).unwrap();
        assert_eq!(s.access_log, AccessLogSpec::off());
        let s = parse(&format!(
            "access_log = {{ path = \"stderr\", format = \"json\" }}{L}"
        ))
        .unwrap();
        assert_eq!(s.access_log.target, Some(LogTarget::Stderr));
        assert_eq!(s.access_log.format, LogFormat::Json);
        let s = parse(&format!(
            "access_log = {{ path = \"stderr\", format = \"{{status}} {{affinity}} {{upstream_addr}}\" }}{L}"
        ))
        .unwrap();
        assert!(matches!(s.access_log.format, LogFormat::Template(_)));
    }

    #[test]
    fn errors_have_positions() {
        let e = parse(&format!(
            "access_log = {{ path = \"x\", format = \"csv\" }}{L}"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.col), (1, 37), "{e}");
        assert!(e.message.contains("\"csv\""), "{e}");
        let e = parse(&format!(
            "access_log = {{ path = \"x\", format = \"{{status}} {{statsu}}\" }}{L}"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.col), (1, 47), "{e}");
        assert!(e.message.contains("did you mean `{status}`"), "{e}");
    }

    #[test]
    fn header_rules_do_not_take_log_names() {
        assert!(Template::parse("{status}").is_err());
        assert!(Template::parse_log("{status} {client_ip}").is_ok());
    }
}
