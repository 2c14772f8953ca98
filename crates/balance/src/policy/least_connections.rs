//! Weighted least connections: the eligible server with the fewest active sessions
//! relative to its weight (`active / weight`, compared without division).
//!
//! Ties are common (an idle pool is all ties), so the scan starts one server further on at
//! every pick: tied servers take turns instead of the first one taking everything.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Candidates;

/// Weighted least connections state: where the next scan starts.
#[derive(Debug, Default)]
pub struct LeastConnections {
    cursor: AtomicUsize,
}

impl LeastConnections {
    /// Fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pick the eligible server with the lowest `active / weight`.
    pub fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let n = candidates.servers.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let order = candidates
            .servers
            .iter()
            .enumerate()
            .cycle()
            .skip(start)
            .take(n);
        let mut best: Option<(usize, u128, u128)> = None; // (index, active, weight)
        for (index, server) in order {
            if !(candidates.eligible)(server) {
                continue;
            }
            let active = server.active() as u128;
            let weight = u128::from(server.weight().max(1));
            // active/weight < best_active/best_weight, cross-multiplied.
            if best.is_none_or(|(_, ba, bw)| active * bw < ba * weight) {
                best = Some((index, active, weight));
            }
        }
        best.map(|(index, _, _)| index)
    }
}
