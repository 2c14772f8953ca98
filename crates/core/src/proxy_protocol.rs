//! The PROXY protocol (HAProxy's spec, version 1 text and version 2 binary) on byte slices:
//! [`parse`] reads the header a load balancer in front of tether puts before the client's
//! bytes, [`encode_v1`] / [`encode_v2`] write the one tether puts before its own bytes to a
//! backend, and [`Trusted`] says which peers may send one. No I/O here and no state: the
//! caller owns the buffer, calls [`parse`] again as bytes arrive, and drops `header_len`
//! bytes once it returns [`Parsed::Done`].
//!
//! [`parse`] is strict and fails early. It answers [`Parsed::Incomplete`] only while the
//! bytes so far can still begin a valid header, so a client that speaks HTTP (or anything
//! else) straight to a PROXY listener gets an error on its first byte, not a wait.
//!
//! - **v1**: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN ...\r\n`, at
//!   most [`V1_MAX_LEN`] (107) bytes with the CRLF. Single spaces; addresses of the named
//!   family in their usual text form (no leading zeros in IPv4, as `std` parses them); ports
//!   decimal 0-65535 without leading zeros. `UNKNOWN` ignores whatever follows it up to the
//!   CRLF (no CR or LF in it). While the line is incomplete, IPv4 addresses and ports are
//!   checked exactly as prefixes; an IPv6 address only for its characters and length.
//! - **v2**: the 12-byte signature, version 2, command `LOCAL` or `PROXY`, a payload of at
//!   most [`V2_MAX_PAYLOAD`] bytes. `PROXY` over `INET`/`INET6` must be `STREAM`; its address
//!   block must fit in the payload and the TLVs after it must tile the rest exactly (they
//!   are skipped, not interpreted). `LOCAL` (a health check from the balancer itself),
//!   `UNSPEC` and `UNIX` give no addresses and their payload is skipped unread.
//!
//! [`Parsed::Done`] carries `addrs: None` for v1 `UNKNOWN` and for the v2 cases above: the
//! connection keeps its real peer. Addresses come back as written, so a `TCP6` header with
//! `::ffff:10.0.0.1` gives an IPv6 address (the [`Trusted`] check treats it as IPv4).
//!
//! Encoding with mixed families (an IPv4 source and an IPv6 destination, or the reverse)
//! maps the IPv4 one to its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`) and writes `TCP6` /
//! `INET6`, so no address is lost (as HAProxy's encoders do). IPv6 flow info and
//! scope ids are not carried by the protocol.

mod trusted;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub use trusted::{Network, Trusted};

/// The longest v1 header, CRLF included (the spec's worst case: `UNKNOWN` with two full
/// IPv6 addresses and two five-digit ports).
pub const V1_MAX_LEN: usize = 107;

/// The largest v2 payload (what follows the 16-byte fixed part: addresses and TLVs) that
/// [`parse`] accepts. The spec allows 65535; real senders stay far below (addresses plus a
/// few TLVs: ALPN, authority, a cloud endpoint id, TLS facts), and a bound keeps a bogus
/// length from making the caller buffer 64 KiB before the error.
pub const V2_MAX_PAYLOAD: usize = 4096;

/// The v2 signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED: usize = 16;
const V2_INET_LEN: usize = 12;
const V2_INET6_LEN: usize = 36;

/// What [`parse`] found at the start of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A valid beginning of a header: call again with more bytes.
    Incomplete,
    /// A whole header of `header_len` bytes (what follows it is the client's own data).
    Done {
        header_len: usize,
        /// `(source, destination)` as the sender saw them; `None` when the header carries
        /// no usable addresses (v1 `UNKNOWN`, v2 `LOCAL`, `UNSPEC` or `UNIX`).
        addrs: Option<(SocketAddr, SocketAddr)>,
    },
}

/// Why the bytes are not a PROXY protocol header. Displayed as a short phrase for a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither the v1 `PROXY ` prefix nor the v2 signature.
    NotProxy,
    /// No CRLF within the first [`V1_MAX_LEN`] bytes.
    V1TooLong,
    /// The protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    V1BadProtocol,
    /// An address that is not one of the named family.
    V1BadAddress,
    /// A port that is not decimal 0-65535 without leading zeros.
    V1BadPort,
    /// Wrong number of fields, doubled or trailing spaces, a CR or LF out of place.
    V1BadSyntax,
    /// The v2 version nibble is not 2 (the byte is given).
    V2BadVersion(u8),
    /// The v2 command nibble is neither `LOCAL` nor `PROXY` (the byte is given).
    V2BadCommand(u8),
    /// An unknown address family or transport, or `INET`/`INET6` that is not `STREAM` (the
    /// byte is given).
    V2BadFamily(u8),
    /// The v2 payload length is over [`V2_MAX_PAYLOAD`] (the length is given).
    V2TooLong(usize),
    /// The v2 payload is shorter than its family's address block.
    V2ShortAddress,
    /// A TLV runs past the end of the v2 payload.
    V2BadTlv,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NotProxy => f.write_str("not a PROXY protocol header"),
            ProxyError::V1TooLong => write!(f, "PROXY v1 header longer than {V1_MAX_LEN} bytes"),
            ProxyError::V1BadProtocol => {
                f.write_str("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN")
            }
            ProxyError::V1BadAddress => f.write_str("PROXY v1 address is invalid for its family"),
            ProxyError::V1BadPort => f.write_str("PROXY v1 port is not a decimal 0-65535"),
            ProxyError::V1BadSyntax => f.write_str("PROXY v1 header is malformed"),
            ProxyError::V2BadVersion(b) => write!(f, "PROXY v2 version is not 2 (byte 0x{b:02x})"),
            ProxyError::V2BadCommand(b) => {
                write!(f, "PROXY v2 command is not LOCAL or PROXY (byte 0x{b:02x})")
            }
            ProxyError::V2BadFamily(b) => {
                write!(f, "PROXY v2 family/transport unsupported (byte 0x{b:02x})")
            }
            ProxyError::V2TooLong(n) => {
                write!(
                    f,
                    "PROXY v2 length {n} is over the limit of {V2_MAX_PAYLOAD}"
                )
            }
            ProxyError::V2ShortAddress => {
                f.write_str("PROXY v2 length is shorter than its address block")
            }
            ProxyError::V2BadTlv => f.write_str("PROXY v2 TLV runs past the header"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Reads a PROXY protocol header (v1 or v2, told apart by the first byte) at the start of
/// `buf`. See the module documentation for what is accepted.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`); mixed families are written as
/// `TCP6` with the IPv4 address mapped into IPv6.
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let line = match same_family(src, dst) {
        Pair::V4(s, d) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        Pair::V6(s, d) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
    };
    line.into_bytes()
}

/// A v2 `PROXY` header over `STREAM`, `INET` or `INET6`, with no TLVs; mixed families are
/// written as `INET6` with the IPv4 address mapped into IPv6.
pub fn encode_v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED + V2_INET6_LEN);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match same_family(src, dst) {
        Pair::V4(s, d) => {
            out.push(0x11); // INET, STREAM
            out.extend_from_slice(&(V2_INET_LEN as u16).to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        Pair::V6(s, d) => {
            out.push(0x21); // INET6, STREAM
            out.extend_from_slice(&(V2_INET6_LEN as u16).to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

/// A v1 header that names no client (`PROXY UNKNOWN\r\n`): what a connection of the
/// proxy's own (a health check) sends, so the receiver keeps the real peer.
pub fn encode_v1_unknown() -> Vec<u8> {
    b"PROXY UNKNOWN\r\n".to_vec()
}

/// A v2 `LOCAL` header with no addresses: what a connection of the proxy's own (a health
/// check) sends, so the receiver keeps the real peer.
pub fn encode_v2_local() -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x20); // version 2, LOCAL
    out.push(0x00); // UNSPEC
    out.extend_from_slice(&0u16.to_be_bytes());
    out
}

enum Pair {
    V4(SocketAddrV4, SocketAddrV4),
    V6(SocketAddrV6, SocketAddrV6),
}

fn same_family(src: SocketAddr, dst: SocketAddr) -> Pair {
    fn to_v6(a: SocketAddr) -> SocketAddrV6 {
        match a {
            SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
            SocketAddr::V6(a) => a,
        }
    }
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => Pair::V4(s, d),
        (s, d) => Pair::V6(to_v6(s), to_v6(d)),
    }
}

// ---- v1 ----

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] != V1_PREFIX[..n] {
        return Err(ProxyError::NotProxy);
    }
    if buf.len() < V1_PREFIX.len() {
        return Ok(Parsed::Incomplete);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        // What is wrong in the fields is a clearer error than the length.
        v1_prefix(&window[V1_PREFIX.len()..])?;
        return match buf.len() >= V1_MAX_LEN {
            true => Err(ProxyError::V1TooLong),
            false => Ok(Parsed::Incomplete),
        };
    };
    if window[end] == b'\n' {
        return Err(ProxyError::V1BadSyntax); // a bare LF
    }
    let header_len = end + 2;
    if header_len > V1_MAX_LEN {
        return Err(ProxyError::V1TooLong); // the CR is the 107th byte: no room for the LF
    }
    let addrs = v1_line(&buf[V1_PREFIX.len()..end])?;
    match buf.get(end + 1) {
        None => Ok(Parsed::Incomplete),
        Some(b'\n') => Ok(Parsed::Done { header_len, addrs }),
        Some(_) => Err(ProxyError::V1BadSyntax), // a CR without its LF
    }
}

/// A whole v1 line after `PROXY `, without its CRLF (which the caller found: the line
/// holds no CR or LF).
fn v1_line(line: &[u8]) -> Result<Option<(SocketAddr, SocketAddr)>, ProxyError> {
    let mut fields = line.split(|&b| b == b' ');
    let family = match fields.next() {
        Some(b"TCP4") => Family::V4,
        Some(b"TCP6") => Family::V6,
        // Whatever follows `UNKNOWN ` is ignored (the spec: the receiver must not use it).
        Some(b"UNKNOWN") => return Ok(None),
        _ => return Err(ProxyError::V1BadProtocol),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError::V1BadSyntax);
    };
    let src_ip = v1_addr(src, family)?;
    let dst_ip = v1_addr(dst, family)?;
    let sport = v1_port(sport)?;
    let dport = v1_port(dport)?;
    Ok(Some((
        SocketAddr::new(src_ip, sport),
        SocketAddr::new(dst_ip, dport),
    )))
}

/// Checks that `rest` (after `PROXY `, no CR or LF in it) can still
/// become a valid line: every field but the last is whole and valid, the last one a valid
/// beginning of what belongs there.
fn v1_prefix(rest: &[u8]) -> Result<(), ProxyError> {
    let mut fields = rest.split(|&b| b == b' ');
    let proto = fields.next().unwrap_or_default();
    let Some(src) = fields.next() else {
        // Still in the protocol name.
        let names: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
        return match names.iter().any(|name| name.starts_with(proto)) {
            true => Ok(()),
            false => Err(ProxyError::V1BadProtocol),
        };
    };
    let family = match proto {
        b"TCP4" => Family::V4,
        b"TCP6" => Family::V6,
        b"UNKNOWN" => return Ok(()),
        _ => return Err(ProxyError::V1BadProtocol),
    };
    let Some(dst) = fields.next() else {
        return v1_addr_prefix(src, family);
    };
    v1_addr(src, family)?;
    let Some(sport) = fields.next() else {
        return v1_addr_prefix(dst, family);
    };
    v1_addr(dst, family)?;
    let Some(dport) = fields.next() else {
        return v1_port_prefix(sport);
    };
    v1_port(sport)?;
    match fields.next() {
        None => v1_port_prefix(dport),
        Some(_) => Err(ProxyError::V1BadSyntax), // a space after the last port
    }
}

fn v1_addr(field: &[u8], family: Family) -> Result<IpAddr, ProxyError> {
    let text = std::str::from_utf8(field).map_err(|_| ProxyError::V1BadAddress)?;
    let ip = match family {
        Family::V4 => text.parse::<Ipv4Addr>().map(IpAddr::V4),
        Family::V6 => text.parse::<Ipv6Addr>().map(IpAddr::V6),
    };
    ip.map_err(|_| ProxyError::V1BadAddress)
}

/// The beginning of an address: exact for IPv4 (up to four dot-separated groups of at most
/// three digits, each at most 255 and without a leading zero, only the last one possibly
/// still empty), characters and length only for IPv6 (the longest text form is 45 bytes,
/// with an embedded IPv4 address).
fn v1_addr_prefix(field: &[u8], family: Family) -> Result<(), ProxyError> {
    let ok = match family {
        Family::V4 => {
            let groups: Vec<&[u8]> = field.split(|&b| b == b'.').collect();
            let (last, whole) = groups.split_last().unwrap_or((&field, &[]));
            groups.len() <= 4
                && whole
                    .iter()
                    .all(|g| !g.is_empty() && decimal_prefix(g, 3, 255))
                && decimal_prefix(last, 3, 255)
        }
        Family::V6 => {
            field.len() <= 45
                && field
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
    };
    match ok {
        true => Ok(()),
        false => Err(ProxyError::V1BadAddress),
    }
}

fn v1_port(field: &[u8]) -> Result<u16, ProxyError> {
    match field.is_empty() || !decimal_prefix(field, 5, u16::MAX.into()) {
        true => Err(ProxyError::V1BadPort),
        false => u16::try_from(decimal(field)).map_err(|_| ProxyError::V1BadPort),
    }
}

fn v1_port_prefix(field: &[u8]) -> Result<(), ProxyError> {
    match decimal_prefix(field, 5, u16::MAX.into()) {
        true => Ok(()),
        false => Err(ProxyError::V1BadPort),
    }
}

/// `digits` (possibly empty) are ASCII digits, at most `max_len` of them, without a leading
/// zero, and their value is at most `max`.
fn decimal_prefix(digits: &[u8], max_len: usize, max: u32) -> bool {
    digits.len() <= max_len
        && digits.iter().all(u8::is_ascii_digit)
        && !(digits.len() > 1 && digits[0] == b'0')
        && decimal(digits) <= max
}

/// The value of at most nine ASCII digits (the callers checked both).
fn decimal(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d.wrapping_sub(b'0')))
}

// ---- v2 ----

/// What a v2 header's addresses will be read as, known from its first 14 bytes.
#[derive(Clone, Copy)]
enum V2Block {
    /// `LOCAL`, or `PROXY` with `UNSPEC` or `UNIX`: the payload is skipped unread.
    Skip,
    Inet,
    Inet6,
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::NotProxy);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2BadVersion(ver_cmd));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::V2BadCommand(ver_cmd)),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    let block = match (local, fam >> 4, fam & 0x0f) {
        // LOCAL discards the address block "including the family", so any byte goes.
        (true, _, _) => V2Block::Skip,
        (false, 1, 1) => V2Block::Inet,
        (false, 2, 1) => V2Block::Inet6,
        // UNSPEC or UNIX over UNSPEC, STREAM or DGRAM: nothing usable as a peer.
        (false, 0 | 3, 0..=2) => V2Block::Skip,
        // Unknown families and transports, and INET/INET6 not over STREAM.
        _ => return Err(ProxyError::V2BadFamily(fam)),
    };
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::V2TooLong(len));
    }
    let short = match block {
        V2Block::Skip => false,
        V2Block::Inet => len < V2_INET_LEN,
        V2Block::Inet6 => len < V2_INET6_LEN,
    };
    if short {
        return Err(ProxyError::V2ShortAddress);
    }
    let header_len = V2_FIXED + len;
    let Some(payload) = buf.get(V2_FIXED..header_len) else {
        return Ok(Parsed::Incomplete);
    };
    let addrs = match block {
        V2Block::Skip => None,
        V2Block::Inet => Some(v2_inet(payload)?),
        V2Block::Inet6 => Some(v2_inet6(payload)?),
    };
    Ok(Parsed::Done { header_len, addrs })
}

fn v2_inet(payload: &[u8]) -> Result<(SocketAddr, SocketAddr), ProxyError> {
    let (block, tlvs) = payload
        .split_at_checked(V2_INET_LEN)
        .ok_or(ProxyError::V2ShortAddress)?;
    skip_tlvs(tlvs)?;
    let ip = |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    Ok((
        SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
        SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
    ))
}

fn v2_inet6(payload: &[u8]) -> Result<(SocketAddr, SocketAddr), ProxyError> {
    let (block, tlvs) = payload
        .split_at_checked(V2_INET6_LEN)
        .ok_or(ProxyError::V2ShortAddress)?;
    skip_tlvs(tlvs)?;
    let ip = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&block[at..at + 16]);
        Ipv6Addr::from(octets)
    };
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    Ok((
        SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
        SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
    ))
}

/// Walks the TLVs (type, 16-bit big-endian length, value) after the address block: each
/// must end within the payload, and together they must fill it exactly.
fn skip_tlvs(mut rest: &[u8]) -> Result<(), ProxyError> {
    while !rest.is_empty() {
        let [_kind, hi, lo, ..] = *rest else {
            return Err(ProxyError::V2BadTlv);
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest.get(end..).ok_or(ProxyError::V2BadTlv)?;
    }
    Ok(())
}
