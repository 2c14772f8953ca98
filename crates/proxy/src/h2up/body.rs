//! A request body on its way to an HTTP/2 upstream, the same for HTTP/2 clients
//! (`h2/h2up.rs`: DATA frames and trailers) and HTTP/1.1 clients (`http/h2up.rs`: the body
//! read from the socket, de-chunked): the bytes not sent yet, sent as the stream's and the
//! connection's windows allow (never past them: the rest waits, and the client is not read
//! further), and the bytes sent kept until the answer's head comes, so that a stream the
//! server never processed (GOAWAY, REFUSED_STREAM) can be sent again whole.

use std::collections::VecDeque;

use bytes::Bytes;
use tether_h2::StreamId;

use super::mux::UpMux;

/// The request body kept for a retry, at most (past it the call is not retried).
const REPLAY_MAX: usize = 1024 * 1024;

pub(crate) struct UpBody {
    /// Bytes not sent yet, and how many.
    queue: VecDeque<Bytes>,
    pub queued: usize,
    /// The client's body is whole (its END_STREAM, or the last byte read).
    pub ended: bool,
    /// The client's trailers, sent after the body.
    trailers: Option<Vec<(Bytes, Bytes)>>,
    /// The bytes sent, kept until the answer's head (`None` past `REPLAY_MAX`, or once
    /// the server processed the request).
    sent: Option<Vec<Bytes>>,
    sent_len: usize,
    /// Our END_STREAM went upstream (or the stream was cut).
    pub sent_end: bool,
    /// Times the body was made ready to go again.
    retries: u8,
}

impl UpBody {
    pub fn new(ended: bool) -> UpBody {
        UpBody {
            queue: VecDeque::new(),
            queued: 0,
            ended,
            trailers: None,
            sent: Some(Vec::new()),
            sent_len: 0,
            sent_end: false,
            retries: 0,
        }
    }

    /// More of the body from the client.
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.queued += b.len();
            self.queue.push_back(b);
        }
    }

    /// The client's trailers: the body is whole.
    pub fn set_trailers(&mut self, t: Vec<(Bytes, Bytes)>) {
        self.trailers = Some(t);
        self.ended = true;
    }

    /// Nothing follows the request's head: its HEADERS carry END_STREAM.
    pub fn ends_with_head(&self) -> bool {
        self.ended && self.queue.is_empty() && self.trailers.is_none()
    }

    /// Send on stream `up` what the windows allow: DATA, then END_STREAM or the trailers
    /// once the body is whole. The body bytes sent (the client's window may have them back).
    pub fn send(&mut self, m: &mut UpMux, up: StreamId) -> usize {
        let mut given = 0;
        while !self.sent_end && m.can_write() {
            let last = self.ended && self.queue.len() <= 1 && self.trailers.is_none();
            let Some(front) = self.queue.front_mut() else {
                if let (true, Some(t)) = (self.ended, self.trailers.as_ref()) {
                    let list: Vec<(&[u8], &[u8])> =
                        t.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                    let _ = m.h2.send_trailers(up, &list);
                    self.sent_end = true;
                } else if self.ended && m.h2.send_data(up, &mut Bytes::new(), true).is_ok() {
                    self.sent_end = true;
                }
                break;
            };
            if m.h2.sendable(up) == 0 {
                break;
            }
            let whole = front.clone();
            match m.h2.send_data(up, front, last) {
                Ok(n) => {
                    given += n;
                    self.queued -= n;
                    self.sent_len += n;
                    match &mut self.sent {
                        Some(v) if self.sent_len <= REPLAY_MAX => v.push(whole.slice(..n)),
                        _ => self.sent = None,
                    }
                }
                Err(_) => {
                    self.cut();
                    break;
                }
            }
            if !front.is_empty() {
                break; // a window closed
            }
            self.queue.pop_front();
            self.sent_end = last;
        }
        given
    }

    /// The server processed the request (its answer's head came): never sent again.
    pub fn processed(&mut self) {
        self.sent = None;
    }

    /// The upstream stream is cut (answered before the request ended, or broken): what is
    /// left is dropped.
    pub fn cut(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.sent_end = true;
    }

    /// Make the whole body ready to go again (a stream the server did not process), if it
    /// was kept and fewer than `max` retries were made.
    pub fn replay(&mut self, max: u8) -> bool {
        let Some(sent) = self.sent.take().filter(|_| self.retries < max) else {
            return false;
        };
        self.retries += 1;
        for b in sent.into_iter().rev() {
            self.queued += b.len();
            self.queue.push_front(b);
        }
        self.sent = Some(Vec::new());
        self.sent_len = 0;
        self.sent_end = false;
        true
    }
}
