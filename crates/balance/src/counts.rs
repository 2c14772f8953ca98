//! How a pool's sessions found their server: the running counts of affinity decisions
//! (kept, re-pinned, refused, and sessions balanced afresh), bumped with relaxed atomics from
//! any worker thread. `pool.rs` owns them; `failover.rs` counts its decisions into them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The pool's running counts, bumped with relaxed atomics (any worker thread).
#[derive(Debug, Default)]
pub(crate) struct AffinityCounts {
    balanced: AtomicU64,
    kept: AtomicU64,
    repinned: AtomicU64,
    refused: AtomicU64,
}

impl AffinityCounts {
    pub(crate) fn balanced(&self) {
        self.balanced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn kept(&self) {
        self.kept.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn repinned(&self) {
        self.repinned.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A reading of the counts.
    pub(crate) fn stats(&self) -> AffinityStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AffinityStats {
            balanced: get(&self.balanced),
            kept: get(&self.kept),
            repinned: get(&self.repinned),
            refused: get(&self.refused),
        }
    }
}

/// A reading of a pool's counts since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AffinityStats {
    /// New sessions picked by the policy (`Pool::select`): for a pool with affinity, the
    /// requests that carried no usable pin (misses).
    pub balanced: u64,
    /// Pinned sessions whose server took them (hits).
    pub kept: u64,
    /// Pinned sessions moved to another server (re-pins).
    pub repinned: u64,
    /// Pinned sessions no server could take (503).
    pub refused: u64,
}
