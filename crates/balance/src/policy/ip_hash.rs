//! Client-address affinity: weighted rendezvous hashing with bounded load.
//!
//! **Rendezvous (highest random weight).** Every server scores the key with its own seeded
//! hash (`xxh3_64(key, seed = xxh3_64(server id))`); the highest score wins. Adding or
//! removing a server only moves the keys that server wins or loses (the minimum possible,
//! `1/(n+1)` of them when one server joins `n`); no ring, no virtual nodes, no table to
//! rebuild. Servers with different weights score `weight / -ln(u)`, `u` being the hash mapped
//! into `(0, 1)`, so a server's share is proportional to its weight; with equal weights the
//! raw hash is compared (same order, no logarithm). Why rendezvous rather than a ring or
//! Maglev is argued in `docs/affinity.md`.
//!
//! **Bounded load** (Mirrokni, Thorup and Zadimoghaddam, *Consistent Hashing with Bounded
//! Loads*, 2017; HAProxy's `hash-balance-factor`). With `T` active sessions on the eligible
//! servers and `W` their total weight, a server of weight `w` is *full* when it already
//! holds `ceil(factor × (T + 1) × w / W)` sessions. A key whose best server is full walks on
//! to its next-best server, which is exactly "the highest-scoring server that is not full",
//! found in the same single pass. Since the capacities add up to more than `T`, some server
//! always has room. Checks and increments are not one atomic step, so two worker threads
//! selecting at the same instant may each overshoot a bound by one.
//!
//! The key is the client address: [`ClientKey`] turns an `IpAddr` into the bytes to hash.
//! Without a key (a Unix-socket client, say) the pick falls back to least connections.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::least_connections::LeastConnections;
use super::Candidates;
use crate::server::{Server, ServerRef};

/// The balance factor used when none is configured.
pub const DEFAULT_BALANCE_FACTOR: f64 = 1.25;

/// Rendezvous hashing state: the bound, and whether weights matter.
#[derive(Debug)]
pub struct IpHash {
    factor: Option<f64>,
    /// All servers have the same weight (updated when the member list changes).
    uniform: AtomicBool,
    fallback: LeastConnections,
}

impl IpHash {
    /// State for `servers` with an optional balance factor (at least 1.0; the pool checks).
    pub fn new(factor: Option<f64>, servers: &[ServerRef]) -> Self {
        let first = servers.first().map(|s| s.weight());
        IpHash {
            factor,
            uniform: AtomicBool::new(servers.iter().all(|s| Some(s.weight()) == first)),
            fallback: LeastConnections::new(),
        }
    }

    /// The member list or a weight changed: whether weights matter is decided again.
    pub fn members_changed(&self, servers: &[ServerRef]) {
        let first = servers.first().map(|s| s.weight());
        let uniform = servers.iter().all(|s| Some(s.weight()) == first);
        self.uniform.store(uniform, Ordering::Release);
    }

    /// The configured balance factor.
    pub fn balance_factor(&self) -> Option<f64> {
        self.factor
    }

    /// Pick the highest-scoring eligible server for `key` that is not full.
    pub fn pick(&self, candidates: &Candidates<'_>, key: Option<&[u8]>) -> Option<usize> {
        let Some(key) = key else {
            return self.fallback.pick(candidates);
        };
        let bound = self.factor.map(|factor| {
            let (active, weight) = candidates.iter().fold((0usize, 0u64), |(a, w), (_, s)| {
                (a + s.active(), w + u64::from(s.weight()))
            });
            Bound {
                factor,
                arrivals: active as f64 + 1.0,
                total_weight: weight.max(1) as f64,
            }
        });
        let mut best: Option<(usize, f64)> = None;
        for (index, server) in candidates.iter() {
            if bound.as_ref().is_some_and(|b| b.is_full(server)) {
                continue;
            }
            let s = self.score(key, server);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((index, s));
            }
        }
        best.map(|(index, _)| index)
    }

    fn score(&self, key: &[u8], server: &Server) -> f64 {
        let h = score_hash(key, server.seed);
        if self.uniform.load(Ordering::Acquire) {
            // Same order as the weighted score for equal weights, without the logarithm.
            // (f64 keeps the top 53 bits; ties are broken by server order.)
            h as f64
        } else {
            // u in (0, 1): the top 53 bits, centred in their interval.
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            f64::from(server.weight()) / -u.ln()
        }
    }
}

/// The bounded-load capacity check of one selection.
#[derive(Debug)]
struct Bound {
    factor: f64,
    arrivals: f64,
    total_weight: f64,
}

impl Bound {
    fn is_full(&self, server: &Server) -> bool {
        let share = f64::from(server.weight()) / self.total_weight;
        let capacity = (self.factor * self.arrivals * share).ceil();
        server.active() as f64 >= capacity
    }
}

/// The rendezvous hash of `key` for the server whose seed is `seed`. Public so that tools
/// (the `affinity_stats` example) can compare it with other schemes.
pub fn score_hash(key: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(key, seed)
}

/// The bytes of a client address to hash: 4 for IPv4 (IPv4-mapped IPv6 addresses, as a
/// dual-stack listener reports IPv4 clients, count as IPv4), 16 for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientKey {
    bytes: [u8; 16],
    len: u8,
}

impl ClientKey {
    /// The key of `ip`.
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::v4(v4),
                None => ClientKey {
                    bytes: v6.octets(),
                    len: 16,
                },
            },
        }
    }

    fn v4(v4: Ipv4Addr) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&v4.octets());
        ClientKey { bytes, len: 4 }
    }

    /// The bytes to pass as the selection key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        ClientKey::new(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn mapped_ipv6_hashes_as_ipv4() {
        let v4 = Ipv4Addr::new(192, 0, 2, 7);
        let a = ClientKey::new(IpAddr::V4(v4));
        let b = ClientKey::new(IpAddr::V6(v4.to_ipv6_mapped()));
        assert_eq!(a, b);
        assert_eq!(a.as_bytes(), &[192, 0, 2, 7]);
        let c = ClientKey::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        assert_eq!(c.as_bytes().len(), 16);
    }

    #[test]
    fn scores_differ_per_seed() {
        assert_ne!(score_hash(b"k", 1), score_hash(b"k", 2));
        assert_eq!(score_hash(b"k", 1), score_hash(b"k", 1));
    }
}
