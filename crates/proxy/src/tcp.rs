//! The `tcp` listener's sessions (eXpServer stage 13): a tunnel to an upstream address, and
//! a file streamed to the client on connect.

use std::net::SocketAddr;
use std::sync::Arc;

use tether_core::{ConnId, ConnectOpts, Cx, PipeEnd, PipeId, Session, Sink, Source};

use crate::idle::{self, KEY_CONNECT, KEY_LINGER, LINGER};
use tether_config::spec::SendProxy;
use tether_config::ListenerSpec;

/// Tunnels bytes both ways between the client and `upstream`, with half-close: a FIN from
/// one side is passed on once what it sent before is delivered. A reset on either side
/// closes both. If the upstream cannot be reached, the client is closed without a byte.
pub struct TcpTunnel {
    spec: Arc<ListenerSpec>,
    upstream: SocketAddr,
    send_proxy: Option<SendProxy>,
    client: Option<ConnId>,
    up: Option<ConnId>,
}

impl TcpTunnel {
    pub fn new(
        spec: Arc<ListenerSpec>,
        upstream: SocketAddr,
        send_proxy: Option<SendProxy>,
    ) -> TcpTunnel {
        TcpTunnel {
            spec,
            upstream,
            send_proxy,
            client: None,
            up: None,
        }
    }
}

impl Session for TcpTunnel {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        let header = (self.send_proxy)
            .map(|v| crate::upstream::proxy_header(v, cx.peer_addr(client), cx.local_addr(client)));
        let opts = ConnectOpts {
            tls: None,
            proxy_header: header.as_deref(),
            fresh: false,
        };
        match cx.connect_with(self.upstream, opts) {
            Ok(up) => {
                self.up = Some(up);
                cx.set_timer(self.spec.connect_timeout, KEY_CONNECT);
            }
            Err(e) => {
                log::warn!(
                    "tcp {}: connect to {}: {e}",
                    self.spec.listen,
                    self.upstream
                );
                cx.close();
            }
        }
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        let Some(client) = self.client else { return };
        if let Err(e) = result {
            log::warn!(
                "tcp {}: upstream {} unreachable: {e}",
                self.spec.listen,
                self.upstream
            );
            cx.close();
            return;
        }
        cx.pipe(Source::Conn(client), Sink::Conn(up));
        cx.pipe(Source::Conn(up), Sink::Conn(client));
        idle::arm(cx, self.spec.idle_timeout);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        match key {
            KEY_CONNECT if cx.pending_connects() > 0 => {
                log::warn!(
                    "tcp {}: upstream {} connect timed out",
                    self.spec.listen,
                    self.upstream
                );
                cx.close();
            }
            idle::KEY_IDLE => {
                let conns: Vec<ConnId> = self.client.into_iter().chain(self.up).collect();
                if idle::expired(cx, &conns, self.spec.idle_timeout) {
                    log::info!("tcp {}: tunnel idle, closing", self.spec.listen);
                    cx.close();
                }
            }
            _ => {}
        }
    }
}

/// Streams a file to the client as soon as it connects, then closes (after the client has
/// read it: what the client sends meanwhile is discarded, for at most `LINGER`).
pub struct TcpFile {
    spec: Arc<ListenerSpec>,
    path: std::path::PathBuf,
    client: Option<ConnId>,
    file_pipe: Option<PipeId>,
}

impl TcpFile {
    pub fn new(spec: Arc<ListenerSpec>, path: std::path::PathBuf) -> TcpFile {
        TcpFile {
            spec,
            path,
            client: None,
            file_pipe: None,
        }
    }
}

impl Session for TcpFile {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        match std::fs::File::open(&self.path) {
            Ok(f) => {
                self.file_pipe = Some(cx.pipe(Source::file(f), Sink::Conn(client)));
                cx.pipe(Source::Conn(client), Sink::Discard);
                idle::arm(cx, self.spec.idle_timeout);
            }
            Err(e) => {
                log::warn!(
                    "tcp {}: cannot open {}: {e}",
                    self.spec.listen,
                    self.path.display()
                );
                cx.close();
            }
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if end != PipeEnd::Finished {
            cx.close();
        } else if Some(pipe) == self.file_pipe {
            cx.set_timer(LINGER, KEY_LINGER);
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        let conns: Vec<ConnId> = self.client.into_iter().collect();
        if key == KEY_LINGER
            || (key == idle::KEY_IDLE && idle::expired(cx, &conns, self.spec.idle_timeout))
        {
            cx.close();
        }
    }
}
