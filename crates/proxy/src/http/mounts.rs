//! What a route mounts besides proxying and files: the simulation-server broker (its HTTP
//! answers, and its WebSocket feed of availability), and `port_rewrite` (`/<port>/<rest>`
//! to a local port, the front door of a Webots farm).
//!
//! The feed: after the `101`, the session keeps the client's reader pipe (frames from the
//! client go to `FeedSocket::receive`: logged and ignored, pings answered, a close replied)
//! and one pipe to the client for the frames it sends. The broker's poller thread wakes the
//! session through a `Remote` when availability changes; `on_wake` sends the new value.

use std::sync::Arc;

use bytes::Bytes;
use tether_broker::ws::{self, FeedSocket, FeedState};
use tether_broker::{Broker, SubscriptionId};
use tether_core::{Cx, PipeId, PipeOpts, Sink, Source};
use tether_http::{Method, RequestHead};

use super::conn::Conn;
use super::phases::{self, Proxied};
use super::State;
use crate::router::{PortRefused, PortRewrite};
use crate::upstream::Upstream;
use tether_http::reply::Head;

/// `on_wake` key: the broker's availability changed (`State::Feed`).
pub(super) const KEY_FEED: u64 = 2;
/// `on_wake` key: the broker's first polling round settled (`State::BrokerHeld`).
pub(super) const KEY_FIRST_ROUND: u64 = 7;

/// A broker request held until the first polling round settles (`/session`, and `/`
/// while no server is known to be available): answered on `KEY_FIRST_ROUND`.
pub(super) struct Held {
    broker: Arc<Broker>,
    rel: String,
    head: RequestHead,
}

/// The path under a route's prefix, from its `/` (`/sim/session` under `/sim` → `/session`;
/// the prefix itself → `/`).
pub(crate) fn relative<'a>(prefix: &str, path: &'a str) -> &'a str {
    let prefix = prefix.trim_end_matches('/');
    match path.get(prefix.len()..) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

/// The request's path under its route's prefix with the query: what a port rewrite sends
/// on, and what the broker answers to.
pub(crate) fn under_route(prefix: &str, head: &RequestHead) -> String {
    relative(prefix, head.path()).to_string() + head.query()
}

/// One client of the broker's WebSocket feed.
pub(super) struct Feed {
    broker: Arc<Broker>,
    socket: FeedSocket,
    subscription: SubscriptionId,
    out: PipeId,
}

impl Feed {
    /// The session ends: stop hearing from the broker.
    pub fn unsubscribe(&self) {
        self.broker.unsubscribe(self.subscription);
    }
}

/// A request on a `broker` route.
pub(super) fn broker(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    name: &str,
    rel: &str,
    head: &RequestHead,
) -> State {
    let head_only = head.method == Method::Head;
    let Some(b) = c.ctx.brokers.get(name).cloned() else {
        return c.status(cx, 404, head_only);
    };
    if head.upgrade && rel == "/" {
        match ws::check_upgrade(head.headers()) {
            Ok(Some(key)) => return start_feed(c, cx, b, &key),
            Ok(None) => {}
            Err(e) => {
                c.keep_alive = false;
                return c.status(cx, e.status(), head_only);
            }
        }
    }
    // Webots polls once before it listens: `/session` during tether's first round waits
    // for its result instead of answering "no server".
    let request = tether_broker::Request {
        method: head.method_str(),
        target: rel,
        authorization: head.header("authorization"),
    };
    if let Some(remote) = cx.remote() {
        if b.hold(&request, Box::new(move || remote.wake(KEY_FIRST_ROUND))) {
            return State::BrokerHeld(Box::new(Held {
                broker: b,
                rel: rel.to_string(),
                head: head.clone(),
            }));
        }
    }
    answer(c, cx, &b, rel, head)
}

/// The broker's answer to a request under its route, sent.
fn answer(c: &mut Conn, cx: &mut Cx<'_>, b: &Broker, rel: &str, head: &RequestHead) -> State {
    match broker_reply(b, &c.ctx.server, rel, head, c.keep_alive) {
        Some((status, out)) => c.respond(cx, status, out.into(), None),
        None => c.status(cx, 404, head.method == Method::Head),
    }
}

/// `KEY_FIRST_ROUND`: the first polling round settled; answer the held request.
pub(super) fn first_round(c: &mut Conn, cx: &mut Cx<'_>, h: Held) -> State {
    answer(c, cx, &h.broker, &h.rel, &h.head)
}

/// The broker's answer to a request under its route (`rel`: the path under the route, with
/// the query), as HTTP/1.1 bytes, or `None` for a path it does not serve (`404`). The
/// HTTP/2 session sends the same bytes as an HTTP/2 answer.
pub(crate) fn broker_reply(
    b: &Broker,
    server: &str,
    rel: &str,
    head: &RequestHead,
    keep_alive: bool,
) -> Option<(u16, Vec<u8>)> {
    // The query (`/session?url=...`) and the `Authorization` header (the `/session` token).
    let request = tether_broker::Request {
        method: head.method_str(),
        target: rel,
        authorization: head.header("authorization"),
    };
    let reply = b.answer(&request)?;
    let mut out = Head::with_reason(reply.status, reply.reason, server, reply.body.len());
    for (k, v) in &reply.headers {
        out.header(k, v);
    }
    if reply.status != 204 {
        out.header("Content-Length", reply.body.len());
    }
    let mut out = out.end(keep_alive);
    if head.method != Method::Head && reply.status != 204 {
        out.extend_from_slice(reply.body.as_bytes());
    }
    Some((reply.status, out))
}

/// Answer the upgrade and start sending availability frames.
fn start_feed(c: &mut Conn, cx: &mut Cx<'_>, broker: Arc<Broker>, key: &str) -> State {
    c.note_status(101);
    c.log_request(cx);
    let opts = PipeOpts {
        fin: true,
        ..PipeOpts::default()
    };
    let out = cx.pipe_with(Source::Session, Sink::Conn(c.client), opts);
    cx.push(out, Bytes::from(ws::handshake_response(key)));
    let Some(remote) = cx.remote() else {
        cx.close();
        return State::Closing;
    };
    // Subscribed before the first value is read, so no change is missed; the first frame
    // is held (nothing to write yet) until the broker's first polling round settles.
    let (mut socket, subscription) = broker.open_feed(
        &c.client_ip_text(cx),
        Box::new(move || remote.wake(KEY_FEED)),
    );
    let first = socket.take_output();
    if !first.is_empty() {
        cx.push(out, Bytes::from(first));
    }
    let feed = Box::new(Feed {
        broker,
        socket,
        subscription,
        out,
    });
    // Frames the client sent right behind its handshake.
    feed_readable(c, cx, feed)
}

/// Client bytes for the feed.
pub(super) fn feed_readable(c: &mut Conn, cx: &mut Cx<'_>, mut f: Box<Feed>) -> State {
    c.gather(cx);
    let bytes = c.buf.split();
    let state = if bytes.is_empty() {
        f.socket.state()
    } else {
        f.socket.receive(&bytes)
    };
    flush(cx, &mut f, state);
    State::Feed(f)
}

/// The broker's availability changed: send it.
pub(super) fn feed_wake(cx: &mut Cx<'_>, mut f: Box<Feed>) -> State {
    let value = f.broker.feed_value();
    f.socket.update(value);
    let state = f.socket.state();
    flush(cx, &mut f, state);
    State::Feed(f)
}

fn flush(cx: &mut Cx<'_>, f: &mut Feed, state: FeedState) {
    let out = f.socket.take_output();
    if !out.is_empty() {
        cx.push(f.out, Bytes::from(out));
    }
    if state == FeedState::Closed {
        cx.end(f.out);
    }
}

/// tether is shutting down: close the feed ("going away"), then the connection.
pub(super) fn feed_going_away(cx: &mut Cx<'_>, f: &mut Feed) {
    f.socket.close(1001, "tether is shutting down");
    let out = f.socket.take_output();
    if !out.is_empty() {
        cx.push(f.out, Bytes::from(out));
    }
    cx.end(f.out);
}

/// `/<port>/<rest>` on a route with `port_rewrite`: proxy to the local port, HTTP or
/// WebSocket, if the port is in range; else `404`.
pub(super) fn port_rewrite(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    head: RequestHead,
    ports: &PortRewrite,
    port: u16,
    target: String,
    max_body: Option<u64>,
) -> State {
    let upstream = match port_upstream(&c.spec().listen, ports, port) {
        Ok(u) => u,
        Err(status) => {
            c.unread_body(&head.body);
            return c.status(cx, status, head.method == Method::Head);
        }
    };
    c.ctx.stats.routed(crate::metrics::ReqKind::Proxy);
    let req = Proxied {
        head,
        upstream,
        max_body,
        retarget: Some(target),
        rules: None,
        request_id: None,
        encode: None,
        form: None,
    };
    phases::pick(c, cx, req, None)
}

/// The upstream of `port` under a `port_rewrite` route, or the status to answer: `404` for
/// a port out of range (logged), `502` when its pool could not be made.
pub(crate) fn port_upstream(
    listen: &impl std::fmt::Display,
    ports: &PortRewrite,
    port: u16,
) -> Result<Arc<Upstream>, u16> {
    ports.upstream(port).map_err(|why| match why {
        PortRefused::OutOfRange => {
            log::info!(
                "http {listen}: port {port} outside {}–{}: 404",
                ports.min,
                ports.max
            );
            404
        }
        PortRefused::NoPool => 502,
    })
}
