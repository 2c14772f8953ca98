//! Pools whose servers come from DNS: the `tether-discover` helper thread asks, this file
//! applies its answers to the pools (`Pool::sync`, a short lock: the pools are shared by
//! every event-loop thread of the worker, so one change reaches them all) and drops the
//! servers whose drain time has passed (`Pool::sweep`, on the same thread's ticks).
//!
//! One discovery thread per worker process (started by `start`, kept as long as the
//! worker runs); a reload starts a new worker, hence a new thread that asks again at once.
//! The health checker (`health.rs`) follows the member lists on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_balance::{Origin, ServerConfig};
use tether_config::discover::DnsKind;
use tether_config::Settings;
use tether_discover::{Discovery, Found, Query, Sink, Target};

use crate::runtime::Runtime;
use crate::upstream::Upstream;

/// How long `start` waits for the first answers before the loops start anyway.
pub const FIRST_WAIT: Duration = Duration::from_secs(3);

/// One followed name: its pool, its position among the pool's DNS entries, and how its
/// answers become servers.
struct Followed {
    up: Arc<Upstream>,
    source: usize,
    weight: Option<u32>,
    backup: bool,
    drain: Duration,
}

struct Apply {
    followed: Vec<Followed>,
    /// Every pool with DNS entries, once (for the sweep).
    pools: Vec<Arc<Upstream>>,
}

impl Sink for Apply {
    fn found(&mut self, index: usize, servers: &[Found]) {
        let Some(f) = self.followed.get(index) else {
            return;
        };
        let wanted: Vec<ServerConfig> = servers
            .iter()
            .map(|s| {
                let mut c = ServerConfig::new(s.addr.to_string(), s.addr);
                c.weight = f.weight.unwrap_or(s.weight).max(1);
                c.backup = f.backup || s.backup;
                c
            })
            .collect();
        f.up.pool
            .sync(Origin::Dns(f.source), &wanted, f.drain, Instant::now());
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for up in &self.pools {
            up.pool.sweep(now);
        }
    }
}

/// Start following the DNS entries of `runtime`'s pools (`None` when there are none). Waits
/// up to [`FIRST_WAIT`] for the first answers: call it before the event loops start, never
/// on one.
pub fn start(runtime: &Runtime, settings: &Settings) -> std::io::Result<Option<Discovery>> {
    let mut targets = Vec::new();
    let mut followed = Vec::new();
    let mut pools = Vec::new();
    for up in runtime.pools() {
        let Some(spec) = settings.upstreams.iter().find(|u| u.name == up.name()) else {
            continue;
        };
        let Some(d) = &spec.discover else {
            continue;
        };
        pools.push(up.clone());
        let drain = spec.drain_timeout.unwrap_or(settings.ops.drain_timeout);
        for (source, s) in d.sources.iter().enumerate() {
            let (query, weight) = match s.kind {
                DnsKind::Host { port } => (
                    Query::Host {
                        name: s.name.clone(),
                        port,
                    },
                    Some(s.weight),
                ),
                DnsKind::Srv => (
                    Query::Srv {
                        name: s.name.clone(),
                    },
                    None,
                ),
            };
            targets.push(Target {
                query,
                resolvers: d.resolvers.clone(),
                min_refresh: d.min_refresh,
                max_refresh: d.max_refresh,
            });
            followed.push(Followed {
                up: up.clone(),
                source,
                weight,
                backup: s.backup,
                drain,
            });
        }
    }
    if targets.is_empty() {
        return Ok(None);
    }
    let sink = Box::new(Apply { followed, pools });
    Discovery::spawn(targets, sink, FIRST_WAIT).map(Some)
}
