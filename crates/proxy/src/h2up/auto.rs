//! `protocol = "auto"` on a TLS pool: each server's TLS handshake offers both `h2` and
//! `http/1.1` by ALPN and the server's choice decides which path its requests take.
//!
//! What a server chose is remembered per server address (for the process, shared by its
//! loops). A server not heard from yet is reached through the HTTP/1.1 path, whose
//! connection offers both: when the server picks `http/1.1` the request goes on as usual;
//! when it picks `h2`, nothing has been sent yet — the connection is closed, the server is
//! remembered as an HTTP/2 one and the request goes to the loop's shared HTTP/2 connections
//! (`hub.rs`). When a server remembered as HTTP/2 later picks `http/1.1` on a hub
//! connection (it was replaced by an HTTP/1.1-only one), the hub remembers that and its
//! waiting calls are retried as any failed connect is; the next requests take the
//! HTTP/1.1 path. So a server that changes its mind is followed on its next connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;

use tether_config::spec::UpstreamProtocol;
use tether_core::tls::TlsClient;
use tether_core::{ConnId, Cx};

use crate::upstream::Upstream;

/// What each `auto` server chose by ALPN the last time: `true` is `h2`.
static CHOSE: RwLock<Option<HashMap<SocketAddr, bool>>> = RwLock::new(None);

fn chose(addr: SocketAddr) -> Option<bool> {
    let map = CHOSE.read().unwrap_or_else(|e| e.into_inner());
    map.as_ref().and_then(|m| m.get(&addr).copied())
}

/// Remember what `addr` chose; logged when it is news.
pub(crate) fn remember(addr: SocketAddr, h2: bool) {
    if chose(addr) == Some(h2) {
        return;
    }
    let mut map = CHOSE.write().unwrap_or_else(|e| e.into_inner());
    let before = map.get_or_insert_with(HashMap::new).insert(addr, h2);
    if before != Some(h2) {
        log::info!(
            "upstream server {addr} chose {} by ALPN (protocol = \"auto\"): its requests go \
             over {}",
            if h2 { "h2" } else { "http/1.1" },
            if h2 { "HTTP/2" } else { "HTTP/1.1" }
        );
    }
}

/// The request for server `addr` of `up` goes to the HTTP/2 side (`h2c`, `h2`, or an
/// `auto` server that chose `h2`).
pub(crate) fn speaks_h2(up: &Upstream, addr: SocketAddr) -> bool {
    match up.protocol {
        UpstreamProtocol::Http1 => false,
        UpstreamProtocol::H2 | UpstreamProtocol::H2c => true,
        UpstreamProtocol::Auto => chose(addr) == Some(true),
    }
}

/// On the HTTP/1.1 path's connect to an `auto` server: the server chose `h2` (it is
/// remembered; the caller closes the connection and moves the request to the HTTP/2
/// side). `false` for every other pool and answer (an `http/1.1` choice is remembered).
pub(crate) fn chose_h2_on_h1_path(
    cx: &Cx<'_>,
    up: &Upstream,
    conn: ConnId,
    addr: SocketAddr,
) -> bool {
    if up.protocol != UpstreamProtocol::Auto {
        return false;
    }
    let h2 = cx
        .tls_info(conn)
        .is_some_and(|i| i.alpn.as_deref() == Some("h2"));
    remember(addr, h2);
    h2
}

/// The TLS client offers `http/1.1` beside `h2`: an `auto` pool's.
pub(crate) fn is_auto(tls: &TlsClient) -> bool {
    tls.config.alpn_protocols.iter().any(|p| p == b"http/1.1")
}
