//! Active health checks, driven by the event loop: one spawned session (`Core::spawn`) per
//! tether process probes every server of every pool that has a `[upstream.health]` table.
//!
//! A probe: connect (a fresh connection, never a pooled one), send
//! `GET <path> HTTP/1.1` with `Connection: close`, read until the status line, pass if the
//! status is in the expected range; a refused connect, a reset, a bad status line or no
//! answer within `timeout` fails. Each result goes to the server's `Health` (`rise`/`fall`
//! counting, logged transitions); the next probe of that server starts `interval` later.
//! Nothing blocks: connects, reads and timeouts are the loop's.
//!
//! `kind = "grpc"`: the probe is one `grpc.health.v1.Health/Check` call over HTTP/2 instead
//! (`health_grpc.rs` makes the frames and judges the answer; the connection stays open
//! both ways until the verdict, since an HTTP/2 server may take a half-close as the end).
//!
//! Pools whose members change at run time (DNS, admin API): every [`SYNC_EVERY`] the
//! checker compares each pool's generation with the last one it saw; a server that joined
//! gets a probe (started at once), a server that was dropped has its probe stopped.

use bytes::Bytes;
use tether_balance::{CheckConfig, CheckKind, ServerRef};
use tether_core::{ConnId, ConnectOpts, Cx, PipeEnd, PipeId, Session, Sink, Source, TimerId};

use std::sync::Arc;

use crate::health_grpc::{GrpcProbe, Verdict};
use crate::runtime::Runtime;
use crate::upstream::Upstream;

/// Longest status line read before a probe gives up on the answer.
const MAX_STATUS_LINE: usize = 1024;

/// How often the checker looks for servers that joined or left a pool.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The timer key of the membership sync (probe keys are `2i` and `2i + 1`).
const SYNC_KEY: u64 = u64::MAX;

struct Probe {
    pool: String,
    server: ServerRef,
    check: CheckConfig,
    request: Bytes,
    /// `Host` / `:authority`.
    host: String,
    /// The call in flight of a gRPC check.
    grpc: Option<GrpcProbe>,
    conn: Option<ConnId>,
    reader: Option<PipeId>,
    writer: Option<PipeId>,
    buf: Vec<u8>,
    timeout: Option<TimerId>,
    tls: Option<tether_core::tls::TlsClient>,
    /// The pool's `send_proxy`: probes send a header that names no client.
    send_proxy: Option<tether_config::spec::SendProxy>,
    /// The server was dropped from its pool: this probe stops.
    gone: bool,
}

/// The session that runs every probe.
pub struct HealthChecker {
    probes: Vec<Probe>,
    /// The pools with a check, with the member generation the probes follow.
    pools: Vec<(Arc<Upstream>, u64)>,
}

/// Timer keys: probe `i` starts at key `2i`, times out at key `2i + 1`.
fn start_key(i: usize) -> u64 {
    (i as u64) * 2
}

impl HealthChecker {
    /// A checker for every pool of `runtime` with a health check; `None` if there is none.
    pub fn from_runtime(runtime: &Runtime) -> Option<HealthChecker> {
        let mut probes = Vec::new();
        let mut pools = Vec::new();
        for up in runtime.pools() {
            let Some(check) = up.pool.check() else {
                continue;
            };
            pools.push((up.clone(), up.pool.generation()));
            for server in up.pool.servers().iter() {
                probes.push(probe(up, check, server));
            }
        }
        (!pools.is_empty()).then_some(HealthChecker { probes, pools })
    }

    /// Follow the pools' member lists: probe the servers that joined, stop the probes of
    /// the servers that were dropped.
    fn sync(&mut self, cx: &mut Cx<'_>) {
        let mut added = Vec::new();
        for (up, seen) in &mut self.pools {
            let now = up.pool.generation();
            if now == *seen {
                continue;
            }
            *seen = now;
            let Some(check) = up.pool.check() else {
                continue;
            };
            let members = up.pool.servers();
            for p in self.probes.iter_mut().filter(|p| p.pool == up.name()) {
                if !members.iter().any(|s| Arc::ptr_eq(s, &p.server)) {
                    p.gone = true;
                }
            }
            for server in members.iter() {
                let known = self.probes.iter().any(|p| Arc::ptr_eq(&p.server, server));
                if !known {
                    added.push(probe(up, check, server));
                }
            }
        }
        for p in added {
            self.probes.push(p);
            self.start(cx, self.probes.len() - 1);
        }
        cx.set_timer(SYNC_EVERY, SYNC_KEY);
    }

    fn start(&mut self, cx: &mut Cx<'_>, i: usize) {
        let Some(p) = self.probes.get_mut(i) else {
            return;
        };
        if p.conn.is_some() || p.gone {
            return;
        }
        p.buf.clear();
        // A probe is tether's own connection: its PROXY header names no client.
        let header = p
            .send_proxy
            .map(|v| crate::upstream::proxy_header(v, None, None));
        let opts = ConnectOpts {
            tls: p.tls.as_ref(),
            proxy_header: header.as_deref(),
            fresh: true,
        };
        let started = cx.connect_with(p.server.addr(), opts);
        if let CheckKind::Grpc { service } = &p.check.kind {
            p.grpc = Some(GrpcProbe::new(service, &p.host, p.tls.is_some()));
        }
        match started {
            Ok(c) => {
                p.conn = Some(c);
                p.timeout = Some(cx.set_timer(p.check.timeout, start_key(i) + 1));
            }
            Err(e) => {
                log::debug!("health {}/{}: connect: {e}", p.pool, p.server.id());
                self.finish(cx, i, false);
            }
        }
    }

    /// Record the result of probe `i`, close what it opened, schedule the next one.
    fn finish(&mut self, cx: &mut Cx<'_>, i: usize, ok: bool) {
        let Some(p) = self.probes.get_mut(i) else {
            return;
        };
        if let Some(t) = p.timeout.take() {
            cx.cancel_timer(t);
        }
        for pipe in [p.reader.take(), p.writer.take()].into_iter().flatten() {
            cx.close_pipe(pipe);
        }
        if let Some(c) = p.conn.take() {
            cx.close_conn(c);
        }
        p.buf.clear();
        p.grpc = None;
        p.server.health().record_check(ok);
        cx.set_timer(p.check.interval, start_key(i));
    }

    /// The server's bytes for the gRPC call of probe `i`: acks go out, a verdict ends it.
    fn grpc_readable(&mut self, cx: &mut Cx<'_>, i: usize, pipe: PipeId) {
        let p = &mut self.probes[i];
        let Some(g) = p.grpc.as_mut() else { return };
        while let Some(b) = cx.take(pipe) {
            if g.feed(&b) != &Verdict::Pending {
                break;
            }
        }
        if let Some(w) = p.writer {
            for b in g.output() {
                cx.push(w, b);
            }
        }
        match g.verdict().clone() {
            Verdict::Pending => {}
            Verdict::Pass => self.finish(cx, i, true),
            Verdict::Fail(why) => {
                log::debug!("health {}/{}: gRPC: {why}", p.pool, p.server.id());
                self.finish(cx, i, false);
            }
        }
    }

    fn by_conn(&self, c: ConnId) -> Option<usize> {
        self.probes.iter().position(|p| p.conn == Some(c))
    }

    fn by_pipe(&self, pipe: PipeId) -> Option<usize> {
        self.probes
            .iter()
            .position(|p| p.reader == Some(pipe) || p.writer == Some(pipe))
    }
}

/// The probe of `server`, a member of `up`.
fn probe(up: &Arc<Upstream>, check: &CheckConfig, server: &ServerRef) -> Probe {
    let host = check
        .host
        .clone()
        .unwrap_or_else(|| server.addr().to_string());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tether-health\r\nConnection: close\r\n\r\n",
        check.path
    );
    Probe {
        pool: up.name().to_string(),
        server: server.clone(),
        check: check.clone(),
        request: Bytes::from(request),
        host,
        grpc: None,
        conn: None,
        reader: None,
        writer: None,
        buf: Vec::new(),
        timeout: None,
        tls: up.tls_for(server.index()).cloned(),
        send_proxy: up.send_proxy,
        gone: false,
    }
}

/// The status code of a complete status line at the start of `buf`: `Some(None)` for a
/// malformed one, `None` while incomplete.
fn status_of(buf: &[u8]) -> Option<Option<u16>> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..end]).ok();
    Some(line.and_then(|l| {
        let mut parts = l.split(' ');
        let version = parts.next()?;
        let code = parts.next()?;
        (version.starts_with("HTTP/1.") && code.len() == 3)
            .then(|| code.parse().ok())
            .flatten()
    }))
}

impl Session for HealthChecker {
    fn on_start(&mut self, cx: &mut Cx<'_>, _client: ConnId) {
        cx.close();
    }

    fn on_spawn(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.probes.len() {
            self.start(cx, i);
        }
        cx.set_timer(SYNC_EVERY, SYNC_KEY);
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, conn: ConnId, result: std::io::Result<()>) {
        let Some(i) = self.by_conn(conn) else {
            return cx.close_conn(conn);
        };
        if let Err(e) = result {
            log::debug!(
                "health {}/{}: {e}",
                self.probes[i].pool,
                self.probes[i].server.id()
            );
            return self.finish(cx, i, false);
        }
        let p = &mut self.probes[i];
        let w = cx.pipe(Source::Session, Sink::Conn(conn));
        if let Some(g) = p.grpc.as_mut() {
            for b in g.output() {
                cx.push(w, b);
            }
        } else {
            cx.push(w, p.request.clone());
            cx.end(w);
        }
        p.writer = Some(w);
        p.reader = Some(cx.pipe(Source::Conn(conn), Sink::Session));
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        let Some(i) = self.by_pipe(pipe) else { return };
        if self.probes[i].grpc.is_some() {
            return self.grpc_readable(cx, i, pipe);
        }
        while let Some(b) = cx.take(pipe) {
            self.probes[i].buf.extend_from_slice(&b);
        }
        let p = &self.probes[i];
        match status_of(&p.buf) {
            Some(Some(code)) => {
                let ok = p.check.expect.accepts(code);
                if !ok {
                    log::debug!("health {}/{}: status {code}", p.pool, p.server.id());
                }
                self.finish(cx, i, ok);
            }
            Some(None) => self.finish(cx, i, false),
            None if p.buf.len() > MAX_STATUS_LINE => self.finish(cx, i, false),
            None => {}
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        let Some(i) = self.by_pipe(pipe) else { return };
        let p = &mut self.probes[i];
        if p.writer == Some(pipe) {
            p.writer = None;
            if end != PipeEnd::Finished {
                self.finish(cx, i, false);
            }
        } else {
            // The server closed (or reset) before a whole status line.
            p.reader = None;
            self.finish(cx, i, false);
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        if key == SYNC_KEY {
            return self.sync(cx);
        }
        let i = (key / 2) as usize;
        if key.is_multiple_of(2) {
            self.start(cx, i);
        } else if self.probes.get(i).is_some_and(|p| p.conn.is_some()) {
            self.probes[i].timeout = None;
            log::debug!(
                "health {}/{}: timed out",
                self.probes[i].pool,
                self.probes[i].server.id()
            );
            self.finish(cx, i, false);
        }
    }

    fn is_done(&self, _cx: &Cx<'_>) -> bool {
        false
    }

    /// A draining loop takes no new requests: its checks end now (the next worker runs its
    /// own), so the drain does not wait `drain_timeout` for a session that never ends.
    fn on_drain(&mut self, cx: &mut Cx<'_>) {
        cx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(Some(200)));
        assert_eq!(
            status_of(b"HTTP/1.0 503 Unavailable\r\nX: y"),
            Some(Some(503))
        );
        assert_eq!(status_of(b"HTTP/1.1 20"), None);
        assert_eq!(status_of(b"garbage\r\n"), Some(None));
    }
}
