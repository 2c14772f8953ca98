//! Webots' `session.json`, run as it is (`tether session.json`): one HTTP listener on
//! `port` (all addresses, as Webots' session server) whose route `/` is the broker — the
//! same `/session`, `/`, `/load` and `/monitor` — logging to `<logDir>/session/output.log`
//! (or standard output with `debug`). Recognised by its keys (`looks_like_session_json`).

use std::net::SocketAddr;

use tether_broker::{looks_like_session_json, parse_session_json};

use super::servers::{group, Timeouts};
use super::spec::{ActionSpec, HostSpec, RouteSpec};
use super::{ConfigError, Settings};

/// Whether `text` (JSON) is a Webots `session.json` rather than an eXpServer config.
pub(super) fn is_session_json(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| looks_like_session_json(&v))
}

pub(super) fn parse(text: &str, name: &str) -> Result<Settings, ConfigError> {
    let json = parse_session_json(text, name).map_err(|e| ConfigError {
        path: e.path,
        line: e.line,
        col: e.col,
        message: crate::hints::with_hint(&e.message),
    })?;
    if let Some(why) = json.mail_disabled_reason() {
        log::warn!("{name}: {why}");
    }
    let mut broker = json.broker_config();
    broker.name = "session".into();
    let route = RouteSpec::new("/", ActionSpec::Broker(broker.name.clone()));
    let host = HostSpec {
        hostnames: Vec::new(),
        routes: vec![route],
    };
    let listen = SocketAddr::from(([0, 0, 0, 0], json.port));
    let no_error = |_: std::ops::Range<usize>, message: String| ConfigError {
        path: name.to_string(),
        line: 1,
        col: 1,
        message,
    };
    let listeners = group(
        vec![(listen, 0..0, host, Timeouts::default(), Default::default())],
        &no_error,
    )?
    .into_iter()
    .map(|(l, _)| l)
    .collect();
    Ok(Settings {
        server_name: "tether".into(),
        workers: 1,
        access_log: crate::access_log::AccessLogSpec::off(),
        max_connections: 0,
        max_connections_per_ip: None,
        store: "memory".into(),
        store_spec: Default::default(),
        on_store_error: Default::default(),
        pid_file: None,
        listeners,
        upstreams: Vec::new(),
        brokers: vec![broker],
        session_log: Some((json.log_dir(), json.debug)),
        ops: Default::default(),
        acme: None,
    })
}
