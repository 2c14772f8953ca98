//! Chunked bodies (RFC 9112 §7.1): `ChunkedScanner` finds where a chunked body ends without
//! decoding it (the proxy forwards the chunked bytes as they are), `ChunkedDecoder` also
//! hands out the data bytes, for when the proxy must read the body itself.
//!
//! Both are one byte-driven state machine, so a body may arrive split anywhere, down to one
//! byte per call. It is strict, because a body two parsers end at different places is a
//! smuggling attack:
//!
//! - a chunk size is 1 to 16 hex digits (so it never overflows a `u64`); spaces or tabs
//!   after it are allowed only before a `;` (RFC 9112 BWS);
//! - extensions (`;name=value`) are skipped but checked for control bytes, and bounded to
//!   [`MAX_EXTENSIONS`] bytes over the whole body;
//! - every line ends in CRLF: a bare LF, a bare CR or anything but CRLF after chunk data is
//!   refused;
//! - trailer fields must be `name: value` lines (token name, no space before the colon, no
//!   obs-fold, no control bytes) and are bounded to [`MAX_TRAILERS`] bytes.
//!
//! Errors are `400` (the proxy reports a bad request body; for a response body it answers
//! 502 itself). Once refused, a scanner keeps returning the same error.

use crate::headers::is_token_byte;
use crate::HttpError;

/// Most bytes of chunk extensions (and of whitespace after sizes) in one body.
pub const MAX_EXTENSIONS: usize = 4096;
/// Most bytes of the trailer section of one body.
pub const MAX_TRAILERS: usize = 8192;
/// Most hex digits in a chunk size.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size.
    Size { digits: u8, size: u64 },
    /// Spaces or tabs after the size: only a `;` may follow.
    SizeSpace { size: u64 },
    /// In the extensions, up to the CR.
    Extension { size: u64 },
    /// After the CR that ends a size line.
    SizeLf { size: u64 },
    /// In chunk data, `left` bytes to go (never 0).
    Data { left: u64 },
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data and CR: LF expected.
    DataLf,
    /// At the start of a trailer line or of the final CRLF.
    TrailerStart,
    /// In a trailer field's name.
    TrailerName,
    /// In a trailer field's value, up to the CR.
    TrailerValue,
    /// After the CR that ends a trailer line.
    TrailerLf,
    /// After the CR of the final CRLF.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Streaming validator of a chunked body: finds where it ends without decoding.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    extension_bytes: usize,
    trailer_bytes: usize,
    failed: Option<HttpError>,
    /// Chunk data seen so far (framing excluded).
    body_bytes: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    /// A scanner at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0, size: 0 },
            extension_bytes: 0,
            trailer_bytes: 0,
            failed: None,
            body_bytes: 0,
        }
    }

    /// Bytes of chunk data seen so far (the decoded body length, framing excluded).
    pub fn body_len(&self) -> u64 {
        self.body_bytes
    }

    /// Scan the next bytes of the body. Returns how many of `data` belong to the body, and
    /// whether the body (last chunk + trailers + final CRLF) is complete. Bytes after the
    /// end are not consumed (they are the next message). Once complete, further calls
    /// consume nothing and return `(0, true)`.
    pub fn scan(&mut self, data: &[u8]) -> Result<(usize, bool), HttpError> {
        self.run(data, |_| {})
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Drive the state machine over `data`, handing each run of chunk data to `on_data`.
    fn run(
        &mut self,
        data: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), HttpError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Done => break,
                State::Data { left } => {
                    let avail = data.len() - i;
                    let n = usize::try_from(left).map_or(avail, |left| left.min(avail));
                    on_data(&data[i..i + n]);
                    self.body_bytes += n as u64;
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                }
                _ => {
                    if let Err(reason) = self.step(data[i]) {
                        let e = HttpError::bad_request(reason);
                        self.failed = Some(e);
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
        Ok((i, self.is_done()))
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), &'static str> {
        self.state = match self.state {
            State::Size { digits, size } => match (hex_value(b), b) {
                (Some(_), _) if digits == MAX_SIZE_DIGITS => return Err("chunk size too long"),
                (Some(v), _) => State::Size {
                    digits: digits + 1,
                    size: size << 4 | u64::from(v),
                },
                _ if digits == 0 => return Err("missing chunk size"),
                (None, b';') => self.extension(State::Extension { size })?,
                (None, b' ' | b'\t') => self.extension(State::SizeSpace { size })?,
                (None, b'\r') => State::SizeLf { size },
                (None, b'\n') => return Err("bare LF after chunk size"),
                (None, _) => return Err("invalid chunk size"),
            },
            State::SizeSpace { size } => match b {
                b' ' | b'\t' => self.extension(State::SizeSpace { size })?,
                b';' => self.extension(State::Extension { size })?,
                _ => return Err("whitespace after chunk size"),
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return Err("bare LF in chunk extension"),
                _ if is_field_byte(b) => self.extension(State::Extension { size })?,
                _ => return Err("invalid byte in chunk extension"),
            },
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart,
                b'\n' => State::Data { left: size },
                _ => return Err("bare CR after chunk size"),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err("missing CRLF after chunk data"),
            },
            State::DataLf => match b {
                b'\n' => State::Size { digits: 0, size: 0 },
                _ => return Err("missing LF after chunk data"),
            },
            State::TrailerStart => match b {
                b'\r' => State::FinalLf,
                b'\n' => return Err("bare LF in trailers"),
                b' ' | b'\t' => return Err("obs-fold in trailers"),
                _ if is_token_byte(b) => self.trailer(State::TrailerName)?,
                _ => return Err("invalid trailer field name"),
            },
            State::TrailerName => match b {
                b':' => self.trailer(State::TrailerValue)?,
                _ if is_token_byte(b) => self.trailer(State::TrailerName)?,
                _ => return Err("invalid trailer field name"),
            },
            State::TrailerValue => match b {
                b'\r' => self.trailer(State::TrailerLf)?,
                b'\n' => return Err("bare LF in trailers"),
                _ if is_field_byte(b) => self.trailer(State::TrailerValue)?,
                _ => return Err("invalid byte in trailer value"),
            },
            State::TrailerLf => match b {
                b'\n' => self.trailer(State::TrailerStart)?,
                _ => return Err("bare CR in trailers"),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return Err("bare CR after last chunk"),
            },
            // `run` never steps in these states.
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }

    /// Count one byte of extension (or whitespace) against the budget, then go to `next`.
    fn extension(&mut self, next: State) -> Result<State, &'static str> {
        self.extension_bytes += 1;
        if self.extension_bytes > MAX_EXTENSIONS {
            return Err("chunk extensions too long");
        }
        Ok(next)
    }

    /// Count one trailer byte against the budget, then go to `next`.
    fn trailer(&mut self, next: State) -> Result<State, &'static str> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS {
            return Err("trailers too long");
        }
        Ok(next)
    }
}

/// Decoder of a chunked body: like [`ChunkedScanner`], and it also appends the data bytes
/// (without sizes, extensions or trailers, which are dropped) to `out`.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    scanner: ChunkedScanner,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode the next bytes of the body into `out`. Returns how many of `data` belong to
    /// the body and whether it is complete, as [`ChunkedScanner::scan`] does. On error,
    /// `out` may already hold data from chunks before the bad byte.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        self.scanner.run(data, |d| out.extend_from_slice(d))
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.scanner.is_done()
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// HTAB, SP, VCHAR, obs-text: what a field value (or an extension) may hold.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}
