//! `store`: where affinity pins, learned sessions and shared limit counters live. A string
//! (`"memory"`, `"redis://..."`, `"rediss://..."`) or a table for a Redis Sentinel group or a
//! Redis Cluster:
//!
//! ```toml
//! store = { sentinels = ["127.0.0.1:26379", "127.0.0.1:26380"], master = "mymaster" }
//! store = { cluster = ["127.0.0.1:7000", "127.0.0.1:7001"], password = "${REDIS_PASSWORD}" }
//! ```
//!
//! Plain data: `tether-proxy` opens the store (`tether_store::open_backend`).

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// The checked `store`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSpec {
    /// In this process only (the default).
    #[default]
    Memory,
    /// One Redis server: `redis://` or `rediss://` (TLS).
    Redis { url: String, access: StoreAccess },
    /// The master of a Sentinel group, followed through failovers.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        db: i64,
        sentinel_password: Option<String>,
        access: StoreAccess,
    },
    /// A Redis Cluster (`MOVED`/`ASK` followed).
    Cluster {
        nodes: Vec<String>,
        access: StoreAccess,
    },
}

/// Credentials and TLS of the Redis data nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreAccess {
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    pub ca: Option<PathBuf>,
}

impl StoreSpec {
    /// Shared with other tether instances (a miss in memory is asked there).
    pub fn is_shared(&self) -> bool {
        !matches!(self, StoreSpec::Memory)
    }

    /// How logs and errors name it (no password).
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Memory => "memory".into(),
            StoreSpec::Redis { url, .. } => match url.split_once('@') {
                Some((scheme_auth, host)) => {
                    let scheme = scheme_auth.split("://").next().unwrap_or("redis");
                    format!("{scheme}://***@{host}")
                }
                None => url.clone(),
            },
            StoreSpec::Sentinel {
                master, sentinels, ..
            } => format!("sentinel {master} via {}", sentinels.join(", ")),
            StoreSpec::Cluster { nodes, .. } => format!("cluster {}", nodes.join(", ")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    sentinels: Option<Vec<String>>,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    db: Option<i64>,
    #[serde(default)]
    sentinel_password: Option<String>,
    #[serde(default)]
    cluster: Option<Vec<String>>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    tls: Option<bool>,
    #[serde(default)]
    ca: Option<PathBuf>,
}

fn host_port(list: &[String], key: &str) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("`store.{key}` lists no address"));
    }
    for a in list {
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!("`store.{key}`: {a:?} is not host:port"));
        }
    }
    Ok(())
}

/// Check `store` (absent: memory).
pub(crate) fn check(
    raw: Option<Spanned<toml::Value>>,
    at: At<'_>,
) -> Result<StoreSpec, ConfigError> {
    let Some(raw) = raw else {
        return Ok(StoreSpec::Memory);
    };
    let span = raw.span();
    match raw.into_inner() {
        toml::Value::String(s) if s.is_empty() || s == "memory" => Ok(StoreSpec::Memory),
        toml::Value::String(s) if s.starts_with("redis://") || s.starts_with("rediss://") => {
            Ok(StoreSpec::Redis {
                url: s,
                access: StoreAccess::default(),
            })
        }
        toml::Value::String(s) => Err(at(
            span,
            format!(
                "`store`: {s:?} is not \"memory\", a redis:// (or rediss://) URL, or a table \
                 ({{ sentinels = [...], master = \"...\" }} or {{ cluster = [...] }})"
            ),
        )),
        toml::Value::Table(t) => {
            let raw: RawTable =
                toml::Value::Table(t)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        at(
                            span.clone(),
                            format!("`store`: {}", crate::hints::with_hint(e.message())),
                        )
                    })?;
            let access = StoreAccess {
                username: raw.username,
                password: raw.password,
                tls: raw.tls.unwrap_or(false) || raw.ca.is_some(),
                ca: raw.ca,
            };
            let bad = |m: String| at(span.clone(), m);
            match (raw.sentinels, raw.cluster) {
                (Some(sentinels), None) => {
                    host_port(&sentinels, "sentinels").map_err(&bad)?;
                    let master = raw.master.filter(|m| !m.is_empty()).ok_or_else(|| {
                        bad("`store`: a Sentinel group needs `master` (its name, e.g. \"mymaster\")".into())
                    })?;
                    Ok(StoreSpec::Sentinel {
                        sentinels,
                        master,
                        db: raw.db.unwrap_or(0),
                        sentinel_password: raw.sentinel_password,
                        access,
                    })
                }
                (None, Some(nodes)) => {
                    host_port(&nodes, "cluster").map_err(&bad)?;
                    if raw.master.is_some() || raw.db.is_some() {
                        return Err(bad(
                            "`store`: `master` and `db` are for Sentinel, not a cluster".into(),
                        ));
                    }
                    Ok(StoreSpec::Cluster { nodes, access })
                }
                (Some(_), Some(_)) => Err(bad(
                    "`store`: give `sentinels` or `cluster`, not both".into()
                )),
                (None, None) => Err(bad(
                    "`store`: a table needs `sentinels` (with `master`) or `cluster`".into(),
                )),
            }
        }
        other => Err(at(
            span,
            format!("`store`: a string or a table, not {}", other.type_str()),
        )),
    }
}
