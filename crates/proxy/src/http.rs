//! The minimal `http` listener: read one request head (httparse), then either reverse-proxy
//! the exchange to one upstream address or serve a file from a directory. One request per
//! connection (`Connection: close`); keep-alive, chunked framing and the router belong to
//! the HTTP layer that grows from here.
//!
//! Life of a request:
//! 1. `on_start`: pipe client → session; arm the idle check (head timeout).
//! 2. `on_readable`: gather bytes until httparse has a complete head; a bad head gets `400`,
//!    an oversized one `431`, an unsupported version `505`.
//! 3. files: resolve the path (`files::resolve`), push the response head into a pipe whose
//!    source is the file (sendfile), or a status page. proxy: `Cx::connect`, and on
//!    `on_connect` push the rewritten head into a client → upstream pipe and open
//!    upstream → client; refused → `502`, connect timeout → `504`.
//! 4. After a response tether wrote, what the client still sends is discarded until it
//!    closes (lingering close), so it reads the whole response before any reset.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tether_core::{ConnId, Cx, PipeEnd, PipeId, Session, Sink, Source};

use crate::config::ListenerSpec;
use crate::files::{self, Resolved};
use crate::idle;
use crate::response;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;
const KEY_CONNECT: u64 = 2;
const KEY_LINGER: u64 = 3;
const LINGER: Duration = Duration::from_secs(5);

/// Headers that concern one hop only and are not forwarded.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// What the listener does with a request.
#[derive(Clone, Debug)]
pub enum HttpTarget {
    Proxy(SocketAddr),
    Files(PathBuf),
}

#[derive(PartialEq, Eq, Debug)]
enum Phase {
    Head,
    Connecting,
    Proxying,
    Responding,
}

/// One client connection of an `http` listener.
pub struct HttpSession {
    spec: Arc<ListenerSpec>,
    server: Arc<str>,
    target: HttpTarget,
    phase: Phase,
    client: Option<ConnId>,
    upstream: Option<ConnId>,
    request: Option<PipeId>,
    response: Option<PipeId>,
    /// Client → discard, after tether has answered (lingering close).
    linger: Option<PipeId>,
    head: BytesMut,
    /// The rewritten request (head and any body bytes already read), sent once connected.
    forward: Option<Bytes>,
}

impl HttpSession {
    pub fn new(spec: Arc<ListenerSpec>, server: Arc<str>, target: HttpTarget) -> HttpSession {
        HttpSession {
            spec,
            server,
            target,
            phase: Phase::Head,
            client: None,
            upstream: None,
            request: None,
            response: None,
            linger: None,
            head: BytesMut::new(),
            forward: None,
        }
    }

    /// Stop reading requests: drop the client → session pipe and discard what else comes.
    fn stop_reading(&mut self, cx: &mut Cx<'_>, linger: bool) {
        if let Some(p) = self.request.take() {
            cx.close_pipe(p);
        }
        if linger && self.linger.is_none() {
            if let Some(c) = self.client {
                if !cx.read_closed(c) {
                    self.linger = Some(cx.pipe(Source::Conn(c), Sink::Discard));
                }
            }
        }
    }

    /// Answer with a status page and close.
    fn fail(&mut self, cx: &mut Cx<'_>, status: u16, head_only: bool) {
        self.respond_bytes(
            cx,
            response::status_page(status, &self.server, "", head_only).into(),
        );
    }

    fn respond_bytes(&mut self, cx: &mut Cx<'_>, bytes: Bytes) {
        let Some(client) = self.client else { return };
        self.stop_reading(cx, true);
        self.phase = Phase::Responding;
        let p = cx.pipe(Source::Session, Sink::Conn(client));
        cx.push(p, bytes);
        cx.end(p);
        self.response = Some(p);
    }

    fn on_head(&mut self, cx: &mut Cx<'_>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(&self.head) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.head.len() > MAX_HEAD {
                    self.fail(cx, 431, false);
                }
                return;
            }
            Err(httparse::Error::TooManyHeaders) => return self.fail(cx, 431, false),
            Err(httparse::Error::Version) => return self.fail(cx, 505, false),
            Err(e) => {
                log::debug!("http {}: bad request head: {e}", self.spec.listen);
                return self.fail(cx, 400, false);
            }
        };
        if n > MAX_HEAD {
            return self.fail(cx, 431, false);
        }
        let method = req.method.unwrap_or("GET").to_string();
        let path = req.path.unwrap_or("/").to_string();
        let version = req.version.unwrap_or(1);
        let head_only = method == "HEAD";
        match self.target.clone() {
            HttpTarget::Files(root) => {
                self.stop_reading(cx, true);
                self.serve_file(cx, &root, &method, &path, head_only);
            }
            HttpTarget::Proxy(addr) => {
                let peer = self.client.and_then(|c| cx.peer_addr(c));
                let mut out = rewrite_request(&method, &path, version, req.headers, peer);
                out.extend_from_slice(&self.head[n..]);
                self.forward = Some(out.freeze());
                self.stop_reading(cx, false);
                self.connect(cx, addr);
            }
        }
    }

    fn connect(&mut self, cx: &mut Cx<'_>, addr: SocketAddr) {
        match cx.connect(addr) {
            Ok(up) => {
                self.upstream = Some(up);
                self.phase = Phase::Connecting;
                cx.set_timer(self.spec.connect_timeout, KEY_CONNECT);
            }
            Err(e) => {
                log::warn!("http {}: connect to {addr}: {e}", self.spec.listen);
                self.fail(cx, 502, false);
            }
        }
    }

    fn serve_file(
        &mut self,
        cx: &mut Cx<'_>,
        root: &std::path::Path,
        method: &str,
        path: &str,
        head_only: bool,
    ) {
        if method != "GET" && method != "HEAD" {
            let page = response::status_page(405, &self.server, "Allow: GET, HEAD\r\n", false);
            return self.respond_bytes(cx, page.into());
        }
        let (file, meta, name) = match files::resolve(root, path) {
            Resolved::File(name, meta) => match std::fs::File::open(&name) {
                Ok(f) => (f, meta, name),
                Err(e) => {
                    log::warn!("http {}: open {}: {e}", self.spec.listen, name.display());
                    return self.fail(cx, 403, head_only);
                }
            },
            Resolved::Redirect(to) => {
                let page = response::status_page(
                    301,
                    &self.server,
                    &format!("Location: {to}\r\n"),
                    head_only,
                );
                return self.respond_bytes(cx, page.into());
            }
            Resolved::NotFound => return self.fail(cx, 404, head_only),
            Resolved::Forbidden => return self.fail(cx, 403, head_only),
            Resolved::BadRequest => return self.fail(cx, 400, head_only),
        };
        let Some(client) = self.client else { return };
        let mut head = response::head(200, &self.server);
        head.push_str(&format!("Content-Type: {}\r\n", files::content_type(&name)));
        head.push_str(&format!("Content-Length: {}\r\n", meta.len()));
        if let Ok(t) = meta.modified() {
            head.push_str(&format!(
                "Last-Modified: {}\r\n",
                httpdate::fmt_http_date(t)
            ));
        }
        head.push_str("Connection: close\r\n\r\n");
        self.phase = Phase::Responding;
        let source = if head_only {
            Source::Session
        } else {
            Source::File {
                file,
                offset: 0,
                len: Some(meta.len()),
            }
        };
        let p = cx.pipe(source, Sink::Conn(client));
        cx.push(p, head.into());
        if head_only {
            cx.end(p);
        }
        self.response = Some(p);
    }
}

/// The request as forwarded upstream: same method, target and version, hop-by-hop headers
/// removed (an `Upgrade` is kept with its `Connection: upgrade`), `X-Forwarded-*` and
/// `X-Real-IP` added, and `Connection: close` (one exchange per connection).
fn rewrite_request(
    method: &str,
    path: &str,
    version: u8,
    headers: &[httparse::Header<'_>],
    peer: Option<SocketAddr>,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    out.extend_from_slice(format!("{method} {path} HTTP/1.{version}\r\n").as_bytes());
    let named: Vec<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let upgrade = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"));
    let ip = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    let mut xff: Option<String> = None;
    let mut host: Option<&[u8]> = None;
    for h in headers {
        let lower = h.name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || named.contains(&lower) {
            continue;
        }
        match lower.as_str() {
            "x-forwarded-for" => {
                let prior = String::from_utf8_lossy(h.value).trim().to_string();
                xff = Some(match xff {
                    Some(x) => format!("{x}, {prior}"),
                    None => prior,
                });
                continue;
            }
            "x-real-ip" | "x-forwarded-proto" | "x-forwarded-host" => continue,
            "host" => host = Some(h.value),
            _ => {}
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let xff = match xff {
        Some(x) if !x.is_empty() => format!("{x}, {ip}"),
        _ => ip.clone(),
    };
    out.extend_from_slice(
        format!("X-Forwarded-For: {xff}\r\nX-Real-IP: {ip}\r\nX-Forwarded-Proto: http\r\n")
            .as_bytes(),
    );
    if let Some(h) = host {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    match upgrade {
        Some(u) => {
            out.extend_from_slice(b"Upgrade: ");
            out.extend_from_slice(u.value);
            out.extend_from_slice(b"\r\nConnection: upgrade\r\n\r\n");
        }
        None => out.extend_from_slice(b"Connection: close\r\n\r\n"),
    }
    out
}

impl Session for HttpSession {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        self.request =
            Some(cx.pipe_with_threshold(Source::Conn(client), Sink::Session, MAX_HEAD + 1));
        idle::arm(cx, self.spec.idle_timeout);
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        if Some(pipe) != self.request || self.phase != Phase::Head {
            return;
        }
        while let Some(b) = cx.take(pipe) {
            self.head.extend_from_slice(&b);
        }
        self.on_head(cx);
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        let (Some(client), HttpTarget::Proxy(addr)) = (self.client, &self.target) else {
            return;
        };
        if let Err(e) = result {
            log::warn!(
                "http {}: upstream {addr} unreachable: {e}",
                self.spec.listen
            );
            cx.close_conn(up);
            self.upstream = None;
            return self.fail(cx, 502, false);
        }
        self.phase = Phase::Proxying;
        let c2u = cx.pipe(Source::Conn(client), Sink::Conn(up));
        if let Some(b) = self.forward.take() {
            cx.push(c2u, b);
        }
        cx.pipe(Source::Conn(up), Sink::Conn(client));
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if Some(pipe) == self.request {
            self.request = None;
            // The client stopped sending before a complete head.
            if end == PipeEnd::Finished && !self.head.is_empty() {
                self.fail(cx, 400, false);
            } else {
                cx.close();
            }
        } else if end != PipeEnd::Finished {
            cx.close();
        } else if Some(pipe) == self.response {
            cx.set_timer(LINGER, KEY_LINGER);
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        match key {
            KEY_CONNECT if self.phase == Phase::Connecting => {
                log::warn!("http {}: upstream connect timed out", self.spec.listen);
                if let Some(up) = self.upstream.take() {
                    cx.close_conn(up);
                }
                self.fail(cx, 504, false);
            }
            KEY_LINGER => cx.close(),
            idle::KEY_IDLE => {
                let conns: Vec<ConnId> = self.client.into_iter().chain(self.upstream).collect();
                if idle::expired(cx, &conns, self.spec.idle_timeout) {
                    if self.phase == Phase::Head && !self.head.is_empty() {
                        self.fail(cx, 408, false);
                        cx.set_timer(LINGER, KEY_LINGER);
                    } else {
                        cx.close();
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_drops_hop_by_hop_and_adds_forwarding() {
        let raw = b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n\r\n";
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut h);
        assert!(r.parse(raw).unwrap().is_complete());
        let out = rewrite_request(
            "GET",
            "/x",
            1,
            r.headers,
            Some("127.0.0.9:5555".parse().unwrap()),
        );
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            s.starts_with("GET /x HTTP/1.1\r\nHost: a.example\r\n"),
            "{s}"
        );
        assert!(!s.contains("X-Secret"), "{s}");
        assert!(!s.contains("keep-alive"), "{s}");
        assert!(
            s.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.9\r\n"),
            "{s}"
        );
        assert!(s.contains("X-Real-IP: 127.0.0.9\r\n"), "{s}");
        assert!(s.contains("X-Forwarded-Host: a.example\r\n"), "{s}");
        assert!(s.ends_with("Connection: close\r\n\r\n"), "{s}");
    }
}
