//! The pool of idle upstream connections: keep-alive connections a session has finished
//! with, kept open (registered, owned by no session) so that the next `Cx::connect` to the
//! same address reuses one instead of paying a handshake.
//!
//! A parked connection that becomes readable was closed by its server (or sent something
//! unasked): it is dropped at once. Before a reuse, a `recv(MSG_PEEK)` checks that nothing
//! arrived that the loop has not acted on — unless the loop already knows: a connection
//! parked after its socket said `WouldBlock` (not `read_ready`), within [`PROBE_AFTER`], gets
//! a new edge for anything that arrives, and the loop drops it when the event comes. That is
//! the busy case (a connection reused for every request), where the probe was one system
//! call per request. What it leaves open is a FIN in flight during the current loop turn;
//! the probe could only narrow that window, not close it: a request that fails on a reused
//! connection before any answer is retried once on a fresh one by the http session
//! (`http/proxy.rs`, for a request without a body).
//! Each parked connection has an idle deadline; the pool keeps at most `max_idle`
//! connections per address, dropping the oldest.
//!
//! A connection keeps one idle-deadline timer for its whole life (`Connection::pool_timer`),
//! not one per park: parking again moves the deadline later (`Timers::postpone`, O(1)), a
//! reuse leaves it armed, and when it fires the core drops the connection only if it is
//! still parked and has been idle for the whole timeout. So a connection reused for every
//! request costs no timer work per request.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::io::Io;
use crate::timer::Owner;

/// `Connection::session` of a parked connection.
pub(crate) const POOL: usize = usize::MAX;

/// A pooled connection idle for this long is probed (`recv(MSG_PEEK)`) before a reuse even
/// if it was parked drained: servers close idle keep-alive connections after seconds.
pub(crate) const PROBE_AFTER: Duration = Duration::from_millis(100);

/// A small multiply-rotate hash for the pool's keys (socket addresses, hashed on every park
/// and reuse): SipHash's resistance to chosen keys buys nothing for addresses from the
/// config.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type AddrMap<V> = HashMap<(SocketAddr, u64), V, BuildHasherDefault<AddrHasher>>;

pub(crate) struct Pool {
    /// Per address: (connection index, generation), oldest first.
    idle: AddrMap<Vec<(usize, u64)>>,
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            idle: AddrMap::default(),
            max_idle: 64,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Io {
    /// Move connection `c` of session `sid` into the pool. False (and nothing changes) if it
    /// cannot be reused: pipes attached, half-closed, still connecting, or pooling is off.
    pub fn park(&mut self, sid: usize, c: usize) -> bool {
        let Some(conn) = self.conns.get_mut(c) else {
            return false;
        };
        let Some(peer) = conn.peer.get() else {
            return false;
        };
        let reusable = conn.session == sid
            && conn.reader.is_none()
            && conn.writer.is_none()
            && !conn.read_eof
            && !conn.write_shut
            && !conn.connecting
            && !conn.tls_pending()
            && conn
                .tls
                .as_ref()
                .is_none_or(|t| t.plain == 0 && !t.peer_closed);
        if !reusable || self.pool.max_idle == 0 {
            return false;
        }
        conn.session = POOL;
        conn.watch = false;
        conn.last_active = self.now;
        let gen = conn.gen;
        if let Some(s) = self.sessions.get_mut(sid) {
            s.conns.retain(|x| *x as usize != c);
        }
        let at = self.now + self.pool.idle_timeout;
        if !self.timers.postpone(conn.pool_timer, at) {
            conn.pool_timer = self.timers.add(at, Owner::Pooled { idx: c as u32, gen });
        }
        let list = self.pool.idle.entry((peer, conn.pool_tag)).or_default();
        list.push((c, gen));
        if list.len() > self.pool.max_idle {
            let (old, _) = list[0];
            self.drop_pooled(old);
        }
        true
    }

    /// Take a healthy idle connection to `addr` for session `sid`, if the pool has one.
    pub fn adopt(&mut self, sid: usize, addr: SocketAddr, tag: u64) -> Option<(usize, u64)> {
        loop {
            let (c, gen) = self.pool.idle.get_mut(&(addr, tag))?.pop()?;
            // The idle deadline stays armed: the next park moves it (see the module doc).
            let Some(conn) = self
                .conns
                .get_mut(c)
                .filter(|x| x.gen == gen && x.session == POOL)
            else {
                continue;
            };
            let idle = self.now.saturating_duration_since(conn.last_active);
            let known_quiet = !conn.read_ready && idle < PROBE_AFTER;
            if !known_quiet && !quiet(conn) {
                // Closed by the server, or bytes nobody asked for: not reusable.
                self.drop_pooled(c);
                continue;
            }
            conn.session = sid;
            conn.reused = true;
            conn.read_ready = false;
            conn.last_active = self.now;
            if let Some(s) = self.sessions.get_mut(sid) {
                s.conns.push(c as u32);
            }
            return Some((c, gen));
        }
    }

    /// A parked connection got an event or its deadline: close it.
    pub fn drop_pooled(&mut self, c: usize) {
        let Some(conn) = self.conns.get(c).filter(|x| x.session == POOL) else {
            return;
        };
        if let Some(peer) = conn.peer.get() {
            let key = (peer, conn.pool_tag);
            if let Some(list) = self.pool.idle.get_mut(&key) {
                if let Some(i) = list.iter().position(|&(x, _)| x == c) {
                    list.remove(i);
                }
                if list.is_empty() {
                    self.pool.idle.remove(&key);
                }
            }
        }
        let mut conn = self.conns.remove(c);
        self.timers.cancel(conn.pool_timer);
        let _ = self.registry.deregister(&mut conn.stream);
    }

    /// Idle connections in the pool, all addresses together.
    pub fn pooled(&self) -> usize {
        self.pool.idle.values().map(Vec::len).sum()
    }
}

/// Nothing arrived on a parked connection: no byte, no FIN, no error (`recv(MSG_PEEK)`).
fn quiet(conn: &crate::connection::Connection) -> bool {
    let mut probe = [0u8; 1];
    // SAFETY: `probe` is a valid one-byte buffer; the descriptor is open.
    let n = unsafe {
        libc::recv(
            conn.stream.as_raw_fd(),
            probe.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
