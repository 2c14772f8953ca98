//! Rewriting heads as they cross the proxy: the request tether sends upstream and the
//! response head it sends the client. Pure functions over parsed heads (tether-http).
//!
//! Request: same method and target; hop-by-hop fields (and those the `Connection` header
//! names) dropped; `Transfer-Encoding: chunked` written again when the body is chunked (the
//! chunked bytes are forwarded as they are); `Host` added for an HTTP/1.0 request without
//! one; `X-Forwarded-For` (appended to), `X-Real-IP`, `X-Forwarded-Proto`,
//! `X-Forwarded-Host` set; `Connection: upgrade` + `Upgrade` kept for an upgrade.
//!
//! Response: status line as HTTP/1.1; hop-by-hop fields dropped; `Server` and `Date`
//! replaced by tether's (as nginx does); `Connection` set for the client side.

use std::cell::RefCell;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tether_http::reply::with_date;
use tether_http::LowerName;
use tether_http::{
    connection_tokens, is_hop_by_hop, write_header, BodyKind, RequestHead, ResponseHead, Version,
};

/// The heads written here are carved from one block per thread (`head_buf`, `freeze_head`):
/// the rest of the block goes back after each head, so a head costs no allocation of its own
/// (a `BytesMut` of its own is one allocation, and freezing it another). A block is shared
/// by the heads carved from it and freed when the last of them is (they are short-lived: a
/// head goes into a pipe and is dropped once written).
const HEAD_BLOCK: usize = 16 * 1024;

/// Less than this left in the block: start a new one.
const HEAD_BLOCK_MIN: usize = 1024;

thread_local! {
    static BLOCK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// An empty buffer with room for `want` bytes: the rest of this thread's block.
fn head_buf(want: usize) -> BytesMut {
    let spare = BLOCK
        .try_with(|b| b.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)).ok())
        .ok()
        .flatten()
        .unwrap_or_default();
    if spare.capacity() >= want {
        spare
    } else {
        BytesMut::with_capacity(HEAD_BLOCK.max(want))
    }
}

/// `head` (written into a `head_buf`, maybe edited since) as `Bytes`; the room left after
/// it goes back to the thread's block for the next head.
pub fn freeze_head(mut head: BytesMut) -> Bytes {
    let rest = head.split_off(head.len());
    if rest.capacity() >= HEAD_BLOCK_MIN {
        let _ = BLOCK.try_with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                *b = rest;
            }
        });
    }
    head.freeze()
}

/// Changes made to a head as it crosses (by the affinity: a session id's tag stripped from
/// the request, a `Set-Cookie` added or re-tagged on the response).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Edits {
    /// A new request target.
    pub target: Option<String>,
    /// `(name, old value, new value)`: a header `name` (case-insensitive) whose value is
    /// exactly `old` is written with `new` instead.
    pub replace: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Header lines to add, each ending in CRLF.
    pub add: String,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.target.is_none() && self.replace.is_empty() && self.add.is_empty()
    }

    /// The new value for header `name: value`, if it is replaced.
    fn replaced(&self, name: &str, value: &[u8]) -> Option<&[u8]> {
        self.replace
            .iter()
            .find(|(n, old, _)| n.eq_ignore_ascii_case(name) && old == value)
            .map(|(_, _, new)| new.as_slice())
    }
}

/// Field lines forwarded as they are: copied from the parsed head's bytes (the parser
/// checked them: a token, `:`, a value without CR, LF or NUL, CRLF), consecutive ones in one
/// copy, instead of each written again name, `: `, value, CRLF.
struct Lines<'a> {
    raw: &'a [u8],
    run: std::ops::Range<usize>,
}

impl<'a> Lines<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Lines { raw, run: 0..0 }
    }

    /// Forward the line at `line` (after those kept before it).
    fn keep(&mut self, out: &mut BytesMut, line: std::ops::Range<usize>) {
        if self.run.end != line.start || self.run.is_empty() {
            self.flush(out);
            self.run.start = line.start;
        }
        self.run.end = line.end;
    }

    /// Write the lines kept so far (before a line that is not forwarded as it is).
    fn flush(&mut self, out: &mut BytesMut) {
        if let Some(lines) = self.raw.get(self.run.clone()) {
            out.extend_from_slice(lines);
        }
        self.run = 0..0;
    }
}

/// The tokens of a message's `Connection` value, on the stack (no `Vec` per message).
struct Named<'a> {
    tokens: [&'a str; 8],
    n: usize,
    /// The value, when it has more tokens than fit (then it is tokenised again per field).
    overflow: Option<&'a [u8]>,
}

impl<'a> Named<'a> {
    fn of(value: Option<&'a [u8]>) -> Named<'a> {
        let mut named = Named {
            tokens: [""; 8],
            n: 0,
            overflow: None,
        };
        // The usual values, one token and nothing else: no tokenising. `keep-alive` and
        // `upgrade` name hop-by-hop fields (dropped anyway); `close` names itself.
        match value {
            None => return named,
            Some(v) if names_nothing(v) => return named,
            Some(v) if v.eq_ignore_ascii_case(b"close") => {
                if let Ok(t) = std::str::from_utf8(v) {
                    named.tokens[0] = t;
                    named.n = 1;
                    return named;
                }
            }
            Some(_) => {}
        }
        // Hop-by-hop fields are dropped whether named or not: not kept here, so the usual
        // `Connection: keep-alive` costs nothing per field.
        let named_fields = value
            .into_iter()
            .flat_map(connection_tokens)
            .filter(|t| !is_hop_by_hop(t));
        for t in named_fields {
            if named.n == named.tokens.len() {
                named.overflow = value;
                break;
            }
            named.tokens[named.n] = t;
            named.n += 1;
        }
        named
    }

    /// Whether `Connection` names `name` (inlined: with nothing named, the usual case,
    /// one compare per field and no call).
    #[inline(always)]
    fn contains(&self, name: &str) -> bool {
        (self.n != 0 || self.overflow.is_some()) && self.lists(name)
    }

    #[inline(never)]
    fn lists(&self, name: &str) -> bool {
        match self.overflow {
            Some(v) => connection_tokens(v).any(|t| t.eq_ignore_ascii_case(name)),
            None => self.tokens[..self.n]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name)),
        }
    }
}

/// A `Connection` value that is a single token naming a hop-by-hop field (`keep-alive`,
/// `upgrade`: dropped whether named or not), with no list, spaces or other tokens: it adds
/// nothing to drop. Any other value is tokenised in full.
fn names_nothing(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"upgrade")
}

/// What `upstream_request` does with a request field, by its name (its length first: this
/// runs for every field of every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqField {
    /// `is_hop_by_hop`: dropped.
    HopByHop,
    /// `X-Forwarded-For`: appended to.
    Xff,
    /// `X-Real-IP`, `X-Forwarded-Proto`, `X-Forwarded-Host`: replaced by tether's.
    Ours,
    Host,
    Other,
}

fn request_field(name: &str) -> ReqField {
    const X_REAL_IP: LowerName = LowerName::new(b"x-real-ip");
    const CONNECTION: LowerName = LowerName::new(b"connection");
    const KEEP_ALIVE: LowerName = LowerName::new(b"keep-alive");
    const XFF: LowerName = LowerName::new(b"x-forwarded-for");
    const PROXY_CONNECTION: LowerName = LowerName::new(b"proxy-connection");
    const X_FORWARDED_HOST: LowerName = LowerName::new(b"x-forwarded-host");
    const TRANSFER_ENCODING: LowerName = LowerName::new(b"transfer-encoding");
    const X_FORWARDED_PROTO: LowerName = LowerName::new(b"x-forwarded-proto");
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let b = name.as_bytes();
    match name.len() {
        2 if is("te") => ReqField::HopByHop,
        4 if is("host") => ReqField::Host,
        7 if is("upgrade") => ReqField::HopByHop,
        9 if X_REAL_IP.matches(b) => ReqField::Ours,
        10 if CONNECTION.matches(b) || KEEP_ALIVE.matches(b) => ReqField::HopByHop,
        15 if XFF.matches(b) => ReqField::Xff,
        16 if PROXY_CONNECTION.matches(b) => ReqField::HopByHop,
        16 if X_FORWARDED_HOST.matches(b) => ReqField::Ours,
        17 if TRANSFER_ENCODING.matches(b) => ReqField::HopByHop,
        17 if X_FORWARDED_PROTO.matches(b) => ReqField::Ours,
        _ => ReqField::Other,
    }
}

/// Whether a field must not cross the proxy: hop-by-hop, or named by `Connection`.
/// An upstream answer's field the client never gets as sent: hop-by-hop, named by its
/// `Connection`, or `Server` and `Date` (tether writes its own).
fn not_passed_on(name: &str, named: &Named<'_>) -> bool {
    is_local(name, named)
        || name.eq_ignore_ascii_case("server")
        || name.eq_ignore_ascii_case("date")
}

fn is_local(name: &str, named: &Named<'_>) -> bool {
    is_hop_by_hop(name) || named.contains(name)
}

/// The request head to send upstream.
/// `client_ip` is the client's address as text (empty if unknown); `https`: the client came
/// over TLS (`X-Forwarded-Proto: https`); `upstream` is named in a
/// `Host` header only when the request has none.
/// `edits` (affinity) may replace the target and header values.
pub fn upstream_request(
    req: &RequestHead,
    client_ip: &str,
    https: bool,
    upstream: SocketAddr,
    edits: Option<&Edits>,
) -> BytesMut {
    let mut out = head_buf(req.len() + 192);
    out.extend_from_slice(req.method_str().as_bytes());
    out.extend_from_slice(b" ");
    let target = edits.and_then(|e| e.target.as_deref());
    out.extend_from_slice(target.unwrap_or(req.target()).as_bytes());
    out.extend_from_slice(if req.version == Version::Http10 && !req.upgrade {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let named = Named::of(req.connection());
    let mut xff: Option<&[u8]> = None;
    let mut host: Option<&[u8]> = None;
    let mut kept = Lines::new(&req.raw);
    for f in req.field_lines() {
        let name = f.name;
        let kind = request_field(name);
        if kind == ReqField::HopByHop || named.contains(name) {
            kept.flush(&mut out);
            continue;
        }
        match kind {
            ReqField::Xff => {
                xff = Some(f.value);
                kept.flush(&mut out);
                continue;
            }
            // Set by tether below, whatever the client sent.
            ReqField::Ours => {
                kept.flush(&mut out);
                continue;
            }
            ReqField::Host => host = Some(f.value),
            ReqField::HopByHop | ReqField::Other => {}
        }
        match edits.and_then(|e| e.replaced(name, f.value)) {
            Some(new) => {
                kept.flush(&mut out);
                write_header(&mut out, name, new);
            }
            None => kept.keep(&mut out, f.line),
        }
    }
    kept.flush(&mut out);
    if let Some(e) = edits {
        out.extend_from_slice(e.add.as_bytes());
    }
    if host.is_none() {
        write_header(&mut out, "Host", upstream.to_string().as_bytes());
    }
    // tether's own fields, their names and separators as bytes: the values are the
    // client's address text, checked field values (`X-Forwarded-For`, `Host`) and constants.
    if req.body == BodyKind::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    if let Some(prior) = xff.filter(|v| !v.is_empty()) {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client_ip.as_bytes());
    out.extend_from_slice(b"\r\nX-Real-IP: ");
    out.extend_from_slice(client_ip.as_bytes());
    out.extend_from_slice(if https {
        b"\r\nX-Forwarded-Proto: https\r\n"
    } else {
        b"\r\nX-Forwarded-Proto: http\r\n"
    });
    if let Some(h) = host {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    if req.upgrade {
        if let Some(u) = req.header("upgrade") {
            write_header(&mut out, "Connection", b"upgrade");
            write_header(&mut out, "Upgrade", u);
        }
    } else if req.version == Version::Http10 {
        write_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `head` with the field `name: value` added after its status line (HSTS on every response
/// of a TLS listener, whoever wrote the head). Written as bytes: no `String` per response.
pub fn with_field(head: bytes::Bytes, name: &str, value: &str) -> bytes::Bytes {
    let Some(end) = head.windows(2).position(|w| w == b"\r\n") else {
        return head;
    };
    let mut out = BytesMut::with_capacity(head.len() + name.len() + value.len() + 4);
    out.extend_from_slice(&head[..end + 2]);
    write_header(&mut out, name, value.as_bytes());
    out.extend_from_slice(&head[end + 2..]);
    out.freeze()
}

/// The response head to send the client. `keep_alive`: the client connection stays open
/// after this response. A `101` keeps its `Upgrade`. `edits` (affinity) may replace header
/// values (a re-tagged `Set-Cookie`) and add lines (tether's affinity cookie).
pub fn client_response(
    resp: &ResponseHead,
    server: &str,
    keep_alive: bool,
    edits: Option<&Edits>,
) -> BytesMut {
    let mut out = head_buf(resp.len() + 96);
    out.extend_from_slice(b"HTTP/1.1 ");
    // A status is 100-599 (parse_response refuses anything else): three digits.
    let s = resp.status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(resp.reason().as_bytes());
    out.extend_from_slice(b"\r\n");
    let named = Named::of(resp.connection());
    let mut kept = Lines::new(&resp.raw);
    for f in resp.field_lines() {
        let name = f.name;
        if not_passed_on(name, &named) {
            kept.flush(&mut out);
            continue;
        }
        match edits.and_then(|e| e.replaced(name, f.value)) {
            Some(new) => {
                kept.flush(&mut out);
                write_header(&mut out, name, new);
            }
            None => kept.keep(&mut out, f.line),
        }
    }
    kept.flush(&mut out);
    if let Some(e) = edits {
        out.extend_from_slice(e.add.as_bytes());
    }
    write_header(&mut out, "Server", server.as_bytes());
    // tether's own date (`with_date`: an IMF-fixdate, letters, digits, spaces, commas and
    // colons): written as it is, no check of its bytes.
    with_date(|d| {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(d.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
    if resp.body == BodyKind::Chunked {
        write_header(&mut out, "Transfer-Encoding", b"chunked");
    }
    if resp.status == 101 {
        write_header(&mut out, "Connection", b"upgrade");
        if let Some(u) = resp.header("upgrade") {
            write_header(&mut out, "Upgrade", u);
        }
    } else if !keep_alive {
        write_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The answer `resp` as the header list an HTTP/2 client gets (RFC 9113: names lowercase,
/// nothing connection-specific, no framing fields but `content-length`): the fields
/// `client_response` keeps, the affinity's `edits` applied, tether's `server` and the date.
/// Moved between the protocols as a list, never written as an HTTP/1.1 head and read back.
pub fn client_response_fields(
    resp: &ResponseHead,
    server: &str,
    edits: Option<&Edits>,
) -> Vec<(Bytes, Bytes)> {
    let named = Named::of(resp.connection());
    let mut out: Vec<(Bytes, Bytes)> = Vec::with_capacity(16);
    for f in resp.field_lines() {
        let name = f.name;
        if not_passed_on(name, &named) {
            continue;
        }
        out.push((
            Bytes::from(name.to_ascii_lowercase()),
            Bytes::copy_from_slice(f.value),
        ));
    }
    if let Some(e) = edits {
        crate::h2up::fields::apply_edits(&mut out, e);
    }
    out.push((
        Bytes::from_static(b"server"),
        Bytes::copy_from_slice(server.as_bytes()),
    ));
    with_date(|d| {
        out.push((
            Bytes::from_static(b"date"),
            Bytes::copy_from_slice(d.as_bytes()),
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_http::{parse_request, parse_response, Limits, Parsed};

    fn req(raw: &[u8]) -> RequestHead {
        match parse_request(raw, &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_fields_classified_as_is_hop_by_hop_says() {
        for name in [
            "Connection",
            "proxy-connection",
            "Keep-Alive",
            "TE",
            "Transfer-Encoding",
            "UPGRADE",
            "Host",
            "X-Forwarded-For",
            "x-real-ip",
            "X-Forwarded-Proto",
            "X-FORWARDED-HOST",
            "Accept",
            "te2",
            "Hos",
            "X-Forwarded-Fo",
            "Cookie",
        ] {
            let kind = request_field(name);
            assert_eq!(kind == ReqField::HopByHop, is_hop_by_hop(name), "{name}");
        }
        assert_eq!(request_field("HOST"), ReqField::Host);
        assert_eq!(request_field("x-forwarded-for"), ReqField::Xff);
        for ours in ["X-Real-IP", "x-forwarded-proto", "X-Forwarded-Host"] {
            assert_eq!(request_field(ours), ReqField::Ours, "{ours}");
        }
    }

    #[test]
    fn request_rewrite() {
        let r = req(b"GET /x?y HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 6.6.6.6\r\nAccept: */*\r\n\r\n");
        let out = upstream_request(&r, "127.0.0.9", false, "10.0.0.1:1".parse().unwrap(), None);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            s.starts_with("GET /x?y HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n"),
            "{s}"
        );
        assert!(
            !s.contains("X-Secret") && !s.contains("keep-alive") && !s.contains("6.6.6.6"),
            "{s}"
        );
        assert!(
            s.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.9\r\n"),
            "{s}"
        );
        assert!(s.contains("X-Real-IP: 127.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.example\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n") && !s.contains("Connection"), "{s}");
    }

    #[test]
    fn request_rewrite_http10_chunked_upgrade() {
        let r = req(b"GET / HTTP/1.0\r\n\r\n");
        let s = String::from_utf8(
            upstream_request(&r, "", false, "10.0.0.1:1".parse().unwrap(), None).to_vec(),
        )
        .unwrap();
        assert!(
            s.starts_with("GET / HTTP/1.0\r\nHost: 10.0.0.1:1\r\n")
                && s.contains("Connection: close\r\n"),
            "{s}"
        );
        let r = req(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        let s = String::from_utf8(
            upstream_request(&r, "", false, "10.0.0.1:1".parse().unwrap(), None).to_vec(),
        )
        .unwrap();
        assert_eq!(
            s.matches("Transfer-Encoding: chunked\r\n").count(),
            1,
            "{s}"
        );
        let r = req(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        let s = String::from_utf8(
            upstream_request(&r, "", false, "10.0.0.1:1".parse().unwrap(), None).to_vec(),
        )
        .unwrap();
        assert!(
            s.contains("Connection: upgrade\r\nUpgrade: websocket\r\n"),
            "{s}"
        );
    }

    #[test]
    fn fields_named_by_connection_are_dropped_however_many() {
        let many: Vec<String> = (0..12).map(|i| format!("X-H{i}")).collect();
        let mut raw = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: {}\r\n",
            many.join(", ")
        );
        for h in &many {
            raw.push_str(&format!("{h}: 1\r\n"));
        }
        raw.push_str("X-Kept: 1\r\n\r\n");
        for n in [1, 8, 12] {
            let cut = raw.replace(
                &format!("Connection: {}", many.join(", ")),
                &format!("Connection: {}", many[..n].join(", ")),
            );
            let out = upstream_request(
                &req(cut.as_bytes()),
                "",
                false,
                "10.0.0.1:1".parse().unwrap(),
                None,
            );
            let s = String::from_utf8(out.to_vec()).unwrap();
            for (i, h) in many.iter().enumerate() {
                assert_eq!(s.contains(&format!("{h}: ")), i >= n, "{n} named, {h}: {s}");
            }
            assert!(s.contains("X-Kept: 1\r\n"), "{s}");
        }
    }

    #[test]
    fn response_rewrite() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: python\r\nDate: x\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\n\r\nok";
        let resp = match parse_response(raw, false, &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{other:?}"),
        };
        let s = String::from_utf8(client_response(&resp, "tether", true, None).to_vec()).unwrap();
        assert!(
            s.starts_with(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: 1\r\nServer: tether\r\nDate: "
            ),
            "{s}"
        );
        assert!(
            !s.contains("python") && !s.contains("Keep-Alive") && !s.contains("Connection"),
            "{s}"
        );
        let s = String::from_utf8(client_response(&resp, "tether", false, None).to_vec()).unwrap();
        assert!(s.ends_with("Connection: close\r\n\r\n"), "{s}");
        for (status, line) in [
            (100, "HTTP/1.1 100 Continue\r\n"),
            (404, "HTTP/1.1 404 Not Found\r\n"),
            (599, "HTTP/1.1 599 X\r\n"),
        ] {
            let raw = line.to_string() + "Content-Length: 0\r\n\r\n";
            let resp = match parse_response(raw.as_bytes(), false, &Limits::default()) {
                Ok(Parsed::Complete(h)) => h,
                other => panic!("{other:?}"),
            };
            assert_eq!(resp.status, status);
            let s = String::from_utf8(client_response(&resp, "t", true, None).to_vec()).unwrap();
            assert!(s.starts_with(line), "{s}");
        }
    }

    /// The single-token fast path of `Named::of` names exactly what tokenising names.
    #[test]
    fn connection_fast_path_names_what_tokenising_names() {
        let slow = |v: &[u8]| -> Vec<String> {
            tether_http::connection_tokens(v)
                .filter(|t| !tether_http::is_hop_by_hop(t))
                .map(|t| t.to_ascii_lowercase())
                .collect()
        };
        let values: [&[u8]; 9] = [
            b"keep-alive",
            b"Keep-Alive",
            b"close",
            b"CLOSE",
            b"upgrade",
            b"keep-alive, X-Secret",
            b"close, keep-alive",
            b"x-secret",
            b"keep-alive,close",
        ];
        for v in values {
            let named = Named::of(Some(v));
            let fast: Vec<String> = match named.overflow {
                Some(_) => unreachable!("under eight tokens"),
                None => named.tokens[..named.n]
                    .iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect(),
            };
            assert_eq!(fast, slow(v), "{}", String::from_utf8_lossy(v));
            for name in ["close", "x-secret", "keep-alive", "accept"] {
                assert_eq!(
                    named.contains(name),
                    slow(v).iter().any(|t| t == name),
                    "{name} in {}",
                    String::from_utf8_lossy(v)
                );
            }
        }
        assert!(!Named::of(None).contains("close"));
    }
}
