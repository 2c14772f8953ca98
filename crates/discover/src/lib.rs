//! tether-discover: a pool's servers found in DNS, re-resolved at the records' TTL.
//!
//! A [`Target`] names what to ask (A/AAAA records of a host name with a port, or the SRV
//! records of a service name, whose targets are then asked for their addresses), which
//! resolvers to ask (none: the system's, from `/etc/resolv.conf`) and the bounds of the
//! refresh interval. [`Discovery::spawn`] starts one helper thread that owns a small
//! single-threaded Tokio runtime and the `hickory-resolver` resolvers; nothing here runs
//! on an event-loop thread.
//!
//! Each target is asked again when its answer's TTL has passed, the interval clamped to
//! `[min_refresh, max_refresh]`. When the answer differs from the last one, the [`Sink`]
//! hears the whole new set ([`Sink::found`]); an unchanged answer is not reported. A lookup
//! that fails (timeout, refused, SERVFAIL) keeps the last good set: the failure is logged
//! and reported ([`Sink::failed`]), and the target is asked again after a backoff that
//! starts at `min_refresh` and doubles up to [`MAX_BACKOFF`] (or `max_refresh` if smaller).
//! A name that exists with no records of the type asked (NODATA, NXDOMAIN) is an answer:
//! the set is empty.
//!
//! The lookups due at the same time run concurrently on the runtime, so a resolver that
//! does not answer delays no other name. [`Sink::tick`] is called at least every [`TICK`], so the sink can finish time-based work
//! (dropping drained servers) on this same thread.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::Name;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};

/// The sink's `tick` is called at least this often.
pub const TICK: Duration = Duration::from_millis(200);

/// The longest wait before a failing lookup is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long one DNS query may take before it counts as failed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A and AAAA records of `name`; every address gets `port`.
    Host { name: String, port: u16 },
    /// SRV records of `name` (`_service._proto.domain`); each record's target is asked for
    /// its A/AAAA records and gets the record's port and weight.
    Srv { name: String },
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Host { name, port } => write!(f, "{name} port {port}"),
            Query::Srv { name } => write!(f, "SRV {name}"),
        }
    }
}

/// One name to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub query: Query,
    /// The resolvers to ask; empty: the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<SocketAddr>,
    /// The shortest wait between two lookups of this name (a TTL of 0 waits this long).
    pub min_refresh: Duration,
    /// The longest wait between two lookups (a long TTL waits this long at most).
    pub max_refresh: Duration,
}

/// One server found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    pub addr: SocketAddr,
    /// The SRV weight (at least 1: a weight of 0 counts as 1); 1 for A/AAAA.
    pub weight: u32,
    /// SRV: the record's priority is not the lowest of the answer (a backup server).
    pub backup: bool,
}

/// Where the answers go (called on the helper thread: keep it short, never block long).
pub trait Sink: Send {
    /// Target `index` (its position in the list given to [`Discovery::spawn`]) now has
    /// these servers (sorted, no duplicates). Called after the first lookup and whenever
    /// the set changes.
    fn found(&mut self, index: usize, servers: &[Found]);
    /// A lookup of target `index` failed; its last set stays.
    fn failed(&mut self, _index: usize, _error: &str) {}
    /// Called at least every [`TICK`].
    fn tick(&mut self) {}
}

/// The helper thread; dropping it stops the thread (at its next tick).
pub struct Discovery {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Discovery {
    /// Start following `targets`. Waits (on the calling thread, which must not be an event
    /// loop) until every target has been asked once, or `first_wait` has passed, so a
    /// proxy starts with its servers known.
    pub fn spawn(
        targets: Vec<Target>,
        sink: Box<dyn Sink>,
        first_wait: Duration,
    ) -> std::io::Result<Discovery> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tether-discover".into())
            .spawn(move || run(targets, sink, flag, ready_tx))?;
        // Either the first round ends or the thread gives up: both are fine here.
        let _ = ready_rx.recv_timeout(first_wait);
        Ok(Discovery {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop the thread and wait for it (at most one [`TICK`] plus a lookup under way).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// What the thread knows of one target.
struct State {
    target: Target,
    resolver: usize,
    last: Option<Vec<Found>>,
    next: Instant,
    failures: u32,
}

fn resolver_for(servers: &[SocketAddr]) -> Result<TokioResolver, ResolveError> {
    let provider = TokioConnectionProvider::default();
    let mut builder = if servers.is_empty() {
        TokioResolver::builder(provider)?
    } else {
        let mut group = NameServerConfigGroup::new();
        for &addr in servers {
            group.push(NameServerConfig::new(addr, Protocol::Udp));
            group.push(NameServerConfig::new(addr, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], group),
            provider,
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 1;
    // Every lookup goes to the resolver: its own TTL bookkeeping is ours.
    opts.cache_size = 0;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    Ok(builder.build())
}

fn run(
    targets: Vec<Target>,
    mut sink: Box<dyn Sink>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("dns discovery: cannot start its runtime: {e}");
            return;
        }
    };
    // One resolver per distinct list of resolvers.
    let mut lists: Vec<Vec<SocketAddr>> = Vec::new();
    let mut resolvers: Vec<Option<TokioResolver>> = Vec::new();
    let mut states = Vec::with_capacity(targets.len());
    let now = Instant::now();
    for target in targets {
        let resolver = match lists.iter().position(|l| *l == target.resolvers) {
            Some(i) => i,
            None => {
                let r = match resolver_for(&target.resolvers) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        log::error!("dns discovery: resolver {:?}: {e}", target.resolvers);
                        None
                    }
                };
                lists.push(target.resolvers.clone());
                resolvers.push(r);
                lists.len() - 1
            }
        };
        states.push(State {
            target,
            resolver,
            last: None,
            next: now,
            failures: 0,
        });
    }
    let mut first = Some(ready);
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        // Every due lookup at once, so a resolver that does not answer delays no other.
        let mut due = tokio::task::JoinSet::new();
        for (index, state) in states.iter_mut().enumerate() {
            if state.next > now {
                continue;
            }
            let Some(Some(resolver)) = resolvers.get(state.resolver) else {
                state.next = now + MAX_BACKOFF;
                continue;
            };
            // Overwritten by the answer; stays if the lookup task dies (no busy retry).
            state.next = now + MAX_BACKOFF;
            let (resolver, query) = (resolver.clone(), state.target.query.clone());
            due.spawn_on(
                async move { (index, lookup(&resolver, &query).await, Instant::now()) },
                rt.handle(),
            );
        }
        let answers = rt.block_on(async {
            let mut answers = Vec::with_capacity(due.len());
            while let Some(done) = due.join_next().await {
                match done {
                    Ok(answer) => answers.push(answer),
                    Err(e) => log::error!("dns discovery: a lookup task failed: {e}"),
                }
            }
            answers
        });
        for (index, answer, after) in answers {
            let Some(state) = states.get_mut(index) else {
                continue;
            };
            match answer {
                Ok((mut found, ttl)) => {
                    found.sort();
                    found.dedup();
                    if state.failures > 0 {
                        log::info!(
                            "dns {}: resolver answers again after {} failure(s)",
                            state.target.query,
                            state.failures
                        );
                    }
                    state.failures = 0;
                    let wait = ttl.clamp(state.target.min_refresh, state.target.max_refresh);
                    state.next = after + wait;
                    if state.last.as_ref() != Some(&found) {
                        log::info!(
                            "dns {}: {} server(s): {} (next lookup in {} ms)",
                            state.target.query,
                            found.len(),
                            list(&found),
                            wait.as_millis()
                        );
                        sink.found(index, &found);
                        state.last = Some(found);
                    }
                }
                Err(e) => {
                    state.failures = state.failures.saturating_add(1);
                    let wait = backoff(&state.target, state.failures);
                    state.next = after + wait;
                    let kept = state.last.as_ref().map_or(0, Vec::len);
                    log::warn!(
                        "dns {}: lookup failed ({e}); keeping the last {kept} server(s), \
                         retry in {} ms",
                        state.target.query,
                        wait.as_millis()
                    );
                    sink.failed(index, &e);
                }
            }
        }
        if let Some(ready) = first.take() {
            let _ = ready.send(());
        }
        sink.tick();
        let now = Instant::now();
        let next = states.iter().map(|s| s.next).min();
        let wait = next.map_or(TICK, |n| n.saturating_duration_since(now).min(TICK));
        std::thread::sleep(wait);
    }
}

/// The wait after `failures` failed lookups in a row.
fn backoff(target: &Target, failures: u32) -> Duration {
    let cap = MAX_BACKOFF.min(target.max_refresh).max(target.min_refresh);
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    target.min_refresh.saturating_mul(factor).min(cap)
}

fn list(found: &[Found]) -> String {
    let words: Vec<String> = found
        .iter()
        .map(|f| {
            let mut s = f.addr.to_string();
            if f.weight != 1 {
                s.push_str(&format!(" weight {}", f.weight));
            }
            if f.backup {
                s.push_str(" backup");
            }
            s
        })
        .collect();
    if words.is_empty() {
        "none".into()
    } else {
        words.join(", ")
    }
}

/// A fully qualified name (no search domains appended).
fn fqdn(name: &str) -> Result<Name, String> {
    let mut n = Name::from_str(name).map_err(|e| format!("bad name {name:?}: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

/// Whether an error is an answer saying there is nothing (rather than no answer).
fn is_empty_answer(e: &ResolveError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

/// The servers a query finds now, with the TTL of the answer.
async fn lookup(resolver: &TokioResolver, query: &Query) -> Result<(Vec<Found>, Duration), String> {
    match query {
        Query::Host { name, port } => {
            let (ips, ttl) = lookup_ips(resolver, name).await?;
            let found = ips
                .into_iter()
                .map(|ip| Found {
                    addr: SocketAddr::new(ip, *port),
                    weight: 1,
                    backup: false,
                })
                .collect();
            Ok((found, ttl))
        }
        Query::Srv { name } => {
            let srv = match resolver.srv_lookup(fqdn(name)?).await {
                Ok(srv) => srv,
                Err(e) if is_empty_answer(&e) => return Ok((Vec::new(), Duration::ZERO)),
                Err(e) => return Err(e.to_string()),
            };
            let mut ttl = srv
                .as_lookup()
                .valid_until()
                .saturating_duration_since(Instant::now());
            let records: Vec<_> = srv.iter().cloned().collect();
            let best = records.iter().map(|r| r.priority()).min();
            let mut found = Vec::new();
            for r in &records {
                let target = r.target().to_string();
                let (ips, t) = lookup_ips(resolver, &target).await?;
                ttl = ttl.min(t);
                for ip in ips {
                    found.push(Found {
                        addr: SocketAddr::new(ip, r.port()),
                        weight: u32::from(r.weight()).max(1),
                        backup: Some(r.priority()) != best,
                    });
                }
            }
            Ok((found, ttl))
        }
    }
}

async fn lookup_ips(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<std::net::IpAddr>, Duration), String> {
    match resolver.lookup_ip(fqdn(name)?).await {
        Ok(answer) => {
            let ttl = answer
                .valid_until()
                .saturating_duration_since(Instant::now());
            Ok((answer.iter().collect(), ttl))
        }
        Err(e) if is_empty_answer(&e) => Ok((Vec::new(), Duration::ZERO)),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            query: Query::Srv {
                name: "_a._tcp.x".into(),
            },
            resolvers: vec![],
            min_refresh: Duration::from_millis(1000),
            max_refresh: Duration::from_secs(300),
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let t = target();
        assert_eq!(backoff(&t, 1), Duration::from_secs(1));
        assert_eq!(backoff(&t, 2), Duration::from_secs(2));
        assert_eq!(backoff(&t, 3), Duration::from_secs(4));
        assert_eq!(backoff(&t, 10), MAX_BACKOFF);
        assert_eq!(backoff(&t, u32::MAX), MAX_BACKOFF);
        let short = Target {
            max_refresh: Duration::from_secs(3),
            ..target()
        };
        assert_eq!(backoff(&short, 5), Duration::from_secs(3));
    }

    #[test]
    fn names_are_fully_qualified() {
        assert!(fqdn("app.internal").map(|n| n.is_fqdn()).unwrap_or(false));
        assert!(fqdn("app..internal").is_err());
    }
}
