//! A connection: one non-blocking TCP socket registered edge-triggered with the poll.
//!
//! Edge-triggered means an event says "something changed", once. So the connection remembers
//! `read_ready` / `write_ready` (the socket can do I/O now) until a read or write answers
//! `WouldBlock`. A pipe attached later still sees the readiness that arrived before it.
//!
//! One exception saves a system call per message: a read that returns fewer bytes than asked
//! has emptied the socket's receive queue (a TCP socket copies all it holds, up to the size
//! asked), and any byte arriving later raises a new edge. So after a short read the
//! connection is no longer `read_ready`, without the `read` that would answer `WouldBlock`
//! — unless the last event also reported the peer's FIN or an error (`drain_to_block`):
//! then no new edge would come for it, and reading goes on until `read` says so (end of
//! stream or `WouldBlock`). This is what nginx does with `EPOLLRDHUP`.

use std::net::{Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;

use mio::net::TcpStream;

pub(crate) struct Connection {
    pub stream: TcpStream,
    pub gen: u64,
    /// Slab index of the owning session.
    pub session: usize,
    pub peer: Peer,
    pub read_ready: bool,
    pub write_ready: bool,
    /// The peer sent FIN (or the socket failed): nothing more will be read.
    pub read_eof: bool,
    /// We sent FIN: nothing more will be written.
    pub write_shut: bool,
    /// An outgoing connect that has not finished yet.
    pub connecting: bool,
    /// No pipe reads this connection, and its session asked to hear when it becomes
    /// readable (`Cx::watch_readable`): the next read event is told to the session
    /// (`Session::on_conn_readable`) instead of a pipe, once.
    pub watch: bool,
    /// The pipe whose source is this connection, if any (a slab index: `u32`s keep an idle
    /// connection's entry small).
    pub reader: Option<u32>,
    /// The pipe whose sink is this connection, if any.
    pub writer: Option<u32>,
    /// Loop time of the last byte moved in either direction.
    pub last_active: Instant,
    /// Taken from the pool of idle connections rather than freshly connected.
    pub reused: bool,
    /// Read until `WouldBlock` even after a short read: the last read event carried the
    /// peer's FIN or an error (see the module doc). Set from each read event
    /// (`Core::conn_event`); true until the first one.
    pub drain_to_block: bool,
    /// Bytes written to / read from this connection (plaintext over TLS), for the access
    /// log's byte counts (`Cx::conn_bytes`). `u32`, wrapping, to keep this entry small: a
    /// request's share is a wrapping difference, exact below 4 GiB.
    pub sent: u32,
    pub received: u32,
    /// The pool's idle-deadline timer for this connection (0: none). It outlives a reuse:
    /// the next park moves it instead of arming a new one (`pool.rs`).
    pub pool_timer: u64,
    /// The TLS record layer of this connection (`tls.rs`); `None` on a plain socket.
    pub tls: Option<Box<crate::tls::Tls>>,
    /// Pooled connections to one address are told apart by this (0: plain; else the TLS
    /// client's tag).
    pub pool_tag: u64,
    /// An accepted connection still in its handshake (PROXY header, TLS), owned by no
    /// session yet.
    pub pending: Option<Box<PendingAccept>>,
    /// What the PROXY protocol adds to this connection, if anything (boxed: most have none).
    pub proxy: Option<Box<ProxyInfo>>,
}

/// A connection's peer in 16 bytes rather than an `Option<SocketAddr>`'s 32 (every open
/// connection has one): an IPv4 address inline, an IPv6 one (with its flow info and scope)
/// boxed.
pub(crate) enum Peer {
    Unknown,
    V4(SocketAddrV4),
    V6(Box<SocketAddrV6>),
}

impl Peer {
    pub fn get(&self) -> Option<SocketAddr> {
        match self {
            Peer::Unknown => None,
            Peer::V4(a) => Some(SocketAddr::V4(*a)),
            Peer::V6(a) => Some(SocketAddr::V6(**a)),
        }
    }
}

impl From<Option<SocketAddr>> for Peer {
    fn from(a: Option<SocketAddr>) -> Peer {
        match a {
            None => Peer::Unknown,
            Some(SocketAddr::V4(a)) => Peer::V4(a),
            Some(SocketAddr::V6(a)) => Peer::V6(Box::new(a)),
        }
    }
}

/// What the PROXY protocol adds to a connection, one way or the other.
#[derive(Debug)]
pub(crate) enum ProxyInfo {
    /// Accepted behind a balancer: the front address its header named, which is the
    /// connection's local address for the session.
    Front(SocketAddr),
    /// Outgoing: the header to write first, once TCP is up (before a TLS handshake).
    Header(Box<[u8]>),
}

/// What an accepted connection needs to get its session once its handshake is over.
pub(crate) struct PendingAccept {
    pub listener: usize,
    /// The client: the socket's peer, or the source a PROXY protocol header named.
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The handshake deadline.
    pub timer: u64,
    pub awaiting: Awaiting,
    /// The client's first bytes were the listener's `ListenerOpts::sniff` prefix.
    pub sniffed: bool,
}

/// What an accepted connection waits for before its session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// A PROXY protocol header (read with `MSG_PEEK`, then exactly its bytes consumed).
    ProxyHeader,
    /// The TLS handshake (`Connection::tls` is set).
    Tls,
    /// The client's first bytes, peeked (`MSG_PEEK`) until they match the listener's
    /// `ListenerOpts::sniff` prefix or differ from it (nothing is consumed).
    Sniff,
}

impl Awaiting {
    /// For a log line: what did not come.
    pub fn what(self) -> &'static str {
        match self {
            Awaiting::ProxyHeader => "PROXY protocol header",
            Awaiting::Tls => "TLS handshake",
            Awaiting::Sniff => "first bytes",
        }
    }
}

impl Connection {
    pub fn new(stream: TcpStream, gen: u64, session: usize, now: Instant) -> Connection {
        let peer = Peer::from(stream.peer_addr().ok());
        Connection {
            stream,
            gen,
            session,
            peer,
            read_ready: false,
            write_ready: false,
            read_eof: false,
            write_shut: false,
            connecting: false,
            watch: false,
            reader: None,
            writer: None,
            last_active: now,
            reused: false,
            drain_to_block: true,
            sent: 0,
            received: 0,
            pool_timer: 0,
            tls: None,
            pool_tag: 0,
            pending: None,
            proxy: None,
        }
    }

    /// Drive this connection's TLS handshake with the readiness it has (`None`: not TLS).
    pub fn handshake(&mut self) -> Option<crate::tls::Handshake> {
        let tls = self.tls.as_mut()?;
        Some(crate::tls::handshake(
            tls,
            &self.stream,
            &mut self.read_ready,
            &mut self.write_ready,
        ))
    }

    /// The peer's address for a log line (`?` when unknown).
    pub fn peer_text(&self) -> String {
        self.peer.get().map_or("?".into(), |p| p.to_string())
    }

    /// Half-close: send FIN once the last byte is written (on TLS, `close_notify` first,
    /// and the FIN once every record is out: see `flush_tls`).
    pub fn shutdown_write(&mut self) {
        if self.write_shut {
            return;
        }
        if let Some(tls) = self.tls.as_mut() {
            crate::tls::close(tls);
            let _ = self.flush_tls();
            return;
        }
        self.write_shut = true;
        // NotConnected when the peer already reset: nothing left to tell it.
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Write what TLS records wait, then the FIN a half-close asked for. Err on a socket
    /// error (the connection cannot write any more).
    pub fn flush_tls(&mut self) -> std::io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        let r = crate::tls::flush(tls, &self.stream, &mut self.write_ready);
        match r {
            Ok(true) if tls.fin_after_flush && !self.write_shut => {
                self.write_shut = true;
                let _ = self.stream.shutdown(Shutdown::Write);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.write_shut = true;
                Err(e)
            }
        }
    }

    /// Records wait for the socket (a pipe sinking here is not over yet).
    pub fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.pending_out())
    }

    /// A read may give bytes now: the socket is readable, or TLS holds plaintext or the
    /// peer's close.
    pub fn can_read(&self) -> bool {
        self.read_ready
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.plain > 0 || t.peer_closed)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// Every open connection holds a `Connection` and its session a `SessionSlot`, an idle
    /// keep-alive connection too: their sizes are tether's memory per idle connection
    /// (`docs/benchmarks.md`, `bash benches/idle_rss.sh`). Grow them only knowingly.
    #[test]
    fn per_connection_entries_stay_small() {
        let conn = size_of::<super::Connection>();
        // 136: 128 plus the access log's byte counts (`sent`, `received`: two u32).
        assert!(conn <= 136, "Connection is {conn} bytes");
        let slot = size_of::<crate::io::SessionSlot>();
        assert!(slot <= 104, "SessionSlot is {slot} bytes");
        assert!(size_of::<super::Peer>() <= 16);
    }
}
