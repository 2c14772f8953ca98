//! Smooth weighted round robin, the algorithm of nginx's default upstream balancer.
//!
//! Each server keeps a *current weight*. On every pick, each eligible server's current
//! weight grows by its weight, the server with the largest current weight wins (the first
//! one on a tie), and the winner's current weight drops by the sum of the eligible weights.
//! Over a cycle each server is picked `weight` times, and the picks of a heavy server are
//! spread out instead of bunched: weights 5, 1, 1 give `a a b a c a a`.
//!
//! The current weights sit behind one mutex held for a single pass over the servers.

use std::sync::Mutex;

use super::Candidates;

/// Smooth weighted round robin state.
#[derive(Debug)]
pub struct SmoothWeighted {
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    /// State for a pool of `servers` servers, all current weights at zero.
    pub fn new(servers: usize) -> Self {
        SmoothWeighted {
            current: Mutex::new(vec![0; servers]),
        }
    }

    /// Pick the next eligible server.
    pub fn pick(&self, candidates: &Candidates<'_>) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.len() != candidates.servers.len() {
            // The member list changed (DNS, admin API): start the new list from zero.
            current.clear();
            current.resize(candidates.servers.len(), 0);
        }
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for ((index, server), cw) in candidates
            .servers
            .iter()
            .enumerate()
            .zip(current.iter_mut())
        {
            if !(candidates.eligible)(server) {
                continue;
            }
            let weight = i64::from(server.weight());
            *cw += weight;
            total += weight;
            if best.is_none_or(|(_, b)| *cw > b) {
                best = Some((index, *cw));
            }
        }
        let (index, _) = best?;
        if let Some(cw) = current.get_mut(index) {
            *cw -= total;
        }
        Some(index)
    }
}
