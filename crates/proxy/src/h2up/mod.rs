//! HTTP/2 to upstreams (`protocol = "h2c"`, or `"h2"` over TLS, on an `[[upstream]]`): the
//! loop's hubs that own and share the upstream connections (`hub.rs`), one loop-driven
//! `tether_h2::ClientConn` per upstream connection (`mux.rs`), requests mapped to header
//! lists as RFC 9113 says (`fields.rs`), and tether's own errors answered the gRPC way to
//! gRPC requests (`grpc.rs`). The client sides that hand calls to a mux are the HTTP/2
//! session's `h2/h2up.rs` and the HTTP/1.1 session's `http/h2up.rs`; docs/architecture.md,
//! "where a frame goes upstream", follows a frame through them.

pub(crate) mod fields;
pub(crate) mod grpc;
pub(crate) mod hub;
pub(crate) mod mux;

use tether_config::spec::{UpstreamProtocol, UpstreamSpec};
use tether_config::ConfigError;

/// The pool's protocol, as far as this build speaks it: `auto` (ALPN decides between
/// HTTP/2 and HTTP/1.1) is refused with the pool's position until it is wired.
pub(crate) fn check_protocol(spec: &UpstreamSpec) -> Result<UpstreamProtocol, ConfigError> {
    match spec.protocol {
        UpstreamProtocol::Auto => Err(spec.pos.error(format!(
            "upstream {:?}: `protocol = \"auto\"` is not supported yet (hint: \"h2\" for \
             servers that speak HTTP/2 over TLS, \"http1\" for the others)",
            spec.name
        ))),
        p => Ok(p),
    }
}

/// The pool's TLS client config with the ALPN its protocol offers: `h2` only for
/// `protocol = "h2"` (a server that does not agree fails the connection), `http/1.1`
/// otherwise (as `client_config` made it).
pub(crate) fn with_alpn(
    protocol: UpstreamProtocol,
    config: std::sync::Arc<tether_core::tls::rustls::ClientConfig>,
) -> std::sync::Arc<tether_core::tls::rustls::ClientConfig> {
    if protocol != UpstreamProtocol::H2 {
        return config;
    }
    let mut c = (*config).clone();
    c.alpn_protocols = vec![b"h2".to_vec()];
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
