//! The application's side of a connection: answering streams (HEADERS, DATA within the
//! client's windows, trailers), resetting them, giving window back as request bodies are
//! consumed, going away, and taking the frames to write.

use bytes::{Bytes, BytesMut};

use super::{Conn, Phase};
use crate::error::ErrorCode;
use crate::frame;
use crate::headers;

/// Why a send was not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No such stream open our way (it ended, or the client reset it).
    Closed,
}

impl Conn {
    /// Answer `stream` with a response head; `end_stream`: no body follows.
    pub fn send_headers(
        &mut self,
        stream: u32,
        status: u16,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<(), SendError> {
        let block = headers::encode_response(status, fields);
        self.send_block(stream, &block, end_stream)
    }

    /// Trailers after a body: ends the stream.
    pub fn send_trailers(
        &mut self,
        stream: u32,
        fields: &[(&[u8], &[u8])],
    ) -> Result<(), SendError> {
        let block = headers::encode_fields(fields);
        self.send_block(stream, &block, true)
    }

    fn send_block(&mut self, stream: u32, block: &[u8], end_stream: bool) -> Result<(), SendError> {
        let s = self.streams.get_mut(&stream).filter(|s| s.local_open());
        let Some(s) = s else {
            return Err(SendError::Closed);
        };
        let done = end_stream && s.close_local();
        let max = self.peer.max_frame_size as usize;
        frame::put_header_block(&mut self.out, stream, block, end_stream, max);
        if done {
            self.streams.remove(&stream);
        }
        Ok(())
    }

    /// How much body `stream` may send now (the smaller of its window and the
    /// connection's); 0 for a stream that cannot send.
    pub fn send_window(&self, stream: u32) -> usize {
        self.streams
            .get(&stream)
            .filter(|s| s.local_open())
            .map_or(0, |s| s.send_window.min(self.conn_send).max(0) as usize)
    }

    /// Send as much of `data` as the windows allow, as DATA frames sharing its bytes; what
    /// was sent is split off the front of `data`. With `end_stream`, the last frame ends
    /// the stream once all of `data` is out. Returns the bytes sent.
    pub fn send_data(
        &mut self,
        stream: u32,
        data: &mut Bytes,
        end_stream: bool,
    ) -> Result<usize, SendError> {
        let max = self.peer.max_frame_size as usize;
        let mut sent = 0;
        loop {
            let allowed = self.send_window(stream);
            let Some(s) = self.streams.get_mut(&stream).filter(|s| s.local_open()) else {
                return Err(SendError::Closed);
            };
            let n = data.len().min(allowed).min(max);
            let last = n == data.len() && end_stream;
            if n == 0 && !last {
                return Ok(sent);
            }
            let chunk = data.split_to(n);
            s.send_window -= n as i64;
            self.conn_send -= n as i64;
            let done = last && s.close_local();
            let flags = if last { frame::FLAG_END_STREAM } else { 0 };
            frame::put_header(&mut self.out, n, frame::DATA, flags, stream);
            self.flush_control();
            if !chunk.is_empty() {
                self.queue.push(chunk);
            }
            sent += n;
            if done {
                self.streams.remove(&stream);
            }
            if last || data.is_empty() {
                return Ok(sent);
            }
        }
    }

    /// End `stream` our way with an RST_STREAM (a failed upstream, a cancelled answer).
    pub fn reset(&mut self, stream: u32, code: ErrorCode) {
        if self.streams.remove(&stream).is_some() {
            frame::put_rst(&mut self.out, stream, code);
            self.remember_reset(stream);
        }
    }

    /// The application consumed `n` bytes of `stream`'s body: give them back to the
    /// client (WINDOW_UPDATE once half a window is owed, for the stream and the connection).
    pub fn consumed(&mut self, stream: u32, n: usize) {
        let n = n as u32;
        if let Some(s) = self.streams.get_mut(&stream).filter(|s| s.remote_open()) {
            s.unacked += n;
            if s.unacked >= self.cfg.initial_window / 2 {
                frame::put_window_update(&mut self.out, stream, s.unacked);
                s.recv_window += s.unacked as i64;
                s.unacked = 0;
            }
        }
        self.give_back_conn(n);
    }

    /// Stop taking new streams: GOAWAY with the last stream the client opened; those finish.
    pub fn go_away(&mut self, code: ErrorCode) {
        if self.phase != Phase::Draining {
            frame::put_goaway(&mut self.out, self.last_stream, code);
            self.phase = Phase::Draining;
        }
    }

    /// No stream is open (an idle connection, or a drained one that may close).
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.block.is_none()
    }

    /// GOAWAY was sent (by `go_away` or after a connection error).
    pub fn is_draining(&self) -> bool {
        self.phase == Phase::Draining
    }

    /// The streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Frames are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.queue.is_empty()
    }

    /// The bytes to write, in order (for one `writev`).
    pub fn take_output(&mut self) -> Vec<Bytes> {
        self.flush_control();
        std::mem::take(&mut self.queue)
    }

    /// Move the control frames written so far into the queue, before a DATA payload.
    fn flush_control(&mut self) {
        if !self.out.is_empty() {
            let frames = std::mem::replace(&mut self.out, BytesMut::with_capacity(64));
            self.queue.push(frames.freeze());
        }
    }
}
