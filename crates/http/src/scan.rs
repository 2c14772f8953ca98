//! The one-pass head scanner: the request or status line and the field lines of an HTTP/1.1
//! head, read once, straight into the head's span table (`Fields`).
//!
//! It accepts and refuses exactly what httparse 1.10 (with its default configuration, as
//! tether used it) accepts and refuses, byte for byte — the same tokens, the same value
//! bytes, the same `Partial` answers for a head cut short, the same error kinds
//! ([`ScanError`] mirrors `httparse::Error`) — so the checks around it (`request.rs`,
//! `response.rs`) are unchanged. `tests/scan_diff.rs` checks that against httparse on the
//! fuzz seeds, on every prefix and one-byte change of them, and on generated heads.
//!
//! What it does in the same pass that httparse left to a second one: each field's name and
//! value go straight into the span table (no header slots to convert), and a line ended by a
//! bare LF is noted (`Scanned::bare_lf`) so the caller refuses it without looking at the
//! line ends again. Value, target and reason bytes are checked sixteen at a time (SSE2, on
//! x86-64) or eight at a time (SWAR on a `u64`); names sixteen at a time for the usual
//! letters, digits and `-`, other token bytes one at a time against the token table.
//!
//! Grammar (RFC 9112, as httparse reads it):
//! - request line: `token SP target SP HTTP/1.(0|1) EOL`; the target is bytes `!`..`~` and
//!   obs-text that form valid UTF-8;
//! - status line: `HTTP/1.(0|1) SP DIGIT DIGIT DIGIT ( SP reason | EOL )`; reason bytes are
//!   HTAB, SP, VCHAR and obs-text (a reason with obs-text reads as empty);
//! - field line: `token ":" OWS value OWS EOL`; value bytes are HTAB, SP, VCHAR and
//!   obs-text; no whitespace before the colon, no obs-fold;
//! - EOL is CRLF or a bare LF (the latter noted); a CR not followed by LF is refused.

use crate::head::{Fields, Span};

/// Why a head was refused: one kind per `httparse::Error` variant, raised in the same cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// A byte that cannot start or continue a field name (obs-fold, whitespace before the
    /// colon, an empty name, a bad token byte).
    HeaderName,
    /// A byte not allowed in a field value, or a CR without LF after a value.
    HeaderValue,
    /// A CR without LF, or anything else, where a line should end.
    NewLine,
    /// A bad status code or reason phrase.
    Status,
    /// A bad method or request-target, or no SP after them.
    Token,
    /// More field lines than allowed.
    TooManyHeaders,
    /// Not `HTTP/1.0` or `HTTP/1.1`.
    Version,
}

impl ScanError {
    /// The short reason for a refusal.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            ScanError::HeaderName => "invalid header name (or whitespace/obs-fold)",
            ScanError::HeaderValue => "invalid byte in header value",
            ScanError::NewLine => "invalid line end",
            ScanError::Status => "invalid status line",
            ScanError::Token => "invalid request line",
            ScanError::TooManyHeaders => "too many headers",
            ScanError::Version => "invalid HTTP version",
        }
    }
}

/// `Ok(None)`: the bytes end before the head does (read more). `Err`: refused.
pub(crate) type Scan<T> = Result<Option<T>, ScanError>;

/// A request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLine {
    pub(crate) method: Span,
    pub(crate) target: Span,
    /// 0 or 1.
    pub(crate) minor: u8,
}

/// A status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusLine {
    /// 0 or 1.
    pub(crate) minor: u8,
    /// Three digits, 000-999.
    pub(crate) code: u16,
    /// Empty (`Span::default()`) when absent or not ASCII.
    pub(crate) reason: Span,
}

/// A whole head: its start line, its length, and whether any line ended in a bare LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scanned<L> {
    pub(crate) line: L,
    pub(crate) len: usize,
    pub(crate) bare_lf: bool,
}

/// The next byte, or "read more".
macro_rules! next {
    ($buf:ident, $i:ident) => {
        match $buf.get($i) {
            Some(&b) => {
                $i += 1;
                b
            }
            None => return Ok(None),
        }
    };
}

/// Scan a request head starting at `start` (after the one tolerated leading CRLF) into
/// `fields`, with at most `max_fields` field lines.
pub(crate) fn request(
    buf: &[u8],
    start: usize,
    fields: &mut Fields,
    max_fields: usize,
) -> Scan<Scanned<RequestLine>> {
    let mut i = start;
    // The method: a token, then SP.
    let b = next!(buf, i);
    if !is_token(b) {
        return Err(ScanError::Token);
    }
    loop {
        let b = next!(buf, i);
        if b == b' ' {
            break;
        }
        if !is_token(b) {
            return Err(ScanError::Token);
        }
    }
    let method = Span::range(start, i - 1);
    // The target: at least one byte, then SP; valid UTF-8.
    let t0 = i;
    let (end, high) = run(buf, i, TARGET);
    i = end;
    if next!(buf, i) != b' ' || end == t0 {
        return Err(ScanError::Token);
    }
    if high && std::str::from_utf8(&buf[t0..end]).is_err() {
        return Err(ScanError::Token);
    }
    let target = Span::range(t0, end);
    let Some((minor, at)) = version(buf, i)? else {
        return Ok(None);
    };
    i = at;
    let mut bare_lf = false;
    match next!(buf, i) {
        b'\r' => {
            if next!(buf, i) != b'\n' {
                return Err(ScanError::NewLine);
            }
        }
        b'\n' => bare_lf = true,
        _ => return Err(ScanError::NewLine),
    }
    let line = RequestLine {
        method,
        target,
        minor,
    };
    Ok(
        field_lines(buf, i, fields, max_fields)?.map(|(len, lf)| Scanned {
            line,
            len,
            bare_lf: bare_lf | lf,
        }),
    )
}

/// Scan a response head starting at `start` (after the one tolerated leading CRLF) into
/// `fields`, with at most `max_fields` field lines.
pub(crate) fn response(
    buf: &[u8],
    start: usize,
    fields: &mut Fields,
    max_fields: usize,
) -> Scan<Scanned<StatusLine>> {
    let Some((minor, mut i)) = version(buf, start)? else {
        return Ok(None);
    };
    if next!(buf, i) != b' ' {
        return Err(ScanError::Version);
    }
    let mut code = 0u16;
    for _ in 0..3 {
        let d = next!(buf, i);
        if !d.is_ascii_digit() {
            return Err(ScanError::Status);
        }
        code = code * 10 + u16::from(d - b'0');
    }
    let mut bare_lf = false;
    let reason = match next!(buf, i) {
        b' ' => {
            let r0 = i;
            let (end, high) = run(buf, i, VALUE);
            i = end;
            match next!(buf, i) {
                b'\r' => {
                    if next!(buf, i) != b'\n' {
                        return Err(ScanError::Status);
                    }
                }
                b'\n' => bare_lf = true,
                _ => return Err(ScanError::Status),
            }
            if high {
                Span::default()
            } else {
                Span::range(r0, end)
            }
        }
        b'\r' => {
            if next!(buf, i) != b'\n' {
                return Err(ScanError::Status);
            }
            Span::default()
        }
        b'\n' => {
            bare_lf = true;
            Span::default()
        }
        _ => return Err(ScanError::Status),
    };
    let line = StatusLine {
        minor,
        code,
        reason,
    };
    Ok(
        field_lines(buf, i, fields, max_fields)?.map(|(len, lf)| Scanned {
            line,
            len,
            bare_lf: bare_lf | lf,
        }),
    )
}

/// `HTTP/1.0` or `HTTP/1.1` at `i`: the minor version and where it ends. With fewer than
/// eight bytes, a prefix of `HTTP/1.` is "read more", anything else is refused.
fn version(buf: &[u8], i: usize) -> Scan<(u8, usize)> {
    match buf.get(i..i + 8) {
        Some(b"HTTP/1.1") => Ok(Some((1, i + 8))),
        Some(b"HTTP/1.0") => Ok(Some((0, i + 8))),
        Some(_) => Err(ScanError::Version),
        None => {
            let have = buf.get(i..).unwrap_or_default();
            if b"HTTP/1."[..have.len().min(7)] == have[..have.len().min(7)] {
                Ok(None)
            } else {
                Err(ScanError::Version)
            }
        }
    }
}

/// The field lines from `i` through the empty line: each name and value pushed to
/// `fields`. `(the head's length, whether a line ended in a bare LF)`.
fn field_lines(
    buf: &[u8],
    mut i: usize,
    fields: &mut Fields,
    max_fields: usize,
) -> Scan<(usize, bool)> {
    let mut bare_lf = false;
    let mut count = 0usize;
    loop {
        let n0 = i;
        let b = next!(buf, i);
        if b == b'\r' {
            if next!(buf, i) != b'\n' {
                return Err(ScanError::NewLine);
            }
            return Ok(Some((i, bare_lf)));
        }
        if b == b'\n' {
            return Ok(Some((i, true)));
        }
        if !is_token(b) {
            return Err(ScanError::HeaderName);
        }
        // The rest of the name, then the colon.
        i = name_end(buf, i);
        let b = next!(buf, i);
        if b != b':' {
            return Err(ScanError::HeaderName);
        }
        let name = Span::range(n0, i - 1);
        // Whitespace after the colon; an empty value ends the line here.
        let v0 = loop {
            let b = next!(buf, i);
            if b == b' ' || b == b'\t' {
                continue;
            }
            if is_value(b) {
                break Some(i - 1);
            }
            if b == b'\r' {
                if next!(buf, i) != b'\n' {
                    return Err(ScanError::HeaderValue);
                }
            } else if b == b'\n' {
                bare_lf = true;
            } else {
                return Err(ScanError::HeaderValue);
            }
            // (The empty value's span sits where the line end starts, as httparse's did.)
            let at = i - if b == b'\n' { 1 } else { 2 };
            let value = Span::range(at, at);
            push(fields, &mut count, max_fields, name, value)?;
            break None;
        };
        let Some(v0) = v0 else {
            continue;
        };
        let (end, _) = run(buf, i, VALUE);
        i = end;
        match next!(buf, i) {
            b'\r' => {
                if next!(buf, i) != b'\n' {
                    return Err(ScanError::HeaderValue);
                }
            }
            b'\n' => bare_lf = true,
            _ => return Err(ScanError::HeaderValue),
        }
        // Trailing whitespace is not part of the value (the first byte is not whitespace).
        let mut e = end;
        while e > v0 + 1 && matches!(buf[e - 1], b' ' | b'\t') {
            e -= 1;
        }
        push(fields, &mut count, max_fields, name, Span::range(v0, e))?;
    }
}

#[inline]
fn push(
    fields: &mut Fields,
    count: &mut usize,
    max: usize,
    name: Span,
    value: Span,
) -> Result<(), ScanError> {
    if *count >= max {
        return Err(ScanError::TooManyHeaders);
    }
    *count += 1;
    fields.push(name, value);
    Ok(())
}

/// Which bytes a run may hold: `VALUE` (field values and reason phrases: HTAB, SP, VCHAR,
/// obs-text) or `TARGET` (request-targets: VCHAR and obs-text).
#[derive(Clone, Copy)]
struct Class {
    /// Bytes below this are refused (HTAB aside for `VALUE`).
    low: u8,
    tab: bool,
}

const VALUE: Class = Class {
    low: b' ',
    tab: true,
};
const TARGET: Class = Class {
    low: b'!',
    tab: false,
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// From `i`, the end of the run of bytes of `class`, and whether the run holds obs-text
/// (a byte ≥ 0x80): sixteen bytes at a time where SSE2 is (every x86-64), then eight at a
/// time (`swar`), then byte by byte.
#[inline(always)]
fn run(buf: &[u8], mut i: usize, class: Class) -> (usize, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut high = 0u32;
        while let Some(block) = buf.get(i..).and_then(|r| r.first_chunk::<16>()) {
            let (bad, obs) = sse2::value_block(block, class);
            if bad == 0 {
                high |= obs;
                i += 16;
                continue;
            }
            let k = bad.trailing_zeros();
            high |= obs & ((1u32 << k) - 1);
            return (i + k as usize, high != 0);
        }
        let (end, obs) = swar(buf, i, class);
        (end, obs || high != 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    swar(buf, i, class)
}

/// `run` eight bytes at a time: a byte below `low` or equal to DEL sets its high bit in
/// `bad` — the lowest set bit is exact (a borrow only runs upward, past the first
/// offending byte), which is the only one read.
#[inline(never)]
fn swar(buf: &[u8], mut i: usize, class: Class) -> (usize, bool) {
    let mut high = 0u64;
    while let Some(block) = buf.get(i..).and_then(|r| r.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*block);
        let below = x.wrapping_sub(ONES * u64::from(class.low)) & !x & HIGHS;
        let d = x ^ (ONES * 0x7f);
        let del = d.wrapping_sub(ONES) & !d & HIGHS;
        let bad = below | del;
        if bad == 0 {
            high |= x;
            i += 8;
            continue;
        }
        let k = (bad.trailing_zeros() / 8) as usize;
        // The bytes before the first bad one count for obs-text.
        high |= x & ((1u64 << (8 * k)) - 1);
        i += k;
        if class.tab && buf[i] == b'\t' {
            i += 1;
            continue;
        }
        return (i, high & HIGHS != 0);
    }
    let mut obs = high & HIGHS != 0;
    while let Some(&b) = buf.get(i) {
        let ok = if b >= 0x80 {
            obs = true;
            true
        } else {
            (b >= class.low && b != 0x7f) || (class.tab && b == b'\t')
        };
        if !ok {
            break;
        }
        i += 1;
    }
    (i, obs)
}

/// From `i`, the end of a field name's token bytes: sixteen bytes at a time over the usual
/// letters, digits and `-` (SSE2), any other token byte one at a time.
#[inline(always)]
fn name_end(buf: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = buf.get(i..).and_then(|r| r.first_chunk::<16>()) {
        let other = sse2::not_alnum_dash(block);
        i += other.trailing_zeros().min(16) as usize;
        if other != 0 {
            if is_token(buf[i]) {
                i += 1;
                continue;
            }
            return i;
        }
    }
    while buf.get(i).is_some_and(|&b| is_token(b)) {
        i += 1;
    }
    i
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    //! The SSE2 blocks of `run` and `name_end` (SSE2 is part of x86-64: no detection).
    use std::arch::x86_64::*;

    use super::Class;

    // SAFETY (every `unsafe` block below): SSE2 is part of the x86-64 baseline, so its
    // intrinsics run on every CPU this module is compiled for; the one load reads the 16
    // bytes of a `&[u8; 16]`, unaligned.
    #[inline(always)]
    fn load(block: &[u8; 16]) -> __m128i {
        unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
    }

    /// A bit per byte of `block`: (not of `class`, ≥ 0x80).
    #[inline(always)]
    pub(super) fn value_block(block: &[u8; 16], class: Class) -> (u32, u32) {
        let x = load(block);
        unsafe {
            // Unsigned `x < low` as a signed compare of both with their top bit flipped.
            let flipped = _mm_xor_si128(x, _mm_set1_epi8(i8::MIN));
            let low = _mm_cmplt_epi8(flipped, _mm_set1_epi8((class.low ^ 0x80) as i8));
            let low = if class.tab {
                _mm_andnot_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(b'\t' as i8)), low)
            } else {
                low
            };
            let bad = _mm_or_si128(low, _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
            (_mm_movemask_epi8(bad) as u32, _mm_movemask_epi8(x) as u32)
        }
    }

    /// A bit per byte of `block` that is not an ASCII letter, digit or `-`.
    #[inline(always)]
    pub(super) fn not_alnum_dash(block: &[u8; 16]) -> u32 {
        let x = load(block);
        unsafe {
            // (Bytes ≥ 0x80 are negative here: below every range.)
            let lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
            let alpha = _mm_and_si128(
                _mm_cmpgt_epi8(lower, _mm_set1_epi8(b'a' as i8 - 1)),
                _mm_cmplt_epi8(lower, _mm_set1_epi8(b'z' as i8 + 1)),
            );
            let digit = _mm_and_si128(
                _mm_cmpgt_epi8(x, _mm_set1_epi8(b'0' as i8 - 1)),
                _mm_cmplt_epi8(x, _mm_set1_epi8(b'9' as i8 + 1)),
            );
            let dash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'-' as i8));
            let ok = _mm_or_si128(_mm_or_si128(alpha, digit), dash);
            !(_mm_movemask_epi8(ok) as u32) & 0xffff
        }
    }
}

/// A `tchar` (RFC 9110 §5.6.2), the bytes of methods and field names.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// A byte of a field value after its first (HTAB, SP, VCHAR, obs-text).
#[inline]
pub(crate) fn is_value(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};
