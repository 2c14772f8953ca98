//! Response heads tether writes itself, in one place: the reason phrases of every status it
//! produces (one table), the cached `Date`, and `Head`, the writer of a head (status line,
//! `Server`, `Date`, content headers, `Connection: close`, the blank line) that the http
//! session, the files route, the admin listener, the broker routes and the `429` refusal
//! all use; plus the status pages built with it. (Heads rewritten as they cross the proxy
//! are `http/forward.rs`'s; they take `Date` from here too.)

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

/// The reason phrase of the status codes tether produces.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

thread_local! {
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Call `f` with the `Date` value for now, formatted at most once a second per thread.
pub fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE.with(|cell| {
        let mut d = cell.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(&d.1)
    })
}

/// A response head being written: `Head::new` writes the status line, `Server` and
/// `Date`; the caller adds its lines, then `end` writes `Connection: close` (unless the
/// connection is kept) and the blank line. A body may follow in the same buffer.
pub struct Head {
    out: Vec<u8>,
}

impl Head {
    /// A head answering `status`, with room for `room` more bytes (headers and body).
    pub fn new(status: u16, server: &str, room: usize) -> Head {
        Head::with_reason(status, reason(status), server, room)
    }

    /// [`Head::new`] with a reason phrase of the caller's.
    pub fn with_reason(status: u16, reason: &str, server: &str, room: usize) -> Head {
        let mut out = Vec::with_capacity(96 + server.len() + room);
        out.extend_from_slice(b"HTTP/1.1 ");
        let s = status.min(999);
        out.extend_from_slice(&[
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\nServer: ");
        out.extend_from_slice(server.as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        with_date(|d| out.extend_from_slice(d.as_bytes()));
        out.extend_from_slice(b"\r\n");
        Head { out }
    }

    /// Add `name: value`.
    pub fn header(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Head {
        use std::io::Write;
        let _ = write!(self.out, "{name}: {value}\r\n");
        self
    }

    /// Add header lines already formatted (each ending in CRLF).
    pub fn lines(&mut self, lines: &str) -> &mut Head {
        self.out.extend_from_slice(lines.as_bytes());
        self
    }

    /// `Content-Type` and `Content-Length`.
    pub fn content(&mut self, ctype: &str, len: usize) -> &mut Head {
        self.header("Content-Type", ctype)
            .header("Content-Length", len)
    }

    /// The bytes written so far, to add to in place.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// `Connection: close` unless `keep_alive`, then the blank line: the head is complete;
    /// a body may follow (`Head::body`).
    pub fn end(mut self, keep_alive: bool) -> Vec<u8> {
        if !keep_alive {
            self.out.extend_from_slice(b"Connection: close\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out
    }
}

/// A complete status page (head and small HTML body) that closes the connection.
/// `extra` holds already-formatted header lines (each ending in CRLF).
pub fn status_page(status: u16, server: &str, extra: &str, head_only: bool) -> String {
    status_page_ka(status, server, extra, head_only, false)
}

/// A status page; with `keep_alive` the connection stays open after it.
pub fn status_page_ka(
    status: u16,
    server: &str,
    extra: &str,
    head_only: bool,
    keep_alive: bool,
) -> String {
    let body = format!(
        "<html>\r\n<head><title>{status} {r}</title></head>\r\n<body>\r\n<center><h1>{status} {r}</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n",
        r = reason(status)
    );
    page(
        status,
        server,
        "text/html",
        extra,
        &body,
        head_only,
        keep_alive,
    )
}

/// A short plain-text page saying why (`503 Service Unavailable: <message>`).
pub fn message_page(
    status: u16,
    server: &str,
    message: &str,
    head_only: bool,
    keep_alive: bool,
) -> String {
    let body = format!("{status} {}: {message}\n", reason(status));
    let ctype = "text/plain; charset=utf-8";
    page(status, server, ctype, "", &body, head_only, keep_alive)
}

/// A whole small response: head (with `extra` lines after `Connection`) and `body`.
fn page(
    status: u16,
    server: &str,
    ctype: &str,
    extra: &str,
    body: &str,
    head_only: bool,
    keep_alive: bool,
) -> String {
    let mut head = Head::new(status, server, extra.len() + body.len() + 64);
    head.content(ctype, body.len());
    if !keep_alive {
        head.lines("Connection: close\r\n");
    }
    head.lines(extra);
    let mut out = head.end(true);
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    // Everything written is ASCII or the caller's UTF-8 text.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_page_is_well_formed() {
        let p = status_page(502, "tether", "", false);
        assert!(p.starts_with("HTTP/1.1 502 Bad Gateway\r\nServer: tether\r\nDate: "));
        let (head, body) = p.split_once("\r\n\r\n").expect("blank line");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .expect("length");
        assert_eq!(len, body.len());
        assert!(status_page(404, "x", "", true).ends_with("\r\n\r\n"));
    }

    #[test]
    fn head_writer() {
        let mut h = Head::new(308, "t", 0);
        h.header("Location", "https://a/");
        let s = String::from_utf8(h.end(false)).unwrap();
        assert!(s.starts_with("HTTP/1.1 308 Permanent Redirect\r\nServer: t\r\nDate: "));
        assert!(s.ends_with(" GMT\r\nLocation: https://a/\r\nConnection: close\r\n\r\n"));
        let s = String::from_utf8(Head::with_reason(599, "X", "t", 0).end(true)).unwrap();
        assert!(s.starts_with("HTTP/1.1 599 X\r\n") && !s.contains("Connection"));
    }
}
