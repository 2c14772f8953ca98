//! Response heads from a backend: `parse_response` turns the bytes received so far into a
//! `ResponseHead` (raw bytes + spans) and decides how its body is delimited (RFC 9112 §6.3):
//!
//! 1. a response to HEAD, any 1xx, 204 and 304 have no body;
//! 2. `Transfer-Encoding` whose last coding is `chunked` → `Chunked`; any other
//!    `Transfer-Encoding` (or one in an HTTP/1.0 response, §6.1) → `UntilClose`;
//! 3. a valid `Content-Length` → `Length`;
//! 4. otherwise → `UntilClose`.
//!
//! Every refusal is a `502`: a proxy that cannot trust a backend's framing must not guess
//! (RFC 9112 §6.3 item 5). Refused: `Content-Length` together with `Transfer-Encoding`,
//! malformed or conflicting `Content-Length`, `chunked` twice, a status outside 100-599,
//! bare LF line ends, obs-fold and the other field errors the scanner (`scan.rs`) reports, a head over
//! `max_head` or with more than `max_headers` fields. As for requests, one leading CRLF is
//! tolerated and counts as part of the head.

use bytes::Bytes;

use crate::framing::Framing;
use crate::head::{self, FieldLine, Fields, Span, FIELDS_HINT};
use crate::scan;
use crate::{BodyKind, HttpError, Limits, Parsed, Version};

/// A parsed response head: the raw bytes and spans into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Exactly the head bytes, through the final CRLFCRLF. `raw.len() == len()`.
    pub raw: Bytes,
    /// The status code, 100-599.
    pub status: u16,
    /// The version.
    pub version: Version,
    /// How the body is delimited.
    pub body: BodyKind,
    /// Whether the backend connection can carry another exchange after this response:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`,
    /// and never when the body runs until close.
    pub keep_alive: bool,
    reason: Span,
    fields: Fields,
    /// The first `Connection` field's value (read for every message a proxy forwards).
    connection: Option<Span>,
}

impl ResponseHead {
    /// The head's length in bytes: where the body starts in the buffer given to
    /// [`parse_response`].
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always `false`: a complete head has at least a status line.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The reason phrase as sent (`""` if absent or not ASCII).
    pub fn reason(&self) -> &str {
        self.reason.get_str(&self.raw)
    }

    /// Whether this is an interim (1xx) response, after which the real one follows. `101`
    /// is the exception a caller handles itself: the connection switches protocols.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
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

/// Parse the response head at the start of `buf`, the bytes received so far from a backend.
/// `request_was_head`: the request was `HEAD`, so the response has no body whatever its
/// fields say. Bytes after the head are left alone: `len()` says where the head ends.
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
    limits: &Limits,
) -> Result<Parsed<ResponseHead>, HttpError> {
    parse(buf, request_was_head, limits, Bytes::copy_from_slice)
}

/// [`parse_response`] of bytes already in a `Bytes`: the head's `raw` is a slice of `buf`
/// (no copy), and `buf.slice(head.len()..)` is what follows it.
pub fn parse_response_bytes(
    buf: &Bytes,
    request_was_head: bool,
    limits: &Limits,
) -> Result<Parsed<ResponseHead>, HttpError> {
    parse(buf, request_was_head, limits, |raw| buf.slice(..raw.len()))
}

/// `keep(raw)`: the head's bytes (`raw` starts where `buf` does) as the head keeps them.
fn parse(
    buf: &[u8],
    request_was_head: bool,
    limits: &Limits,
    keep: impl FnOnce(&[u8]) -> Bytes,
) -> Result<Parsed<ResponseHead>, HttpError> {
    let window = head::window(buf, limits);
    let start = match head::leading_empty_line(window).map_err(HttpError::bad_gateway)? {
        Some(start) => start,
        None => return partial(window, limits),
    };
    let mut fields = Fields::with_capacity(FIELDS_HINT);
    let max_fields = head::slot_count(limits, window.len());
    let scanned = match scan::response(window, start, &mut fields, max_fields) {
        Ok(Some(scanned)) => scanned,
        Ok(None) => return partial(window, limits),
        Err(e) => return Err(HttpError::bad_gateway(e.reason())),
    };
    let raw = &window[..scanned.len];
    if scanned.bare_lf {
        return Err(HttpError::bad_gateway(head::BARE_LF));
    }
    let status = scanned.line.code;
    if !(100..=599).contains(&status) {
        return Err(HttpError::bad_gateway("status code outside 100-599"));
    }
    let version = Version::from_minor(scanned.line.minor);
    let mut framing = Framing::default();
    let mut connection = None;
    for &(name_span, value_span) in fields.entries() {
        let name = name_span.name_str(raw);
        if connection.is_none() && name.len() == 10 && name.eq_ignore_ascii_case("connection") {
            connection = Some(value_span);
        }
        framing
            .add(name, value_span.get(raw))
            .map_err(HttpError::bad_gateway)?;
    }
    let body = response_body(&framing, version, status, request_was_head)?;
    let reason = scanned.line.reason;
    Ok(Parsed::Complete(ResponseHead {
        raw: keep(raw),
        status,
        version,
        body,
        keep_alive: framing.persistent(version) && body != BodyKind::UntilClose,
        reason,
        fields,
        connection,
    }))
}

fn partial<T>(window: &[u8], limits: &Limits) -> Result<Parsed<T>, HttpError> {
    if head::window_full(window, limits) {
        Err(HttpError::bad_gateway("response head too large"))
    } else {
        Ok(Parsed::Partial)
    }
}

/// RFC 9112 §6.3 for responses.
fn response_body(
    framing: &Framing,
    version: Version,
    status: u16,
    request_was_head: bool,
) -> Result<BodyKind, HttpError> {
    if framing.transfer_encoding && framing.content_length.is_some() {
        return Err(HttpError::bad_gateway(
            "Content-Length with Transfer-Encoding",
        ));
    }
    if request_was_head || status < 200 || status == 204 || status == 304 {
        return Ok(BodyKind::None);
    }
    if framing.transfer_encoding {
        return Ok(if framing.chunked_last && version == Version::Http11 {
            BodyKind::Chunked
        } else {
            BodyKind::UntilClose
        });
    }
    Ok(framing
        .content_length
        .map_or(BodyKind::UntilClose, BodyKind::Length))
}
