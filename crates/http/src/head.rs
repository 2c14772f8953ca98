//! What request and response heads share: the limits, the `Parsed` result, `Version`,
//! `BodyKind`, and how a head is kept — its raw bytes plus spans into them (`Span`,
//! `Fields`), so parsing allocates one `Bytes` and one `Vec` per head, never a `String` per
//! header. Also what both parsers check around the scanner (`scan.rs`): the one tolerated
//! leading CRLF, and the limits.

/// Size limits for a head. Exceeding them is `431` (head, header count) or `414` (target)
/// for a request, `502` for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head in bytes, request/status line through the final CRLFCRLF (16384).
    pub max_head: usize,
    /// Longest request-target in bytes (8192).
    pub max_uri: usize,
    /// Most header fields in one head (100).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16384,
            max_uri: 8192,
            max_headers: 100,
        }
    }
}

/// The outcome of parsing bytes that may not hold a whole head yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is not complete yet: read more and call again with all the bytes.
    Partial,
    /// The head is complete.
    Complete(T),
}

impl<T> Parsed<T> {
    /// The head, if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Parsed::Partial => None,
            Parsed::Complete(t) => Some(t),
        }
    }

    /// Whether more bytes are needed.
    pub fn is_partial(&self) -> bool {
        matches!(self, Parsed::Partial)
    }
}

/// The protocol version of a message. Anything other than 1.0 and 1.1 is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    pub(crate) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// How the body after a head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: the next message starts right after the head.
    None,
    /// Exactly this many bytes (`Content-Length`; `Length(0)` when it says 0).
    Length(u64),
    /// A chunked body: find its end with `ChunkedScanner`.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

impl BodyKind {
    /// No body byte follows the head: none at all, or `Content-Length: 0`. A message with
    /// any other body leaves bytes the reader must consume (or close the connection on).
    pub fn is_empty(&self) -> bool {
        matches!(self, BodyKind::None | BodyKind::Length(0))
    }
}

/// A byte range of a head's `raw` bytes. `u32` is plenty: heads are capped by `max_head`,
/// and the parsers never look at more than `u32::MAX` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, a subslice of `base`; empty if `part` is not inside `base` (as
    /// httparse's `""` for a reason phrase with obs-text is not).
    pub(crate) fn of(base: &[u8], part: &[u8]) -> Span {
        let base_start = base.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        match start.checked_sub(base_start) {
            Some(offset) if offset + part.len() <= base.len() => {
                Span::range(offset, offset + part.len())
            }
            _ => Span::default(),
        }
    }

    pub(crate) fn range(start: usize, end: usize) -> Span {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span {
            start: clamp(start),
            end: clamp(end),
        }
    }

    pub(crate) fn get(self, raw: &[u8]) -> &[u8] {
        raw.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    pub(crate) fn get_str(self, raw: &[u8]) -> &str {
        let b = self.get(raw);
        if b.is_ascii() {
            // SAFETY: ASCII is valid UTF-8. (Names, methods, targets are ASCII: checking that
            // is several times cheaper than `from_utf8` on these short strings, and they are
            // read for every header of every message.)
            unsafe { std::str::from_utf8_unchecked(b) }
        } else {
            std::str::from_utf8(b).unwrap_or_default()
        }
    }

    /// A field name's text, without checking it again: see `Fields`.
    pub(crate) fn name_str(self, raw: &[u8]) -> &str {
        let b = self.get(raw);
        // SAFETY: every name span in a `Fields` is one the scanner (`scan.rs`) checked to be
        // token bytes (ASCII) in `raw`, the immutable head those spans were made for (or an
        // empty span): the bytes are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(b) }
    }

    pub(crate) fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub(crate) fn start(self) -> usize {
        self.start as usize
    }
}

/// The header fields of a head, as (name, value) spans in order. The name spans are pushed
/// only by the scanner (`scan.rs`), which checked them to be token bytes, so they are read
/// back as text without a check (`Span::name_str`).
///
/// Their tables are recycled: a dropped head's table goes to a small per-thread list and the
/// next head parsed on that thread takes it, so a proxy's steady state (one request head and
/// one response head per exchange) allocates none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    list: Vec<(Span, Span)>,
}

/// Tables kept per thread, and the largest kept (in fields; a head with more gets its own).
const SPARE_TABLES: usize = 32;
const SPARE_FIELDS: usize = 64;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<(Span, Span)>>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

impl Drop for Fields {
    fn drop(&mut self) {
        let cap = self.list.capacity();
        if cap == 0 || cap > SPARE_FIELDS {
            return;
        }
        let list = std::mem::take(&mut self.list);
        // (`try_with`: nothing to keep while the thread's locals are being torn down.)
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                if spare.len() < SPARE_TABLES {
                    spare.push(list);
                }
            }
        });
    }
}

impl Fields {
    pub(crate) fn with_capacity(n: usize) -> Self {
        let spare = if n <= SPARE_FIELDS {
            SPARE
                .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()))
                .ok()
                .flatten()
        } else {
            None
        };
        let list = match spare {
            Some(mut list) => {
                list.clear();
                list.reserve(n);
                list
            }
            None => Vec::with_capacity(n.max(16)),
        };
        Fields { list }
    }

    /// `name`: a span of token bytes (see above).
    #[inline]
    pub(crate) fn push(&mut self, name: Span, value: Span) {
        self.list.push((name, value));
    }

    /// The (name, value) spans in order.
    pub(crate) fn entries(&self) -> &[(Span, Span)] {
        &self.list
    }

    pub(crate) fn iter<'a>(&'a self, raw: &'a [u8]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.list
            .iter()
            .map(move |(n, v)| (n.name_str(raw), v.get(raw)))
    }

    /// The fields with their whole lines: line `i` runs from name `i` to name `i + 1` (the
    /// last one to the empty line), CRLF included — the parsers checked every line end
    /// (`scan.rs`), so these are exactly the lines as sent.
    pub(crate) fn lines<'a>(&'a self, raw: &'a [u8]) -> impl Iterator<Item = FieldLine<'a>> {
        let last = raw.len().saturating_sub(2);
        self.list.iter().enumerate().map(move |(i, (n, v))| {
            let end = self.list.get(i + 1).map_or(last, |(next, _)| next.start());
            FieldLine {
                name: n.name_str(raw),
                value: v.get(raw),
                line: n.start()..end.max(n.start()),
            }
        })
    }

    pub(crate) fn get<'a>(&self, raw: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.list
            .iter()
            .find(|(n, _)| {
                n.len() == name.len() && n.get(raw).eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|(_, v)| v.get(raw))
    }
}

/// One header field of a parsed head, with where its whole line lies in the head's `raw`
/// bytes (`Name: value` through its CRLF, exactly as sent): a proxy that forwards the field
/// unchanged copies the line, and consecutive lines in one copy, instead of writing it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLine<'a> {
    /// The name, as sent.
    pub name: &'a str,
    /// The value, trimmed of surrounding whitespace.
    pub value: &'a [u8],
    /// The line's byte range in `raw`, CRLF included.
    pub line: std::ops::Range<usize>,
}

/// The field table's first capacity: most heads have fewer fields (a larger one grows).
pub(crate) const FIELDS_HINT: usize = 16;

/// How many field lines a head may have: the limit, but never more than the window could
/// hold (a field line is at least `a:` CRLF, 4 bytes) — as httparse's header slots were
/// counted, so a head refused for too many fields is the same head as before.
pub(crate) fn slot_count(limits: &Limits, window: usize) -> usize {
    limits.max_headers.min(window / 4 + 1)
}

/// The part of `buf` a parser looks at: at most `max_head` bytes (and never more than
/// `u32::MAX`, so spans fit). If the head is not complete inside it, the head is too big.
pub(crate) fn window<'b>(buf: &'b [u8], limits: &Limits) -> &'b [u8] {
    &buf[..buf.len().min(head_cap(limits))]
}

/// Whether a head still incomplete in `window` is already over the size limit.
pub(crate) fn window_full(window: &[u8], limits: &Limits) -> bool {
    window.len() >= head_cap(limits)
}

pub(crate) fn head_cap(limits: &Limits) -> usize {
    limits.max_head.min(u32::MAX as usize)
}

/// Leading empty lines before the request/status line. RFC 9112 §2.2 asks a server to ignore
/// at least one CRLF there (some clients send one after a body); we tolerate exactly one
/// CRLF, which then counts as part of the head (so `raw` and `len()` agree). A bare LF, a
/// second empty line or a CR without LF is refused.
///
/// `Ok(None)`: not enough bytes to tell. `Ok(Some(n))`: the first line starts at `n`.
pub(crate) fn leading_empty_line(window: &[u8]) -> Result<Option<usize>, &'static str> {
    match window {
        [] | [b'\r'] | [b'\r', b'\n'] => Ok(None),
        [b'\n', ..] => Err("bare LF before the first line"),
        [b'\r', b'\n', b'\r' | b'\n', ..] => Err("more than one empty line before the first line"),
        [b'\r', b'\n', ..] => Ok(Some(2)),
        [b'\r', ..] => Err("bare CR before the first line"),
        _ => Ok(Some(0)),
    }
}

/// What a bare LF is called in a refusal. httparse (and the scanner, which reads what it
/// reads) accepts LF alone as a line end; a backend that does not would read the fields
/// differently from us (one field's value swallowing the next field), which is exactly a
/// request-smuggling gap. So every LF in a head must follow a CR: the scanner notes any line
/// ended by a bare LF (`scan::Scanned::bare_lf`) and the parsers refuse the head.
pub(crate) const BARE_LF: &str = "bare LF in head";

/// The plain definition, for tests: every LF has a CR right before it.
#[cfg(test)]
pub(crate) fn check_line_ends(raw: &[u8]) -> Result<(), &'static str> {
    let bare = raw
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
    if bare {
        Err(BARE_LF)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_line_ends;

    /// The plain definition: every LF has a CR right before it.
    fn bare_lf(raw: &[u8]) -> bool {
        check_line_ends(raw).is_err()
    }

    /// The parsers note bare LFs while scanning, not in a second pass: on heads
    /// made of random fields whose lines end in CRLF or, now and then, a bare LF (anywhere:
    /// the start line, any field, the empty line), they refuse exactly the heads the plain
    /// definition refuses.
    #[test]
    fn parsers_refuse_exactly_the_heads_with_a_bare_lf() {
        use crate::{parse_request, parse_response};
        let limits = Limits::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut ok, mut bad) = (0, 0);
        for fields in 0..12 {
            for _ in 0..200 {
                let mut eol = || -> &'static [u8] {
                    if next() % 12 == 0 {
                        b"\n"
                    } else {
                        b"\r\n"
                    }
                };
                let mut req = b"GET / HTTP/1.1".to_vec();
                req.extend_from_slice(eol());
                req.extend_from_slice(b"Host: a");
                req.extend_from_slice(eol());
                let mut resp = b"HTTP/1.1 200 OK".to_vec();
                resp.extend_from_slice(eol());
                for i in 0..fields {
                    let line = format!("X-F{i}: v{i} w");
                    req.extend_from_slice(line.as_bytes());
                    req.extend_from_slice(eol());
                    resp.extend_from_slice(line.as_bytes());
                    resp.extend_from_slice(eol());
                }
                req.extend_from_slice(eol());
                resp.extend_from_slice(eol());
                let r = parse_request(&req, &limits);
                assert_eq!(
                    r.is_err(),
                    bare_lf(&req),
                    "{:?}: {r:?}",
                    String::from_utf8_lossy(&req)
                );
                assert!(r.is_err() || !r.as_ref().is_ok_and(|p| p.is_partial()));
                let r = parse_response(&resp, false, &limits);
                assert_eq!(
                    r.is_err(),
                    bare_lf(&resp),
                    "{:?}: {r:?}",
                    String::from_utf8_lossy(&resp)
                );
                if bare_lf(&req) {
                    bad += 1;
                } else {
                    ok += 1;
                }
            }
        }
        assert!(ok > 300 && bad > 300, "{ok} clean, {bad} with a bare LF");
    }

    use super::*;

    #[test]
    fn field_lines_are_the_lines_as_sent() {
        use crate::{parse_request, parse_response};
        let raw = b"\r\nGET / HTTP/1.1\r\nHost: a\r\nX-A:  1 \t\r\nX-B:\r\n\r\nrest";
        let h = parse_request(raw, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        let lines: Vec<(&str, &[u8], &[u8])> = h
            .field_lines()
            .map(|f| (f.name, f.value, &h.raw[f.line]))
            .collect();
        let want: [(&str, &[u8], &[u8]); 3] = [
            ("Host", b"a", b"Host: a\r\n"),
            ("X-A", b"1", b"X-A:  1 \t\r\n"),
            ("X-B", b"", b"X-B:\r\n"),
        ];
        assert_eq!(lines, want);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length:0\r\nX:y\r\n\r\n";
        let h = parse_response(raw, false, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        let lines: Vec<&[u8]> = h.field_lines().map(|f| &h.raw[f.line]).collect();
        assert_eq!(lines, [&b"Content-Length:0\r\n"[..], b"X:y\r\n"]);
        let raw = b"HTTP/1.1 204 No Content\r\n\r\n";
        let h = parse_response(raw, false, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(h.field_lines().count(), 0);
    }

    #[test]
    fn connection_is_the_first_connection_field() {
        use crate::{parse_request, parse_response};
        let l = Limits::default();
        for (raw, want) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], None),
            (b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: a\r\nCONNECTION:  close, x \r\nConnection: y\r\n\r\n", Some(&b"close, x"[..])),
        ] {
            let h = parse_request(raw, &l).unwrap().complete().unwrap();
            assert_eq!(h.connection(), want);
            assert_eq!(h.connection(), h.header("connection"));
        }
        let raw = b"HTTP/1.1 200 OK\r\nKeep-Alive: 5\r\nconnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        let h = parse_response(raw, false, &l).unwrap().complete().unwrap();
        assert_eq!(h.connection(), Some(&b"keep-alive"[..]));
        let raw = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            parse_response(raw, false, &l)
                .unwrap()
                .complete()
                .unwrap()
                .connection(),
            None
        );
    }

    #[test]
    fn field_tables_are_recycled_per_thread() {
        let a = Fields::with_capacity(5);
        let ptr = a.list.as_ptr();
        drop(a);
        let b = Fields::with_capacity(9);
        assert_eq!(b.list.as_ptr(), ptr, "the dropped table is taken again");
        assert!(b.list.is_empty() && b.list.capacity() >= 9);
        // A table too large to keep is not kept; a head with many fields gets its own.
        let kept = || SPARE.with(|s| s.borrow().len());
        let before = kept();
        drop(Fields::with_capacity(SPARE_FIELDS + 1));
        assert_eq!(kept(), before);
        assert!(Fields::with_capacity(SPARE_FIELDS + 10).list.capacity() >= SPARE_FIELDS + 10);
        drop(b);
        assert_eq!(kept(), before + 1);
    }

    #[test]
    fn leading_lines() {
        assert_eq!(leading_empty_line(b""), Ok(None));
        assert_eq!(leading_empty_line(b"\r"), Ok(None));
        assert_eq!(leading_empty_line(b"\r\n"), Ok(None));
        assert_eq!(leading_empty_line(b"\r\nG"), Ok(Some(2)));
        assert_eq!(leading_empty_line(b"GET"), Ok(Some(0)));
        assert!(leading_empty_line(b"\nGET").is_err());
        assert!(leading_empty_line(b"\r\n\r\nGET").is_err());
        assert!(leading_empty_line(b"\r\n\nGET").is_err());
        assert!(leading_empty_line(b"\rGET").is_err());
    }

    #[test]
    fn line_ends() {
        assert!(check_line_ends(b"a\r\nb\r\n\r\n").is_ok());
        assert!(check_line_ends(b"").is_ok());
        assert!(check_line_ends(b"\n").is_err());
        assert!(check_line_ends(b"a\r\nb\n\r\n").is_err());
        assert!(check_line_ends(b"a\r\nb\r\n\n").is_err());
    }

    #[test]
    fn spans() {
        let raw = b"hello world";
        let s = Span::of(raw, &raw[6..]);
        assert_eq!(s.get(raw), b"world");
        assert_eq!(s.get_str(raw), "world");
        assert_eq!(s.len(), 5);
        assert_eq!(Span::range(3, 100).get(raw), b"");
        assert_eq!(Span::of(raw, b"elsewhere"), Span::default());
        assert_eq!(Span::of(&raw[..5], &raw[3..8]), Span::default());
    }

    #[test]
    fn slot_count_is_bounded_by_window() {
        let l = Limits {
            max_headers: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(slot_count(&l, 40), 11);
        assert_eq!(slot_count(&Limits::default(), 1 << 20), 100);
    }
}
