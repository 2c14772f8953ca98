//! tether-proxy: the product sessions wired onto tether-core, and the config model.
//!
//! - `acme`: certificates ordered and renewed by ACME on a helper thread, challenges answered
//!   by the listeners;
//! - `admin`: the admin listener's session (`/healthz`, the admin API behind a bearer key);
//! - `config`: the TOML config, checked into `Settings`, plain data (errors as
//!   `path:line:col: message`);
//! - `runtime`: what a worker builds from `Settings` once (routers, pools, TLS configs, ACME);
//! - `server`: binds each listener of the settings with its session factory;
//! - `tcp`: the `tcp` listener's sessions (tunnel to an upstream, stream a file);
//! - `http`: the minimal `http` listener (proxy to one upstream, or serve a directory);
//! - `files`, `response`, `idle`: path confinement and MIME types, status pages, idle timeouts;
//! - `metrics`, `status_page`: the counters, and the `status_page = "html"` page over them.

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod config;
pub mod files;
pub mod h2;
pub mod health;
pub mod http;
pub mod idle;
pub mod kept_files;
pub mod listing;
pub mod metrics;
pub mod per_ip;
pub mod response;
pub mod router;
pub mod runtime;
pub mod server;
pub mod static_files;
pub mod status_page;
pub mod tcp;
pub mod tls;
pub mod upstream;

pub use config::{ConfigError, Settings, DEFAULT_CONFIG};
