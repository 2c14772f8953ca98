//! Responses tether writes itself: status pages and the headers every response carries
//! (`Server`, `Date`).

use std::time::SystemTime;

/// The reason phrase of the status codes tether produces.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        501 => "Not Implemented",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The `Date` header value for now (IMF-fixdate).
pub fn http_date() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

/// Start a response head: status line, `Server`, `Date`. The caller appends the rest of the
/// headers and the blank line.
pub fn head(status: u16, server: &str) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nServer: {server}\r\nDate: {}\r\n",
        reason(status),
        http_date()
    )
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
    let mut out = head(status, server);
    out.push_str("Content-Type: text/html\r\n");
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str(extra);
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&body);
    }
    out
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
    let mut out = head(status, server);
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&body);
    }
    out
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
}
