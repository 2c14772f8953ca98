//! tether-balance: backend pools, health state, selection policies and session affinity.
//! Pure: no sockets, no threads, no clock reads in the decisions (every call that needs
//! the time takes `now`).
//!
//! One `Arc<Pool>` per configured pool is shared by every worker thread; what changes at
//! run time (active counts, drain flags, health, round-robin state) sits in atomics and
//! short mutexes. A request goes through it like this:
//!
//! 1. The proxy finds the session's affinity, if any: a cookie ([`find_cookie`], then
//!    [`Sealer::open_cookie`]) or a tagged session id ([`Sealer::split_tagged`]), and asks
//!    [`Pool::resolve`] (`failover.rs`) whether that server may still take it.
//! 2. Otherwise [`Pool::select`] (`pool.rs`) picks a server: healthy non-draining
//!    primaries, then backups, then (with `fail_open`) anything not draining, using the
//!    pool's [`PolicyKind`] (`policy/round_robin.rs`, `policy/least_connections.rs`,
//!    `policy/ip_hash.rs`: rendezvous hashing with bounded load).
//! 3. The proxy counts the session with [`Server::acquire`] (`server.rs`) and holds the
//!    [`ActiveGuard`] until the session ends.
//! 4. A failed connect is reported with [`Health::record_failure`] (`health.rs`) and retried
//!    with [`Pool::select_excluding`]; a good response with [`Health::record_success`].
//!    Active checks ([`CheckConfig`]) report with [`Health::record_check`].
//! 5. A new or moved affinity is handed back sealed: [`set_cookie`] (`cookie.rs`) with
//!    [`Sealer::seal_cookie`], or [`Sealer::tag_value`] (`seal.rs`, keys read by `key.rs`).
//!
//! ```
//! use std::time::Instant;
//! use tether_balance::{ClientKey, Pool, PoolOptions, PolicyKind, ServerConfig};
//!
//! let servers = [
//!     ServerConfig::new("a", "127.0.0.1:8001".parse().unwrap()),
//!     ServerConfig::new("b", "127.0.0.1:8002".parse().unwrap()).weight(2),
//! ];
//! let options = PoolOptions { policy: PolicyKind::ip_hash(), ..PoolOptions::default() };
//! let pool = Pool::new("app", &servers, options).expect("valid pool");
//! let key = ClientKey::new("192.0.2.7".parse().unwrap());
//! let server = pool.select(Some(key.as_bytes()), Instant::now()).expect("a server is up");
//! let _session = server.acquire(); // counted until dropped
//! assert_eq!(server.active(), 1);
//! ```
//!
//! The algorithms, token formats and the figures behind the choices are in
//! `docs/affinity.md`.

#![warn(missing_docs)]

mod cookie;
mod cookie_options;
mod counts;
mod failover;
mod health;
mod key;
mod membership;
pub mod policy;
mod pool;
mod seal;
mod server;
mod status_set;

pub use cookie::{find_cookie, is_valid_cookie_name, set_cookie, set_cookie_with};
pub use cookie_options::{CookieOptions, CookieSecure, SameSite};
pub use counts::AffinityStats;
pub use failover::{Affinity, FailoverMode};
pub use health::{CheckConfig, CheckKind, Health, PassiveConfig, StatusRange};
pub use key::{parse_key, KeyError, KeyKind, MIN_PASSPHRASE_CHARS, PASSPHRASE_ROUNDS};
pub use membership::{Change, Origin};
pub use policy::ip_hash::ClientKey;
pub use policy::PolicyKind;
pub use pool::{Pool, PoolError, PoolOptions};
pub use seal::{OpenError, Sealer};
pub use server::{ActiveGuard, Server, ServerConfig, ServerRef};
pub use status_set::StatusSet;
