//! Header blocks of a connection: HEADERS opening a stream (or refused past the limit, or
//! while draining), CONTINUATION frames under the flood guard, and the decoded block turned
//! into a request, trailers, or a 431 refusal. Every block is decoded, even one that is
//! dropped, so the HPACK state stays in step with the client's.

use bytes::{Bytes, BytesMut};

use super::{Block, BlockKind, Conn, Event, Phase};
use crate::error::{ErrorCode, H2Error};
use crate::headers::{self, BlockError};
use crate::stream::{Stream, StreamState};

/// How many gaps of skipped stream ids a connection remembers.
const SKIP_MEMORY: usize = 64;

impl Conn {
    pub(super) fn on_headers(
        &mut self,
        stream: u32,
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        if stream.is_multiple_of(2) {
            return Err(H2Error::protocol("a client stream with an even id"));
        }
        let kind = match self.streams.get(&stream) {
            Some(s) if s.remote_open() => {
                if !end_stream {
                    return Err(H2Error::protocol("trailers without END_STREAM"));
                }
                BlockKind::Trailers
            }
            Some(_) => {
                return Err(H2Error::conn(
                    ErrorCode::StreamClosed,
                    "HEADERS on a stream the client closed",
                ))
            }
            None if stream > self.last_stream => {
                self.skip_to(stream);
                self.last_stream = stream;
                if self.phase == Phase::Draining
                    || self.streams.len() >= self.cfg.max_concurrent_streams as usize
                {
                    self.refuse(stream);
                    BlockKind::Ignored
                } else {
                    BlockKind::Request
                }
            }
            None if self.reset_recently.contains(&stream) => BlockKind::Ignored,
            // RFC 9113 5.1.1: a new stream must be numbered above every one opened before.
            None if self.skipped.iter().any(|r| r.contains(&stream)) => {
                return Err(H2Error::protocol(
                    "HEADERS on a stream id below one already opened",
                ))
            }
            None => {
                return Err(H2Error::conn(
                    ErrorCode::StreamClosed,
                    "HEADERS on a closed stream",
                ))
            }
        };
        self.block = Some(Block {
            stream,
            buf: BytesMut::from(&fragment[..]),
            end_stream,
            frames: 1,
            kind,
        });
        self.check_block()?;
        if end_headers {
            self.finish_block(events)?;
        }
        Ok(())
    }

    pub(super) fn on_continuation(
        &mut self,
        fragment: Bytes,
        end_headers: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), H2Error> {
        let Some(b) = self.block.as_mut() else {
            return Err(H2Error::protocol("CONTINUATION without a header block"));
        };
        b.buf.extend_from_slice(&fragment);
        b.frames += 1;
        self.check_block()?;
        if end_headers {
            self.finish_block(events)?;
        }
        Ok(())
    }

    /// Remember the ids a new stream `stream` skips (never opened, so closed by it): a
    /// HEADERS on one of them later is a PROTOCOL_ERROR, on a stream that ran and closed a
    /// STREAM_CLOSED. The last `SKIP_MEMORY` gaps are kept (clients seldom skip ids).
    fn skip_to(&mut self, stream: u32) {
        let first = if self.last_stream == 0 {
            1
        } else {
            self.last_stream + 2
        };
        if stream > first {
            if self.skipped.len() == SKIP_MEMORY {
                self.skipped.pop_front();
            }
            self.skipped.push_back(first..=stream - 2);
        }
    }

    /// The CONTINUATION flood guard.
    fn check_block(&self) -> Result<(), H2Error> {
        if let Some(b) = &self.block {
            if b.buf.len() > self.cfg.max_header_block || b.frames > self.cfg.max_block_frames {
                return Err(H2Error::conn(
                    ErrorCode::EnhanceYourCalm,
                    "a header block too large or in too many frames",
                ));
            }
        }
        Ok(())
    }

    fn finish_block(&mut self, events: &mut Vec<Event>) -> Result<(), H2Error> {
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        let decoded = self.decoder.decode(&b.buf);
        let fields = match decoded {
            Err(BlockError::Compression) => {
                return Err(H2Error::conn(ErrorCode::CompressionError, "bad HPACK"))
            }
            _ if b.kind == BlockKind::Ignored => return Ok(()),
            Err(BlockError::TooLarge) if b.kind == BlockKind::Request => {
                let state = StreamState::Discarding {
                    local_closed: false,
                };
                let mut s = Stream::new(self.peer.initial_window, self.cfg.initial_window, state);
                if b.end_stream {
                    s.close_remote();
                }
                self.streams.insert(b.stream, s);
                events.push(Event::Refused {
                    stream: b.stream,
                    status: 431,
                });
                return Ok(());
            }
            Err(BlockError::TooLarge) => {
                return Err(H2Error::Stream(
                    b.stream,
                    ErrorCode::ProtocolError,
                    "trailers too large",
                ))
            }
            Err(BlockError::Malformed(why)) => {
                return Err(H2Error::Stream(b.stream, ErrorCode::ProtocolError, why))
            }
            Ok(fields) => fields,
        };
        if b.kind == BlockKind::Trailers {
            let fields = headers::trailers(fields).map_err(|e| malformed(b.stream, e))?;
            let closed = match self.streams.get_mut(&b.stream) {
                Some(s) => {
                    if s.content_length.is_some_and(|cl| cl != s.received) {
                        return Err(H2Error::Stream(
                            b.stream,
                            ErrorCode::ProtocolError,
                            "a body shorter than content-length",
                        ));
                    }
                    s.close_remote()
                }
                None => false,
            };
            if closed {
                self.streams.remove(&b.stream);
            }
            events.push(Event::Trailers {
                stream: b.stream,
                fields,
            });
            return Ok(());
        }
        let head = headers::request(fields, self.cfg.connect_protocol)
            .map_err(|e| malformed(b.stream, e))?;
        let mut s = Stream::new(
            self.peer.initial_window,
            self.cfg.initial_window,
            StreamState::Open,
        );
        s.content_length = head.content_length;
        if b.end_stream {
            if head.content_length.is_some_and(|cl| cl != 0) {
                return Err(H2Error::Stream(
                    b.stream,
                    ErrorCode::ProtocolError,
                    "content-length with no body",
                ));
            }
            s.close_remote();
        }
        self.streams.insert(b.stream, s);
        events.push(Event::Request {
            stream: b.stream,
            head,
            end_stream: b.end_stream,
        });
        Ok(())
    }
}

fn malformed(stream: u32, e: BlockError) -> H2Error {
    match e {
        BlockError::Malformed(why) => H2Error::Stream(stream, ErrorCode::ProtocolError, why),
        BlockError::TooLarge => H2Error::Stream(stream, ErrorCode::ProtocolError, "too large"),
        BlockError::Compression => H2Error::conn(ErrorCode::CompressionError, "bad HPACK"),
    }
}
