//! Request heads: `parse_request` turns the bytes received so far into a `RequestHead` (raw
//! bytes + spans), or says it needs more, or refuses the request with the status to answer.
//!
//! `scan.rs` does the tokenising (one pass, exactly as strict as httparse was); this module
//! adds what a proxy in front of other servers needs, and it is strict wherever two parsers
//! could disagree, because a request that the proxy and the backend frame differently is a
//! smuggling attack. An ambiguous request is
//! refused, never repaired:
//!
//! - framing: `Content-Length` with `Transfer-Encoding`, differing or malformed lengths,
//!   `chunked` twice, `Transfer-Encoding` in HTTP/1.0 → 400; last coding not `chunked` → 501;
//! - lines: bare LF line ends, obs-fold, NUL or bare CR, space before the colon → 400;
//!   exactly one leading CRLF is tolerated (RFC 9112 §2.2) and counts as part of the head;
//! - request line: no version or a bad method → 400; a version other than 1.0/1.1 → 505;
//!   a target that is not origin-form (`/...`), absolute-form (`http(s)://...`), `*` (for
//!   OPTIONS) or authority-form (for CONNECT) → 400;
//! - `Host`: missing in HTTP/1.1, repeated, bytes outside the URI host grammar, or different
//!   from the authority of an absolute-form target → 400;
//! - size: head over `max_head` or more than `max_headers` fields → 431; target over
//!   `max_uri` → 414, reported as soon as the request line shows it, even mid-head;
//! - `Expect` other than `100-continue` → 417.

use bytes::{Bytes, BytesMut};

use crate::framing::Framing;
use crate::head::{self, FieldLine, Fields, Span, FIELDS_HINT};
use crate::headers::list_elements_raw;
use crate::scan::{self, ScanError};
use crate::{BodyKind, HttpError, Limits, Parsed, Version};

/// A request method. Methods are case-sensitive: `get` is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// `CONNECT`
    Connect,
    /// `TRACE`
    Trace,
    /// Any other valid token (`PROPFIND`, `get`, ...): read it with
    /// [`RequestHead::method_str`].
    Other,
}

impl Method {
    /// The method a token names.
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// The method's name; `""` for `Other` (whose name is in
    /// [`RequestHead::method_str`], which is what to forward).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other => "",
        }
    }
}

/// A parsed request head: the raw bytes and spans into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Exactly the head bytes, through the final CRLFCRLF (including the one tolerated
    /// leading CRLF, if the client sent it). `raw.len() == len()`.
    pub raw: Bytes,
    /// The method.
    pub method: Method,
    /// The version.
    pub version: Version,
    /// How the body is delimited: `None`, `Length` or `Chunked`, never `UntilClose`.
    pub body: BodyKind,
    /// Whether the client wants the connection kept after this exchange: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Expect: 100-continue` in an HTTP/1.1 request (ignored in HTTP/1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// An `Upgrade` field and `upgrade` among the `Connection` tokens, in HTTP/1.1 (an
    /// HTTP/1.0 upgrade is ignored, RFC 9110 §7.8).
    pub upgrade: bool,
    method_span: Span,
    target: Span,
    /// `None` when an absolute-form target has an empty path: the path is then `/`.
    path: Option<Span>,
    host: Option<Span>,
    fields: Fields,
    /// The first `Connection` field's value (read for every message a proxy forwards).
    connection: Option<Span>,
}

impl RequestHead {
    /// The head's length in bytes: where the body (or the next request) starts in the
    /// buffer given to [`parse_request`].
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always `false`: a complete head has at least a request line.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The method token as sent (`GET`, `PROPFIND`, ...).
    pub fn method_str(&self) -> &str {
        self.method_span.get_str(&self.raw)
    }

    /// The request-target as sent.
    pub fn target(&self) -> &str {
        self.target.get_str(&self.raw)
    }

    /// The target's path: without `?query` or `#fragment`. For an absolute-form target
    /// (`http://host/p?q`) the path part (`/p`, or `/` if empty); `*` for `OPTIONS *`; the
    /// authority for `CONNECT`.
    pub fn path(&self) -> &str {
        match self.path {
            Some(span) => span.get_str(&self.raw),
            None => "/",
        }
    }

    /// The target's `?query` (with its `?`; before any `#fragment`), or `""`.
    pub fn query(&self) -> &str {
        let t = self.target();
        let Some(start) = t.find('?') else {
            return "";
        };
        let end = t[start..].find('#').map_or(t.len(), |i| start + i);
        &t[start..end]
    }

    /// The `Host` value, trimmed. For an absolute-form target it is the target's authority
    /// (which must then equal the `Host` field, if there is one).
    pub fn host(&self) -> Option<&str> {
        self.host.map(|s| s.get_str(&self.raw))
    }

    /// The header fields in order, as sent (values trimmed of surrounding whitespace).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter(&self.raw)
    }

    /// The header fields in order with their lines' places in `raw` (see [`FieldLine`]).
    pub fn field_lines(&self) -> impl Iterator<Item = FieldLine<'_>> {
        self.fields.lines(&self.raw)
    }

    /// The first `Connection` field's value: `header("connection")`, noted while parsing.
    pub fn connection(&self) -> Option<&[u8]> {
        self.connection.map(|s| s.get(&self.raw))
    }

    /// The first field called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(&self.raw, name)
    }
}

/// Parse the request head at the start of `buf`, the bytes received so far. Bytes after the
/// head (a body, pipelined requests) are left alone: `len()` says where the head ends.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed<RequestHead>, HttpError> {
    let window = head::window(buf, limits);
    let start = match head::leading_empty_line(window).map_err(HttpError::bad_request)? {
        Some(start) => start,
        None => return partial(window, limits),
    };
    let mut fields = Fields::with_capacity(FIELDS_HINT);
    let max_fields = head::slot_count(limits, window.len());
    let scanned = match scan::request(window, start, &mut fields, max_fields) {
        Ok(Some(scanned)) => scanned,
        Ok(None) => {
            check_target_len(window, start, limits)?;
            return partial(window, limits);
        }
        Err(e) => {
            check_target_len(window, start, limits)?;
            return Err(refusal(e, window, start));
        }
    };
    if scanned.bare_lf {
        return Err(HttpError::bad_request(head::BARE_LF));
    }
    let raw = Bytes::copy_from_slice(&window[..scanned.len]);
    complete(raw, scanned.line, fields, limits).map(Parsed::Complete)
}

/// A request head from its parts as HTTP/2 gives them (RFC 9113 §8.3.1): `method`,
/// `target` (`:path`), then `fields` in order (`:authority` comes first, as `host`). The
/// head is laid out as the HTTP/1.1 head it stands for, each part checked as
/// [`parse_request`] checks it (tokens, target and value bytes, the field count and head
/// size, then framing, Host and the target's form) and its spans recorded as it is
/// written: never written out and parsed back.
pub fn request_from_parts<'f>(
    method: &[u8],
    target: &[u8],
    fields: impl Iterator<Item = (&'f [u8], &'f [u8])> + Clone,
    limits: &Limits,
) -> Result<RequestHead, HttpError> {
    if method.is_empty() || !method.iter().all(|&b| scan::is_token(b)) {
        return Err(HttpError::bad_request("invalid method"));
    }
    if target.is_empty()
        || !target.iter().all(|&b| b > b' ' && b != 0x7f)
        || std::str::from_utf8(target).is_err()
    {
        return Err(HttpError::bad_request("invalid request-target"));
    }
    let size = fields
        .clone()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum::<usize>();
    let size = size + method.len() + target.len() + 13;
    if size > head::head_cap(limits) {
        return Err(HttpError::new(431, "request head too large"));
    }
    let mut b = BytesMut::with_capacity(size);
    b.extend_from_slice(method);
    b.extend_from_slice(b" ");
    b.extend_from_slice(target);
    b.extend_from_slice(b" HTTP/1.1\r\n");
    let line = scan::RequestLine {
        method: Span::range(0, method.len()),
        target: Span::range(method.len() + 1, method.len() + 1 + target.len()),
        minor: 1,
    };
    let max_fields = head::slot_count(limits, size);
    let mut list = Fields::with_capacity(FIELDS_HINT);
    for (name, value) in fields {
        if list.entries().len() >= max_fields {
            return Err(HttpError::new(431, "too many headers"));
        }
        if name.is_empty() || !name.iter().all(|&b| scan::is_token(b)) {
            return Err(HttpError::bad_request("invalid header name"));
        }
        let trimmed = value.trim_ascii();
        if trimmed.len() != value.len() || !value.iter().all(|&b| scan::is_value(b)) {
            return Err(HttpError::bad_request("invalid header value"));
        }
        let at = b.len();
        b.extend_from_slice(name);
        b.extend_from_slice(b": ");
        b.extend_from_slice(value);
        b.extend_from_slice(b"\r\n");
        let v = at + name.len() + 2;
        list.push(
            Span::range(at, at + name.len()),
            Span::range(v, v + value.len()),
        );
    }
    b.extend_from_slice(b"\r\n");
    complete(b.freeze(), line, list, limits)
}

/// The checks and the head once its request line and field spans are known (both parsers).
fn complete(
    raw_bytes: Bytes,
    line: scan::RequestLine,
    fields: Fields,
    limits: &Limits,
) -> Result<RequestHead, HttpError> {
    let raw: &[u8] = &raw_bytes;
    let target = line.target.get_str(raw);
    if target.len() > limits.max_uri {
        return Err(HttpError::new(414, "request-target too long"));
    }
    let method = Method::from_token(line.method.get_str(raw));
    let version = Version::from_minor(line.minor);

    let mut framing = Framing::default();
    let mut connection = None;
    let mut host: Option<&[u8]> = None;
    let mut upgrade_field = false;
    let mut expect_continue = false;
    for &(name_span, value_span) in fields.entries() {
        let name = name_span.name_str(raw);
        let value = value_span.get(raw);
        if connection.is_none() && name.len() == 10 && name.eq_ignore_ascii_case("connection") {
            connection = Some(value_span);
        }
        framing.add(name, value).map_err(HttpError::bad_request)?;
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => {
                if host.is_some() {
                    return Err(HttpError::bad_request("more than one Host header"));
                }
                host = Some(value);
            }
            6 if name.eq_ignore_ascii_case("expect") => {
                for e in list_elements_raw(value) {
                    if !e.eq_ignore_ascii_case(b"100-continue") {
                        return Err(HttpError::new(417, "unsupported expectation"));
                    }
                    expect_continue = true;
                }
            }
            7 if name.eq_ignore_ascii_case("upgrade") => upgrade_field = true,
            _ => {}
        }
    }

    let body = request_body(&framing, version)?;
    if version == Version::Http11 && host.is_none() {
        return Err(HttpError::bad_request("missing Host header"));
    }
    if let Some(h) = host {
        if !h.iter().all(|&b| is_host_byte(b)) {
            return Err(HttpError::bad_request("invalid Host header"));
        }
    }
    let form = target_form(method, target, host).map_err(HttpError::bad_request)?;
    let (path, host) = match form {
        Form::Path(p) => (Some(Span::of(raw, p)), host.map(|h| Span::of(raw, h))),
        Form::Absolute { path, authority } => (
            (!path.is_empty()).then(|| Span::of(raw, path)),
            Some(Span::of(raw, authority)),
        ),
    };

    Ok(RequestHead {
        raw: raw_bytes,
        method,
        version,
        body,
        keep_alive: framing.persistent(version),
        expect_continue: expect_continue && version == Version::Http11,
        upgrade: upgrade_field && framing.upgrade && version == Version::Http11,
        method_span: line.method,
        target: line.target,
        path,
        host,
        fields,
        connection,
    })
}

/// Not complete yet: fine unless the window is already full.
fn partial<T>(window: &[u8], limits: &Limits) -> Result<Parsed<T>, HttpError> {
    if head::window_full(window, limits) {
        Err(HttpError::new(431, "request head too large"))
    } else {
        Ok(Parsed::Partial)
    }
}

/// The body of a request (RFC 9112 §6.3, items 3-6 for requests).
fn request_body(framing: &Framing, version: Version) -> Result<BodyKind, HttpError> {
    if !framing.transfer_encoding {
        return Ok(framing
            .content_length
            .map_or(BodyKind::None, BodyKind::Length));
    }
    if version == Version::Http10 {
        return Err(HttpError::bad_request("Transfer-Encoding in HTTP/1.0"));
    }
    if framing.content_length.is_some() {
        return Err(HttpError::bad_request(
            "Content-Length with Transfer-Encoding",
        ));
    }
    if !framing.chunked_last {
        return Err(HttpError::new(
            501,
            "Transfer-Encoding not ending in chunked",
        ));
    }
    Ok(BodyKind::Chunked)
}

/// The request line as far as it goes: the method token, the target, and the version
/// (each `None` while not reached). `start` is where the line begins.
struct Line<'a> {
    target: Option<&'a [u8]>,
    target_ended_by_newline: bool,
    version: Option<&'a [u8]>,
}

fn split_line(window: &[u8], start: usize) -> Line<'_> {
    let mut line = Line {
        target: None,
        target_ended_by_newline: false,
        version: None,
    };
    let rest = &window[start..];
    let is_end = |b: &u8| *b == b' ' || *b == b'\r' || *b == b'\n';
    let Some(sp) = rest.iter().position(is_end) else {
        return line;
    };
    if rest[sp] != b' ' {
        return line;
    }
    let rest = &rest[sp + 1..];
    let end = rest.iter().position(is_end).unwrap_or(rest.len());
    line.target = Some(&rest[..end]);
    match rest.get(end) {
        Some(b' ') => {
            let rest = &rest[end + 1..];
            let stop = rest.iter().position(|&b| b == b'\r' || b == b'\n');
            line.version = Some(&rest[..stop.unwrap_or(rest.len())]);
        }
        Some(_) => line.target_ended_by_newline = true,
        None => {}
    }
    line
}

/// `414` as soon as the request line shows a target longer than `max_uri`, even while the
/// head (or the target itself) is still incomplete.
fn check_target_len(window: &[u8], start: usize, limits: &Limits) -> Result<(), HttpError> {
    match split_line(window, start).target {
        Some(t) if t.len() > limits.max_uri => Err(HttpError::new(414, "request-target too long")),
        _ => Ok(()),
    }
}

/// The status and reason for a scanner error, with a closer look at the request line.
fn refusal(e: ScanError, window: &[u8], start: usize) -> HttpError {
    let line = split_line(window, start);
    match e {
        ScanError::TooManyHeaders => HttpError::new(431, "too many headers"),
        ScanError::Version => match line.version {
            Some(v) if is_other_version(v) => HttpError::new(505, "HTTP version not supported"),
            _ => HttpError::bad_request("invalid HTTP version"),
        },
        ScanError::Token if line.target_ended_by_newline => {
            HttpError::bad_request("request line without HTTP version")
        }
        ScanError::Token if line.target.is_none() => HttpError::bad_request("invalid method"),
        e => HttpError::bad_request(e.reason()),
    }
}

/// `HTTP/` DIGIT `.` DIGIT (or a prefix of it with at least the major digit), i.e. a
/// well-formed version we do not speak: 505 rather than 400. the scanner reports a version
/// error as soon as the major digit is not `1`, so the rest may not have arrived.
fn is_other_version(v: &[u8]) -> bool {
    match v.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.']) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// The request-target's form (RFC 9112 §3.2).
enum Form<'a> {
    /// origin-form (`/p?q`), asterisk-form (`*`) or authority-form (CONNECT): the path.
    Path(&'a [u8]),
    /// absolute-form: its path (may be empty) and authority.
    Absolute { path: &'a [u8], authority: &'a [u8] },
}

fn target_form<'a>(
    method: Method,
    target: &'a str,
    host: Option<&[u8]>,
) -> Result<Form<'a>, &'static str> {
    let t = target.as_bytes();
    let until_query = |s: &'a [u8]| {
        let end = s
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(s.len());
        &s[..end]
    };
    if method == Method::Connect {
        if t.iter().any(|&b| matches!(b, b'/' | b'?' | b'#' | b'@')) || !t.contains(&b':') {
            return Err("CONNECT target is not host:port");
        }
        return Ok(Form::Path(t));
    }
    if t.first() == Some(&b'/') {
        return Ok(Form::Path(until_query(t)));
    }
    if t == b"*" {
        return match method {
            Method::Options => Ok(Form::Path(t)),
            _ => Err("asterisk target outside OPTIONS"),
        };
    }
    let rest = strip_prefix_ignore_case(t, b"http://")
        .or_else(|| strip_prefix_ignore_case(t, b"https://"))
        .ok_or("invalid request-target")?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || !authority.iter().all(|&b| is_host_byte(b)) {
        return Err("invalid authority in request-target");
    }
    if let Some(h) = host {
        if !h.eq_ignore_ascii_case(authority) {
            return Err("Host differs from the request-target authority");
        }
    }
    Ok(Form::Absolute {
        path: until_query(path),
        authority,
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    match s.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(prefix) => Some(&s[prefix.len()..]),
        _ => None,
    }
}

/// A byte of `uri-host [":" port]`: unreserved, sub-delims, `%` (pct-encoding), `:` and the
/// brackets of an IP literal. Notably not `@` (userinfo), `/`, space or obs-text.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}
