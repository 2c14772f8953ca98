//! Counters of one event loop, readable from any thread (a metrics endpoint, a supervisor):
//! connections accepted and open, accept errors, bytes moved. Each `Core` has its own
//! `LoopStats`, so the counters are written by one thread only (relaxed atomics on a line no
//! other thread writes); a reader sums the loops it wants.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one loop has done so far.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Connections accepted since the start.
    pub accepted: AtomicU64,
    /// `accept(2)` failures (descriptor exhaustion and the like).
    pub accept_errors: AtomicU64,
    /// Sessions (accepted connections) open now.
    pub open: AtomicU64,
    /// Bytes read from sockets (clients and upstreams).
    pub bytes_in: AtomicU64,
    /// Bytes written to sockets, `sendfile(2)` included.
    pub bytes_out: AtomicU64,
    /// Connections closed at the connection limit to make room (`Session::waiting`).
    pub shed: AtomicU64,
}

impl LoopStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// Read one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
