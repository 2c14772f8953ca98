//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte header, each frame type's payload checked
//! as the RFC says a receiver must (lengths, stream 0 or not, padding, flags), and the
//! writers of the frames a server sends. A DATA payload stays a slice of the `Bytes` it
//! arrived in.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ErrorCode, H2Error};

pub const HEADER_LEN: usize = 9;
/// The smallest SETTINGS_MAX_FRAME_SIZE, and the default.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
pub const MAX_MAX_FRAME_SIZE: u32 = 16_777_215;
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Every window's size until SETTINGS or WINDOW_UPDATE say otherwise.
pub const DEFAULT_WINDOW: u32 = 65_535;
/// What every client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// SETTINGS identifiers (RFC 9113 §6.5.2, RFC 8441).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// The fixed part of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `buf`, if 9 bytes are there.
    pub fn peek(buf: &[u8]) -> Option<FrameHeader> {
        let h = buf.get(..HEADER_LEN)?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW,
        })
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A frame received from a client, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
        /// Octets that count against flow control (padding included).
        flow_len: u32,
    },
    Headers {
        stream: u32,
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
    },
    Priority {
        stream: u32,
    },
    RstStream {
        stream: u32,
        code: ErrorCode,
    },
    Settings {
        ack: bool,
        params: Vec<(u16, u32)>,
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: ErrorCode,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        fragment: Bytes,
        end_headers: bool,
    },
    /// A frame type this server does not know: ignored (RFC 9113 §4.1).
    Unknown {
        kind: u8,
    },
}

/// Decode one whole frame (`bytes` = header and payload, as `FrameHeader::peek` sized it).
pub fn decode(h: FrameHeader, bytes: Bytes) -> Result<Frame, H2Error> {
    let payload = bytes.slice(HEADER_LEN..);
    let stream = h.stream;
    let need_stream = |why: &'static str| {
        if stream == 0 {
            Err(H2Error::protocol(why))
        } else {
            Ok(())
        }
    };
    let no_stream = |why: &'static str| {
        if stream != 0 {
            Err(H2Error::protocol(why))
        } else {
            Ok(())
        }
    };
    match h.kind {
        DATA => {
            need_stream("DATA on stream 0")?;
            let data = unpad(&h, payload)?;
            Ok(Frame::Data {
                stream,
                data,
                end_stream: h.has(FLAG_END_STREAM),
                flow_len: h.len,
            })
        }
        HEADERS => {
            need_stream("HEADERS on stream 0")?;
            let mut fragment = unpad(&h, payload)?;
            if h.has(FLAG_PRIORITY) {
                if fragment.len() < 5 {
                    return Err(H2Error::conn(
                        ErrorCode::FrameSizeError,
                        "HEADERS too short for its priority",
                    ));
                }
                let dep = u32::from_be_bytes([fragment[0], fragment[1], fragment[2], fragment[3]])
                    & MAX_WINDOW;
                if dep == stream {
                    return Err(H2Error::Stream(
                        stream,
                        ErrorCode::ProtocolError,
                        "a stream depending on itself",
                    ));
                }
                fragment = fragment.slice(5..);
            }
            Ok(Frame::Headers {
                stream,
                fragment,
                end_stream: h.has(FLAG_END_STREAM),
                end_headers: h.has(FLAG_END_HEADERS),
            })
        }
        PRIORITY => {
            need_stream("PRIORITY on stream 0")?;
            if payload.len() != 5 {
                return Err(H2Error::Stream(
                    stream,
                    ErrorCode::FrameSizeError,
                    "PRIORITY of a length other than 5",
                ));
            }
            let dep =
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & MAX_WINDOW;
            if dep == stream {
                return Err(H2Error::Stream(
                    stream,
                    ErrorCode::ProtocolError,
                    "a stream depending on itself",
                ));
            }
            Ok(Frame::Priority { stream })
        }
        RST_STREAM => {
            need_stream("RST_STREAM on stream 0")?;
            let code = be32(&payload, ErrorCode::FrameSizeError, "RST_STREAM length")?;
            Ok(Frame::RstStream {
                stream,
                code: ErrorCode::from_u32(code),
            })
        }
        SETTINGS => {
            no_stream("SETTINGS on a stream")?;
            let ack = h.has(FLAG_ACK);
            if ack && !payload.is_empty() {
                return Err(H2Error::conn(
                    ErrorCode::FrameSizeError,
                    "SETTINGS ack with a payload",
                ));
            }
            if !payload.len().is_multiple_of(6) {
                return Err(H2Error::conn(
                    ErrorCode::FrameSizeError,
                    "SETTINGS length not a multiple of 6",
                ));
            }
            let params = payload
                .chunks_exact(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect();
            Ok(Frame::Settings { ack, params })
        }
        PUSH_PROMISE => Err(H2Error::protocol("PUSH_PROMISE from a client")),
        PING => {
            no_stream("PING on a stream")?;
            let data: [u8; 8] = payload[..].try_into().map_err(|_| {
                H2Error::conn(ErrorCode::FrameSizeError, "PING of a length other than 8")
            })?;
            Ok(Frame::Ping {
                ack: h.has(FLAG_ACK),
                data,
            })
        }
        GOAWAY => {
            no_stream("GOAWAY on a stream")?;
            if payload.len() < 8 {
                return Err(H2Error::conn(ErrorCode::FrameSizeError, "GOAWAY too short"));
            }
            let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
            Ok(Frame::GoAway {
                last_stream: last & MAX_WINDOW,
                code: ErrorCode::from_u32(code),
            })
        }
        WINDOW_UPDATE => {
            let v = be32(&payload, ErrorCode::FrameSizeError, "WINDOW_UPDATE length")?;
            let increment = v & MAX_WINDOW;
            if increment == 0 {
                return Err(if stream == 0 {
                    H2Error::protocol("WINDOW_UPDATE of 0 on the connection")
                } else {
                    H2Error::Stream(stream, ErrorCode::ProtocolError, "WINDOW_UPDATE of 0")
                });
            }
            Ok(Frame::WindowUpdate { stream, increment })
        }
        CONTINUATION => {
            need_stream("CONTINUATION on stream 0")?;
            Ok(Frame::Continuation {
                stream,
                fragment: payload,
                end_headers: h.has(FLAG_END_HEADERS),
            })
        }
        kind => Ok(Frame::Unknown { kind }),
    }
}

fn be32(payload: &[u8], code: ErrorCode, why: &'static str) -> Result<u32, H2Error> {
    let b: [u8; 4] = payload[..]
        .try_into()
        .map_err(|_| H2Error::conn(code, why))?;
    Ok(u32::from_be_bytes(b))
}

/// Strip the padding of a PADDED frame.
fn unpad(h: &FrameHeader, payload: Bytes) -> Result<Bytes, H2Error> {
    if !h.has(FLAG_PADDED) {
        return Ok(payload);
    }
    let Some(&pad) = payload.first() else {
        return Err(H2Error::conn(
            ErrorCode::FrameSizeError,
            "a padded frame without its pad length",
        ));
    };
    let end = payload.len() - 1;
    if pad as usize > end {
        return Err(H2Error::protocol("padding longer than the frame"));
    }
    Ok(payload.slice(1..1 + end - pad as usize))
}

/// Append a frame header.
pub fn put_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream & MAX_WINDOW);
}

pub fn put_settings(out: &mut BytesMut, params: &[(u16, u32)]) {
    put_header(out, params.len() * 6, SETTINGS, 0, 0);
    for &(id, v) in params {
        out.put_u16(id);
        out.put_u32(v);
    }
}

pub fn put_settings_ack(out: &mut BytesMut) {
    put_header(out, 0, SETTINGS, FLAG_ACK, 0);
}

pub fn put_ping_ack(out: &mut BytesMut, data: [u8; 8]) {
    put_header(out, 8, PING, FLAG_ACK, 0);
    out.put_slice(&data);
}

pub fn put_goaway(out: &mut BytesMut, last_stream: u32, code: ErrorCode) {
    put_header(out, 8, GOAWAY, 0, 0);
    out.put_u32(last_stream & MAX_WINDOW);
    out.put_u32(code.as_u32());
}

pub fn put_rst(out: &mut BytesMut, stream: u32, code: ErrorCode) {
    put_header(out, 4, RST_STREAM, 0, stream);
    out.put_u32(code.as_u32());
}

pub fn put_window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    put_header(out, 4, WINDOW_UPDATE, 0, stream);
    out.put_u32(increment & MAX_WINDOW);
}

/// A header block, split into HEADERS and CONTINUATION frames of at most `max` bytes.
pub fn put_header_block(
    out: &mut BytesMut,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max: usize,
) {
    let mut chunks = block.chunks(max.max(1)).peekable();
    let first = chunks.next().unwrap_or(&[]);
    let mut flags = if end_stream { FLAG_END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= FLAG_END_HEADERS;
    }
    put_header(out, first.len(), HEADERS, flags, stream);
    out.put_slice(first);
    while let Some(c) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            FLAG_END_HEADERS
        } else {
            0
        };
        put_header(out, c.len(), CONTINUATION, flags, stream);
        out.put_slice(c);
    }
}
