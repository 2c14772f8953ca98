//! The listening sockets the master holds and every worker inherits: for each listener
//! address one `SO_REUSEPORT` socket per event-loop thread, and the admin listener.
//!
//! Because the master keeps them open, a connection waiting in a socket's queue is never
//! lost when a worker dies or drains: the next worker accepts it from the same socket. A
//! reload binds what the new config adds before its worker starts (a failure refuses the
//! reload); what no worker uses any more is closed once the old worker is gone (`prune`).
//! Closing a socket resets the connections still queued on it, so lowering `workers` or
//! removing a listener in a reload can reset a connection that arrives at that moment.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use tether_config::Settings;
use tether_proxy::server::{bind_reuseport, probe_free};

use crate::boot::BootSockets;

#[derive(Default)]
pub struct SocketSet {
    listeners: HashMap<SocketAddr, Vec<TcpListener>>,
    /// Admin listeners by configured address (`None`: a loopback port picked at start).
    admin: HashMap<Option<SocketAddr>, TcpListener>,
}

impl SocketSet {
    /// Bind whatever `settings` needs and is not bound yet.
    pub fn ensure(&mut self, settings: &Settings) -> io::Result<()> {
        let need = settings.workers.max(1);
        for spec in &settings.listeners {
            let have = self.listeners.entry(spec.listen).or_default();
            if have.is_empty() {
                // An address this master does not hold yet: nobody else may listen there.
                probe_free(spec.listen)?;
            }
            while have.len() < need {
                let s = bind_reuseport(spec.listen).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on {}: {e}", spec.listen))
                })?;
                have.push(s);
            }
        }
        let want = settings.ops.admin.listen;
        if let std::collections::hash_map::Entry::Vacant(slot) = self.admin.entry(want) {
            let addr = want.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let s = TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            slot.insert(s);
        }
        Ok(())
    }

    /// The descriptors a worker running `settings` inherits (after `ensure`).
    pub fn for_worker(&self, settings: &Settings) -> (Vec<BootSockets>, Option<BootSockets>) {
        let need = settings.workers.max(1);
        let listeners = settings
            .listeners
            .iter()
            .filter_map(|spec| {
                let have = self.listeners.get(&spec.listen)?;
                Some(BootSockets {
                    addr: spec.listen,
                    fds: have.iter().take(need).map(|s| s.as_raw_fd()).collect(),
                })
            })
            .collect();
        let admin = self.admin.get(&settings.ops.admin.listen).and_then(|s| {
            Some(BootSockets {
                addr: s.local_addr().ok()?,
                fds: vec![s.as_raw_fd()],
            })
        });
        (listeners, admin)
    }

    /// The admin listener's address for `settings` (after `ensure`).
    pub fn admin_addr(&self, settings: &Settings) -> Option<SocketAddr> {
        self.admin
            .get(&settings.ops.admin.listen)
            .and_then(|s| s.local_addr().ok())
    }

    /// Close what none of `in_use` needs.
    pub fn prune(&mut self, in_use: &[&Settings]) {
        self.listeners.retain(|addr, socks| {
            let need = in_use
                .iter()
                .filter(|s| s.listeners.iter().any(|l| l.listen == *addr))
                .map(|s| s.workers.max(1))
                .max()
                .unwrap_or(0);
            if socks.len() > need {
                log::info!("closing {} socket(s) on {addr}", socks.len() - need);
                socks.truncate(need);
            }
            need > 0
        });
        self.admin
            .retain(|want, _| in_use.iter().any(|s| s.ops.admin.listen == *want));
    }
}
