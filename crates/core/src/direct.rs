//! Writing a message straight to a socket, and reading one read's worth from it, without a
//! pipe (`Cx::write_now`, `Cx::read_now`).
//!
//! Most messages a session sends are small and whole when they are ready (a request head
//! without a body, a short answer with its body): the socket takes them in one write. A
//! pipe for them is opened, pumped, retired and reported (`on_pipe_end`) only to do that
//! one write. `write_now` does the write at once, when nothing stands before the bytes: no
//! pipe writes the connection (its bytes go first), it is plain TCP (TLS records are the
//! pipe's business), connected, not half-closed, and the last write did not find the
//! socket full. What the socket does not take is the caller's to send through a pipe as
//! before, so a full socket still means buffered writing in a pipe with its threshold
//! (backpressure), never unbounded memory here.

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use bytes::{Buf, Bytes};

use crate::ids::ConnId;
use crate::io::Io;
use crate::session::Cx;
use crate::stats::LoopStats;

/// What [`Cx::read_now`] found.
#[derive(Debug)]
pub enum ReadNow {
    /// Bytes read (one read's worth, at most 64 KiB).
    Data(Bytes),
    /// The peer's FIN: nothing more will come.
    Eof,
    /// Nothing to read now (watch the connection again).
    Nothing,
    /// The read failed (the connection cannot be read any more).
    Failed(io::ErrorKind),
    /// Not read: the connection is TLS, read by a pipe, unknown or not this session's.
    /// Read it through a pipe.
    Unsupported,
}

impl Io {
    /// One read from plain connection `c`, as a connection-source pipe would do it (the
    /// same readiness bookkeeping: a short read means drained unless a FIN may be pending).
    pub(crate) fn read_now(&mut self, c: usize) -> ReadNow {
        let Some(conn) = self.conns.get_mut(c) else {
            return ReadNow::Unsupported;
        };
        if conn.reader.is_some() || conn.tls.is_some() || conn.connecting {
            return ReadNow::Unsupported;
        }
        if conn.read_eof {
            return ReadNow::Eof;
        }
        if !conn.read_ready {
            return ReadNow::Nothing;
        }
        let fd = conn.stream.as_raw_fd();
        loop {
            match crate::io::read_fd(fd, &mut self.scratch, crate::io::READ_CHUNK) {
                Ok(b) if b.is_empty() => {
                    conn.read_eof = true;
                    conn.read_ready = false;
                    return ReadNow::Eof;
                }
                Ok(b) => {
                    let n = b.len();
                    conn.last_active = self.now;
                    LoopStats::add(&self.stats.bytes_in, n as u64);
                    conn.received = conn.received.wrapping_add(n as u32);
                    if n < crate::io::READ_CHUNK && !conn.drain_to_block {
                        // Drained, and no FIN pending: see `connection.rs`.
                        conn.read_ready = false;
                    }
                    return ReadNow::Data(b);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.read_ready = false;
                    return ReadNow::Nothing;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.read_eof = true;
                    conn.read_ready = false;
                    return ReadNow::Failed(e.kind());
                }
            }
        }
    }

    /// Write as much of `bytes` to connection `c` as the socket takes now; the rest is
    /// returned (all of it when the connection cannot be written directly). A write error
    /// is not reported here: the pipe the caller opens for the rest meets it on its own
    /// write and ends with `SinkError`, the one way sessions hear of it.
    pub(crate) fn write_now(&mut self, c: usize, mut bytes: Bytes) -> Bytes {
        let Some(conn) = self.conns.get_mut(c) else {
            return bytes;
        };
        let direct = conn.writer.is_none()
            && conn.tls.is_none()
            && conn.write_ready
            && !conn.write_shut
            && !conn.connecting;
        if !direct {
            return bytes;
        }
        while !bytes.is_empty() {
            match (&conn.stream).write(&bytes) {
                Ok(0) => break,
                Ok(n) => {
                    LoopStats::add(&self.stats.bytes_out, n as u64);
                    conn.sent = conn.sent.wrapping_add(n as u32);
                    conn.last_active = self.now;
                    bytes.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.write_ready = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        bytes
    }
}

impl Cx<'_> {
    /// Read what plain connection `c` holds now, one read's worth, without a pipe: for a
    /// session that watches `c` ([`Cx::watch_readable`]) and expects a short message (an
    /// answer to a request it sent). `Unsupported` for a TLS connection, one a pipe reads,
    /// or one not this session's: read those through a pipe. Bytes read here can be handed
    /// to a pipe opened afterwards with [`Cx::push`], ahead of what it reads itself.
    pub fn read_now(&mut self, c: ConnId) -> ReadNow {
        let sid = self.sid;
        let mine = self
            .io
            .conns
            .get(c.idx)
            .is_some_and(|x| x.gen == c.gen && x.session == sid);
        if !mine {
            return ReadNow::Unsupported;
        }
        self.io.read_now(c.idx)
    }

    /// Write `bytes` to `c` now, as far as the socket takes them, and return the rest (empty:
    /// all written). Nothing is written (all is returned) when a pipe writes `c` (its bytes
    /// come first), or `c` is TLS, connecting, half-closed, full or not this session's.
    /// The rest goes through a pipe as usual: `cx.pipe_with(Source::Session, Sink::Conn(c),
    /// ..)`, pushed and ended. No `on_pipe_end` comes for what was written here.
    pub fn write_now(&mut self, c: ConnId, bytes: Bytes) -> Bytes {
        let sid = self.sid;
        let mine = self
            .io
            .conns
            .get(c.idx)
            .is_some_and(|x| x.gen == c.gen && x.session == sid);
        if !mine {
            return bytes;
        }
        self.io.write_now(c.idx, bytes)
    }
}
