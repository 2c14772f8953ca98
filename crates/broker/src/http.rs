//! The broker's plain HTTP answers as data, for the proxy's router to send: status,
//! headers, body. Paths are relative to where the broker is mounted: `/session`, `/load`,
//! `/monitor`, and `/` without upgrade (with an upgrade the proxy uses `ws.rs`). The proxy
//! adds `Content-Length`, `Date` and `Connection`; for `HEAD` it sends the head only.
//! `/session` reads its query (`url=`, `token=`) and the `Authorization` header: `401`
//! without the token when one is configured, the CORS headers on every answer.
//! During the broker's first polling round, `hold` tells the proxy to wait before asking
//! `answer` for `/session` and the plain `/` (their answer would say "no server" only
//! because the servers have not answered yet).

use crate::access::SessionQuery;
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

/// A request as the broker needs it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path under the broker's mount, with its query (`/session?url=...`).
    pub target: &'a str,
    /// The value of the `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
}

/// `/session`'s body without a valid token; it starts with `Error:` like `NO_SERVER`, so a
/// Webots page shows it as it shows that one.
pub const UNAUTHORIZED: &str = "Error: this session server needs a valid token.";

impl Broker {
    /// The answer to `method` on `path` without an `Authorization` header (a `token=` in
    /// the query counts), or `None` for a path the broker does not serve (the proxy's 404).
    pub fn reply(&self, method: &str, path: &str) -> Option<Reply> {
        self.answer(&Request {
            method,
            target: path,
            authorization: None,
        })
    }

    /// The answer to a request, or `None` for a path the broker does not serve.
    pub fn answer(&self, req: &Request<'_>) -> Option<Reply> {
        let method = req.method;
        let path = req.target.split(['?', '#']).next().unwrap_or(req.target);
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
                    _ if get => self.session(req),
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

    /// Must the answer to `req` wait for the first polling round? True for an authorized
    /// `GET`/`HEAD` of `/session`, and of the plain `/` while no server is known to be
    /// available, as long as the first round has not settled (`first_round_done`): then
    /// `wake` is kept and called once (from the poller thread; keep it short, e.g.
    /// `mio::Waker::wake`) when it settles, at the latest when every server answered or
    /// timed out (`timeout_ms`) or the broker stops — and the proxy then calls `answer`.
    /// False (`wake` dropped, never called): call `answer` now. Never blocks.
    pub fn hold(&self, req: &Request<'_>, wake: Box<dyn FnOnce() + Send>) -> bool {
        if self.first_round_done() || !matches!(req.method, "GET" | "HEAD") {
            return false;
        }
        let path = req.target.split(['?', '#']).next().unwrap_or(req.target);
        let waits = match path {
            "/session" => {
                let q = SessionQuery::parse(req.target);
                self.authorized(req.authorization, q.token.as_deref())
            }
            "/" => !self.available(),
            _ => false,
        };
        waits && self.hold_until_first_round(wake)
    }

    /// `GET /session[?url=...][&token=...]`: the token first, then the choice.
    fn session(&self, req: &Request<'_>) -> Reply {
        let q = SessionQuery::parse(req.target);
        if !self.authorized(req.authorization, q.token.as_deref()) {
            let tried = req.authorization.is_some() || q.token.is_some();
            if tried {
                log::info!(
                    "broker {}: /session with a wrong token: 401",
                    self.config().name
                );
            }
            return Reply {
                status: 401,
                reason: "Unauthorized",
                headers: vec![
                    TEXT,
                    NO_CACHE,
                    (
                        "WWW-Authenticate",
                        if tried {
                            "Bearer realm=\"session\", error=\"invalid_token\""
                        } else {
                            "Bearer realm=\"session\""
                        },
                    ),
                ],
                body: UNAUTHORIZED.into(),
            };
        }
        Reply::ok(TEXT, self.session_body_for(q.url.as_deref()))
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
        // Not polled yet: nobody is handed out, nobody counts in /load.
        let s = b.reply("GET", "/session?x=1").expect("served");
        assert_eq!((s.status, s.body.as_str()), (200, NO_SERVER));
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
        assert_eq!(b.reply("GET", "/").map(|r| r.body), Some("0".into()));
        assert_eq!(b.reply("GET", "/load").map(|r| r.body), Some("-1".into()));
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
    fn token_gates_session_only() {
        use crate::access::Secret;
        use crate::Request;
        let mut c = BrokerConfig::new(&["localhost:2000"]);
        c.token = Some(Secret::new("0123456789abcdef"));
        let b = Broker::new(c, Mailer::log_only());
        b.record_load(0, crate::Load::Up(10.0));
        let ask = |target: &str, auth: Option<&[u8]>| {
            b.answer(&Request {
                method: "GET",
                target,
                authorization: auth,
            })
            .expect("served")
        };
        let r = ask("/session", None);
        assert_eq!((r.status, r.body.as_str()), (401, crate::UNAUTHORIZED));
        assert_eq!(
            header(&r, "WWW-Authenticate"),
            Some("Bearer realm=\"session\"")
        );
        assert_eq!(header(&r, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(
            header(&r, "Access-Control-Allow-Headers"),
            Some("x-requested-with, authorization")
        );
        let r = ask("/session", Some(b"Bearer 0123456789abcdeX"));
        assert_eq!(r.status, 401);
        assert!(header(&r, "WWW-Authenticate").is_some_and(|v| v.contains("invalid_token")));
        let r = ask("/session", Some(b"Bearer 0123456789abcdef"));
        assert_eq!((r.status, r.body.as_str()), (200, "ws://localhost:2000"));
        assert_eq!(ask("/session?token=0123456789abcdef", None).status, 200);
        assert_eq!(ask("/session?token=nope", None).status, 401);
        assert_eq!(b.reply("OPTIONS", "/session").map(|r| r.status), Some(204));
        for open in ["/", "/load", "/monitor"] {
            assert_eq!(ask(open, None).status, 200, "{open}");
        }
    }

    #[test]
    fn unreadable_token_file_closes_session() {
        let mut c = BrokerConfig::new(&["localhost:2000"]);
        c.token_file = Some("/nonexistent/tether-token".into());
        let b = Broker::new(c.clone(), Mailer::log_only());
        assert_eq!(b.reply("GET", "/session").map(|r| r.status), Some(401));
        assert!(Broker::start(c, Mailer::log_only()).is_err());
    }

    #[test]
    fn ssl_picks_wss() {
        let mut c = BrokerConfig::new(&["host.example.org/2000"]);
        c.ssl = true;
        let b = Broker::new(c, Mailer::log_only());
        b.record_load(0, crate::Load::Up(10.0));
        assert_eq!(b.session_body(), "wss://host.example.org/2000");
        assert!(b
            .monitor_html()
            .contains("href='https://host.example.org/2000/monitor'"));
    }
}
