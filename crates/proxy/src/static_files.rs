//! The `files` module of the http session: from a parsed request and a root directory to a
//! reply — a head (with any small body inline: status pages, listings, compressed bytes) and,
//! for a file body, the file range to stream after it. No sockets here: the session sends
//! the reply (`HttpSession::respond`), streaming the file with `sendfile(2)`.
//!
//! One request, in order (as nginx does it):
//! 1. GET and HEAD only (`405`); `files::resolve` maps the path (`400`/`403`/`404`/`301`).
//! 2. A directory without an index file: the listing (`listing.rs`), or `403` when off.
//! 3. A file: validators (`ETag` from mtime and size, `Last-Modified`); `If-None-Match`, or
//!    else `If-Modified-Since`, may answer `304`.
//! 4. A single `Range` (GET only, honoured if `If-Range` matches): `206`, or `416` when it
//!    cannot be satisfied; several ranges get the whole file.
//! 5. gzip (when on, for a listed type, no `Range`, accepted by the client, not over
//!    [`GZIP_MAX`]): compressed in memory and sent inline; otherwise the file is streamed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use tether_http::{BodyKind, Method, RequestHead};

use crate::files::{self, Resolved};
use crate::{listing, response};

/// Files bigger than this are sent plain: compression runs in memory, on the loop thread,
/// and stalls every connection of the worker meanwhile (flate2 at level 6 on source text:
/// ~36 ms per MiB; 8 MiB would be ~290 ms).
pub const GZIP_MAX: u64 = 1 << 20;
/// File bodies up to this size are read and sent with the head (one write); bigger ones go
/// out with `sendfile(2)` after it. Measured with `wrk -t1 -c32` on loopback (2 cores): inline
/// is ~25-45% more requests/s for 1, 16 and 32 KiB files; at 64-256 KiB the two are within
/// noise, so sendfile (no copy, no buffer) takes over there.
pub const INLINE_MAX: u64 = 32 << 10;
/// Files smaller than this are not worth compressing (nginx's `gzip_min_length`).
pub const GZIP_MIN: u64 = 20;
/// The types compressed by default (with `gzip = true`).
pub const DEFAULT_GZIP_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "text/javascript",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xml",
];

/// How a directory is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    pub root: PathBuf,
    /// Index files tried in a directory, in order.
    pub index: Vec<String>,
    /// A directory without an index file gets an HTML listing (else `403`).
    pub listing: bool,
    /// Compress responses of the `gzip_types` for clients that accept gzip.
    pub gzip: bool,
    /// The gzip compression level, 0 (none) to 9 (best); above 9 counts as 9.
    pub gzip_level: u32,
    /// MIME types (without parameters) to compress; `*` for all.
    pub gzip_types: Vec<String>,
}

impl FileOptions {
    /// Serve `root` with `index.html`, listings on, gzip off (level 6, the default types).
    pub fn new(root: PathBuf) -> FileOptions {
        FileOptions {
            root,
            index: vec![files::INDEX.to_string()],
            listing: true,
            gzip: false,
            gzip_level: 6,
            gzip_types: DEFAULT_GZIP_TYPES.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// What to send.
pub struct FileReply {
    /// Status line, headers, blank line, and an inline body if any.
    pub head: Bytes,
    /// A file range to stream after the head: (file, offset, length).
    pub body: Option<(File, u64, u64)>,
    /// The connection cannot carry another request after this reply.
    pub close: bool,
}

/// Answer `req` from `opts.root`. `keep_alive`: the client's connection may carry more.
pub fn serve(opts: &FileOptions, req: &RequestHead, server: &str, keep_alive: bool) -> FileReply {
    // A body on a file route is not read: the connection cannot continue after it.
    let keep_alive = keep_alive && matches!(req.body, BodyKind::None | BodyKind::Length(0));
    let head_only = req.method == Method::Head;
    let cx = Cx {
        req,
        server,
        head_only,
        keep_alive,
    };
    if req.method != Method::Get && !head_only {
        return Cx {
            keep_alive: false,
            head_only: false,
            ..cx
        }
        .page(405, "Allow: GET, HEAD\r\n");
    }
    match files::resolve(&opts.root, req.path(), &opts.index) {
        Resolved::File(path, _) => serve_file(opts, &cx, &path),
        Resolved::Directory { dir, url } if opts.listing => serve_listing(opts, &cx, &dir, &url),
        Resolved::Directory { .. } => cx.page(403, ""),
        Resolved::Redirect(to) => cx.page(301, &format!("Location: {to}\r\n")),
        Resolved::NotFound => cx.page(404, ""),
        Resolved::Forbidden => cx.page(403, ""),
        Resolved::BadRequest => Cx {
            keep_alive: false,
            ..cx
        }
        .page(400, ""),
    }
}

/// The request being answered and how.
struct Cx<'a> {
    req: &'a RequestHead,
    server: &'a str,
    head_only: bool,
    keep_alive: bool,
}

enum Body {
    None,
    Inline(Vec<u8>),
    File(File, u64, u64),
}

impl Cx<'_> {
    /// A status page (`response.rs`), or tether's own for the statuses only files use.
    fn page(&self, status: u16, extra: &str) -> FileReply {
        let known = response::reason(status) != "Unknown";
        let text = if known {
            response::status_page_ka(status, self.server, extra, self.head_only, self.keep_alive)
        } else {
            let r = reason(status);
            let body = format!(
                "<html>\r\n<head><title>{status} {r}</title></head>\r\n<body>\r\n<center><h1>{status} {r}</h1></center>\r\n<hr><center>{}</center>\r\n</body>\r\n</html>\r\n",
                self.server
            );
            let headers = format!(
                "Content-Type: text/html\r\nContent-Length: {}\r\n{extra}",
                body.len()
            );
            return self.reply(status, &headers, Body::Inline(body.into_bytes()));
        };
        FileReply {
            head: text.into(),
            body: None,
            close: !self.keep_alive,
        }
    }

    /// Status line, `Server`, `Date`, `headers` (each line ending in CRLF, `Content-Length`
    /// included), `Connection: close` if the connection ends, the blank line, then the body
    /// (not for HEAD).
    fn reply(&self, status: u16, headers: &str, body: Body) -> FileReply {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nServer: {}\r\nDate: {}\r\n{headers}",
            reason(status),
            self.server,
            response::http_date()
        );
        if !self.keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        let file = match body {
            Body::Inline(b) if !self.head_only => {
                out.extend_from_slice(&b);
                None
            }
            Body::File(f, offset, len) if !self.head_only && len > 0 => {
                (!inline(&mut out, &f, offset, len)).then_some((f, offset, len))
            }
            _ => None,
        };
        FileReply {
            head: out.into(),
            body: file,
            close: !self.keep_alive,
        }
    }

    /// The first field `name`, as text.
    fn header(&self, name: &str) -> Option<String> {
        let v = self.req.header(name)?;
        Some(String::from_utf8_lossy(v).trim().to_string())
    }

    /// All fields `name` joined with `, ` (a list field may be split over several lines).
    fn list(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (k, v) in self.req.headers() {
            if k.eq_ignore_ascii_case(name) {
                let v = String::from_utf8_lossy(v);
                match &mut out {
                    Some(s) => {
                        s.push_str(", ");
                        s.push_str(&v);
                    }
                    None => out = Some(v.into_owned()),
                }
            }
        }
        out
    }

    fn accepts_gzip(&self) -> bool {
        self.list("Accept-Encoding")
            .is_some_and(|v| accepts_gzip(&v))
    }
}

/// Reason phrases, with the ones only files produce.
fn reason(status: u16) -> &'static str {
    match status {
        206 => "Partial Content",
        304 => "Not Modified",
        416 => "Range Not Satisfiable",
        s => response::reason(s),
    }
}

fn serve_file(opts: &FileOptions, cx: &Cx<'_>, path: &Path) -> FileReply {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("files: open {}: {e}", path.display());
            let status = if e.kind() == io::ErrorKind::NotFound {
                404
            } else {
                403
            };
            return cx.page(status, "");
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            log::warn!("files: stat {}: {e}", path.display());
            return cx.page(500, "");
        }
    };
    let size = meta.len();
    let modified = meta.modified().ok();
    let mtime = modified.and_then(unix_secs);
    let ctype = files::content_type(path);
    let strong = etag(modified, size);
    let range = match cx.req.method {
        Method::Get => cx.header("Range"),
        _ => None,
    };
    let negotiable =
        opts.gzip && (GZIP_MIN..=GZIP_MAX).contains(&size) && type_listed(&ctype, &opts.gzip_types);
    let gzip = negotiable && range.is_none() && cx.accepts_gzip();
    let tag = if gzip {
        gzip_etag(&strong)
    } else {
        strong.clone()
    };

    let mut validators = format!("ETag: {tag}\r\n");
    if let Some(t) = modified {
        validators.push_str(&format!(
            "Last-Modified: {}\r\n",
            httpdate::fmt_http_date(t)
        ));
    }
    if negotiable {
        validators.push_str("Vary: Accept-Encoding\r\n");
    }
    if not_modified(cx, &tag, mtime) {
        return cx.reply(304, &validators, Body::None);
    }

    let range = match range {
        Some(v) if if_range_holds(cx.header("If-Range").as_deref(), &strong, mtime) => {
            parse_range(&v, size)
        }
        _ => ByteRange::Whole,
    };
    match range {
        ByteRange::Unsatisfiable => {
            let extra = format!("Content-Range: bytes */{size}\r\n");
            cx.page(416, &extra)
        }
        ByteRange::Part(first, last) => {
            let len = last - first + 1;
            let headers = format!(
                "Content-Type: {ctype}\r\nContent-Range: bytes {first}-{last}/{size}\r\nContent-Length: {len}\r\n{validators}"
            );
            cx.reply(206, &headers, Body::File(file, first, len))
        }
        ByteRange::Whole if gzip => match compress(&mut (&file).take(size), opts.gzip_level) {
            Ok(z) => {
                let headers = format!(
                    "Content-Type: {ctype}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n{validators}",
                    z.len()
                );
                cx.reply(200, &headers, Body::Inline(z))
            }
            Err(e) => {
                log::warn!("files: read {}: {e}", path.display());
                cx.page(500, "")
            }
        },
        ByteRange::Whole => {
            let headers = format!(
                "Content-Type: {ctype}\r\nContent-Length: {size}\r\nAccept-Ranges: bytes\r\n{validators}"
            );
            cx.reply(200, &headers, Body::File(file, 0, size))
        }
    }
}

fn serve_listing(opts: &FileOptions, cx: &Cx<'_>, dir: &Path, url: &str) -> FileReply {
    let entries = match listing::entries(dir) {
        Ok(v) => v,
        Err(e) => {
            log::warn!("files: list {}: {e}", dir.display());
            let status = if e.kind() == io::ErrorKind::NotFound {
                404
            } else {
                403
            };
            return cx.page(status, "");
        }
    };
    let page = listing::render(url, &entries, cx.server).into_bytes();
    let ctype = "text/html; charset=utf-8";
    let mut headers = format!("Content-Type: {ctype}\r\n");
    let negotiable = opts.gzip && type_listed(ctype, &opts.gzip_types);
    let mut body = page;
    if negotiable {
        headers.push_str("Vary: Accept-Encoding\r\n");
        if cx.accepts_gzip() {
            if let Ok(z) = compress(&mut body.as_slice(), opts.gzip_level) {
                headers.push_str("Content-Encoding: gzip\r\n");
                body = z;
            }
        }
    }
    headers.push_str(&format!("Content-Length: {}\r\n", body.len()));
    cx.reply(200, &headers, Body::Inline(body))
}

/// Append a small file range (up to [`INLINE_MAX`]) to `out`: one write for head and body
/// instead of a write and a `sendfile`. False (and `out` as it was) for a larger range or a
/// failed read: the range then goes out with `sendfile`.
fn inline(out: &mut Vec<u8>, file: &File, offset: u64, len: u64) -> bool {
    if len > INLINE_MAX {
        return false;
    }
    let at = out.len();
    out.resize(at + len as usize, 0);
    let ok = file.read_exact_at(&mut out[at..], offset).is_ok();
    if !ok {
        out.truncate(at);
    }
    ok
}

/// Gzip what `src` yields at `level` (0–9).
fn compress(src: &mut impl Read, level: u32) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(level.min(9)));
    io::copy(src, &mut enc)?;
    enc.flush()?;
    enc.finish()
}

/// Seconds since the epoch (what HTTP dates can say).
fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Whether a type (`text/html; charset=utf-8`) is among `types` (`text/html`, or `*`).
fn type_listed(ctype: &str, types: &[String]) -> bool {
    let base = ctype.split(';').next().unwrap_or_default().trim();
    types
        .iter()
        .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case(base))
}

/// A strong entity-tag from the modification time (nanoseconds) and the size, in hex:
/// `"<mtime>-<size>"`.
pub fn etag(modified: Option<SystemTime>, size: u64) -> String {
    let ns = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{ns:x}-{size:x}\"")
}

/// The entity-tag of the gzipped representation: `"<mtime>-<size>-gz"`.
pub fn gzip_etag(strong: &str) -> String {
    let inner = strong.trim_matches('"');
    format!("\"{inner}-gz\"")
}

/// `If-None-Match` first (weak comparison), else `If-Modified-Since` (not modified since).
fn not_modified(cx: &Cx<'_>, tag: &str, mtime: Option<u64>) -> bool {
    if let Some(list) = cx.list("If-None-Match") {
        return etag_matches(&list, tag);
    }
    match (cx.header("If-Modified-Since"), mtime) {
        (Some(since), Some(m)) => httpdate::parse_http_date(&since)
            .ok()
            .and_then(unix_secs)
            .is_some_and(|since| m <= since),
        _ => false,
    }
}

/// Whether an `If-None-Match` list (`*`, or entity-tags, weak or strong) matches `tag` by
/// weak comparison (the opaque tags are equal). A malformed list matches what it matched
/// before the error.
pub fn etag_matches(list: &str, tag: &str) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let ours = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let r = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(r) = r.strip_prefix('"') else {
            return false;
        };
        let Some(end) = r.find('"') else {
            return false;
        };
        if ours == &r[..end] {
            return true;
        }
        rest = &r[end + 1..];
    }
}

/// Whether a `Range` may be honoured given `If-Range` (absent: yes). An entity-tag must equal
/// `strong` (strong comparison: a weak tag never does); a date must equal the modification
/// time to the second.
pub fn if_range_holds(if_range: Option<&str>, strong: &str, mtime: Option<u64>) -> bool {
    let Some(v) = if_range.map(str::trim) else {
        return true;
    };
    if v.starts_with("W/") {
        return false;
    }
    if v.starts_with('"') {
        return v == strong;
    }
    let date = httpdate::parse_http_date(v).ok().and_then(unix_secs);
    date.is_some() && date == mtime
}

/// What a `Range` field asks of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Serve the whole representation (no usable single range: malformed, another unit,
    /// or several ranges).
    Whole,
    /// Bytes `first..=last`, within the size.
    Part(u64, u64),
    /// `416`: the range starts at or after the end.
    Unsatisfiable,
}

/// Parse a `Range` value: one of `bytes=a-b`, `bytes=a-`, `bytes=-n`.
pub fn parse_range(value: &str, size: u64) -> ByteRange {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Whole;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return ByteRange::Whole;
    };
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    // Numbers too big for u64 are simply huge.
    let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    if a.is_empty() {
        if !digits(b) {
            return ByteRange::Whole;
        }
        let n = number(b);
        if n == 0 || size == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Part(size - n.min(size), size - 1);
    }
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return ByteRange::Whole;
    }
    let first = number(a);
    let last = if b.is_empty() { u64::MAX } else { number(b) };
    if last < first {
        return ByteRange::Whole;
    }
    if first >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(first, last.min(size - 1))
}

/// Whether an `Accept-Encoding` value accepts gzip: `gzip` (or `x-gzip`) with q > 0, or
/// `*` with q > 0 when gzip is not named.
pub fn accepts_gzip(value: &str) -> bool {
    let mut gzip: Option<bool> = None;
    let mut star: Option<bool> = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let mut ok = true;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    ok = v.trim().parse::<f32>().is_ok_and(|q| q > 0.0 && q <= 1.0);
                }
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.unwrap_or(false) || ok);
        } else if coding == "*" {
            star = Some(ok);
        }
    }
    gzip.or(star).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_http::{parse_request, Limits, Parsed};

    /// A reply taken apart: the head, the body (inline bytes, then the streamed range read
    /// from the file), and whether part of it was streamed.
    struct Got {
        head: String,
        body: Vec<u8>,
        streamed: bool,
    }

    impl Got {
        fn field(&self, name: &str) -> Option<&str> {
            self.head.lines().find_map(|l| {
                let (k, v) = l.split_once(": ")?;
                k.eq_ignore_ascii_case(name).then_some(v)
            })
        }
        fn status(&self) -> &str {
            self.head.get(9..12).unwrap_or_default()
        }
    }

    fn send(opts: &FileOptions, method: &str, path: &str, fields: &str) -> Got {
        let text = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        let req = match parse_request(text.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{other:?}"),
        };
        let r = serve(opts, &req, "tether", true);
        assert!(!r.close);
        let n = r
            .head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("blank")
            + 4;
        let mut body = r.head[n..].to_vec();
        let streamed = r.body.is_some();
        if let Some((f, offset, len)) = r.body {
            let mut more = vec![0; len as usize];
            f.read_exact_at(&mut more, offset).expect("range in file");
            body.extend_from_slice(&more);
        }
        let head = String::from_utf8_lossy(&r.head[..n]).to_string();
        Got {
            head,
            body,
            streamed,
        }
    }

    fn get(opts: &FileOptions, path: &str, fields: &str) -> Got {
        send(opts, "GET", path, fields)
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    struct Root(PathBuf);
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn root(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("tether-sf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("d")).expect("temp dir");
        Root(p)
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        let cases = [
            ("bytes=10-19", Part(10, 19)),
            ("bytes=10-", Part(10, 99)),
            ("bytes=-10", Part(90, 99)),
            ("bytes=-1000", Part(0, 99)),
            ("bytes=90-1000", Part(90, 99)),
            ("BYTES = 0-0", Part(0, 0)),
            ("bytes=99999999999999999999999-", Unsatisfiable),
            ("bytes=100-", Unsatisfiable),
            ("bytes=100-200", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=0-1,5-6", Whole),
            ("bytes=5-4", Whole),
            ("bytes=a-b", Whole),
            ("bytes=-", Whole),
            ("bytes=", Whole),
            ("items=0-1", Whole),
            ("0-1", Whole),
            ("bytes=+1-2", Whole),
        ];
        for (v, want) in cases {
            assert_eq!(parse_range(v, 100), want, "{v}");
        }
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn etags() {
        let t = etag(
            Some(UNIX_EPOCH + std::time::Duration::from_nanos(0x1234)),
            0x56,
        );
        assert_eq!(t, "\"1234-56\"");
        assert_eq!(gzip_etag(&t), "\"1234-56-gz\"");
        let lists = [
            ("\"1234-56\"", true),
            ("W/\"1234-56\"", true),
            ("\"x\", W/\"1234-56\"", true),
            ("*", true),
            ("\"x\",\"y\"", false),
            ("\"1234-56-gz\"", false),
            ("1234-56", false),
            ("\"1234-56", false),
            ("", false),
        ];
        for (list, want) in lists {
            assert_eq!(etag_matches(list, &t), want, "{list}");
        }
        let date = |s| if_range_holds(Some(s), &t, Some(5));
        assert!(if_range_holds(None, &t, Some(5)));
        assert!(date(&t) && !date("W/\"1234-56\"") && !date("\"other\"") && !date("garbage"));
        assert!(date("Thu, 01 Jan 1970 00:00:05 GMT"));
        assert!(!date("Thu, 01 Jan 1970 00:00:06 GMT"));
    }

    #[test]
    fn accept_encoding() {
        let cases = [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("*", true),
            ("br, *;q=0.1", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("gzip;q=0, *", false),
            ("*;q=0", false),
            ("deflate, br", false),
            ("identity", false),
            ("gzip;q=bad", false),
            ("", false),
        ];
        for (v, want) in cases {
            assert_eq!(accepts_gzip(v), want, "{v}");
        }
    }

    #[test]
    fn gzip_when_accepted() {
        let r = root("gzip");
        let text = "hello, compressible world\n".repeat(200);
        for name in ["t.txt", "p.png"] {
            std::fs::write(r.0.join(name), &text).expect("write");
        }
        std::fs::write(r.0.join("tiny.txt"), "hi").expect("write");
        let mut opts = FileOptions::new(r.0.clone());
        opts.gzip = true;
        let ae = "Accept-Encoding: gzip, deflate\r\n";

        let g = get(&opts, "/t.txt", ae);
        assert_eq!(g.status(), "200", "{}", g.head);
        assert_eq!(g.field("Content-Encoding"), Some("gzip"), "{}", g.head);
        assert_eq!(g.field("Vary"), Some("Accept-Encoding"));
        assert_eq!(
            g.field("Content-Length"),
            Some(g.body.len().to_string().as_str())
        );
        assert_eq!(g.field("Accept-Ranges"), None);
        assert!(!g.streamed && g.body.len() < text.len());
        assert_eq!(gunzip(&g.body), text.as_bytes());
        let tag = g.field("ETag").expect("etag").to_string();
        assert!(tag.ends_with("-gz\""), "{tag}");
        // The gzip ETag revalidates the gzip reply.
        let g = get(&opts, "/t.txt", &format!("{ae}If-None-Match: {tag}\r\n"));
        assert_eq!((g.status(), g.body.len()), ("304", 0), "{}", g.head);
        // HEAD: the same head, no body.
        let h = send(&opts, "HEAD", "/t.txt", ae);
        assert_eq!(h.field("Content-Encoding"), Some("gzip"));
        assert!(h.field("Content-Length").is_some() && h.body.is_empty());

        // Plain: no Accept-Encoding, q=0, a Range, a type not listed, a tiny file.
        let plain = [
            ("/t.txt", String::new(), true),
            ("/t.txt", "Accept-Encoding: gzip;q=0\r\n".to_string(), true),
            ("/t.txt", format!("{ae}Range: bytes=0-9\r\n"), true),
            ("/p.png", ae.to_string(), false),
            ("/tiny.txt", ae.to_string(), false),
        ];
        for (path, fields, vary) in plain {
            let g = get(&opts, path, &fields);
            assert_eq!(g.field("Content-Encoding"), None, "{path} {fields}");
            assert_eq!(g.field("Vary").is_some(), vary, "{path} {fields}");
            assert!(text.as_bytes().starts_with(&g.body) || g.body == b"hi");
        }
        opts.gzip = false;
        let g = get(&opts, "/t.txt", ae);
        assert_eq!((g.field("Content-Encoding"), g.field("Vary")), (None, None));
        assert_eq!(g.body, text.as_bytes());

        // Over the cap: plain, streamed.
        opts.gzip = true;
        let big = vec![b'a'; GZIP_MAX as usize + 1];
        std::fs::write(r.0.join("big.txt"), &big).expect("write");
        let g = get(&opts, "/big.txt", ae);
        assert_eq!(g.field("Content-Encoding"), None, "{}", g.head);
        assert!(g.streamed && g.body == big);

        // Level 0 still makes valid gzip; the listing is compressed too.
        opts.gzip_level = 0;
        assert_eq!(gunzip(&get(&opts, "/t.txt", ae).body), text.as_bytes());
        let g = get(&opts, "/d/", ae);
        assert_eq!(g.field("Content-Encoding"), Some("gzip"), "{}", g.head);
        assert!(String::from_utf8_lossy(&gunzip(&g.body)).contains("Index of /d/"));
    }

    #[test]
    fn conditional_and_ranges() {
        let r = root("cond");
        let data: Vec<u8> = (0..100u8).collect();
        std::fs::write(r.0.join("f.bin"), &data).expect("write");
        let big: Vec<u8> = (0..INLINE_MAX as usize + 10).map(|i| i as u8).collect();
        std::fs::write(r.0.join("big.bin"), &big).expect("write");
        let opts = FileOptions::new(r.0.clone());
        let g = get(&opts, "/f.bin", "");
        assert_eq!(g.field("Accept-Ranges"), Some("bytes"));
        assert!(g.body == data && !g.streamed);
        let tag = g.field("ETag").expect("etag").to_string();
        let lm = g.field("Last-Modified").expect("last-modified").to_string();
        let g = get(&opts, "/big.bin", "");
        assert!(g.body == big && g.streamed);

        let g = get(&opts, "/f.bin", &format!("If-None-Match: \"a\", {tag}\r\n"));
        assert!(
            g.head.starts_with("HTTP/1.1 304 Not Modified\r\n"),
            "{}",
            g.head
        );
        assert_eq!(g.field("ETag"), Some(tag.as_str()));
        assert_eq!(g.field("Content-Length"), None);
        assert!(g.body.is_empty() && g.field("Connection").is_none());
        let g = get(&opts, "/f.bin", &format!("If-Modified-Since: {lm}\r\n"));
        assert_eq!(g.status(), "304");
        // If-None-Match wins over If-Modified-Since.
        let both = format!("If-None-Match: \"a\"\r\nIf-Modified-Since: {lm}\r\n");
        assert_eq!(get(&opts, "/f.bin", &both).status(), "200");
        let old = "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        assert_eq!(get(&opts, "/f.bin", old).status(), "200");

        let g = get(&opts, "/f.bin", "Range: bytes=10-19\r\n");
        assert!(
            g.head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{}",
            g.head
        );
        assert_eq!(g.field("Content-Range"), Some("bytes 10-19/100"));
        assert_eq!(g.field("Content-Length"), Some("10"));
        assert_eq!(g.body, &data[10..20]);
        let g = get(&opts, "/big.bin", "Range: bytes=1-\r\n");
        assert!(g.body == big[1..] && g.streamed);
        let g = get(&opts, "/f.bin", "Range: bytes=100-\r\n");
        assert!(
            g.head.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"),
            "{}",
            g.head
        );
        assert_eq!(g.field("Content-Range"), Some("bytes */100"));
        assert_eq!(
            g.field("Content-Length"),
            Some(g.body.len().to_string().as_str())
        );
        let g = get(
            &opts,
            "/f.bin",
            &format!("Range: bytes=-5\r\nIf-Range: {tag}\r\n"),
        );
        assert_eq!((g.status(), g.body.as_slice()), ("206", &data[95..]));
        let g = get(&opts, "/f.bin", "Range: bytes=-5\r\nIf-Range: \"old\"\r\n");
        assert_eq!((g.status(), g.body.as_slice()), ("200", &data[..]));

        // HEAD ignores Range and sends no body.
        let h = send(&opts, "HEAD", "/f.bin", "Range: bytes=0-1\r\n");
        assert_eq!((h.status(), h.body.len()), ("200", 0));
        assert_eq!(h.field("Content-Length"), Some("100"));
    }

    #[test]
    fn listing_on_and_off() {
        let r = root("list");
        std::fs::write(r.0.join("d/a b&c.txt"), "x").expect("write");
        let mut opts = FileOptions::new(r.0.clone());
        let g = get(&opts, "/d/", "");
        assert_eq!(g.status(), "200", "{}", g.head);
        assert_eq!(g.field("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            g.field("Content-Length"),
            Some(g.body.len().to_string().as_str())
        );
        let page = String::from_utf8_lossy(&g.body);
        assert!(
            page.contains("href=\"a%20b%26c.txt\">a b&amp;c.txt<"),
            "{page}"
        );
        opts.listing = false;
        assert_eq!(get(&opts, "/d/", "").status(), "403");
        opts.index = vec!["a b&c.txt".to_string()];
        assert_eq!(get(&opts, "/d/", "").body, b"x");
    }
}
