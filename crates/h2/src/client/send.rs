//! The caller's side of a client connection: requests on new streams (within the server's
//! MAX_CONCURRENT_STREAMS), request bodies within the server's windows, trailers, resets,
//! window given back as response bodies are consumed, PING keep-alive and GOAWAY.

use bytes::Bytes;

use super::{CStream, ClientConn, Phase, RequestError, StreamError, StreamId};
use crate::error::{ErrorCode, H2Error};
use crate::frame;

impl ClientConn {
    /// Open a stream with a request head: pseudo fields first (`:method`, `:scheme`,
    /// `:authority`, `:path`), then the regular fields (lowercased here; connection-specific
    /// ones dropped). `end_stream`: no body follows.
    pub fn send_request(
        &mut self,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<StreamId, RequestError> {
        if !self.takes_new_streams() {
            return Err(RequestError::GoingAway);
        }
        if self.streams.len() >= self.peer.max_concurrent_streams as usize {
            return Err(RequestError::Busy);
        }
        // RFC 9113 §6.5.2: names + values + 32 per field.
        let size: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        if self
            .peer
            .max_header_list
            .is_some_and(|max| size > max as usize)
        {
            return Err(RequestError::TooLarge);
        }
        let block = match self.encoder.encode(fields) {
            Ok(b) => b,
            Err(_) => {
                let mut ignored = Vec::new();
                self.fail(
                    H2Error::conn(ErrorCode::CompressionError, "HPACK encoding failed"),
                    &mut ignored,
                );
                return Err(RequestError::Compression);
            }
        };
        let id = self.next_id;
        self.next_id += 2;
        let max = self.peer.max_frame_size as usize;
        frame::put_header_block(&mut self.out, id, &block, end_stream, max);
        self.streams.insert(
            id,
            CStream {
                local_open: !end_stream,
                remote_open: true,
                final_head: false,
                answered: false,
                send_window: self.peer.initial_window as i64,
                recv_window: self.cfg.initial_window as i64,
                unacked: 0,
                head_request: fields
                    .iter()
                    .any(|(n, v)| *n == b":method" && *v == b"HEAD"),
                content_length: None,
                received: 0,
            },
        );
        Ok(id)
    }

    /// How much request body `id` may send now (the smaller of its window and the
    /// connection's); 0 for a stream that cannot send.
    pub fn sendable(&self, id: StreamId) -> usize {
        self.streams
            .get(&id)
            .filter(|s| s.local_open)
            .map_or(0, |s| s.send_window.min(self.conn_send).max(0) as usize)
    }

    /// Send as much of `data` as the windows allow, as DATA frames sharing its bytes; what
    /// was sent is split off the front of `data`, the rest waits for `WindowOpened`. With
    /// `end_stream`, the last frame ends our side once all of `data` is out (an empty
    /// `data` just ends it). Returns the bytes sent.
    pub fn send_data(
        &mut self,
        id: StreamId,
        data: &mut Bytes,
        end_stream: bool,
    ) -> Result<usize, StreamError> {
        let max = self.peer.max_frame_size as usize;
        let mut sent = 0;
        loop {
            let allowed = self.sendable(id);
            let Some(s) = self.streams.get_mut(&id).filter(|s| s.local_open) else {
                return Err(StreamError::Closed);
            };
            let n = data.len().min(allowed).min(max);
            let last = n == data.len() && end_stream;
            if n == 0 && !last {
                return Ok(sent);
            }
            let chunk = data.split_to(n);
            s.send_window -= n as i64;
            self.conn_send -= n as i64;
            if last {
                s.local_open = false;
            }
            let flags = if last { frame::FLAG_END_STREAM } else { 0 };
            frame::put_header(&mut self.out, n, frame::DATA, flags, id);
            self.flush_control();
            if !chunk.is_empty() {
                self.queue.push(chunk);
            }
            sent += n;
            if last {
                self.close_if_done(id);
            }
            if last || data.is_empty() {
                return Ok(sent);
            }
        }
    }

    /// Trailers after the request body: ends our side of the stream. Send them once all
    /// the body is out (`send_data` left nothing).
    pub fn send_trailers(
        &mut self,
        id: StreamId,
        fields: &[(&[u8], &[u8])],
    ) -> Result<(), StreamError> {
        if !self.streams.get(&id).is_some_and(|s| s.local_open) {
            return Err(StreamError::Closed);
        }
        let block = match self.encoder.encode(fields) {
            Ok(b) => b,
            Err(_) => {
                let mut ignored = Vec::new();
                self.fail(
                    H2Error::conn(ErrorCode::CompressionError, "HPACK encoding failed"),
                    &mut ignored,
                );
                return Err(StreamError::Compression);
            }
        };
        let max = self.peer.max_frame_size as usize;
        frame::put_header_block(&mut self.out, id, &block, true, max);
        if let Some(s) = self.streams.get_mut(&id) {
            s.local_open = false;
        }
        self.close_if_done(id);
        Ok(())
    }

    /// Cancel `id` (the client went away, a timeout): RST_STREAM, and whatever the server
    /// still sends for it is dropped.
    pub fn reset(&mut self, id: StreamId, code: ErrorCode) {
        if self.streams.remove(&id).is_some() {
            frame::put_rst(&mut self.out, id, code);
        }
    }

    /// The caller passed `n` body bytes of `id` on: give them back to the server
    /// (WINDOW_UPDATE once half a window is owed, for the stream and for the connection).
    /// Until then the server can send at most the windows: a slow consumer slows it.
    pub fn consumed(&mut self, id: StreamId, n: usize) {
        let n = n.min(frame::MAX_WINDOW as usize) as u32;
        let half = self.cfg.initial_window / 2;
        if let Some(s) = self.streams.get_mut(&id).filter(|s| s.remote_open) {
            s.unacked += n;
            if s.unacked >= half.max(1) {
                frame::put_window_update(&mut self.out, id, s.unacked);
                s.recv_window += s.unacked as i64;
                s.unacked = 0;
            }
        }
        self.give_back_conn(n);
    }

    /// Send a PING (keep-alive); its answer comes as `ClientEvent::Ping`.
    pub fn ping(&mut self) -> [u8; 8] {
        self.ping_seq += 1;
        let data = self.ping_seq.to_be_bytes();
        frame::put_header(&mut self.out, 8, frame::PING, 0, 0);
        self.out.extend_from_slice(&data);
        self.pings_out += 1;
        data
    }

    /// Take no new streams and tell the server (GOAWAY NO_ERROR): the open streams finish.
    pub fn go_away(&mut self) {
        if matches!(
            self.phase,
            Phase::WaitSettings | Phase::Open | Phase::Draining
        ) {
            if self.phase != Phase::Draining {
                frame::put_goaway(&mut self.out, 0, ErrorCode::NoError);
            }
            self.phase = Phase::Draining;
        }
    }

    pub(super) fn give_back_conn(&mut self, n: u32) {
        self.conn_unacked = self.conn_unacked.saturating_add(n);
        if self.conn_unacked >= (self.cfg.conn_window / 2).max(1) {
            frame::put_window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_recv += self.conn_unacked as i64;
            self.conn_unacked = 0;
        }
    }

    /// Forget a stream closed both ways.
    pub(super) fn close_if_done(&mut self, id: StreamId) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| !s.local_open && !s.remote_open)
        {
            self.streams.remove(&id);
        }
    }
}
