//! The session of a connection over `max_connections_per_ip` (`per_ip.rs`): it answers
//! `429 Too Many Requests` with a short body and `Connection: close` at once (without
//! waiting for the request), discards what the client sends, and is gone when the client
//! has closed too or after `LINGER`, whichever comes first. It holds no slot of its address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tether_core::{ConnId, Cx, PipeOpts, Session, Sink, Source};

use super::context::ListenerCtx;
use crate::idle::{KEY_LINGER, LINGER};
use tether_http::reply;

/// Refuses one connection with `429`.
pub struct TooMany {
    ctx: Arc<ListenerCtx>,
    /// The client's address, as the factory was given it.
    peer: SocketAddr,
}

impl TooMany {
    pub fn new(ctx: Arc<ListenerCtx>, peer: SocketAddr) -> TooMany {
        TooMany { ctx, peer }
    }
}

impl Session for TooMany {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        log::debug!(
            "http {}: {} is over max_connections_per_ip: 429",
            self.ctx.spec.listen,
            self.peer.ip()
        );
        // Counted as a request answered 429, like a bad request's 4xx.
        self.ctx.stats.request_started();
        self.ctx.stats.request_done(429, Duration::ZERO);
        let page = reply::message_page(
            429,
            &self.ctx.server,
            "too many connections from your address",
            false,
            false,
        );
        let page = super::secure(&self.ctx.spec, page.into());
        let opts = PipeOpts {
            fin: true,
            ..PipeOpts::default()
        };
        let p = cx.pipe_with(Source::Session, Sink::Conn(client), opts);
        cx.push(p, page);
        cx.end(p);
        // Read and drop the request, so that closing does not reset the answer away.
        if !cx.read_closed(client) {
            cx.pipe(Source::Conn(client), Sink::Discard);
        }
        cx.set_timer(LINGER, KEY_LINGER);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, _key: u64) {
        cx.close();
    }
}
