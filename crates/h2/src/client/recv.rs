//! The server's frames on a client connection: its SETTINGS (first), response heads,
//! bodies within our windows, trailers, resets, GOAWAY (with the set of streams it never
//! processed), PING and WINDOW_UPDATE. A connection error queues our GOAWAY and ends
//! reading; a stream error resets that stream and the connection goes on.

use bytes::{Bytes, BytesMut};

use super::{Block, BlockKind, ClientConn, ClientEvent, Phase, StreamId};
use crate::error::{ErrorCode, H2Error};
use crate::frame::{self, Frame, FrameHeader};
use crate::headers::{self, BlockError};

impl ClientConn {
    /// Take the server's bytes (any split: an incomplete frame waits for the rest) and say
    /// what they meant. After `ClientEvent::Error`, nothing more is read.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        if self.phase == Phase::Failed {
            return events;
        }
        self.input.extend_from_slice(bytes);
        if let Err(e) = self.recv_frames(&mut events) {
            self.input.clear();
            self.fail(e, &mut events);
        }
        events
    }

    fn recv_frames(&mut self, events: &mut Vec<ClientEvent>) -> Result<(), H2Error> {
        while let Some(h) = FrameHeader::peek(&self.input) {
            if h.len > self.cfg.max_frame_size {
                return Err(H2Error::conn(
                    ErrorCode::FrameSizeError,
                    "a frame larger than our SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            let total = frame::HEADER_LEN + h.len as usize;
            if self.input.len() < total {
                break;
            }
            if self.phase == Phase::WaitSettings {
                if h.kind != frame::SETTINGS || h.flags & frame::FLAG_ACK != 0 {
                    return Err(H2Error::protocol(
                        "the server's first frame is not SETTINGS",
                    ));
                }
                self.phase = Phase::Open;
            }
            let bytes = self.input.split_to(total).freeze();
            if let Some(b) = &self.block {
                if h.kind != frame::CONTINUATION || h.stream != b.stream {
                    return Err(H2Error::protocol("a header block interrupted"));
                }
            }
            match frame::decode(h, bytes).and_then(|f| self.on_frame(f, events)) {
                Ok(()) => {}
                Err(H2Error::Stream(id, code, _)) => self.stream_error(id, code, events),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A stream the server could have opened only if we did (odd, below the next id).
    fn check_opened(&self, id: StreamId, why: &'static str) -> Result<(), H2Error> {
        if id.is_multiple_of(2) || id >= self.next_id {
            return Err(H2Error::protocol(why));
        }
        Ok(())
    }

    fn on_frame(&mut self, f: Frame, events: &mut Vec<ClientEvent>) -> Result<(), H2Error> {
        match f {
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => self.on_data(stream, data, end_stream, flow_len, events),
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => self.on_headers(stream, fragment, end_stream, end_headers, events),
            Frame::Continuation {
                stream: _,
                fragment,
                end_headers,
            } => {
                let Some(b) = self.block.as_mut() else {
                    return Err(H2Error::protocol("CONTINUATION without a header block"));
                };
                b.buf.extend_from_slice(&fragment);
                if b.buf.len() > self.cfg.max_header_block {
                    return Err(H2Error::conn(
                        ErrorCode::EnhanceYourCalm,
                        "a header block larger than the limit",
                    ));
                }
                if end_headers {
                    self.finish_block(events)?;
                }
                Ok(())
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::RstStream { stream, code } => {
                self.check_opened(stream, "RST_STREAM on an idle stream")?;
                if self.streams.remove(&stream).is_some() {
                    events.push(ClientEvent::Reset {
                        id: stream,
                        code,
                        retryable: code == ErrorCode::RefusedStream,
                    });
                }
                Ok(())
            }
            Frame::Settings { ack, params } => {
                if !ack {
                    self.apply_settings(&params, events)?;
                    frame::put_settings_ack(&mut self.out);
                }
                Ok(())
            }
            Frame::Ping { ack, data } => {
                if ack {
                    self.pings_out = self.pings_out.saturating_sub(1);
                    events.push(ClientEvent::Ping { data });
                } else {
                    frame::put_ping_ack(&mut self.out, data);
                }
                Ok(())
            }
            Frame::GoAway { last_stream, code } => {
                self.on_goaway(last_stream, code, events);
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                self.on_window_update(stream, increment, events)
            }
        }
    }

    fn apply_settings(
        &mut self,
        params: &[(u16, u32)],
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), H2Error> {
        let mut opened = false;
        for &(id, v) in params {
            match id {
                frame::SETTINGS_HEADER_TABLE_SIZE => {
                    self.encoder.set_table_size(v).map_err(|_| {
                        H2Error::conn(ErrorCode::InternalError, "HPACK table resize failed")
                    })?;
                }
                frame::SETTINGS_ENABLE_PUSH | frame::SETTINGS_ENABLE_CONNECT_PROTOCOL if v > 1 => {
                    return Err(H2Error::protocol("a boolean setting above 1"));
                }
                frame::SETTINGS_MAX_HEADER_LIST_SIZE => {
                    self.peer.max_header_list = Some(v);
                }
                frame::SETTINGS_MAX_CONCURRENT_STREAMS => {
                    self.peer.max_concurrent_streams = v;
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    if v > frame::MAX_WINDOW {
                        return Err(H2Error::conn(
                            ErrorCode::FlowControlError,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    let delta = v as i64 - self.peer.initial_window as i64;
                    self.peer.initial_window = v;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > frame::MAX_WINDOW as i64 {
                            return Err(H2Error::conn(
                                ErrorCode::FlowControlError,
                                "a stream window above 2^31-1",
                            ));
                        }
                    }
                    opened |= delta > 0;
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&v) {
                        return Err(H2Error::protocol("SETTINGS_MAX_FRAME_SIZE out of range"));
                    }
                    self.peer.max_frame_size = v;
                }
                _ => {}
            }
        }
        events.push(ClientEvent::Settings {
            max_concurrent_streams: self.peer.max_concurrent_streams,
        });
        if opened {
            window_opened(events);
        }
        Ok(())
    }

    fn on_goaway(&mut self, last: StreamId, code: ErrorCode, events: &mut Vec<ClientEvent>) {
        // A second GOAWAY may only lower the last stream id.
        let last = self.goaway.map_or(last, |prev| prev.min(last));
        self.goaway = Some(last);
        if self.phase != Phase::Failed {
            self.phase = Phase::Draining;
        }
        let above: Vec<StreamId> = self
            .streams
            .range(last.saturating_add(1)..)
            .map(|(&id, _)| id)
            .collect();
        let mut retryable = Vec::with_capacity(above.len());
        for id in above {
            let Some(s) = self.streams.remove(&id) else {
                continue;
            };
            if s.answered {
                // The RFC says this cannot be; if a response began, it is not safe to send
                // the request again: the stream is lost.
                events.push(ClientEvent::Reset {
                    id,
                    code,
                    retryable: false,
                });
            } else {
                retryable.push(id);
            }
        }
        events.push(ClientEvent::GoAway {
            last_stream_id: last,
            code,
            retryable,
        });
    }

    fn on_window_update(
        &mut self,
        stream: StreamId,
        inc: u32,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), H2Error> {
        if stream == 0 {
            self.conn_send += inc as i64;
            if self.conn_send > frame::MAX_WINDOW as i64 {
                return Err(H2Error::conn(
                    ErrorCode::FlowControlError,
                    "the connection window above 2^31-1",
                ));
            }
            window_opened(events);
            return Ok(());
        }
        self.check_opened(stream, "WINDOW_UPDATE on an idle stream")?;
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        s.send_window += inc as i64;
        if s.send_window > frame::MAX_WINDOW as i64 {
            return Err(H2Error::Stream(
                stream,
                ErrorCode::FlowControlError,
                "a stream window above 2^31-1",
            ));
        }
        if s.local_open {
            window_opened(events);
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        stream: StreamId,
        data: Bytes,
        end_stream: bool,
        flow_len: u32,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), H2Error> {
        self.conn_recv -= flow_len as i64;
        if self.conn_recv < 0 {
            return Err(H2Error::conn(
                ErrorCode::FlowControlError,
                "DATA past the connection window",
            ));
        }
        self.check_opened(stream, "DATA on an idle stream")?;
        let padding = flow_len - data.len() as u32;
        let Some(state) = self
            .streams
            .get(&stream)
            .map(|s| (s.remote_open, s.final_head))
        else {
            // A stream we reset or finished: frames in flight are dropped, their window
            // given back.
            self.give_back_conn(flow_len);
            return Ok(());
        };
        // Padding is given back at once (with the body's next update).
        self.give_back_conn(padding);
        let refuse = match state {
            (false, _) => Some((ErrorCode::StreamClosed, "DATA after the response ended")),
            (true, false) => Some((ErrorCode::ProtocolError, "DATA before the response head")),
            (true, true) => None,
        };
        if let Some((code, why)) = refuse {
            self.give_back_conn(data.len() as u32);
            return Err(H2Error::Stream(stream, code, why));
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        s.recv_window -= flow_len as i64;
        if s.recv_window < 0 {
            self.give_back_conn(data.len() as u32);
            return Err(H2Error::Stream(
                stream,
                ErrorCode::FlowControlError,
                "DATA past the stream window",
            ));
        }
        s.unacked += padding;
        s.received += data.len() as u64;
        if s.content_length
            .is_some_and(|cl| s.received > cl || (end_stream && s.received != cl))
        {
            self.give_back_conn(data.len() as u32);
            return Err(H2Error::Stream(
                stream,
                ErrorCode::ProtocolError,
                "DATA that does not match content-length",
            ));
        }
        if end_stream {
            s.remote_open = false;
            self.close_if_done(stream);
        }
        if !data.is_empty() || end_stream {
            events.push(ClientEvent::Data {
                id: stream,
                bytes: data,
                end: end_stream,
            });
        }
        Ok(())
    }

    fn on_headers(
        &mut self,
        stream: StreamId,
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), H2Error> {
        self.check_opened(stream, "HEADERS on a stream the client did not open")?;
        let kind = match self.streams.get(&stream) {
            Some(s) if s.remote_open && s.final_head => {
                if !end_stream {
                    return Err(H2Error::protocol("trailers without END_STREAM"));
                }
                BlockKind::Trailers
            }
            Some(s) if s.remote_open => BlockKind::Head,
            Some(_) => {
                return Err(H2Error::conn(
                    ErrorCode::StreamClosed,
                    "HEADERS after the response ended",
                ))
            }
            None => BlockKind::Ignored,
        };
        if fragment.len() > self.cfg.max_header_block {
            return Err(H2Error::conn(
                ErrorCode::EnhanceYourCalm,
                "a header block larger than the limit",
            ));
        }
        self.block = Some(Block {
            stream,
            buf: BytesMut::from(&fragment[..]),
            end_stream,
            kind,
        });
        if end_headers {
            self.finish_block(events)?;
        }
        Ok(())
    }

    fn finish_block(&mut self, events: &mut Vec<ClientEvent>) -> Result<(), H2Error> {
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        let kind = b.kind;
        let id = b.stream;
        let fields = match self.decoder.decode(&b.buf) {
            Ok(f) => f,
            Err(BlockError::Compression) => {
                return Err(H2Error::conn(
                    ErrorCode::CompressionError,
                    "the server's header block does not decode",
                ))
            }
            Err(_) if kind == BlockKind::Ignored => return Ok(()),
            Err(_) => {
                return Err(H2Error::Stream(
                    id,
                    ErrorCode::ProtocolError,
                    "a response head larger than max_header_list",
                ))
            }
        };
        match kind {
            BlockKind::Ignored => Ok(()),
            BlockKind::Trailers => {
                let fields = headers::trailers(fields)
                    .map_err(|_| H2Error::Stream(id, ErrorCode::ProtocolError, "bad trailers"))?;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.remote_open = false;
                }
                self.close_if_done(id);
                events.push(ClientEvent::Trailers { id, fields });
                Ok(())
            }
            BlockKind::Head => {
                let (status, fields) = response(fields).map_err(|why| {
                    let why = match why {
                        BlockError::Malformed(w) => w,
                        _ => "a malformed response head",
                    };
                    H2Error::Stream(id, ErrorCode::ProtocolError, why)
                })?;
                let interim = (100..200).contains(&status);
                if interim && b.end_stream {
                    return Err(H2Error::Stream(
                        id,
                        ErrorCode::ProtocolError,
                        "an interim response that ends the stream",
                    ));
                }
                if let Some(s) = self.streams.get_mut(&id) {
                    s.answered = true;
                    s.final_head |= !interim;
                    // RFC 9110 §8.6: no body follows a HEAD's response, a 204 or a 304,
                    // whatever content-length says.
                    let bodiless = s.head_request || status == 204 || status == 304;
                    if !interim && !bodiless {
                        s.content_length = content_length(&fields)
                            .map_err(|why| H2Error::Stream(id, ErrorCode::ProtocolError, why))?;
                        if b.end_stream && s.content_length.is_some_and(|cl| cl != 0) {
                            return Err(H2Error::Stream(
                                id,
                                ErrorCode::ProtocolError,
                                "a content-length with no body",
                            ));
                        }
                    }
                    if b.end_stream {
                        s.remote_open = false;
                    }
                }
                self.close_if_done(id);
                events.push(ClientEvent::Headers {
                    id,
                    status,
                    fields,
                    end: b.end_stream,
                });
                Ok(())
            }
        }
    }

    /// A stream error: RST_STREAM, and the caller hears of it if the stream was open.
    fn stream_error(&mut self, id: StreamId, code: ErrorCode, events: &mut Vec<ClientEvent>) {
        frame::put_rst(&mut self.out, id, code);
        if self.streams.remove(&id).is_some() {
            events.push(ClientEvent::Reset {
                id,
                code,
                retryable: false,
            });
        }
    }
}

/// One `WindowOpened` per batch of events is enough.
fn window_opened(events: &mut Vec<ClientEvent>) {
    if !events.contains(&ClientEvent::WindowOpened) {
        events.push(ClientEvent::WindowOpened);
    }
}

/// The response's `content-length`: digits only, and the same if given twice.
fn content_length(fields: &[(Bytes, Bytes)]) -> Result<Option<u64>, &'static str> {
    let mut found = None;
    for (name, value) in fields {
        if &name[..] != b"content-length" {
            continue;
        }
        let n = std::str::from_utf8(value)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("a content-length that is not a number")?;
        if found.is_some_and(|f| f != n) {
            return Err("two different content-lengths");
        }
        found = Some(n);
    }
    Ok(found)
}

/// A response head: `:status` (three digits, not 101: RFC 9113 §8.6) and regular fields,
/// checked as RFC 9113 §8.2 says.
fn response(fields: Vec<(Bytes, Bytes)>) -> Result<(u16, Vec<(Bytes, Bytes)>), BlockError> {
    let mut status = None;
    let mut regular = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        headers::check_field(&name, &value)?;
        if name.starts_with(b":") {
            if !regular.is_empty() {
                return Err(BlockError::Malformed("a pseudo field after a regular one"));
            }
            if &name[..] != b":status" {
                return Err(BlockError::Malformed("a pseudo field other than :status"));
            }
            if status.is_some() {
                return Err(BlockError::Malformed(":status twice"));
            }
            let code = std::str::from_utf8(&value)
                .ok()
                .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u16>().ok())
                .filter(|&c| c >= 100 && c != 101)
                .ok_or(BlockError::Malformed("a :status that is not a status"))?;
            status = Some(code);
            continue;
        }
        if headers::CONNECTION_SPECIFIC.contains(&&name[..]) {
            return Err(BlockError::Malformed("a connection-specific field"));
        }
        regular.push((name, value));
    }
    let status = status.ok_or(BlockError::Malformed("no :status"))?;
    Ok((status, regular))
}
