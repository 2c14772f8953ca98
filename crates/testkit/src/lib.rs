//! Test support shared by the end-to-end tests of every crate.
//!
//! Ports are taken below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999
//! by default). A port the kernel may hand out is not safe to give a server: between the
//! test picking it and the server (re)binding it — at start, or at a restart on the same
//! port — any client socket on the machine can take it as its source port, and the bind
//! then fails with "address already in use"; a "dead" port can even be connected to
//! itself (TCP simultaneous open). Below the range only a listener can hold a port.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;

/// Where [`free_port`] looks: 10000–19999.
const FREE: (u16, u16) = (10_000, 10_000);
/// Where [`dead_port`] looks: 20000–31999.
const DEAD: (u16, u16) = (20_000, 12_000);

/// A loopback port nobody listens on right now, never handed out twice by one test
/// process. tether binds with `SO_REUSEPORT`, so two servers given the same port would
/// share it silently (connections split between them) instead of failing to bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    for _ in 0..2000 {
        let port = next_in(FREE, &NEXT);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        if bindable(port) {
            given.push(port);
            return port;
        }
    }
    panic!("no unused loopback port in 10000-19999");
}

/// A loopback port nothing listens on, for a connect that must be refused.
pub fn dead_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    for _ in 0..2000 {
        let port = next_in(DEAD, &NEXT);
        if bindable(port) {
            return port;
        }
    }
    panic!("no unused loopback port in 20000-31999");
}

/// The next port of `(base, len)` for this process: each process starts at a place of its
/// own, so test binaries run one after another, or side by side, rarely meet. The place is
/// the pid times a large prime: consecutive pids (one test binary after another) start
/// ~2,000 ports apart rather than next to each other, where a process the last binary left
/// behind could still hold the ports this one is about to hand out.
fn next_in((base, len): (u16, u16), next: &AtomicU16) -> u16 {
    let spread = u64::from(std::process::id()) * 7919;
    let start = (spread % u64::from(len)) as u16;
    let n = next.fetch_add(1, Ordering::Relaxed) % len;
    base + (start + n) % len
}

/// Whether 127.0.0.1:`port` can be bound now (and on IPv4 any: nothing listens there).
fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        assert!(ports.iter().all(|p| (10_000..20_000).contains(p)));
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len());
        let dead = dead_port();
        assert!((20_000..32_000).contains(&dead));
        assert!(std::net::TcpStream::connect(("127.0.0.1", dead)).is_err());
    }
}
