//! An upstream pool as the proxy uses it: the servers and their selection
//! (`tether_balance::Pool`), plus how a session keeps to its server (affinity), what happens
//! when that server is gone (failover), and how many other servers a failed connect may try.
//!
//! Affinity kinds (`balance = ...` in the config):
//! - none (`round_robin`, `least_connections`, `ip_hash`): every request is balanced;
//! - `cookie`: tether sets a sealed cookie naming the server (`CookieAffinity`);
//! - `session_id`: the application's own session id carries a sealed server tag
//!   (`SessionIdAffinity`);
//! - `learn`: the backend's session cookie is learned into the store (`LearnAffinity`).
//!
//! What one request decides is in `http/affinity.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tether_balance::{FailoverMode, Pool, Sealer};
use tether_config::spec::{IdCarrier, IdWriter, LearnAffinity, SendProxy, UnknownTag};
use tether_core::tls::TlsClient;

/// A pool with its affinity and failover settings.
#[derive(Debug)]
pub struct Upstream {
    pub pool: Arc<Pool>,
    pub affinity: Affinity,
    pub failover: FailoverMode,
    /// Other servers a request may try after a failed connect (nothing was sent yet).
    pub retries: u32,
    /// TLS to the servers, by server index (empty: plain TCP).
    pub tls: Vec<TlsClient>,
    /// `tls = { verify = false }`: server certificates are not checked (logged at start).
    pub tls_unverified: bool,
    /// `send_proxy = "v1" | "v2"`: each connection to a server starts with a PROXY
    /// protocol header naming the client.
    pub send_proxy: Option<SendProxy>,
    /// `Secure` and `SameSite` of the cookies tether writes (`cookie_secure`,
    /// `cookie_samesite`).
    pub cookie: tether_balance::CookieOptions,
    /// `protocol`: HTTP/1.1, or HTTP/2 (`h2up/`) to the servers.
    pub protocol: tether_config::spec::UpstreamProtocol,
    /// How HTTP/2 connections to the servers are kept (idle timeout, PINGs).
    pub h2_keep: tether_config::spec::H2Keep,
    /// `hash_key`: what `ip_hash` hashes (the client address by default).
    pub hash_key: tether_config::spec::HashKey,
}

/// The PROXY protocol header for a connection on behalf of `client`, who reached tether at
/// `front`; without them (an unknown address), the header that names no client.
pub fn proxy_header(
    v: SendProxy,
    client: Option<SocketAddr>,
    front: Option<SocketAddr>,
) -> Vec<u8> {
    use tether_core::proxy_protocol as pp;
    match (v, client.zip(front)) {
        (SendProxy::V1, Some((c, f))) => pp::encode_v1(c, f),
        (SendProxy::V2, Some((c, f))) => pp::encode_v2(c, f),
        (SendProxy::V1, None) => pp::encode_v1_unknown(),
        (SendProxy::V2, None) => pp::encode_v2_local(),
    }
}

impl Upstream {
    /// A pool with no affinity, repin failover and one retry.
    pub fn plain(pool: Pool) -> Upstream {
        Upstream {
            pool: Arc::new(pool),
            affinity: Affinity::None,
            failover: FailoverMode::Repin,
            retries: 1,
            tls: Vec::new(),
            tls_unverified: false,
            send_proxy: None,
            cookie: tether_balance::CookieOptions::default(),
            protocol: Default::default(),
            h2_keep: Default::default(),
            hash_key: Default::default(),
        }
    }

    /// How to speak TLS to server `index` of the pool (`None`: plain).
    pub fn tls_for(&self, index: usize) -> Option<&TlsClient> {
        self.tls.get(index)
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.pool.name()
    }
}

/// How requests of one session find their server again.
#[derive(Debug)]
pub enum Affinity {
    None,
    Cookie(CookieAffinity),
    SessionId(SessionIdAffinity),
    Learn(LearnAffinity),
}

/// tether's own affinity cookie: `name=<sealed server id and expiry>`.
pub struct CookieAffinity {
    pub name: String,
    pub sealer: Arc<Sealer>,
    /// Life of the cookie (and of the sealed expiry inside it).
    pub ttl: Duration,
    /// A tampered, forged or expired cookie is answered `503` instead of being ignored.
    pub strict: bool,
}

/// The application's session id, tagged by tether with the server that created it.
pub struct SessionIdAffinity {
    /// Where a request's id is read, in order (the first tagged one decides).
    pub read: Vec<IdCarrier>,
    /// Where a response's new id is tagged.
    pub write: Vec<IdWriter>,
    /// Ids in the answer's body (`http/session_body.rs`).
    pub body: Option<crate::http::session_body::BodyTag>,
    /// The largest urlencoded request body read for a `form` carrier (`http/form_body.rs`).
    pub form_max: usize,
    pub sealer: Arc<Sealer>,
    pub unknown: UnknownTag,
    /// How long a re-pin of a tag is remembered in the store.
    pub repin_ttl: Duration,
}

impl std::fmt::Debug for CookieAffinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieAffinity")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SessionIdAffinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIdAffinity")
            .field("read", &self.read)
            .field("write", &self.write)
            .field("body", &self.body.is_some())
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}
