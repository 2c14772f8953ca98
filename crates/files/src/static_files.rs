//! The `files` module of the http session: from a parsed request and a root directory to a
//! reply — a head (with any small body inline: status pages, listings, compressed bytes) and,
//! for a file body, the file range to stream after it. No sockets here: the session sends
//! the reply (`HttpSession::respond`), streaming the file with `sendfile(2)`.
//!
//! One request, in order (as nginx does it):
//! 1. GET and HEAD only (`405`); `paths::resolve` maps the path (`400`/`403`/`404`/`301`).
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
use tether_http::{Method, RequestHead};

use crate::listing;
use crate::paths::{self, Resolved, RootCache};
use tether_http::reply;

/// Files bigger than this are sent plain: compression runs in memory, on the loop thread,
/// and stalls every connection of the worker meanwhile (flate2 at level 6 on source text:
/// ~36 ms per MiB; 8 MiB would be ~290 ms).
pub const GZIP_MAX: u64 = 1 << 20;

pub use crate::INLINE_MAX;
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
    /// `alias`: this prefix (the route's path, no trailing `/`) is replaced by `root`
    /// instead of the whole path being appended to it (nginx's `alias`).
    pub alias_of: Option<String>,
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
    /// Serve a `.zst`, `.br` or `.gz` sibling of a file, when there is one, to a client
    /// that accepts its coding (Caddy's `precompressed`).
    pub precompressed: bool,
    /// `root`, opened (see `paths::RootCache`).
    opened: RootCache,
}

impl FileOptions {
    /// Serve `root` with `index.html`, listings on, gzip off (level 6, the default types).
    pub fn new(root: PathBuf) -> FileOptions {
        FileOptions {
            root,
            alias_of: None,
            index: vec![paths::INDEX.to_string()],
            listing: true,
            gzip: false,
            gzip_level: 6,
            gzip_types: DEFAULT_GZIP_TYPES.iter().map(|t| t.to_string()).collect(),
            precompressed: false,
            opened: RootCache::default(),
        }
    }
}

/// What to send.
pub struct FileReply {
    /// The status the head answers with.
    pub status: u16,
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
    let keep_alive = keep_alive && req.body.is_empty();
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
    // Under `alias`, the path below the route's prefix; the prefix goes back on what
    // names a URL (a directory's redirect, a listing).
    let (rel_path, prefix) = match &opts.alias_of {
        None => (req.path(), ""),
        Some(prefix) => match req.path().strip_prefix(prefix.as_str()) {
            Some("") => return cx.page(301, &format!("Location: {prefix}/\r\n")),
            Some(rest) if rest.starts_with('/') => (rest, prefix.as_str()),
            _ => return cx.page(404, ""),
        },
    };
    let root = opts.opened.get(&opts.root);
    // With `precompressed`, a file's siblings are looked for first (no kept-file shortcut).
    let kept = (!opts.precompressed)
        .then(|| root.as_ref().ok().and_then(|r| r.kept(rel_path)))
        .flatten();
    if let Some(kept) = kept {
        let src = Src::Kept(kept.bytes.clone());
        return serve_file(opts, &cx, &kept.path, src, kept.modified);
    }
    let resolved = match &root {
        Ok(root) => paths::resolve(root, rel_path, &opts.index),
        Err(_) => paths::check_path(rel_path).unwrap_or(Resolved::NotFound),
    };
    match resolved {
        Resolved::File(path, file, meta) => {
            if let Some(reply) = serve_sibling(opts, &cx, &path) {
                return reply;
            }
            // Asked by its own path (not as a directory's index file): keep it if small.
            let kept = match &root {
                Ok(root) if !rel_path.ends_with('/') => root.keep(rel_path, &path, &file),
                _ => None,
            };
            match kept {
                Some(k) => serve_file(opts, &cx, &path, Src::Kept(k.bytes.clone()), k.modified),
                None => serve_file(
                    opts,
                    &cx,
                    &path,
                    Src::Open(file, meta.len()),
                    meta.modified().ok(),
                ),
            }
        }
        Resolved::Directory { dir, url } if opts.listing => {
            serve_listing(opts, &cx, &dir, &format!("{prefix}{url}"))
        }
        Resolved::Directory { .. } => cx.page(403, ""),
        Resolved::Redirect(to) => cx.page(301, &format!("Location: {prefix}{to}\r\n")),
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
    /// A range of a kept file's bytes.
    Kept(Bytes),
    File(File, u64, u64),
}

/// Where a file's bytes come from: its descriptor (with its size), or memory
/// (`kept_files.rs`).
enum Src {
    Open(File, u64),
    Kept(Bytes),
}

impl Src {
    fn size(&self) -> u64 {
        match self {
            Src::Open(_, size) => *size,
            Src::Kept(b) => b.len() as u64,
        }
    }

    /// `len` bytes from `offset` (within the size).
    fn range(self, offset: u64, len: u64) -> Body {
        match self {
            Src::Open(f, _) => Body::File(f, offset, len),
            Src::Kept(b) => Body::Kept(b.slice(offset as usize..(offset + len) as usize)),
        }
    }
}

impl Cx<'_> {
    /// A status page (`response.rs`).
    fn page(&self, status: u16, extra: &str) -> FileReply {
        let text =
            reply::status_page_ka(status, self.server, extra, self.head_only, self.keep_alive);
        FileReply {
            status,
            head: text.into(),
            body: None,
            close: !self.keep_alive,
        }
    }

    /// Status line, `Server`, `Date`, `headers` (each line ending in CRLF, `Content-Length`
    /// included), `Connection: close` if the connection ends, the blank line, then the body
    /// (not for HEAD).
    fn reply(&self, status: u16, headers: &str, body: Body) -> FileReply {
        self.reply_with(
            status,
            |out| out.extend_from_slice(headers.as_bytes()),
            body,
        )
    }

    /// [`Cx::reply`] with the header lines written by `headers` straight into the head, and
    /// a small file body read into the same buffer: one allocation, one write.
    fn reply_with(&self, status: u16, headers: impl FnOnce(&mut Vec<u8>), body: Body) -> FileReply {
        let inline_len = match &body {
            Body::Inline(b) => b.len(),
            Body::Kept(b) => b.len(),
            Body::File(_, _, len) if *len <= INLINE_MAX => *len as usize,
            _ => 0,
        };
        let mut head = reply::Head::new(status, self.server, HEAD_ROOM + inline_len);
        headers(head.buf());
        let mut out = head.end(self.keep_alive);
        let file = match body {
            Body::Inline(b) if !self.head_only => {
                out.extend_from_slice(&b);
                None
            }
            Body::Kept(b) if !self.head_only => {
                out.extend_from_slice(&b);
                None
            }
            Body::File(f, offset, len) if !self.head_only && len > 0 => {
                (!inline(&mut out, &f, offset, len)).then_some((f, offset, len))
            }
            _ => None,
        };
        FileReply {
            status,
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

fn serve_file(
    opts: &FileOptions,
    cx: &Cx<'_>,
    path: &Path,
    src: Src,
    modified: Option<SystemTime>,
) -> FileReply {
    let size = src.size();
    let mtime = modified.and_then(unix_secs);
    let mime = paths::mime(path);
    let range = match cx.req.method {
        Method::Get => cx.header("Range"),
        _ => None,
    };
    let negotiable = opts.precompressed
        || opts.gzip
            && (GZIP_MIN..=GZIP_MAX).contains(&size)
            && type_listed(mime, &opts.gzip_types);
    let gzip = opts.gzip
        && (GZIP_MIN..=GZIP_MAX).contains(&size)
        && type_listed(mime, &opts.gzip_types)
        && range.is_none()
        && cx.accepts_gzip();
    let strong = Tag::new(modified, size, false);
    let v = Validators {
        tag: if gzip {
            Tag::new(modified, size, true)
        } else {
            strong
        },
        modified,
        vary: negotiable,
    };
    if not_modified(cx, v.tag.as_str(), mtime) {
        return cx.reply_with(304, |out| v.write(out), Body::None);
    }
    let content_type = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(mime.as_bytes());
        if paths::is_text(mime) {
            out.extend_from_slice(b"; charset=utf-8");
        }
        out.extend_from_slice(b"\r\n");
    };

    let range = match range {
        Some(r) if if_range_holds(cx.header("If-Range").as_deref(), strong.as_str(), mtime) => {
            parse_range(&r, size)
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
            let headers = |out: &mut Vec<u8>| {
                content_type(out);
                let text = format!("Content-Range: bytes {first}-{last}/{size}\r\n");
                out.extend_from_slice(text.as_bytes());
                push_field_dec(out, b"Content-Length", len);
                v.write(out);
            };
            cx.reply_with(206, headers, src.range(first, len))
        }
        ByteRange::Whole if gzip => match compress_src(&src, size, opts.gzip_level) {
            Ok(z) => {
                let len = z.len() as u64;
                let headers = |out: &mut Vec<u8>| {
                    content_type(out);
                    out.extend_from_slice(b"Content-Encoding: gzip\r\n");
                    push_field_dec(out, b"Content-Length", len);
                    v.write(out);
                };
                cx.reply_with(200, headers, Body::Inline(z))
            }
            Err(e) => {
                log::warn!("files: read {}: {e}", path.display());
                cx.page(500, "")
            }
        },
        ByteRange::Whole => {
            let headers = |out: &mut Vec<u8>| {
                content_type(out);
                push_field_dec(out, b"Content-Length", size);
                out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
                v.write(out);
            };
            cx.reply_with(200, headers, src.range(0, size))
        }
    }
}

/// `precompressed`: the `.zst`, `.br` or `.gz` sibling of `path` (a regular file, not a
/// link) whose coding the client accepts best, served whole with the file's
/// `Content-Type`, its `Content-Encoding` and `Vary: Accept-Encoding`. `None`: none applies
/// (off, a `Range`, nothing accepted or present): the file itself is served.
fn serve_sibling(opts: &FileOptions, cx: &Cx<'_>, path: &Path) -> Option<FileReply> {
    use tether_compress::{precompressed, Coding, DEFAULT_OFFERED};
    if !opts.precompressed || cx.header("Range").is_some() {
        return None;
    }
    let accept = cx.list("Accept-Encoding")?;
    let of = |c: Coding| {
        let mut p = path.as_os_str().to_owned();
        p.push(c.suffix());
        PathBuf::from(p)
    };
    let is_file = |c: Coding| std::fs::symlink_metadata(of(c)).is_ok_and(|m| m.is_file());
    let coding = precompressed(accept.as_bytes(), is_file, &DEFAULT_OFFERED)?;
    let file = File::open(of(coding)).ok()?;
    let meta = file.metadata().ok()?;
    let size = meta.len();
    let modified = meta.modified().ok();
    let v = Validators {
        tag: Tag::new(modified, size, false),
        modified,
        vary: true,
    };
    if not_modified(cx, v.tag.as_str(), modified.and_then(unix_secs)) {
        return Some(cx.reply_with(304, |out| v.write(out), Body::None));
    }
    let mime = paths::mime(path);
    let headers = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(mime.as_bytes());
        if paths::is_text(mime) {
            out.extend_from_slice(b"; charset=utf-8");
        }
        out.extend_from_slice(b"\r\nContent-Encoding: ");
        out.extend_from_slice(coding.name().as_bytes());
        out.extend_from_slice(b"\r\n");
        push_field_dec(out, b"Content-Length", size);
        v.write(out);
    };
    Some(cx.reply_with(200, headers, Src::Open(file, size).range(0, size)))
}

/// Room for a head without its variable parts (`Server`, the body).
const HEAD_ROOM: usize = 320;

/// The validators of a file response: `ETag`, `Last-Modified`, `Vary` (when a gzipped
/// variant exists).
struct Validators {
    tag: Tag,
    modified: Option<SystemTime>,
    vary: bool,
}

impl Validators {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"ETag: ");
        out.extend_from_slice(self.tag.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(t) = self.modified {
            out.extend_from_slice(b"Last-Modified: ");
            with_http_date(t, |d| out.extend_from_slice(d.as_bytes()));
            out.extend_from_slice(b"\r\n");
        }
        if self.vary {
            out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        }
    }
}

/// An entity-tag, formatted on the stack: `"<mtime ns>-<size>"` in hex, `-gz` appended for
/// the gzipped representation (see [`etag`]).
#[derive(Clone, Copy)]
struct Tag {
    buf: [u8; 64],
    len: usize,
}

impl Tag {
    fn new(modified: Option<SystemTime>, size: u64, gzip: bool) -> Tag {
        let ns = modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut t = Tag {
            buf: [0; 64],
            len: 0,
        };
        t.put(b"\"");
        t.put_hex(ns);
        t.put(b"-");
        t.put_hex(size.into());
        if gzip {
            t.put(b"-gz");
        }
        t.put(b"\"");
        t
    }

    fn put(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn put_hex(&mut self, v: u128) {
        let mut digits = [0u8; 32];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }

    fn as_str(&self) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// `value` in decimal.
fn push_dec(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `name: value` CRLF, the value in decimal.
fn push_field_dec(out: &mut Vec<u8>, name: &[u8], value: u64) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    push_dec(out, value);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The last `Last-Modified` value formatted on this thread, by its second.
    static LAST_MODIFIED: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// Call `f` with `t` as an HTTP date; the last one is kept per thread (a file served again
/// and again has the same modification time).
fn with_http_date<R>(t: SystemTime, f: impl FnOnce(&str) -> R) -> R {
    let secs = unix_secs(t);
    LAST_MODIFIED.with(|cell| {
        let mut c = cell.borrow_mut();
        match secs {
            Some(s) if c.0 == s => {}
            Some(s) => *c = (s, httpdate::fmt_http_date(t)),
            None => return f(&httpdate::fmt_http_date(t)),
        }
        f(&c.1)
    })
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

/// Gzip a file's `size` bytes at `level`.
fn compress_src(src: &Src, size: u64, level: u32) -> io::Result<Vec<u8>> {
    match src {
        Src::Open(file, _) => compress(&mut file.take(size), level),
        Src::Kept(bytes) => compress(&mut &bytes[..], level),
    }
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
    Tag::new(modified, size, false).as_str().to_string()
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
#[path = "static_files_tests.rs"]
mod tests;
