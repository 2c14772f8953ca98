//! What every connection of one `http` listener shares in a worker: the listener's spec and
//! router, the parser limits, the counters, the access log, the affinity store and the
//! brokers. Built once when the listener is installed (`server.rs`), then held by `Arc` by
//! each session: a new connection allocates only its own state (`conn.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tether_balance::ClientKey;
use tether_broker::Broker;
use tether_http::Limits;
use tether_store::Store;

use super::affinity;
use crate::access_log::AccessLogs;
use crate::metrics::{Registry, WorkerStats};
use crate::router::Router;
use crate::status_page::Topology;
use crate::upstream::Upstream;
use tether_config::ListenerSpec;

/// One `http` listener's shared context (per worker: the counters are the worker's).
pub struct ListenerCtx {
    pub(crate) spec: Arc<ListenerSpec>,
    /// The `Server` header value.
    pub(crate) server: Arc<str>,
    pub(crate) router: Arc<Router>,
    pub(crate) limits: Limits,
    /// This worker's counters.
    pub(crate) stats: Arc<WorkerStats>,
    /// Every worker's counters, for `status_page` routes.
    pub(crate) metrics: Option<Arc<Registry>>,
    /// The listeners and pools the HTML status page lists.
    pub(crate) topology: Arc<Topology>,
    /// One line per request, when the access log is on.
    pub(crate) access_log: Option<Arc<AccessLogs>>,
    /// Affinity entries (learned sessions, re-pins), and whether other instances share
    /// them (Redis: a miss in memory is asked there).
    pub(crate) store: Arc<dyn Store>,
    pub(crate) store_shared: bool,
    /// `on_store_error`: what a request gets when the store does not answer its lookup.
    pub(crate) on_store_error: tether_config::spec::OnStoreError,
    /// The started simulation-server brokers that `broker` routes name.
    pub(crate) brokers: Arc<HashMap<String, Arc<Broker>>>,
}

impl ListenerCtx {
    /// Request headers the access-log templates name.
    pub(crate) fn log_headers(&self) -> &[String] {
        self.access_log.as_ref().map_or(&[], |l| &l.headers)
    }

    /// What an affinity decision for `up` reads besides the request.
    pub(crate) fn affinity<'a>(
        &'a self,
        up: &'a Upstream,
        key: Option<&'a ClientKey>,
        now: Instant,
    ) -> affinity::Ctx<'a> {
        affinity::Ctx {
            up,
            store: &*self.store,
            now,
            unix: affinity::unix_now(),
            key: key.map(ClientKey::as_bytes),
            shared: self.store_shared,
            tls: self.spec.front.tls.is_some(),
        }
    }
}
