//! One readiness event on a connection: recorded (`read_ready`, `write_ready`, whether
//! the peer's FIN came with it), then handed on — to the handshake of a pending connection,
//! to an outgoing connect under way (its PROXY header written first, then its TLS
//! handshake), or to the pipes that read or write the connection (or, with no pipe reading
//! it, to a session that watches it: `Cx::watch_readable`).

use std::io;

use mio::event::Event;
use mio::net::TcpStream;

use super::{Core, HANDSHAKE};
use crate::connection::ProxyInfo;
use crate::io::Notice;
use crate::tls::Handshake;

impl Core {
    pub(super) fn conn_event(&mut self, cidx: usize, ready: Ready) {
        let Some(conn) = self.io.conns.get_mut(cidx) else {
            return;
        };
        if ready.read {
            conn.read_ready = true;
            // A short read may stop at the queue's end unless this edge also carried the
            // peer's FIN or an error, for which no later edge comes (`connection.rs`).
            conn.drain_to_block = ready.hup;
        }
        if ready.write {
            conn.write_ready = true;
        }
        let sid = conn.session;
        if sid == crate::pool::POOL {
            if ready.read {
                self.io.drop_pooled(cidx);
            }
            return;
        }
        if sid == HANDSHAKE {
            self.handshake_event(cidx);
            return;
        }
        if conn.connecting {
            let mut outcome = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(Err(e)),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => Some(Ok(())),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected && !ready.failed => None,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Some(Err(io::Error::from(io::ErrorKind::ConnectionRefused)))
                    }
                    Err(e) => Some(Err(e)),
                },
            };
            // TCP is up (and only then): the PROXY header goes first, before any TLS record.
            let connected = matches!(outcome, Some(Ok(())));
            let header = match conn.proxy.take().map(|b| *b) {
                Some(ProxyInfo::Header(h)) if connected => Some(h),
                other => {
                    conn.proxy = other.map(Box::new);
                    None
                }
            };
            if let Some(header) = header {
                if let Err(e) = write_header(&conn.stream, &header) {
                    outcome = Some(Err(e));
                }
            }
            if matches!(outcome, Some(Ok(()))) {
                // TCP is up: on TLS, the handshake decides when the connect is done.
                match conn.handshake() {
                    None | Some(Handshake::Done) => {}
                    Some(Handshake::Pending) => return,
                    Some(Handshake::Failed(why)) => {
                        let msg = format!("TLS handshake with {}: {why}", conn.peer_text());
                        outcome = Some(Err(io::Error::new(io::ErrorKind::InvalidData, msg)));
                    }
                }
            }
            let Some(result) = outcome else {
                return;
            };
            conn.connecting = false;
            if result.is_err() {
                conn.read_ready = false;
                conn.write_ready = false;
                conn.read_eof = true;
                conn.write_shut = true;
            }
            let gen = conn.gen;
            if let Some(s) = self.io.sessions.get_mut(sid) {
                s.pending_connects -= 1;
            }
            self.io.notify(
                sid,
                Notice::Connected {
                    idx: cidx,
                    gen,
                    result,
                },
            );
            self.io.touch(sid);
            return;
        }
        if ready.write && conn.tls.is_some() {
            // Records (a ticket, an alert, close_notify) may wait with no pipe to send them.
            let _ = conn.flush_tls();
        }
        let (reader, writer) = (
            conn.reader.map(|p| p as usize),
            conn.writer.map(|p| p as usize),
        );
        if ready.read {
            if let Some(p) = reader {
                self.io.mark_dirty(p);
            } else if conn.watch {
                conn.watch = false;
                let gen = conn.gen;
                self.io.notify(sid, Notice::ConnReadable { idx: cidx, gen });
            }
        }
        if ready.write {
            if let Some(p) = writer {
                self.io.mark_dirty(p);
            }
        }
        self.io.touch(sid);
    }
}

/// Write a PROXY protocol header on a connection that has just connected: its send
/// buffer is empty, so a header (at most a few hundred bytes) goes in one write; a short
/// write is an error rather than a wait.
fn write_header(stream: &TcpStream, header: &[u8]) -> io::Result<()> {
    loop {
        match io::Write::write(&mut &*stream, header) {
            Ok(n) if n == header.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "PROXY header: only {n} of {} bytes written",
                    header.len()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Readiness of one event, reduced to what the loop acts on.
#[derive(Clone, Copy)]
pub(super) struct Ready {
    read: bool,
    write: bool,
    failed: bool,
    /// The peer's FIN (`EPOLLRDHUP`/`EPOLLHUP`) or an error came with this event.
    hup: bool,
}

impl Ready {
    pub(super) fn of(e: &Event) -> Ready {
        let failed = e.is_error();
        Ready {
            read: e.is_readable() || e.is_read_closed() || failed,
            write: e.is_writable() || e.is_write_closed() || failed,
            failed: failed || (e.is_read_closed() && e.is_write_closed()),
            hup: failed || e.is_read_closed(),
        }
    }
}
