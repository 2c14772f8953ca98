//! One stream's state (RFC 9113 §5.1, as a server sees it), its two flow-control windows,
//! and the per-second counters that bound what a client may make us do (resets, control
//! frames).

use std::time::{Duration, Instant};

/// What a stream still expects, each way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Both ways open: the client may send more (body, trailers), we may answer.
    Open,
    /// The client's side is over (END_STREAM received): only our answer remains.
    RemoteClosed,
    /// Our side is over: the client may still send (its body while we answered early).
    LocalClosed,
    /// A request refused with a status of ours (431): what the client still sends is
    /// counted and dropped.
    Discarding { local_closed: bool },
}

/// A stream of the connection, while it is open in at least one direction.
#[derive(Debug)]
pub struct Stream {
    pub state: StreamState,
    /// What we may still send (the client's window for this stream).
    pub send_window: i64,
    /// What the client may still send before we give more.
    pub recv_window: i64,
    /// Body bytes the application consumed and we have not given back yet.
    pub unacked: u32,
    /// Body bytes received, for `content-length`.
    pub received: u64,
    pub content_length: Option<u64>,
    /// The largest `send_window` granted so far: an update up to it gives back what our
    /// DATA used (not counted as a control-frame flood).
    pub send_high: i64,
}

impl Stream {
    pub fn new(send_window: u32, recv_window: u32, state: StreamState) -> Stream {
        Stream {
            state,
            send_window: send_window as i64,
            recv_window: recv_window as i64,
            unacked: 0,
            received: 0,
            content_length: None,
            send_high: send_window as i64,
        }
    }

    /// The client may still send on it.
    pub fn remote_open(&self) -> bool {
        matches!(
            self.state,
            StreamState::Open | StreamState::LocalClosed | StreamState::Discarding { .. }
        )
    }

    /// We may still send on it.
    pub fn local_open(&self) -> bool {
        matches!(
            self.state,
            StreamState::Open
                | StreamState::RemoteClosed
                | StreamState::Discarding {
                    local_closed: false
                }
        )
    }

    /// END_STREAM received. True when the stream is now closed both ways.
    pub fn close_remote(&mut self) -> bool {
        self.state = match self.state {
            StreamState::Open => StreamState::RemoteClosed,
            StreamState::LocalClosed | StreamState::Discarding { local_closed: true } => {
                return true
            }
            StreamState::Discarding {
                local_closed: false,
            }
            | StreamState::RemoteClosed => StreamState::RemoteClosed,
        };
        false
    }

    /// END_STREAM sent. True when the stream is now closed both ways.
    pub fn close_local(&mut self) -> bool {
        self.state = match self.state {
            StreamState::Open => StreamState::LocalClosed,
            StreamState::Discarding { .. } => StreamState::Discarding { local_closed: true },
            StreamState::RemoteClosed | StreamState::LocalClosed => return true,
        };
        false
    }
}

/// At most `max` events a second (a fixed one-second window).
#[derive(Debug)]
pub struct RateLimit {
    start: Option<Instant>,
    count: u32,
    pub max: u32,
}

impl RateLimit {
    pub fn new(max: u32) -> RateLimit {
        RateLimit {
            start: None,
            count: 0,
            max,
        }
    }

    /// Count one at `now`; true once the second's count is over `max`.
    pub fn hit(&mut self, now: Instant) -> bool {
        match self.start {
            Some(s) if now.saturating_duration_since(s) < Duration::from_secs(1) => {
                self.count += 1;
            }
            _ => {
                self.start = Some(now);
                self.count = 1;
            }
        }
        self.count > self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_close_each_way_once() {
        let mut s = Stream::new(10, 10, StreamState::Open);
        assert!(s.remote_open() && s.local_open());
        assert!(!s.close_remote());
        assert!(!s.remote_open() && s.local_open());
        assert!(s.close_local());
        let mut s = Stream::new(10, 10, StreamState::Open);
        assert!(!s.close_local());
        assert!(s.remote_open() && !s.local_open());
        assert!(s.close_remote());
        let mut d = Stream::new(
            10,
            10,
            StreamState::Discarding {
                local_closed: false,
            },
        );
        assert!(!d.close_local());
        assert!(d.remote_open());
        assert!(d.close_remote());
    }

    #[test]
    fn rate_limit_counts_per_second() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(3);
        assert!(!r.hit(t0) && !r.hit(t0) && !r.hit(t0));
        assert!(r.hit(t0 + Duration::from_millis(999)));
        assert!(!r.hit(t0 + Duration::from_millis(1000)));
    }
}
