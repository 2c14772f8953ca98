//! tether-broker: sends clients to the least-loaded simulation server, a drop-in for the
//! Webots session server. No event-loop sockets here: the proxy routes requests to a
//! `Broker` and writes what it returns; the broker's own I/O (polling, mails) runs on its
//! threads.
//!
//! Following one client of a Webots web page through the code:
//! 1. The page opens `ws://broker/` to learn whether it may start a simulation. The proxy
//!    checks the upgrade (`ws::check_upgrade`), answers `ws::handshake_response`, and keeps
//!    the `ws::FeedSocket` of `Broker::open_feed`, which queued `1` or `0`
//!    (`Broker::feed_value`) — or nothing while the first polling round still waits for a
//!    server (`first_round.rs`). When the poller (`broker.rs`) sees availability flip, or
//!    the first round end, it calls the waker the proxy's worker gave to `open_feed`
//!    (`Broker::subscribe`); the worker calls `FeedSocket::update` for each feed client.
//! 2. The user presses start; the page asks `GET /session?url=<repository>`.
//!    During the first round `Broker::hold` (`http.rs`) makes it wait; then
//!    `Broker::answer` checks the token if one is configured (`access.rs`), then
//!    answers `Broker::session_body_for`: `state::pick_for` chose, among the servers whose
//!    `allowed_repositories` admit the URL (`spec.rs`), the lowest `load / weight` with the
//!    load strictly below `max_load` (ties: the first listed), written `ws(s)://<entry>` —
//!    or Webots' error text.
//! 3. Meanwhile, every `poll_interval_ms`, `Broker::poll_once` asks every server's `/load`
//!    at once (`poll.rs`, ureq, bounded by `timeout_ms`) and records each answer as soon as
//!    it arrives (`state::ServerState::record`; a server with no answer yet is
//!    `Load::Unpolled`, never handed out); each `state::Transition` becomes a log line
//!    and, with mail settings, a mail (`tether_mail::Mailer`).
//! 4. An administrator opens `/monitor` (`monitor.rs`), or a front end reads `/load`.
//!
//! Config: `BrokerConfig` (`config.rs`, a TOML `[[broker]]` table), or Webots'
//! `session.json` as it is (`session_json.rs`). Logs like Webots: `logfile.rs`.

mod access;
#[cfg(feature = "runtime")]
mod broker;
mod config;
#[cfg(feature = "runtime")]
mod first_round;
#[cfg(feature = "runtime")]
mod http;
mod logfile;
#[cfg(feature = "runtime")]
mod monitor;
#[cfg(feature = "runtime")]
mod poll;
mod pyfloat;
mod session_json;
mod spec;
#[cfg(feature = "runtime")]
mod state;
#[cfg(feature = "runtime")]
pub mod ws;

pub use access::{Secret, SessionQuery, MAX_TOKEN_LEN, MIN_TOKEN_LEN};
#[cfg(feature = "runtime")]
pub use broker::{
    transition_text, Broker, SubscriptionId, CORS_HEADERS, CORS_HEADERS_WITH_TOKEN, NO_SERVER,
};
pub use config::BrokerConfig;
#[cfg(feature = "runtime")]
pub use http::{Reply, Request, UNAUTHORIZED};
pub use logfile::{session_log_writer, RotatingFile, BACKUPS, MAX_BYTES};
#[cfg(feature = "runtime")]
pub use poll::parse_load;
pub use pyfloat::python_str;
pub use session_json::{
    expand_path, load_session_json, looks_like_session_json, parse_session_json, ConfigError,
    SessionJson,
};
pub use spec::{plain_url, ServerSpec, MAX_WEIGHT};
#[cfg(feature = "runtime")]
pub use state::{
    format_load, mean_load, pick, pick_for, python_load, transition, Load, ServerState, Transition,
};
