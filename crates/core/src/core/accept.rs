//! Accepting: each listener accepts until `WouldBlock` (paused on descriptor exhaustion and
//! retried on a timer, stopped at the connection limit and resumed below it); a connection
//! goes straight to its session, or to the pending stage (`pending.rs`) when its listener
//! wants a PROXY header or TLS first.

use std::io;

use mio::net::TcpStream;
use mio::Interest;

use super::{conn_token, Accepted, Core, ACCEPT_RETRY, HANDSHAKE};
use crate::connection::Connection;
use crate::ids::ListenerId;
use crate::session::Session;
use crate::stats::LoopStats;
use crate::timer::Owner;

impl Core {
    /// Below the connection limit again: accept what waited in the backlog (the listeners
    /// are edge-triggered, so they would not report it again).
    pub(super) fn resume_accepting(&mut self) {
        if !self.full || self.io.sessions.len() + self.io.handshaking >= self.max_sessions {
            return;
        }
        self.full = false;
        log::info!("below the connection limit again: accepting");
        let idxs: Vec<usize> = self.listeners.iter().map(|(i, _)| i).collect();
        for i in idxs {
            self.accept(i);
        }
    }

    /// At the connection limit: close the session that has waited longest on its client
    /// with nothing under way (an unfinished head by when it began, else an idle connection
    /// by its last activity), and free its slot, so the connection waiting to be accepted
    /// takes its place; true if one was shed. One pass over the sessions, only at the
    /// limit.
    fn shed_one(&mut self) -> bool {
        use crate::session::Waiting;
        let mut oldest: Option<(std::time::Instant, usize)> = None;
        for (sid, slot) in self.io.sessions.iter() {
            if slot.closing {
                continue;
            }
            let since = match slot.obj.as_ref().and_then(|o| o.waiting()) {
                Some(Waiting::HeadSince(t)) => t,
                Some(Waiting::Idle) => {
                    let client = slot
                        .conns
                        .first()
                        .and_then(|&c| self.io.conns.get(c as usize));
                    match client {
                        Some(c) => c.last_active,
                        None => continue,
                    }
                }
                None => continue,
            };
            let older = match oldest {
                Some((t, _)) => since < t,
                None => true,
            };
            if older {
                oldest = Some((since, sid));
            }
        }
        let Some((since, sid)) = oldest else {
            return false;
        };
        let Some(mut obj) = self.io.sessions.get_mut(sid).and_then(|s| s.obj.take()) else {
            return false;
        };
        let mut cx = crate::session::Cx {
            io: &mut self.io,
            sid,
        };
        obj.on_shed(&mut cx);
        if let Some(slot) = self.io.sessions.get_mut(sid) {
            slot.obj = Some(obj);
        }
        self.io.touch(sid);
        let before = self.io.sessions.len();
        self.settle();
        let freed = self.io.sessions.len() < before;
        if freed {
            LoopStats::add(&self.io.stats.shed, 1);
            log::debug!(
                "connection limit {}: shed a connection waiting for {:?}",
                self.max_sessions,
                self.io.now.saturating_duration_since(since)
            );
        }
        freed
    }

    pub(super) fn accept(&mut self, lidx: usize) {
        loop {
            match self.listeners.get(lidx) {
                Some(l) if !l.paused => {}
                _ => return,
            }
            // At the limit, a connection that only waits on its client makes room (at most
            // one shed in vain per readiness event: the backlog may be empty by now).
            if self.io.sessions.len() + self.io.handshaking >= self.max_sessions && !self.shed_one()
            {
                if !self.full {
                    log::warn!(
                        "connection limit {} reached: not accepting until one closes",
                        self.max_sessions
                    );
                }
                self.full = true;
                return;
            }
            let Some(l) = self.listeners.get_mut(lidx) else {
                return;
            };
            let Some(socket) = l.socket.as_ref() else {
                return;
            };
            match socket.accept() {
                Ok((stream, peer)) => {
                    LoopStats::add(&self.io.stats.accepted, 1);
                    let o = &l.opts;
                    if o.proxy_protocol.is_some() || o.tls.is_some() || o.sniff.is_some() {
                        self.start_pending(lidx, stream, peer);
                    } else {
                        let info = Accepted {
                            listener: ListenerId(lidx),
                            peer,
                            local: l.local,
                            tls: None,
                            sniffed: false,
                        };
                        let session = (l.factory)(&info);
                        self.start_session(stream, session);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the pending connection stays queued; an
                    // edge-triggered listener would not tell us again, so retry on a timer.
                    LoopStats::add(&self.io.stats.accept_errors, 1);
                    log::warn!("accept on {}: {e}; retrying in {ACCEPT_RETRY:?}", l.local);
                    l.paused = true;
                    self.io
                        .timers
                        .add(self.io.now + ACCEPT_RETRY, Owner::Listener(lidx as u32));
                    return;
                }
            }
            self.settle();
        }
    }

    /// Register an accepted socket as a connection owned by `session` (a slab index or
    /// `HANDSHAKE`). None (and the socket closed) if the poll refuses it.
    pub(super) fn add_conn(
        &mut self,
        mut stream: TcpStream,
        session: usize,
    ) -> Option<(usize, u64)> {
        let _ = stream.set_nodelay(true);
        let cgen = self.io.gen();
        let entry = self.io.conns.vacant_entry();
        let cidx = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, conn_token(cidx), interest)
        {
            log::warn!("cannot register an accepted connection: {e}");
            return None;
        }
        entry.insert(Connection::new(stream, cgen, session, self.io.now));
        Some((cidx, cgen))
    }

    fn start_session(&mut self, stream: TcpStream, session: Box<dyn Session>) {
        let Some((cidx, _)) = self.add_conn(stream, HANDSHAKE) else {
            return;
        };
        self.begin_session(cidx, session);
    }
}
