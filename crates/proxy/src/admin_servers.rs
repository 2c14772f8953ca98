//! `/admin/servers/...`: servers added, removed and re-weighted at run time, without a
//! reload (`admin.rs` routes here through `PoolControl`):
//!
//! - `POST /admin/servers/<pool>?addr=10.0.0.5:8080[&weight=2][&backup=true][&id=name]`:
//!   a new server (its id is `id`, else the address as given): `201`; `409` if the id is
//!   taken; `400` for a bad address (an IP and a port: nothing is resolved on the loop) or
//!   weight;
//! - `DELETE /admin/servers/<pool>/<server>`: the server leaves: drained (its pinned
//!   sessions stay, new ones go elsewhere) for the pool's `drain_timeout_ms`, then dropped
//!   (`202`); a server found in DNS is refused (`409`: its DNS name decides);
//! - `PUT /admin/servers/<pool>/<server>?weight=N`: a new weight (`200`).
//!
//! The pools are shared by every event-loop thread of the worker, so a change reaches them
//! all at once (as `POST /admin/drain` does). Changes last until the next reload or restart:
//! a new worker builds its pools from the config file, which stays the truth.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_balance::{Origin, ServerConfig};

use crate::admin::Reply;
use crate::upstream::Upstream;

/// The `name=value` pairs of a query string (no percent-decoding: addresses, numbers and
/// ids need none).
fn params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn error(status: u16, message: String) -> Reply {
    Reply::new(
        status,
        json!({"status": status, "message": message}).to_string(),
    )
}

fn weight_of(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(w) if w >= 1 => Ok(w),
        _ => Err(format!("weight {v:?} is not a whole number of at least 1")),
    }
}

/// `POST /admin/servers/<pool>?addr=...`.
pub fn add(up: &Upstream, query: &str) -> Reply {
    let pool = up.name();
    if !up.tls.is_empty() {
        return error(
            409,
            format!("pool {pool:?} speaks TLS to its servers: servers cannot be added to it at run time yet (add them to the config and reload)"),
        );
    }
    let (mut addr, mut id, mut weight, mut backup) = (None, None, 1, false);
    for (k, v) in params(query) {
        match k {
            "addr" => addr = Some(v),
            "id" if !v.is_empty() => id = Some(v),
            "weight" => match weight_of(v) {
                Ok(w) => weight = w,
                Err(m) => return error(400, m),
            },
            "backup" => backup = matches!(v, "true" | "1" | "yes"),
            other => {
                return error(
                    400,
                    format!("unknown parameter {other:?} (addr, weight, backup, id)"),
                )
            }
        }
    }
    let Some(text) = addr else {
        return error(
            400,
            "give the server's address: ?addr=10.0.0.5:8080 (and optionally &weight=2, &backup=true, &id=name)".into(),
        );
    };
    let Ok(sock) = text.parse::<SocketAddr>() else {
        return error(
            400,
            format!("addr {text:?} is not an IP address and port (e.g. 10.0.0.5:8080 or [::1]:8080; names are not resolved here: use a DNS entry in the config)"),
        );
    };
    let mut config = ServerConfig::new(id.unwrap_or(text), sock).weight(weight);
    config.backup = backup;
    match up.pool.add(Origin::Admin, &config) {
        Ok(change) => {
            let what = if change.returned.is_empty() {
                "added"
            } else {
                "back (it was leaving)"
            };
            Reply::new(
                201,
                json!({
                    "pool": pool,
                    "server": config.id,
                    "addr": sock.to_string(),
                    "weight": weight,
                    "backup": backup,
                    "message": format!(
                        "server {:?} ({sock}, weight {weight}{}) of pool {pool:?}: {what}; until the next reload",
                        config.id,
                        if backup { ", backup" } else { "" }
                    ),
                })
                .to_string(),
            )
        }
        Err(m) => error(409, m),
    }
}

/// `DELETE /admin/servers/<pool>/<server>`.
pub fn remove(up: &Upstream, server: &str, drain: Duration) -> Reply {
    let pool = up.name();
    if up.pool.server(server).is_none() {
        return error(404, format!("no server {server:?} in pool {pool:?}"));
    }
    match up.pool.remove(server, drain, Instant::now()) {
        Ok(change) => {
            let state = if change.left.is_empty() {
                "already leaving"
            } else {
                "leaving"
            };
            Reply::new(
                202,
                json!({
                    "pool": pool,
                    "server": server,
                    "drain_timeout_ms": drain.as_millis() as u64,
                    "message": format!(
                        "server {server:?} of pool {pool:?}: {state}, draining for {} ms, then dropped; until the next reload",
                        drain.as_millis()
                    ),
                })
                .to_string(),
            )
        }
        Err(m) => error(409, m),
    }
}

/// `PUT /admin/servers/<pool>/<server>?weight=N`.
pub fn set_weight(up: &Upstream, server: &str, query: &str) -> Reply {
    let pool = up.name();
    let Some(s) = up.pool.server(server) else {
        return error(404, format!("no server {server:?} in pool {pool:?}"));
    };
    let mut weight = None;
    for (k, v) in params(query) {
        match k {
            "weight" => match weight_of(v) {
                Ok(w) => weight = Some(w),
                Err(m) => return error(400, m),
            },
            other => return error(400, format!("unknown parameter {other:?} (weight)")),
        }
    }
    let Some(weight) = weight else {
        return error(400, "give the new weight: ?weight=3".into());
    };
    let before = s.weight();
    up.pool.set_weight(server, weight);
    Reply::new(
        200,
        json!({
            "pool": pool,
            "server": server,
            "weight": weight,
            "was_weight": before,
            "message": format!(
                "server {server:?} of pool {pool:?}: weight {before} → {weight}; until the next reload"
            ),
        })
        .to_string(),
    )
}
