//! Typed handles for the things the core owns.
//!
//! Every handle carries the slab index *and* a generation number, so a handle kept after its
//! object was freed (and the slot reused) is recognised as stale instead of reaching a stranger.

/// A connection (accepted or outgoing) owned by a session.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) idx: usize,
    pub(crate) gen: u64,
}

/// A pipe owned by a session.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipeId {
    pub(crate) idx: usize,
    pub(crate) gen: u64,
}

/// A session.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    pub(crate) idx: usize,
    pub(crate) gen: u64,
}

/// A listening socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) usize);

/// A timer armed by a session; cancel it with [`crate::Cx::cancel_timer`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

impl ConnId {
    /// An id that names no connection (a placeholder; every call with it is a no-op).
    pub fn dangling() -> ConnId {
        ConnId {
            idx: usize::MAX,
            gen: 0,
        }
    }
}

impl SessionId {
    /// A number that identifies the session in logs.
    pub fn serial(&self) -> u64 {
        self.gen
    }
}
