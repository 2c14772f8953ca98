//! Header blocks: decoded with HPACK (`loona-hpack`) under a size limit (an HPACK bomb
//! costs its sender, not us), checked as RFC 9113 §8.2-8.3 says (lowercase names, pseudo
//! fields first and known, no connection-specific fields, `te: trailers` only, no CR/LF/NUL
//! or surrounding whitespace in values), and turned into a request head with cookie crumbs
//! joined. Responses are encoded as literals without indexing (no dynamic table on our
//! side, so a peer's SETTINGS_HEADER_TABLE_SIZE never matters).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use loona_hpack::Decoder;

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
    hpack: Decoder<'static>,
    /// The largest decoded header list (names + values + 32 per field, as RFC 9113 counts).
    pub max_list: usize,
}

impl HeaderDecoder {
    pub fn new(max_list: usize) -> HeaderDecoder {
        let mut hpack = Decoder::new();
        hpack.set_max_allowed_table_size(TABLE_SIZE);
        HeaderDecoder { hpack, max_list }
    }

    /// Decode a whole block. The block is always decoded to its end (the dynamic table
    /// must stay in step with the peer's), but past `max_list` nothing more is kept.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(Bytes, Bytes)>, BlockError> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let mut over = false;
        let max = self.max_list;
        self.hpack
            .decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| {
                size = size.saturating_add(name.len() + value.len() + 32);
                if size > max {
                    over = true;
                    return;
                }
                fields.push((
                    Bytes::copy_from_slice(&name),
                    Bytes::copy_from_slice(&value),
                ));
            })
            .map_err(|_| BlockError::Compression)?;
        if over {
            return Err(BlockError::TooLarge);
        }
        Ok(fields)
    }
}

const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"transfer-encoding",
    b"upgrade",
];

/// Check a field's name and value (RFC 9113 §8.2.1).
fn check_field(name: &[u8], value: &[u8]) -> Result<(), BlockError> {
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
