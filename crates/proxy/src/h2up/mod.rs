//! HTTP/2 to upstreams (`protocol = "h2c"`, or `"h2"` over TLS, on an `[[upstream]]`): the
//! loop's hubs that own and share the upstream connections (`hub.rs`), one loop-driven
//! `tether_h2::ClientConn` per upstream connection (`mux.rs`), requests mapped to header
//! lists as RFC 9113 says (`fields.rs`), and tether's own errors answered the gRPC way to
//! gRPC requests (`grpc.rs`). The client sides that hand calls to a mux are the HTTP/2
//! session's `h2/h2up.rs` and the HTTP/1.1 session's `http/h2up.rs`; docs/architecture.md,
//! "where a frame goes upstream", follows a frame through them.

pub(crate) mod auto;
pub(crate) mod body;
pub(crate) mod encode;
pub(crate) mod fields;
pub(crate) mod grpc;
pub(crate) mod hub;
pub(crate) mod mux;
pub(crate) mod rules;

use tether_config::spec::UpstreamProtocol;

/// The pool's TLS client config with the ALPN its protocol offers: `h2` only for
/// `protocol = "h2"` (a server that does not agree fails the connection), `h2` then
/// `http/1.1` for `auto` (the server's choice decides, `auto.rs`), `http/1.1` otherwise (as
/// `client_config` made it).
pub(crate) fn with_alpn(
    protocol: UpstreamProtocol,
    config: std::sync::Arc<tether_core::tls::rustls::ClientConfig>,
) -> std::sync::Arc<tether_core::tls::rustls::ClientConfig> {
    let alpn: Vec<Vec<u8>> = match protocol {
        UpstreamProtocol::H2 => vec![b"h2".to_vec()],
        UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        _ => return config,
    };
    let mut c = (*config).clone();
    c.alpn_protocols = alpn;
    std::sync::Arc::new(c)
}

/// How the loop's hub keeps a pool's HTTP/2 connections (`h2_idle_timeout_ms`,
/// `h2_ping_interval_ms`, `h2_ping_timeout_ms`).
pub(crate) fn keep_alive(up: &crate::upstream::Upstream) -> hub::KeepAlive {
    hub::KeepAlive {
        idle: up.h2_keep.idle,
        ping_every: up.h2_keep.ping_every,
        ping_timeout: up.h2_keep.ping_timeout,
    }
}
