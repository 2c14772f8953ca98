//! `max_connections_per_ip`: how many client connections of `http` listeners one client
//! address holds at once, over every worker and listener, so that a few addresses cannot take
//! all of `max_connections`. The session factory (`server.rs`) asks for a slot with the
//! address the connection was accepted from (the one the session is given: with the PROXY
//! protocol, the real client's); the session holds it, and giving it back is dropping it.
//! One over the limit is answered `429` (`http/too_many.rs`).
//!
//! A short lock on a map per accept and per close; an address leaves the map when its
//! last connection ends, so the map holds only addresses with connections open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The connections open per client address, and the most one address may hold.
pub struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection counted on its address; dropping it counts it down.
pub struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The limit per address.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Count one more connection from `ip`, unless it already holds `max` (then `None`).
    /// An IPv4 address seen as IPv6 (`::ffff:a.b.c.d`) counts as the IPv4 one.
    pub fn acquire(self: &Arc<PerIp>, ip: IpAddr) -> Option<IpSlot> {
        let ip = ip.to_canonical();
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map stays consistent even if a holder panicked: every change is one step.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_gives_back_on_drop() {
        let t = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = t.acquire(a).unwrap();
        let a2 = t.acquire(a).unwrap();
        assert!(t.acquire(a).is_none());
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert!(t.acquire("::ffff:127.0.0.1".parse().unwrap()).is_none());
        let _b1 = t.acquire(b).unwrap();
        assert_eq!((t.open(a), t.open(b)), (2, 1));
        drop(a1);
        assert_eq!(t.open(a), 1);
        let a3 = t.acquire(a).unwrap();
        drop((a2, a3));
        assert_eq!(t.open(a), 0);
        assert!(
            !t.lock().contains_key(&a),
            "an address without connections is forgotten"
        );
    }
}
