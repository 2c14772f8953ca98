//! Header blocks: decoded with HPACK (nghttp2's inflater, by `libnghttp2-sys`: a
//! table-driven Huffman decoder, maintained with nghttp2 itself) under a size limit (an
//! HPACK bomb costs its sender, not us), checked as RFC 9113 §8.2-8.3 says (lowercase names, pseudo
//! fields first and known, no connection-specific fields, `te: trailers` only, no CR/LF/NUL
//! or surrounding whitespace in values), and turned into a request head with cookie crumbs
//! joined. Responses are encoded as literals without indexing (no dynamic table on our
//! side, so a peer's SETTINGS_HEADER_TABLE_SIZE never matters).

use std::os::raw::c_int;
use std::ptr::{self, NonNull};

use bytes::{BufMut, Bytes, BytesMut};
use libnghttp2_sys as ng;

/// The dynamic table size this server allows its peers' encoders (SETTINGS default).
pub const TABLE_SIZE: usize = 4096;

/// A request's head as a stream received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Bytes,
    pub scheme: Option<Bytes>,
    /// `:authority` (what `Host` is in HTTP/1.1).
    pub authority: Option<Bytes>,
    pub path: Bytes,
    /// `:protocol` of an extended CONNECT (RFC 8441), e.g. `websocket`.
    pub protocol: Option<Bytes>,
    /// Regular fields, names lowercase, `cookie` crumbs joined into one field.
    pub fields: Vec<(Bytes, Bytes)>,
    /// `content-length`, if given (checked against the DATA received).
    pub content_length: Option<u64>,
}

/// Why a header block is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Not valid HPACK: the connection's compression state is lost (COMPRESSION_ERROR).
    Compression,
    /// Decoded, but larger than the limit (the stream is refused with 431).
    TooLarge,
    /// A malformed request (the stream is reset with PROTOCOL_ERROR).
    Malformed(&'static str),
}

/// One connection's HPACK decoder with its limits.
pub struct HeaderDecoder {
    /// nghttp2's inflater (its dynamic table); `None` if nghttp2 could not allocate one, and
    /// then every block is a compression error (the connection ends with GOAWAY).
    hpack: Option<Inflater>,
    /// The largest decoded header list (names + values + 32 per field, as RFC 9113 counts).
    pub max_list: usize,
}

/// The owner of one `nghttp2_hd_inflater`: made by `nghttp2_hd_inflate_new`, freed on drop.
struct Inflater(NonNull<ng::nghttp2_hd_inflater>);

// SAFETY: an inflater is plain memory owned by this value alone (nghttp2 keeps no reference
// to it and has no thread-local state); moving it to another thread is sound.
unsafe impl Send for Inflater {}

impl Inflater {
    fn new() -> Option<Inflater> {
        let mut raw: *mut ng::nghttp2_hd_inflater = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; on success nghttp2 stores a new inflater.
        let rv = unsafe { ng::nghttp2_hd_inflate_new(&mut raw) };
        if rv != 0 {
            return None;
        }
        let inflater = NonNull::new(raw).map(Inflater)?;
        // SAFETY: the inflater is live. The size the peer's updates may go up to: larger
        // ones are compression errors.
        let rv = unsafe { ng::nghttp2_hd_inflate_change_table_size(raw, TABLE_SIZE) };
        (rv == 0).then_some(inflater)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `nghttp2_hd_inflate_new` and is freed once, here.
        unsafe { ng::nghttp2_hd_inflate_del(self.0.as_ptr()) }
    }
}

/// A copy of `len` bytes at `p` (which nghttp2 guarantees for an emitted field).
///
/// # Safety
/// `p` must point at `len` readable bytes, or `len` must be 0.
unsafe fn copied(p: *const u8, len: usize) -> Bytes {
    if len == 0 || p.is_null() {
        return Bytes::new();
    }
    // SAFETY: the caller's contract.
    Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(p, len) })
}

impl HeaderDecoder {
    pub fn new(max_list: usize) -> HeaderDecoder {
        HeaderDecoder {
            hpack: Inflater::new(),
            max_list,
        }
    }

    /// Decode a whole block. The block is always decoded to its end (the dynamic table
    /// must stay in step with the peer's), but past `max_list` nothing more is kept.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(Bytes, Bytes)>, BlockError> {
        let inflater = self.hpack.as_ref().ok_or(BlockError::Compression)?.0;
        let mut fields = Vec::new();
        let mut size = 0usize;
        let mut over = false;
        let mut rest = block;
        // Each call consumes input or emits a field (at least one byte each), so a block
        // takes at most len + 1 calls; the bound only guards against a broken promise.
        for _ in 0..=block.len() + 1 {
            let mut nv = ng::nghttp2_nv {
                name: ptr::null_mut(),
                value: ptr::null_mut(),
                namelen: 0,
                valuelen: 0,
                flags: 0,
            };
            let mut flags: c_int = 0;
            // SAFETY: the inflater is live; `rest` is a valid slice for the call; `nv` and
            // `flags` are valid out-pointers. `in_final` = 1: this is the whole block.
            let used = unsafe {
                ng::nghttp2_hd_inflate_hd3(
                    inflater.as_ptr(),
                    &mut nv,
                    &mut flags,
                    rest.as_ptr(),
                    rest.len(),
                    1,
                )
            };
            let Ok(used) = usize::try_from(used) else {
                return Err(BlockError::Compression);
            };
            rest = rest.get(used..).ok_or(BlockError::Compression)?;
            let flags = flags as u32;
            if flags & ng::NGHTTP2_HD_INFLATE_EMIT != 0 {
                size = size.saturating_add(nv.namelen + nv.valuelen + 32);
                over |= size > self.max_list;
                if !over {
                    // SAFETY: an emitted field's name and value stay valid until the next
                    // call on this inflater, and are copied before it.
                    let field =
                        unsafe { (copied(nv.name, nv.namelen), copied(nv.value, nv.valuelen)) };
                    fields.push(field);
                }
            }
            if flags & ng::NGHTTP2_HD_INFLATE_FINAL != 0 {
                // SAFETY: the inflater is live; this ends the block as nghttp2 requires.
                unsafe { ng::nghttp2_hd_inflate_end_headers(inflater.as_ptr()) };
                if over {
                    return Err(BlockError::TooLarge);
                }
                return Ok(fields);
            }
        }
        Err(BlockError::Compression)
    }
}

pub(crate) const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"transfer-encoding",
    b"upgrade",
];

/// Check a field's name and value (RFC 9113 §8.2.1).
pub(crate) fn check_field(name: &[u8], value: &[u8]) -> Result<(), BlockError> {
    if name.is_empty() {
        return Err(BlockError::Malformed("an empty field name"));
    }
    let bad_name =
        |b: &u8| b.is_ascii_uppercase() || *b <= 0x20 || *b == 0x7f || *b == b':' || *b >= 0x80;
    let body = if name[0] == b':' { &name[1..] } else { name };
    if body.iter().any(bad_name) {
        return Err(BlockError::Malformed(
            "a field name with an invalid character",
        ));
    }
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(BlockError::Malformed("a field value with NUL, CR or LF"));
    }
    let ws = |b: Option<&u8>| matches!(b, Some(b' ') | Some(b'\t'));
    if ws(value.first()) || ws(value.last()) {
        return Err(BlockError::Malformed(
            "a field value with surrounding whitespace",
        ));
    }
    Ok(())
}

/// Turn a decoded block into a request head (`connect_protocol`: RFC 8441 is on).
pub fn request(
    fields: Vec<(Bytes, Bytes)>,
    connect_protocol: bool,
) -> Result<RequestHead, BlockError> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut protocol = None;
    let mut regular = Vec::with_capacity(fields.len());
    let mut cookies: Vec<Bytes> = Vec::new();
    let mut content_length = None;
    for (name, value) in fields {
        check_field(&name, &value)?;
        if name.starts_with(b":") {
            if !regular.is_empty() || !cookies.is_empty() {
                return Err(BlockError::Malformed("a pseudo field after a regular one"));
            }
            let slot = match &name[..] {
                b":method" => &mut method,
                b":scheme" => &mut scheme,
                b":authority" => &mut authority,
                b":path" => &mut path,
                b":protocol" if connect_protocol => &mut protocol,
                _ => return Err(BlockError::Malformed("an unknown pseudo field")),
            };
            if slot.replace(value).is_some() {
                return Err(BlockError::Malformed("a pseudo field twice"));
            }
            continue;
        }
        if CONNECTION_SPECIFIC.contains(&&name[..]) {
            return Err(BlockError::Malformed("a connection-specific field"));
        }
        match &name[..] {
            b"te" if &value[..] != b"trailers" => {
                return Err(BlockError::Malformed("te other than trailers"));
            }
            b"cookie" => {
                cookies.push(value);
                continue;
            }
            b"content-length" => {
                let n = std::str::from_utf8(&value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(BlockError::Malformed(
                        "a content-length that is not a number",
                    ))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(BlockError::Malformed("two different content-lengths"));
                }
                content_length = Some(n);
            }
            _ => {}
        }
        regular.push((name, value));
    }
    if !cookies.is_empty() {
        regular.push((Bytes::from_static(b"cookie"), join_cookies(&cookies)));
    }
    let method = method.ok_or(BlockError::Malformed("no :method"))?;
    let is_connect = &method[..] == b"CONNECT";
    if protocol.is_some() && !is_connect {
        return Err(BlockError::Malformed(":protocol without CONNECT"));
    }
    let path = match (is_connect && protocol.is_none(), path) {
        (true, None) => {
            if authority.is_none() || scheme.is_some() {
                return Err(BlockError::Malformed(
                    "CONNECT needs :authority and no :scheme",
                ));
            }
            Bytes::new()
        }
        (true, Some(_)) => return Err(BlockError::Malformed("CONNECT with a :path")),
        (false, Some(p)) if !p.is_empty() => {
            if scheme.is_none() {
                return Err(BlockError::Malformed("no :scheme"));
            }
            p
        }
        (false, _) => return Err(BlockError::Malformed("no :path")),
    };
    Ok(RequestHead {
        method,
        scheme,
        authority,
        path,
        protocol,
        fields: regular,
        content_length,
    })
}

/// Trailers: regular fields only.
pub fn trailers(fields: Vec<(Bytes, Bytes)>) -> Result<Vec<(Bytes, Bytes)>, BlockError> {
    for (name, value) in &fields {
        check_field(name, value)?;
        if name.starts_with(b":") {
            return Err(BlockError::Malformed("a pseudo field in trailers"));
        }
    }
    Ok(fields)
}

fn join_cookies(crumbs: &[Bytes]) -> Bytes {
    let len = crumbs.iter().map(|c| c.len() + 2).sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    for (i, c) in crumbs.iter().enumerate() {
        if i > 0 {
            out.put_slice(b"; ");
        }
        out.put_slice(c);
    }
    out.freeze()
}

/// HPACK integer with an `n`-bit prefix, `first` holding the bits above it.
fn put_int(out: &mut BytesMut, first: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.put_u8(first | v as u8);
        return;
    }
    out.put_u8(first | max as u8);
    v -= max;
    while v >= 128 {
        out.put_u8((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.put_u8(v as u8);
}

fn put_string(out: &mut BytesMut, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.put_slice(s);
}

/// Encode a response head: `:status` (its name from the static table) and the fields as
/// literals without indexing (see `encode_fields`).
pub fn encode_response(status: u16, fields: &[(&[u8], &[u8])]) -> BytesMut {
    let mut out = BytesMut::with_capacity(16 + fields_len(fields));
    // Literal without indexing, indexed name: 0000 + 4-bit index (8 is `:status`).
    put_int(&mut out, 0x00, 4, 8);
    put_string(&mut out, status.to_string().as_bytes());
    put_fields(&mut out, fields);
    out
}

/// Encode regular fields (trailers) as literals without indexing: names lowercased,
/// connection-specific fields dropped.
pub fn encode_fields(fields: &[(&[u8], &[u8])]) -> BytesMut {
    let mut out = BytesMut::with_capacity(fields_len(fields));
    put_fields(&mut out, fields);
    out
}

fn fields_len(fields: &[(&[u8], &[u8])]) -> usize {
    fields.iter().map(|(n, v)| n.len() + v.len() + 8).sum()
}

fn put_fields(out: &mut BytesMut, fields: &[(&[u8], &[u8])]) {
    for (name, value) in fields {
        let lower: Vec<u8> = name.iter().map(|b| b.to_ascii_lowercase()).collect();
        if CONNECTION_SPECIFIC.contains(&&lower[..]) {
            continue;
        }
        out.put_u8(0x00);
        put_string(out, &lower);
        put_string(out, value);
    }
}

#[cfg(test)]
mod huffman_tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn text(fields: &[(Bytes, Bytes)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn huffman_coded_requests_of_rfc7541_c4_decode_with_their_dynamic_table() {
        let mut d = HeaderDecoder::new(64 * 1024);
        let first = d
            .decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
            .expect("C.4.1");
        let want = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            text(&first),
            want(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        // The second request refers to the first one's :authority in the dynamic table.
        let second = d
            .decode(&hex("8286 84be 5886 a8eb 1064 9cbf"))
            .expect("C.4.2");
        assert_eq!(
            text(&second),
            want(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ])
        );
    }

    #[test]
    fn bad_huffman_and_unknown_indexes_are_compression_errors() {
        // A Huffman string whose padding is not all ones (RFC 7541 §5.2).
        let mut d = HeaderDecoder::new(64 * 1024);
        assert_eq!(d.decode(&hex("8286 4481 00")), Err(BlockError::Compression));
        // An index past both tables.
        let mut d = HeaderDecoder::new(64 * 1024);
        assert_eq!(d.decode(&hex("ff00")), Err(BlockError::Compression));
        // A block cut in the middle of a string.
        let mut d = HeaderDecoder::new(64 * 1024);
        assert_eq!(
            d.decode(&hex("8286 8441 8cf1 e3c2")),
            Err(BlockError::Compression)
        );
        // A dynamic table size update to 4097, above the 4096 bytes SETTINGS allow.
        let mut d = HeaderDecoder::new(64 * 1024);
        assert_eq!(d.decode(&hex("3fe2 1f")), Err(BlockError::Compression));
    }
}
