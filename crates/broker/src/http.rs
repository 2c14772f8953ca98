//! The broker's plain HTTP answers as data, for the proxy's router to send: status,
//! headers, body. Paths are relative to where the broker is mounted: `/session`, `/load`,
//! `/monitor`, and `/` without upgrade (with an upgrade the proxy uses `ws.rs`). The proxy
//! adds `Content-Length`, `Date` and `Connection`; for `HEAD` it sends the head only.

use crate::broker::Broker;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");
const HTML: (&str, &str) = ("Content-Type", "text/html; charset=utf-8");
const NO_CACHE: (&str, &str) = ("Cache-Control", "no-cache");

impl Reply {
    fn ok(kind: (&'static str, &'static str), body: String) -> Reply {
        Reply {
            status: 200,
            reason: "OK",
            headers: vec![kind, NO_CACHE],
            body,
        }
    }

    fn not_allowed(allow: &'static str) -> Reply {
        Reply {
            status: 405,
            reason: "Method Not Allowed",
            headers: vec![TEXT, ("Allow", allow)],
            body: "405 Method Not Allowed\n".into(),
        }
    }
}

impl Broker {
    /// The answer to `method` on `path` (a query string is ignored), or `None` for a path
    /// the broker does not serve (the proxy's 404).
    pub fn reply(&self, method: &str, path: &str) -> Option<Reply> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let get = matches!(method, "GET" | "HEAD");
        let reply = match path {
            "/session" => {
                let mut r = match method {
                    "OPTIONS" => Reply {
                        status: 204,
                        reason: "No Content",
                        headers: vec![],
                        body: String::new(),
                    },
                    _ if get => Reply::ok(TEXT, self.session_body()),
                    _ => Reply::not_allowed("GET, HEAD, OPTIONS"),
                };
                r.headers.extend_from_slice(self.cors_headers());
                r
            }
            "/" if get => Reply::ok(TEXT, self.available_body().to_string()),
            "/load" if get => Reply::ok(TEXT, self.load_body()),
            "/monitor" if get => Reply::ok(HTML, self.monitor_html()),
            "/" | "/load" | "/monitor" => Reply::not_allowed("GET, HEAD"),
            _ => return None,
        };
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Broker, BrokerConfig, NO_SERVER};
    use tether_mail::Mailer;

    fn header<'a>(r: &'a crate::Reply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    #[test]
    fn routes_before_any_poll() {
        let b = Broker::new(
            BrokerConfig::new(&["localhost:2000", "h/2001"]),
            Mailer::log_only(),
        );
        let s = b.reply("GET", "/session?x=1").expect("served");
        assert_eq!((s.status, s.body.as_str()), (200, "ws://localhost:2000"));
        assert_eq!(header(&s, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(
            header(&s, "Access-Control-Allow-Headers"),
            Some("x-requested-with")
        );
        assert_eq!(
            header(&s, "Access-Control-Allow-Methods"),
            Some("POST, GET, OPTIONS")
        );
        let o = b.reply("OPTIONS", "/session").expect("preflight");
        assert_eq!((o.status, o.body.as_str()), (204, ""));
        assert_eq!(
            header(&o, "Access-Control-Allow-Methods"),
            Some("POST, GET, OPTIONS")
        );
        assert_eq!(b.reply("POST", "/session").map(|r| r.status), Some(405));
        assert_eq!(b.reply("GET", "/").map(|r| r.body), Some("1".into()));
        assert_eq!(b.reply("GET", "/load").map(|r| r.body), Some("0".into()));
        let m = b.reply("GET", "/monitor").expect("monitor");
        assert_eq!(header(&m, "Content-Type"), Some("text/html; charset=utf-8"));
        assert!(m.body.contains("Managing 2 simulation servers"));
        assert!(b.reply("GET", "/nope").is_none());
        assert_eq!(
            NO_SERVER,
            "Error: no simulation server available at the moment."
        );
    }

    #[test]
    fn ssl_picks_wss() {
        let mut c = BrokerConfig::new(&["host.example.org/2000"]);
        c.ssl = true;
        let b = Broker::new(c, Mailer::log_only());
        assert_eq!(b.session_body(), "wss://host.example.org/2000");
        assert!(b
            .monitor_html()
            .contains("href='https://host.example.org/2000/monitor'"));
    }
}
