//! The `http` listener's session: HTTP/1.1 with keep-alive and pipelining (requests are
//! answered one after another, in order), as a state machine whose states own their data.
//!
//! ```text
//!            ┌──────────── keep-alive: next request (a pipelined one at once) ──────────┐
//!            v                                                                          │
//!   ReadingHead{deadline} ──parse+route──> Local{reply} ─────────────────────────────────┤
//!            │                      ├────> AwaitingStore(pending) ──store answers──┐    │
//!            │                      ├────> Proxying(exchange) <────────────────────┘────┤
//!            │                      │          └── 101 ──> Tunnel{up}                   │
//!            │                      └────> Feed(feed)   (the broker's WebSocket feed)   │
//!            └── FIN, errors, timeouts ──> Closing (after the last response) <──────────┘
//! ```
//!
//! - `mod.rs` (this file): the states, and each core event given to the state it concerns.
//!   An event a state cannot receive (a broken invariant) is logged and closes this one
//!   session; an event about a pipe or connection already left behind is ignored.
//! - `phases.rs`: one request's named phases, parse → before routing → route → access →
//!   module (files, status, broker, redirect, or pick a server → forward) → respond → log.
//! - `conn.rs`: the client side, whatever the state (reader pipe, buffer, keep-alive, the
//!   request under way, the responses tether writes itself).
//! - `context.rs`: what every connection of the listener shares.
//! - `proxy.rs` (+ `affinity.rs`, `forward.rs`): an exchange with the upstream;
//!   `h2up.rs` (`State::H2Up`): one with an HTTP/2 pool, over the loop's shared
//!   connections (`crate::h2up::hub`).
//! - `mounts.rs` (broker routes, port rewrite), `head_deadline.rs` (slowloris),
//!   `drain.rs` (graceful shutdown), `too_many.rs` (`429` per client address).

pub(crate) mod affinity;
pub(crate) mod conn;
mod context;
mod drain;
pub(crate) mod encode;
pub(crate) mod form_body;
pub(crate) mod forward;
mod gate;
mod h2up;
mod head_deadline;
pub(crate) mod local;
pub(crate) mod mounts;
pub(crate) mod phases;
mod proxy;
mod relay;
pub(crate) mod rewrite;
pub(crate) mod rules;
pub(crate) mod session_body;
mod too_many;

use std::sync::Arc;

use tether_core::{ConnId, Cx, PipeEnd, PipeId, Session};

use crate::idle::{self, KEY_CONNECT, KEY_LINGER};
use crate::per_ip::IpSlot;
use conn::{Conn, Input};
use head_deadline::HeadDeadline;
use proxy::Exchange;

pub(crate) use conn::secure;
pub use context::ListenerCtx;
pub use too_many::TooMany;

/// Where a connection is; each state holds what only it needs.
enum State {
    /// Waiting for (the rest of) a request head; once its first byte came, the time by
    /// which it must be complete (`head_deadline.rs`).
    ReadingHead { deadline: Option<HeadDeadline> },
    /// A response tether writes itself (file, status page, redirect) is going out.
    Local { reply: PipeId },
    /// A proxied request's urlencoded body is read before its server is picked
    /// (`form_body.rs`).
    ReadingForm(Box<phases::Proxied>),
    /// A proxied request waits for the affinity store's answer (`phases::pick`).
    AwaitingStore(Box<phases::Pending>),
    /// A request in the access gate: basic auth or a limit waits (`gate.rs`).
    Gated(Box<gate::Waiting>),
    /// A broker request held until the broker's first polling round (`mounts.rs`).
    BrokerHeld(Box<mounts::Held>),
    /// An exchange with the upstream (`proxy.rs`).
    Proxying(Box<Exchange>),
    /// An exchange with an HTTP/2 upstream over a shared connection (`h2up.rs`).
    H2Up(Box<h2up::H1Call>),
    /// Two-way tunnel with `up` after `101 Switching Protocols`.
    Tunnel { up: ConnId },
    /// The broker's WebSocket feed (`mounts.rs`).
    Feed(Box<mounts::Feed>),
    /// The last response is out; the client's bytes are discarded until it closes or
    /// `LINGER` passes.
    Closing,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::ReadingHead { .. } => "reading a head",
            State::Local { .. } => "answering",
            State::ReadingForm(_) => "reading a form",
            State::AwaitingStore(_) => "awaiting the store",
            State::Gated(_) => "in the access gate",
            State::BrokerHeld(_) => "held for the broker's first round",
            State::Proxying(_) => "proxying",
            State::H2Up(_) => "proxying to HTTP/2",
            State::Tunnel { .. } => "tunnelling",
            State::Feed(_) => "feeding",
            State::Closing => "closing",
        }
    }
}

/// One client connection of an `http` listener.
pub struct HttpSession {
    c: Conn,
    /// Taken out while an event is handled (handlers get it by value and return the next).
    state: State,
}

impl HttpSession {
    /// A session for a connection of the listener `ctx`; `ip_slot`: the connection counted
    /// on its client address, given back when the session is dropped.
    pub fn new(ctx: Arc<ListenerCtx>, ip_slot: Option<IpSlot>) -> HttpSession {
        HttpSession {
            c: Conn::new(ctx, ip_slot),
            state: State::ReadingHead { deadline: None },
        }
    }

    /// Run `f` on the current state and make what it returns the next state.
    fn step(&mut self, cx: &mut Cx<'_>, f: impl FnOnce(&mut Conn, &mut Cx<'_>, State) -> State) {
        let state = std::mem::replace(&mut self.state, State::Closing);
        self.state = f(&mut self.c, cx, state);
    }
}

/// An event this state can never receive: say so once and close this session (never the
/// loop thread).
fn broken(c: &Conn, cx: &mut Cx<'_>, state: State, what: &str) -> State {
    log::error!(
        "http {}: session closed: {what} while {} (a bug)",
        c.spec().listen,
        state.name()
    );
    c.ctx.stats.conn_error();
    cx.close();
    state
}

impl Session for HttpSession {
    fn waiting(&self) -> Option<tether_core::Waiting> {
        match &self.state {
            State::ReadingHead { deadline: Some(d) } => Some(tether_core::Waiting::HeadSince(
                d.since(self.c.spec().header_timeout),
            )),
            State::ReadingHead { deadline: None } => Some(tether_core::Waiting::Idle),
            _ => None,
        }
    }

    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        let c = &mut self.c;
        c.client = client;
        c.open_reader(cx);
        idle::arm(cx, c.spec().idle_timeout);
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        let from_client = self.c.reader() == Some(pipe);
        self.step(cx, |c, cx, state| match state {
            State::ReadingHead { deadline } if from_client => phases::next_request(c, cx, deadline),
            State::Proxying(x) if from_client => proxy::client_readable(c, cx, x),
            State::ReadingForm(req) if from_client => form_body::readable(c, cx, req),
            State::Proxying(x) => proxy::upstream_readable(c, cx, x, pipe),
            State::H2Up(x) if from_client => h2up::client_readable(c, cx, x),
            State::Feed(f) if from_client => mounts::feed_readable(c, cx, f),
            // Pipelined bytes wait in the reader pipe until the current answer is out.
            other => other,
        });
    }

    fn on_conn_readable(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        if conn != self.c.client {
            // The upstream connection of an exchange, watched for its response.
            self.step(cx, |c, cx, state| match state {
                State::Proxying(x) if x.up == conn => proxy::upstream_ready(c, cx, x),
                other => other,
            });
            return;
        }
        self.c.wake(cx);
        if self.c.input == Input::Paused {
            // Its end was read already: serve nothing more.
            self.c.input = Input::Finished;
            self.step(cx, |c, cx, state| c.end_of_input(cx, state));
        }
    }

    fn on_drained(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        self.step(cx, |c, cx, state| match state {
            State::Proxying(x) => proxy::drained(c, cx, x, pipe),
            State::H2Up(x) => h2up::drained(c, cx, x, pipe),
            other => other,
        });
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        self.step(cx, |c, cx, state| match state {
            State::Proxying(x) if x.up == up => proxy::connected(c, cx, x, result),
            other => {
                cx.close_conn(up); // a connection this state no longer wants
                other
            }
        });
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        self.step(cx, |c, cx, state| {
            if let State::Feed(_) = state {
                // The client left, or the feed's closing handshake is written: done.
                cx.close();
                return state;
            }
            if c.reader() == Some(pipe) {
                return phases::input_ended(c, cx, state, end);
            }
            if c.input == Input::Discarding(Some(pipe)) {
                c.input = Input::Discarding(None);
                return state;
            }
            match state {
                State::Local { reply } if reply == pipe => match end {
                    PipeEnd::Finished => phases::finish(c, cx),
                    _ => {
                        c.ctx.stats.conn_error();
                        cx.close();
                        State::Closing
                    }
                },
                State::Tunnel { .. } => {
                    if end != PipeEnd::Finished {
                        cx.close();
                    }
                    state
                }
                State::Proxying(x) => proxy::pipe_end(c, cx, x, pipe, end),
                State::H2Up(x) => h2up::pipe_end(c, cx, x, pipe, end),
                other => other,
            }
        });
    }

    fn on_drain(&mut self, cx: &mut Cx<'_>) {
        self.step(cx, drain::drain);
    }

    fn on_close(&mut self, cx: &mut Cx<'_>) {
        if let State::Feed(f) = &self.state {
            f.unsubscribe();
        }
        if let State::H2Up(_) = &self.state {
            if let State::H2Up(x) = std::mem::replace(&mut self.state, State::Closing) {
                h2up::abandon(cx, x);
            }
        }
        let c = &mut self.c;
        if let Some(cur) = c.current.as_mut() {
            if cur.status == 0 {
                cur.status = 499; // nginx's "client closed request"
            }
        }
        c.log_request(cx);
    }

    fn on_wake(&mut self, cx: &mut Cx<'_>, key: u64) {
        self.step(cx, |c, cx, state| match (key, state) {
            (mounts::KEY_FEED, State::Feed(f)) => mounts::feed_wake(cx, f),
            (phases::KEY_FETCH, State::AwaitingStore(p)) => phases::fetched(c, cx, *p),
            (phases::KEY_FETCH, state) => broken(c, cx, state, "a store answer"),
            (gate::KEY_GATE, State::Gated(w)) => gate::resume(c, cx, *w),
            (mounts::KEY_FIRST_ROUND, State::BrokerHeld(h)) => mounts::first_round(c, cx, *h),
            (crate::h2up::hub::KEY_MAIL, State::H2Up(x)) => h2up::mail(c, cx, x),
            // A feed's wake that crossed its end.
            (_, other) => other,
        });
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, key: u64) {
        self.step(cx, |c, cx, state| match (key, state) {
            (KEY_CONNECT, State::Proxying(x)) => proxy::connect_timeout(c, cx, x),
            (h2up::KEY_DEADLINE, State::H2Up(x)) => h2up::deadline(c, cx, x),
            (KEY_LINGER, state) => {
                cx.close();
                state
            }
            (drain::KEY_DRAIN, state) => {
                drain::idle_check(c, cx, &state);
                state
            }
            (head_deadline::KEY_HEADER, State::ReadingHead { deadline: Some(d) }) => {
                head_deadline::expired(c, cx, d)
            }
            (gate::KEY_DELAY, State::Gated(w)) => gate::resume(c, cx, *w),
            (idle::KEY_IDLE, state) => idle_timer(c, cx, state),
            // A timer of a step already over (a connect that completed, a head parsed).
            (_, other) => other,
        });
    }
}

/// `KEY_IDLE`: close a connection whose every socket has been silent for the state's
/// limit (a proxied request whose answer has not started gets `504`).
fn idle_timer(c: &mut Conn, cx: &mut Cx<'_>, state: State) -> State {
    let limit = match &state {
        // The feed is the server's to speak on: an idle client is normal there.
        State::Feed(_) => return state,
        // A head under way is timed by its deadline, not by silence.
        State::ReadingHead { deadline: Some(_) } => {
            idle::arm(cx, c.spec().idle_timeout);
            return state;
        }
        State::Tunnel { .. } => c.spec().tunnel_timeout,
        _ => c.spec().idle_timeout,
    };
    let up = match &state {
        State::Proxying(x) => Some(x.up),
        State::Tunnel { up } => Some(*up),
        _ => None,
    };
    let conns: Vec<ConnId> = std::iter::once(c.client).chain(up).collect();
    if !idle::expired(cx, &conns, limit) {
        return state;
    }
    match state {
        // No byte of a request yet: nothing to answer (`head_deadline.rs`); an idle
        // keep-alive connection closing is routine.
        State::ReadingHead { .. } => {
            cx.close();
            state
        }
        State::Proxying(x) if !x.response_started => {
            c.ctx.stats.conn_timeout();
            log::warn!("http {}: upstream response timed out", c.spec().listen);
            proxy::abandon(cx, x);
            let next = c.fail(cx, 504);
            cx.set_timer(idle::LINGER, KEY_LINGER);
            next
        }
        other => {
            c.ctx.stats.conn_timeout();
            cx.close();
            other
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every client connection's session is one allocation of this size (glibc rounds it
    /// up to 144 bytes with its header): what an idle keep-alive connection costs beside
    /// the core's entries (`docs/benchmarks.md`). Grow it only knowingly.
    #[test]
    fn the_session_of_an_idle_connection_stays_small() {
        let size = std::mem::size_of::<super::HttpSession>();
        assert!(size <= 136, "HttpSession is {size} bytes");
    }
}
