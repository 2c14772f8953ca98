//! The broker's WebSocket feed of availability on an HTTP/2 stream (RFC 8441's extended
//! CONNECT, `:protocol websocket`): the same `FeedSocket` as over HTTP/1.1
//! (`http/mounts.rs`), with the stream's DATA as its bytes both ways: a `200` instead of
//! the `101`, the client's DATA into `FeedSocket::receive`, its frames into the stream's
//! `Out`, and the broker's wake (`KEY_FEED | stream`) for a change of availability.

use std::sync::Arc;

use bytes::Bytes;
use tether_broker::ws::{FeedSocket, FeedState};
use tether_broker::{Broker, SubscriptionId};
use tether_core::Cx;

use super::reply::{self, H1Answer, Out};
use super::stream::Work;
use super::H2Session;

/// `on_wake` key of a stream's feed: `KEY_FEED | stream id`.
pub(super) const KEY_FEED: u64 = 1 << 33;

/// One feed client on one stream; dropping it stops hearing from the broker.
pub(super) struct Feed {
    broker: Arc<Broker>,
    socket: FeedSocket,
    subscription: SubscriptionId,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.broker.unsubscribe(self.subscription);
    }
}

impl Feed {
    /// Queue what the socket has to send; its close ends the stream.
    fn flush(&mut self, state: FeedState, out: &mut Out) {
        out.push(Bytes::from(self.socket.take_output()));
        if state == FeedState::Closed {
            out.end = true;
        }
    }

    /// The client's DATA (`end`: END_STREAM, the client is done: so is the feed).
    pub fn receive(&mut self, data: &[u8], end: bool, out: &mut Out) {
        let state = match data.is_empty() {
            true => self.socket.state(),
            false => self.socket.receive(data),
        };
        self.flush(state, out);
        out.end |= end;
    }

    /// The broker's availability changed.
    pub fn wake(&mut self, out: &mut Out) {
        self.socket.update(self.broker.feed_value());
        let state = self.socket.state();
        self.flush(state, out);
    }

    /// tether is shutting down: close the feed ("going away") and end the stream.
    pub fn going_away(&mut self, out: &mut Out) {
        self.socket.close(1001, "tether is shutting down");
        self.flush(FeedState::Closed, out);
    }
}

impl H2Session {
    /// Answer stream `id`'s extended CONNECT on the broker's `/` with `200` and start the
    /// feed.
    pub(super) fn start_feed(&mut self, cx: &mut Cx<'_>, id: u32, broker: Arc<Broker>) {
        let Some(remote) = cx.remote() else {
            return self.answer_status(cx, id, 503, "");
        };
        // Subscribed before the first value is read; the first frame is held (empty)
        // until the broker's first polling round settles.
        let (mut socket, subscription) = broker.open_feed(
            &self.peer.ip_text,
            Box::new(move || remote.wake(KEY_FEED | id as u64)),
        );
        let first = Bytes::from(socket.take_output());
        let feed = Feed {
            broker,
            socket,
            subscription,
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return; // dropping `feed` unsubscribes
        };
        let answer = H1Answer {
            status: 200,
            fields: Vec::new(),
            body: first,
        };
        s.note_status(200);
        s.out = Out::default();
        reply::send(&mut self.h2, id, answer, true, &mut s.out);
        s.work = Work::Feed(Box::new(feed));
    }

    /// `KEY_FEED | id`: the broker's availability changed.
    pub(super) fn feed_wake(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            if let Work::Feed(f) = &mut s.work {
                f.wake(&mut s.out);
            }
        }
    }

    /// A drain: every feed says "going away".
    pub(super) fn feeds_going_away(&mut self) {
        for s in self.streams.values_mut() {
            if let Work::Feed(f) = &mut s.work {
                f.going_away(&mut s.out);
            }
        }
    }
}
