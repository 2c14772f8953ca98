//! A pool's member list changing at run time: servers found in DNS, servers added or removed
//! through the admin API.
//!
//! The list is an immutable snapshot ([`Members`]) behind an `RwLock` held only to clone
//! the `Arc` (readers) or to swap in a new list (writers): a selection works on one
//! consistent list, and the sessions keep the `ServerRef`s they hold.
//!
//! A server that **joins** is a new [`Server`] with fresh health state (up, as at start),
//! appended to the list with the next unused index. A server that **leaves** is not dropped
//! at once: it is drained (no new sessions, the affinities that point at it are honoured,
//! see `failover.rs`) until its drain time has passed, then [`Pool::sweep`] drops it, and
//! the sessions still pinned to its id are re-balanced as for any unknown server. A server
//! that comes back before it was dropped simply stops draining. With rendezvous hashing
//! (`ip_hash`) the keys of the servers that stay keep their server: scores do not depend on
//! the other members.
//!
//! Each server remembers its [`Origin`]; a change from one origin (one DNS name, the admin
//! API) only ever touches servers of that origin, and never the servers of the config file.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The instant times are counted from in atomics (`to_ticks`).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as microseconds since the process's epoch, plus 1 (0 means "none").
pub(crate) fn to_ticks(at: Instant) -> u64 {
    let since = at.saturating_duration_since(epoch()).as_micros();
    u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
}

/// The inverse of `to_ticks` (0: `None`).
pub(crate) fn from_ticks(t: u64) -> Option<Instant> {
    (t != 0).then(|| epoch() + Duration::from_micros(t - 1))
}

use crate::health::Health;
use crate::pool::Pool;
use crate::server::{Server, ServerConfig, ServerRef};

/// Where a server comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The config file (never added or removed at run time).
    Config,
    /// The DNS name at this position of the pool's DNS entries.
    Dns(usize),
    /// The admin API.
    Admin,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Config => "config",
            Origin::Dns(_) => "dns",
            Origin::Admin => "admin",
        })
    }
}

/// One snapshot of the member list.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) servers: Arc<[ServerRef]>,
    pub(crate) by_id: HashMap<String, usize>,
}

impl Members {
    fn new(servers: Vec<ServerRef>) -> Members {
        let by_id = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id().to_string(), i))
            .collect();
        Members {
            servers: servers.into(),
            by_id,
        }
    }

    fn get(&self, id: &str) -> Option<&ServerRef> {
        self.by_id.get(id).and_then(|&i| self.servers.get(i))
    }
}

/// What one change did, by server id (each already logged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// New members.
    pub joined: Vec<String>,
    /// Members that left: draining until dropped.
    pub left: Vec<String>,
    /// Servers that were leaving and are members again.
    pub returned: Vec<String>,
    /// Members whose weight changed.
    pub reweighted: Vec<String>,
    /// Ids asked for that belong to a server of another origin (left alone).
    pub skipped: Vec<String>,
}

impl Change {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
            && self.left.is_empty()
            && self.returned.is_empty()
            && self.reweighted.is_empty()
    }
}

impl Pool {
    fn write_members(&self) -> RwLockWriteGuard<'_, Arc<Members>> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Swap in a new list and tell whoever follows the list.
    fn install(&self, guard: &mut RwLockWriteGuard<'_, Arc<Members>>, servers: Vec<ServerRef>) {
        let members = Members::new(servers);
        self.policy().members_changed(&members.servers);
        **guard = Arc::new(members);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn make_server(&self, config: &ServerConfig, origin: Origin) -> ServerRef {
        let (rise, fall) = self.check().map_or((1, 1), |c| (c.rise, c.fall));
        let health = Health::new(self.name(), &config.id, rise, fall, self.passive);
        let index = self.next_index.fetch_add(1, Ordering::AcqRel);
        Arc::new(Server::new(self.name(), index, config, health, origin))
    }

    /// Make the servers of `origin` exactly `wanted` (a DNS answer): new ids join, missing
    /// ones leave (draining for `drain`, then dropped by [`sweep`](Self::sweep)), leaving
    /// ones that are wanted again return, weights follow. Servers of other origins are left
    /// alone (an id of theirs in `wanted` is skipped).
    pub fn sync(
        &self,
        origin: Origin,
        wanted: &[ServerConfig],
        drain: Duration,
        now: Instant,
    ) -> Change {
        let mut guard = self.write_members();
        let current = guard.clone();
        let mut list: Vec<ServerRef> = current.servers.to_vec();
        let mut change = Change::default();
        let mut seen: Vec<&str> = Vec::with_capacity(wanted.len());
        for w in wanted {
            if seen.contains(&w.id.as_str()) {
                continue;
            }
            seen.push(&w.id);
            match current.get(&w.id) {
                Some(s) if s.origin() != origin => change.skipped.push(w.id.clone()),
                Some(s) => {
                    if s.leaving().is_some() {
                        s.set_leaving(None);
                        s.set_drain(false);
                        change.returned.push(w.id.clone());
                    }
                    if s.weight() != w.weight.max(1) {
                        s.set_weight(w.weight);
                        change.reweighted.push(w.id.clone());
                    }
                }
                None => {
                    list.push(self.make_server(w, origin));
                    change.joined.push(w.id.clone());
                }
            }
        }
        for s in &list {
            if s.origin() == origin && s.leaving().is_none() && !seen.contains(&s.id()) {
                s.set_leaving(Some(now + drain));
                self.sweep_at(now + drain);
                s.set_drain(true);
                change.left.push(s.id().to_string());
            }
        }
        if !change.joined.is_empty() {
            self.install(&mut guard, list);
        } else if !change.is_empty() {
            self.policy().members_changed(&current.servers);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        drop(guard);
        self.log_change(origin, &change, drain);
        change
    }

    /// Add one server of `origin` (the admin API); an error if the id is taken by a member
    /// that is not leaving, or the weight is 0. A leaving server of the same origin returns.
    pub fn add(&self, origin: Origin, config: &ServerConfig) -> Result<Change, String> {
        if config.id.is_empty() {
            return Err("the server id is empty".into());
        }
        if config.weight == 0 {
            return Err(format!("server {:?} has weight 0 (at least 1)", config.id));
        }
        let mut guard = self.write_members();
        let current = guard.clone();
        let mut change = Change::default();
        match current.get(&config.id) {
            Some(s) if s.origin() == origin && s.leaving().is_some() => {
                s.set_leaving(None);
                s.set_drain(false);
                s.set_weight(config.weight);
                self.policy().members_changed(&current.servers);
                self.generation.fetch_add(1, Ordering::AcqRel);
                change.returned.push(config.id.clone());
            }
            Some(s) => {
                return Err(format!(
                    "pool {:?} already has a server {:?} (from {})",
                    self.name(),
                    config.id,
                    s.origin()
                ))
            }
            None => {
                let mut list = current.servers.to_vec();
                list.push(self.make_server(config, origin));
                self.install(&mut guard, list);
                change.joined.push(config.id.clone());
            }
        }
        drop(guard);
        self.log_change(origin, &change, Duration::ZERO);
        Ok(change)
    }

    /// The server `id` leaves the pool (the admin API): drained for `drain`, then dropped.
    /// A server of the config file may leave too (until the next reload); a server found in
    /// DNS may not (its name's next answer decides). `Err` when there is no such server.
    pub fn remove(&self, id: &str, drain: Duration, now: Instant) -> Result<Change, String> {
        let guard = self.write_members();
        let Some(s) = guard.get(id).cloned() else {
            return Err(format!("no server {id:?} in pool {:?}", self.name()));
        };
        if let Origin::Dns(_) = s.origin() {
            return Err(format!(
                "server {id:?} of pool {:?} comes from DNS: take it out of DNS, or drain it \
                 (POST /admin/drain/{}/{id})",
                self.name(),
                self.name()
            ));
        }
        let mut change = Change::default();
        if s.leaving().is_none() {
            s.set_leaving(Some(now + drain));
            self.sweep_at(now + drain);
            s.set_drain(true);
            self.generation.fetch_add(1, Ordering::AcqRel);
            change.left.push(id.to_string());
        }
        drop(guard);
        self.log_change(s.origin(), &change, drain);
        Ok(change)
    }

    /// Set the weight of server `id` (at least 1); `false` if there is no such server.
    pub fn set_weight(&self, id: &str, weight: u32) -> bool {
        let guard = self.write_members();
        let Some(s) = guard.get(id) else {
            return false;
        };
        let before = s.weight();
        s.set_weight(weight);
        self.policy().members_changed(&guard.servers);
        self.generation.fetch_add(1, Ordering::AcqRel);
        log::info!(
            "pool {} server {id}: weight {before} → {}",
            self.name(),
            weight.max(1)
        );
        true
    }

    /// A sweep is due at `at` (or earlier, if one already is).
    fn sweep_at(&self, at: Instant) {
        self.next_sweep.fetch_min(to_ticks(at), Ordering::AcqRel);
    }

    /// Whether a server's drain time has passed at `now` (one atomic load: the selection
    /// path calls it).
    pub(crate) fn sweep_due(&self, now: Instant) -> bool {
        self.next_sweep.load(Ordering::Acquire) <= to_ticks(now)
    }

    /// Drop the servers whose drain time has passed; their ids (logged). Runs by itself on
    /// the next selection after a drain time ends, and on the DNS thread's ticks.
    pub fn sweep(&self, now: Instant) -> Vec<String> {
        if !self.sweep_due(now) {
            return Vec::new();
        }
        let mut guard = self.write_members();
        let (gone, kept): (Vec<ServerRef>, Vec<ServerRef>) =
            guard.servers.iter().cloned().partition(|s| s.is_gone(now));
        let next = kept
            .iter()
            .filter_map(|s| s.leaving())
            .min()
            .map_or(u64::MAX, to_ticks);
        self.next_sweep.store(next, Ordering::Release);
        if gone.is_empty() {
            return Vec::new();
        }
        self.install(&mut guard, kept);
        drop(guard);
        gone.iter()
            .map(|s| {
                log::info!(
                    "pool {} server {}: drain time over, dropped ({} active session(s) left \
                     on it end on their own)",
                    self.name(),
                    s.id(),
                    s.active()
                );
                s.id().to_string()
            })
            .collect()
    }

    fn log_change(&self, origin: Origin, change: &Change, drain: Duration) {
        let name = self.name();
        for id in &change.joined {
            log::info!("pool {name} server {id}: joined ({origin})");
        }
        for id in &change.returned {
            log::info!("pool {name} server {id}: back ({origin}), no longer leaving");
        }
        for id in &change.left {
            log::info!(
                "pool {name} server {id}: left ({origin}), draining for {} ms",
                drain.as_millis()
            );
        }
        for id in &change.reweighted {
            if let Some(s) = self.server(id) {
                log::info!("pool {name} server {id}: weight {} ({origin})", s.weight());
            }
        }
        for id in &change.skipped {
            log::debug!("pool {name} server {id}: already a server of another origin");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;
    use crate::PoolOptions;

    fn conf(port: u16) -> ServerConfig {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        ServerConfig::new(addr.to_string(), addr)
    }

    fn ids(pool: &Pool) -> Vec<String> {
        pool.servers().iter().map(|s| s.id().to_string()).collect()
    }

    #[test]
    fn join_leave_return_and_sweep() {
        let pool = Pool::new_dynamic("app", &[conf(1)], PoolOptions::default()).expect("pool");
        let t0 = Instant::now();
        let drain = Duration::from_secs(10);
        let c = pool.sync(Origin::Dns(0), &[conf(2), conf(3)], drain, t0);
        assert_eq!(c.joined, ["127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(ids(&pool), ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let g = pool.generation();
        // The same answer changes nothing.
        assert!(pool
            .sync(Origin::Dns(0), &[conf(3), conf(2)], drain, t0)
            .is_empty());
        assert_eq!(pool.generation(), g);
        // 2 leaves: draining, still a member until its drain time.
        let c = pool.sync(Origin::Dns(0), &[conf(3)], drain, t0);
        assert_eq!(c.left, ["127.0.0.1:2"]);
        let two = pool.server("127.0.0.1:2").expect("still there");
        assert!(two.is_draining());
        assert!(pool.sweep(t0 + Duration::from_secs(9)).is_empty());
        // It comes back before: no longer draining.
        let c = pool.sync(Origin::Dns(0), &[conf(2), conf(3)], drain, t0);
        assert_eq!(c.returned, ["127.0.0.1:2"]);
        assert!(!two.is_draining());
        // Leaves again and stays away: dropped after the drain time.
        pool.sync(Origin::Dns(0), &[conf(3)], drain, t0);
        assert_eq!(pool.sweep(t0 + drain), ["127.0.0.1:2"]);
        assert_eq!(ids(&pool), ["127.0.0.1:1", "127.0.0.1:3"]);
        assert!(pool.server("127.0.0.1:2").is_none());
        // New sessions never go to a draining server; the config server is never touched.
        let c = pool.sync(Origin::Dns(0), &[conf(1)], drain, t0);
        assert_eq!(c.skipped, ["127.0.0.1:1"]);
        assert_eq!(c.left, ["127.0.0.1:3"]);
        for _ in 0..10 {
            let s = pool.select(None, t0).expect("a server");
            assert_eq!(s.id(), "127.0.0.1:1");
        }
    }

    #[test]
    fn new_servers_get_picked_by_round_robin() {
        let pool = Pool::new_dynamic("app", &[], PoolOptions::default()).expect("pool");
        let now = Instant::now();
        assert!(pool.select(None, now).is_none());
        pool.sync(Origin::Dns(0), &[conf(1)], Duration::ZERO, now);
        assert!(pool.select(None, now).is_some());
        pool.sync(Origin::Dns(0), &[conf(1), conf(2)], Duration::ZERO, now);
        let picks: Vec<String> = (0..4)
            .filter_map(|_| pool.select(None, now))
            .map(|s| s.id().to_string())
            .collect();
        assert_eq!(picks.iter().filter(|p| *p == "127.0.0.1:2").count(), 2);
    }

    #[test]
    fn ip_hash_keys_of_staying_servers_stay() {
        let options = PoolOptions {
            policy: PolicyKind::IpHash {
                balance_factor: None,
            },
            ..PoolOptions::default()
        };
        let all: Vec<ServerConfig> = (1..=5).map(conf).collect();
        let pool = Pool::new_dynamic("app", &[], options).expect("pool");
        let now = Instant::now();
        pool.sync(Origin::Dns(0), &all, Duration::ZERO, now);
        let key = |i: u32| i.to_be_bytes();
        let before: Vec<String> = (0..1000u32)
            .filter_map(|i| pool.select(Some(&key(i)), now))
            .map(|s| s.id().to_string())
            .collect();
        pool.sync(Origin::Dns(0), &all[..4], Duration::ZERO, now);
        pool.sweep(now);
        let mut moved = 0;
        for (i, was) in before.iter().enumerate() {
            let now_on = pool.select(Some(&key(i as u32)), now).expect("a server");
            if was != "127.0.0.1:5" {
                assert_eq!(now_on.id(), was, "key {i} moved off a server that stayed");
            } else {
                moved += 1;
            }
        }
        assert!(moved > 100, "the removed server had keys: {moved}");
    }

    #[test]
    fn admin_add_remove_weight() {
        let pool = Pool::new("app", &[conf(1)], PoolOptions::default()).expect("pool");
        let now = Instant::now();
        assert!(pool.add(Origin::Admin, &conf(1)).is_err());
        assert!(pool.add(Origin::Admin, &conf(2).weight(3)).is_ok());
        assert_eq!(pool.server("127.0.0.1:2").map(|s| s.weight()), Some(3));
        assert!(pool.set_weight("127.0.0.1:2", 5));
        assert_eq!(pool.server("127.0.0.1:2").map(|s| s.weight()), Some(5));
        assert!(pool.remove("127.0.0.1:9", Duration::ZERO, now).is_err());
        assert!(pool
            .remove("127.0.0.1:2", Duration::from_secs(5), now)
            .is_ok());
        // Draining: kept for pinned sessions, never picked for new ones.
        assert!(pool.server("127.0.0.1:2").is_some_and(|s| s.is_draining()));
        for _ in 0..4 {
            let s = pool.select(None, now).expect("a server");
            assert_eq!(s.id(), "127.0.0.1:1");
        }
        // Its drain time over: dropped by the next selection.
        let later = now + Duration::from_secs(5);
        assert!(pool.select(None, later).is_some());
        assert_eq!(ids(&pool), ["127.0.0.1:1"]);
        assert!(pool.server("127.0.0.1:2").is_none());
        // A session pinned to a server whose drain time is over is re-balanced: the
        // affinity decision drops the server first.
        pool.add(Origin::Admin, &conf(4)).expect("added");
        pool.remove("127.0.0.1:4", Duration::from_secs(1), now)
            .expect("removed");
        let during = pool.resolve("127.0.0.1:4", None, crate::FailoverMode::Repin, now);
        assert!(matches!(during, crate::Affinity::Keep(s) if s.id() == "127.0.0.1:4"));
        let after = now + Duration::from_secs(1);
        let moved = pool.resolve("127.0.0.1:4", None, crate::FailoverMode::Repin, after);
        assert!(matches!(moved, crate::Affinity::Repin(s) if s.id() == "127.0.0.1:1"));
        assert!(pool.server("127.0.0.1:4").is_none());
        // A config server may leave too; a DNS one may not.
        pool.sync(Origin::Dns(0), &[conf(3)], Duration::ZERO, now);
        assert!(pool.remove("127.0.0.1:3", Duration::ZERO, now).is_err());
        assert!(pool.remove("127.0.0.1:1", Duration::ZERO, now).is_ok());
    }
}
