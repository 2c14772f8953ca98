//! tether-proxy: the sessions wired onto tether-core, and the runtime built from the
//! checked config (`tether-config`'s `Settings`).
//!
//! - `server`: binds each listener of the settings with its session factory;
//! - `runtime`: what a worker builds from `Settings` once (routers, pools, TLS configs, ACME);
//! - `http`, `h2`: the HTTP/1.1 and HTTP/2 sessions, one request's phases (`http/phases.rs`);
//! - `tcp`: the `tcp` listener's sessions (tunnel to an upstream, stream a file);
//! - `admin`: the admin listener's session (`/healthz`, the admin API behind a bearer key);
//! - `health`: active health checks, a session of their own;
//! - `router`, `upstream`: routes and pools as the sessions use them;
//! - `tls`: rustls configs from the checked certificates, and (`tls/acme_resolver.rs`) the resolver
//!   of a listener whose certificates `tether-acme` provides;
//! - `metrics`, `status_page`, `access_log`, `per_ip`, `idle`: counters and the pages over
//!   them, the access log, per-address connection counts, idle timeouts.
//!
//! The config language is `tether-config`'s, the file module `tether-files`', ACME
//! `tether-acme`'s, status pages and heads tether writes `tether_http::reply`'s.

pub mod access;
pub mod access_log;
mod access_log_format;
pub mod admin;
mod admin_servers;
pub mod discover;
pub mod h2;
pub(crate) mod h2up;
pub mod health;
mod health_grpc;
pub mod http;
pub mod idle;
pub mod metrics;
pub mod per_ip;
pub mod router;
pub mod runtime;
pub mod server;
mod spare;
pub mod status_page;
pub mod tcp;
pub mod tls;
pub mod upstream;

pub use tether_config::{ConfigError, Settings, DEFAULT_CONFIG};
