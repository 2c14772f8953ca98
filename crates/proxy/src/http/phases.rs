//! One request's handling, as named phases in the order they run:
//!
//! 1. **parse** (`next_request`): the bytes gathered so far, by `tether_http::parse_request`.
//!    Partial: wait (`head_deadline.rs` times the rest). An error: a status page, then close.
//! 2. **begin** (`begin`): count the request, note what the access log will need.
//! 3. **before routing** (`before_routing`): answers that do not depend on the route
//!    (`redirect_https`). Hooks that must see every request go here.
//! 4. **route** (`route`): `Router::route` by Host (or SNI) and path; none is `404`; a
//!    `port_rewrite` prefix goes to `mounts.rs`.
//! 5. **access** (`access`): the route's allow/deny list (`403`), then its basic auth and
//!    request limits (`gate.rs`, `crate::access`: `401`, `429`, waits on a helper thread or a
//!    delay timer in `State::Gated`).
//! 6. **module** (`module`): files, status page, broker, redirect (answered by `local.rs`,
//!    `mounts.rs`), a body over the route's limit (`413`), or a proxy route:
//! 7. **pick** (`pick`): the server the affinity chooses (`affinity.rs`), asking the store
//!    first when it must (`State::AwaitingStore`); no server is `503`. Before it, a
//!    `session_id` upstream with a `form` carrier reads the request's urlencoded body
//!    (`form_body::read`, `State::ReadingForm`);
//! 8. **forward** (`proxy::start`): the exchange with the upstream (`proxy.rs`);
//! 9. **respond**: `Conn::respond` for tether's own answers, `proxy.rs` for the upstream's;
//! 10. **log** (`finish` → `Conn::log_request`): counters and the access-log line, then the
//!     next request (keep-alive, pipelined bytes first) or a lingering close.

use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use tether_core::{Cx, PipeEnd};
use tether_http::{parse_request, Method, Parsed, RequestHead};

use super::affinity::{self, Decision};
use super::conn::{Conn, Current, Input, LogText};
use super::{drain, head_deadline, local, mounts, proxy, HeadDeadline, State};
use crate::metrics::ReqKind;
use crate::router::{Action, PortRewrite, Route};
use crate::upstream::Upstream;
use tether_config::rules::RouteRules;

/// `on_wake` key: the store answered a `fetch` (`State::AwaitingStore`).
pub(super) const KEY_FETCH: u64 = 1;

/// A request for a proxy route, on its way to a server.
pub(crate) struct Proxied {
    pub head: RequestHead,
    pub upstream: Arc<Upstream>,
    /// The route's body limit.
    pub max_body: Option<u64>,
    /// The target to send instead of the client's (`port_rewrite`).
    pub retarget: Option<String>,
    /// The route's header rules and path rewriting (`rules.rs`).
    pub rules: Option<Arc<RouteRules>>,
    /// This request's `X-Request-Id`, when the route gives one.
    pub request_id: Option<Box<str>>,
    /// The route's compression of the answer (`encode.rs`).
    pub encode: Option<Arc<tether_compress::Policy>>,
    /// The urlencoded request body, read for a `form` session id carrier (`form_body.rs`).
    pub form: Option<bytes::Bytes>,
}

impl Proxied {
    /// A request for `upstream` under `route` (its body limit, rules and request id).
    pub(crate) fn new(head: RequestHead, upstream: Arc<Upstream>, route: &Route) -> Proxied {
        let rules = route.rules.clone();
        let request_id = rules
            .as_ref()
            .and_then(|r| super::rules::request_id(r.request_id, &head));
        Proxied {
            head,
            upstream,
            max_body: route.max_body,
            retarget: None,
            rules,
            request_id,
            encode: route.encode.clone(),
            form: None,
        }
    }

    /// Phase 7's decision for this request (`affinity::decide`); a server picked gets the
    /// request's new target, if it has one. Shared by HTTP/1.1 and HTTP/2.
    pub(crate) fn decide(
        &mut self,
        ctx: &super::ListenerCtx,
        key: Option<&tether_balance::ClientKey>,
        now: std::time::Instant,
        fetched: Option<Option<String>>,
    ) -> Decision {
        let affinity = ctx.affinity(&self.upstream, key, now);
        let mut decision = affinity::decide(&affinity, &self.head, self.form.as_deref(), fetched);
        if let Decision::Go(pick) = &mut decision {
            // A form whose tag was stripped: its new length.
            if let (Some(new), Some(old)) = (&pick.body, self.head.header("content-length")) {
                let edit = super::session_body::length_edit(old, new.len());
                pick.request.replace.push(edit);
                self.head.body = tether_http::BodyKind::Length(new.len() as u64);
            }
        }
        if let (Decision::Go(pick), Some(target)) = (&mut decision, self.retarget.take()) {
            pick.request.target = Some(target);
        }
        if let (Decision::Go(pick), Some(rules)) = (&mut decision, &self.rules) {
            let climbs = Decision::Refuse(400, "the rewritten path climbs above /");
            let base = pick.request.target.as_deref().unwrap_or(self.head.target());
            // `regex`/`rewrite` first, then `strip_prefix`/`add_prefix` on its result.
            let id = self.request_id.as_deref();
            let regexed = match super::rewrite::rewrite_path(rules, &self.head, id, base) {
                Ok(t) => t,
                Err(()) => return climbs,
            };
            let base = regexed.as_deref().unwrap_or(base);
            match super::rules::rewrite_target(rules, base) {
                Ok(Some(target)) => pick.request.target = Some(target),
                Ok(None) => {
                    if regexed.is_some() {
                        pick.request.target = regexed;
                    }
                }
                Err(()) => return climbs,
            }
        }
        decision
    }
}

/// A proxied request whose affinity waits for the store's answer.
pub(super) struct Pending {
    req: Proxied,
    answer: StoreAnswer,
}

/// Phase 1, parse: serve the next request buffered, if it is complete.
pub(super) fn next_request(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut deadline: Option<HeadDeadline>,
) -> State {
    // The usual case: a whole head in one read, nothing buffered before it: parsed where
    // it lies, not copied into `buf` first. (The head keeps a copy of its bytes, not a slice
    // of the read: a request can last long, and a slice would hold the loop's whole read
    // block.)
    if let Some(chunk) = c.take_single(cx) {
        match parse_request(&chunk, &c.ctx.limits) {
            Ok(Parsed::Complete(head)) => {
                head_deadline::stop(cx, &mut deadline);
                if chunk.len() > head.len() {
                    c.buf.extend_from_slice(&chunk[head.len()..]); // a body, pipelined requests
                }
                begin(c, cx, &head);
                return serve(c, cx, head);
            }
            // Partial, or refused: the general path below (with the same bytes).
            _ => c.buf.extend_from_slice(&chunk),
        }
    }
    c.gather(cx);
    if c.buf.is_empty() {
        // Nothing buffered: hold no allocation while the connection waits (the buffer of
        // the last head, or one a body split off still shares).
        c.buf = BytesMut::new();
        if deadline.is_none() {
            c.rest(cx);
        }
        return State::ReadingHead { deadline };
    }
    let parsed = parse_request(&c.buf, &c.ctx.limits);
    if !matches!(parsed, Ok(Parsed::Partial)) {
        head_deadline::stop(cx, &mut deadline);
    }
    match parsed {
        Ok(Parsed::Partial) => State::ReadingHead {
            deadline: head_deadline::start(c, cx, deadline),
        },
        Ok(Parsed::Complete(head)) => {
            // Advanced past, not split off: no shared allocation is made for it; and
            // let go at once when nothing follows (the answer may take long to go out).
            c.buf.advance(head.len());
            if c.buf.is_empty() {
                c.buf = BytesMut::new();
            }
            begin(c, cx, &head);
            serve(c, cx, head)
        }
        Err(e) => {
            log::debug!(
                "http {}: bad request: {} {}",
                c.spec().listen,
                e.status,
                e.reason
            );
            c.ctx.stats.conn_error();
            // Counted as a request answered with its 4xx (no line for the access log).
            c.ctx.stats.request_started();
            c.current = Some(Box::new(Current {
                started: cx.now(),
                status: 0,
                log: None,
                held: Default::default(),
                pages: None,
            }));
            c.fail(cx, e.status)
        }
    }
}

/// Phase 2, begin: the request is counted, and what its access-log line needs is noted.
fn begin(c: &mut Conn, cx: &mut Cx<'_>, head: &RequestHead) {
    c.keep_alive = head.keep_alive && !c.draining;
    let log = c.ctx.access_log.is_some().then(|| {
        let mut t = LogText::of(head, head.version.as_str(), c.ctx.log_headers());
        // The head was read already: it counts for this request.
        let (i, o) = cx.conn_bytes(c.client);
        t.bytes_at = Some((i.wrapping_sub(head.len() as u32), o));
        t
    });
    c.ctx.stats.request_started();
    let current = Current {
        started: cx.now(),
        status: 0,
        log,
        held: Default::default(),
        pages: None,
    };
    c.current = Some(crate::spare::boxed(&super::conn::SPARE_CURRENT, current));
}

/// Phases 3 to 7 for a parsed request.
fn serve(c: &mut Conn, cx: &mut Cx<'_>, head: RequestHead) -> State {
    if let Some(answer) = before_routing(c, cx, &head) {
        return answer;
    }
    let ctx = c.ctx.clone();
    let Some(route) = route(c, cx, &ctx, &head) else {
        c.unread_body(&head.body);
        return c.status(cx, 404, head.method == Method::Head);
    };
    if let Some(cur) = c.current.as_mut() {
        cur.pages = super::rewrite::PagesFor::of(route.rules.as_ref(), &head);
        cur.note_route(route.access_log.as_ref());
    }
    // The route's allow/deny list first: it covers everything under the route, the
    // port-rewritten paths too.
    if let Some(refused) = access(c, cx, route, &head) {
        return refused;
    }
    // Then its basic auth and request limits (`gate.rs`), which may wait.
    if let Some(a) = &route.access {
        return super::gate::start(c, cx, a.clone(), route, head);
    }
    after_access(c, cx, route, head)
}

/// Phases 5 (after the gate) to 7: `port_rewrite`, then the module.
pub(super) fn after_access(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    route: &Route,
    head: RequestHead,
) -> State {
    if let Some(ports) = route.ports.as_deref() {
        if let Some((port, target)) = PortRewrite::split(&mounts::under_route(&route.path, &head)) {
            return mounts::port_rewrite(c, cx, head, ports, port, target, route.max_body);
        }
    }
    if !matches!(route.action, Action::Proxy(_)) {
        // Only a proxy route reads a request body; elsewhere the body ends the connection.
        c.unread_body(&head.body);
    }
    module(c, cx, route, head)
}

/// Phase 3, before routing: answers every request of the listener gets whatever its route.
fn before_routing(c: &mut Conn, cx: &mut Cx<'_>, head: &RequestHead) -> Option<State> {
    // ACME HTTP-01 validations, also on a listener that redirects everything to HTTPS.
    let keep = c.keep_alive && head.body.is_empty();
    let server = &c.ctx.server;
    if let Some(answer) = tether_acme::http01_answer(&c.spec().front, head, server, keep) {
        c.keep_alive = keep;
        return Some(c.respond(cx, 200, answer, None));
    }
    if let Some(port) = c.spec().front.redirect_https {
        return Some(local::redirect_https(c, cx, head, port));
    }
    None
}

/// Phase 4, route: the route for the request's Host (without one, HTTP/1.0: the name the
/// client asked TLS for) and path.
pub(super) fn route<'r>(
    c: &Conn,
    cx: &Cx<'_>,
    ctx: &'r super::ListenerCtx,
    head: &RequestHead,
) -> Option<&'r Route> {
    let tls = cx.tls_info(c.client);
    route_for(ctx, tls.as_ref().and_then(|t| t.sni.as_deref()), head)
}

/// The route for `head` on the listener `ctx` (`sni`: the name the client asked TLS for,
/// used when the request names no host). Shared with the HTTP/2 session.
pub(crate) fn route_for<'r>(
    ctx: &'r super::ListenerCtx,
    sni: Option<&str>,
    head: &RequestHead,
) -> Option<&'r Route> {
    ctx.router.route(head.host().or(sni), head.path())
}

/// How a route's requests are counted.
pub(crate) fn req_kind(action: &Action) -> ReqKind {
    match action {
        Action::Files(_) => ReqKind::File,
        Action::Proxy(_) => ReqKind::Proxy,
        Action::Redirect { .. } => ReqKind::Redirect,
        Action::Status(_) | Action::Broker(_) | Action::NotFound => ReqKind::Other,
    }
}

/// Phase 5, access: the route's allow/deny list; `Some(403)` when the client may not.
fn access(c: &mut Conn, cx: &mut Cx<'_>, route: &Route, head: &RequestHead) -> Option<State> {
    if route.acl.permits(c.client_ip(cx)) {
        return None;
    }
    log::info!(
        "http {}: {} denied for {:?}",
        c.spec().listen,
        head.path(),
        c.client_ip(cx)
    );
    // The body of a refused request is not read: the connection ends after the answer.
    c.unread_body(&head.body);
    Some(c.status(cx, 403, head.method == Method::Head))
}

/// Phase 6, module: what the route does with the request.
fn module(c: &mut Conn, cx: &mut Cx<'_>, route: &Route, head: RequestHead) -> State {
    c.ctx.stats.routed(req_kind(&route.action));
    let head_only = head.method == Method::Head;
    match &route.action {
        Action::Files(opts) => local::serve_file(c, cx, opts, &head),
        Action::Broker(name) => {
            let rel = mounts::under_route(&route.path, &head);
            mounts::broker(c, cx, name, &rel, &head)
        }
        Action::NotFound => c.status(cx, 404, head_only),
        Action::Status(format) => local::serve_status(c, cx, *format, &head),
        Action::Proxy(_) if route.max_body.is_some_and(|m| body_over(&head, m)) => {
            log::info!(
                "http {}: {} body over the limit of {} bytes",
                c.spec().listen,
                head.path(),
                route.max_body.unwrap_or(0)
            );
            c.keep_alive = false;
            c.status(cx, 413, head_only)
        }
        Action::Proxy(upstream) => {
            let req = Proxied::new(head, upstream.clone(), route);
            super::form_body::read(c, cx, req)
        }
        Action::Redirect { status, location } => {
            let location = route
                .rules
                .as_deref()
                .and_then(|r| super::rewrite::redirect_location(r, &head))
                .unwrap_or_else(|| location.clone());
            let extra = format!("Location: {location}\r\n");
            c.status_with(cx, *status, &extra, head_only)
        }
    }
}

/// A declared body length over `max`.
pub(crate) fn body_over(head: &RequestHead, max: u64) -> bool {
    matches!(head.body, tether_http::BodyKind::Length(n) if n > max)
}

/// Phase 7, pick: send a proxied request to the server its affinity chooses (phase 8,
/// forward), refuse it, or ask the store first. `fetched`: the store's answer, if asked.
pub(super) fn pick(
    c: &mut Conn,
    cx: &mut Cx<'_>,
    mut req: Proxied,
    fetched: Option<Option<String>>,
) -> State {
    let ctx = c.ctx.clone();
    let key = c.client_key(cx);
    match req.decide(&ctx, key.as_ref(), cx.now(), fetched) {
        Decision::Go(mut pick) => {
            if let (Some(new), Some(old)) = (pick.body.take(), req.form.as_ref()) {
                super::form_body::splice(&mut c.buf, old.len(), &new);
            }
            proxy::start(c, cx, req, Decision::pick_of(pick))
        }
        Decision::Refuse(status, message) => {
            c.unread_body(&req.head.body);
            c.message(cx, status, message, req.head.method == Method::Head)
        }
        Decision::Fetch(store_key) => {
            let Some(remote) = cx.remote() else {
                return pick(c, cx, req, Some(None));
            };
            let answer = ask_store(&*ctx.store, &store_key, remote, KEY_FETCH);
            State::AwaitingStore(Box::new(Pending { req, answer }))
        }
    }
}

/// The store's answer for a learned session, to be taken when `remote` is woken with `key`.
pub(crate) type StoreAnswer = Arc<Mutex<Option<tether_store::Lookup>>>;

/// Ask the store (on its own thread) for `key`; `remote` is woken with `wake` when it
/// answered.
pub(crate) fn ask_store(
    store: &dyn tether_store::Store,
    key: &str,
    remote: tether_core::Remote,
    wake: u64,
) -> StoreAnswer {
    let answer = Arc::new(Mutex::new(None));
    let slot = answer.clone();
    store.lookup(
        key,
        Box::new(move |value| {
            if let Ok(mut a) = slot.lock() {
                *a = Some(value);
            }
            remote.wake(wake);
        }),
    );
    answer
}

/// The refusal of a request whose session the store could not look up, under
/// `on_store_error = "closed"`.
pub(crate) const STORE_DOWN: (u16, &str) = (
    503,
    "The session store does not answer; try again in a moment.",
);

/// What the store answered: the server of the session (`None`: nothing known), or, when
/// the store did not answer and `on_store_error = "closed"`, the refusal. Under `"open"`
/// (the default) a store that does not answer counts as nothing known: the session is
/// balanced as a new one, its pin queued for the store's return.
pub(crate) fn store_answer(
    answer: &StoreAnswer,
    on_error: tether_config::spec::OnStoreError,
) -> Result<Option<String>, (u16, &'static str)> {
    use tether_store::Lookup;
    let got = answer.lock().ok().and_then(|mut a| a.take());
    match got {
        Some(Lookup::Found(server)) => Ok(Some(server)),
        Some(Lookup::Missing) => Ok(None),
        Some(Lookup::Down) | None => match on_error {
            tether_config::spec::OnStoreError::Open => Ok(None),
            tether_config::spec::OnStoreError::Closed => Err(STORE_DOWN),
        },
    }
}

/// The store answered (`KEY_FETCH`): decide again with its answer.
pub(super) fn fetched(c: &mut Conn, cx: &mut Cx<'_>, p: Pending) -> State {
    match store_answer(&p.answer, c.ctx.on_store_error) {
        Ok(answer) => pick(c, cx, p.req, Some(answer)),
        Err((status, message)) => {
            c.unread_body(&p.req.head.body);
            c.message(cx, status, message, p.req.head.method == Method::Head)
        }
    }
}

/// Phase 10, log: the current request is answered; read the next one or close.
pub(super) fn finish(c: &mut Conn, cx: &mut Cx<'_>) -> State {
    c.log_request(cx);
    if !c.keep_alive || c.closing() {
        return c.linger(cx);
    }
    c.open_reader(cx);
    let state = next_request(c, cx, None);
    let state = if c.input == Input::Finished {
        c.end_of_input(cx, state)
    } else {
        state
    };
    drain::idle_check(c, cx, &state);
    state
}

/// The client → session pipe ended (`Input::Open`): its FIN, or an error.
pub(super) fn input_ended(c: &mut Conn, cx: &mut Cx<'_>, state: State, end: PipeEnd) -> State {
    if end != PipeEnd::Finished {
        c.input = Input::Paused;
        c.ctx.stats.conn_error();
        cx.close();
        return state;
    }
    c.input = Input::Finished;
    match state {
        // The client stopped sending: serve what is buffered, take no more.
        State::ReadingHead { deadline } => {
            let state = next_request(c, cx, deadline);
            c.end_of_input(cx, state)
        }
        // A form body cut short cannot complete.
        State::ReadingForm(req) => {
            cx.close();
            State::ReadingForm(req)
        }
        // A chunked request body cut short cannot complete.
        State::Proxying(x) if x.relaying_request() => {
            cx.close();
            State::Proxying(x)
        }
        other => other,
    }
}
