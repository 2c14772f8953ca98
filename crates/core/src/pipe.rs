//! A pipe moves bytes from a source to a sink and holds at most `threshold` bytes.
//!
//! The pipe's buffer is a queue of `Bytes`: what a source read is handed to the sink as the
//! same allocation, never copied on the way. When the buffer holds `threshold` bytes the pipe
//! stops reading its source; the kernel's receive buffer then fills and TCP pushes back on the
//! peer. That is all backpressure is.
//!
//! Each end has two flags, as in eXpServer:
//! - `ready`: the end can do I/O now. For a socket end it is the connection's readiness
//!   (`Connection::read_ready` / `write_ready`, kept by the loop); a file is always ready; a
//!   session end is ready when the session pushes or takes.
//! - `active`: the end still exists. A source turns inactive at end-of-stream or on error, a
//!   sink on a write error. A pipe whose source is inactive and whose buffer is empty is
//!   finished: its socket sink gets a FIN (half-close) and the pipe is freed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

use crate::ids::ConnId;

/// Default number of bytes a pipe may hold before it stops reading its source.
pub const DEFAULT_THRESHOLD: usize = 256 * 1024;

/// Where a pipe's bytes come from.
pub enum Source {
    /// Read from a connection until end-of-stream.
    Conn(ConnId),
    /// Read a file from `offset`, `len` bytes (or to its end with `None`).
    File {
        file: File,
        offset: u64,
        len: Option<u64>,
    },
    /// The session pushes bytes with [`crate::Cx::push`] and ends with [`crate::Cx::end`].
    Session,
}

impl Source {
    /// A whole file, from its start.
    pub fn file(file: File) -> Source {
        Source::File {
            file,
            offset: 0,
            len: None,
        }
    }
}

/// Where a pipe's bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Written to a connection; a FIN follows the last byte.
    Conn(ConnId),
    /// Handed to the session: it gets `on_readable` and calls [`crate::Cx::take`].
    Session,
    /// Thrown away (lingering close: read what the client still sends, keep nothing).
    Discard,
}

/// How a pipe is opened: see [`crate::Cx::pipe_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeOpts {
    /// Bytes the pipe may hold before it stops reading its source.
    pub threshold: usize,
    /// Read at most this many bytes from a connection source, then finish (a
    /// `Content-Length` body: the bytes after it belong to the next message and stay in the
    /// socket). The source ending before the limit is a `SourceError(UnexpectedEof)`.
    pub limit: Option<u64>,
    /// Send a FIN on a connection sink when the pipe finishes. Off for one message on a
    /// connection that carries more (keep-alive).
    pub fin: bool,
}

impl Default for PipeOpts {
    fn default() -> PipeOpts {
        PipeOpts {
            threshold: DEFAULT_THRESHOLD,
            limit: None,
            fin: true,
        }
    }
}

/// How a pipe ended, as told to its session's `on_pipe_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeEnd {
    /// The source ended and every byte reached the sink.
    Finished,
    /// Reading the source failed (connection reset, I/O error).
    SourceError(std::io::ErrorKind),
    /// Writing the sink failed; buffered bytes were dropped.
    SinkError(std::io::ErrorKind),
}

/// The byte queue of a pipe: a list of shared buffers and their total length.
///
/// The oldest chunk is kept inline and only the others in a (boxed) `VecDeque`: most pipes
/// never hold more than one chunk at a time (a request head, a response, a read), so they
/// never allocate, and an idle keep-alive connection's reader pipe holds no heap memory.
#[derive(Default)]
pub struct PipeBuffer {
    /// The oldest chunk; `None` only when the buffer is empty.
    first: Option<Bytes>,
    /// The chunks after `first`, oldest first (allocated when a second chunk comes).
    rest: Option<Box<VecDeque<Bytes>>>,
    len: usize,
}

impl PipeBuffer {
    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queue bytes at the end (no copy: the allocation is shared).
    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.len += b.len();
        if self.first.is_none() {
            self.first = Some(b);
        } else {
            self.rest.get_or_insert_default().push_back(b);
        }
    }

    /// Take the oldest chunk.
    pub fn pop(&mut self) -> Option<Bytes> {
        let b = self.first.take()?;
        self.first = self.next();
        self.len -= b.len();
        Some(b)
    }

    /// Fill `out` with slices of the queued bytes, oldest first, for a vectored write;
    /// returns how many slots were filled.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let chunks = self.first.iter().chain(self.rest.iter().flat_map(|r| r.iter()));
        let mut n = 0;
        for (slot, c) in out.iter_mut().zip(chunks) {
            *slot = IoSlice::new(c);
            n += 1;
        }
        n
    }

    /// Drop the first `n` bytes (they were written).
    pub fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.first.as_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.first = self.next();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.first = None;
        if let Some(r) = self.rest.as_mut() {
            r.clear();
        }
        self.len = 0;
    }

    /// The chunk after `first`, taken out of `rest`.
    fn next(&mut self) -> Option<Bytes> {
        self.rest.as_mut().and_then(|r| r.pop_front())
    }
}

pub(crate) enum SourceKind {
    Conn(usize),
    File {
        file: File,
        offset: u64,
        remaining: Option<u64>,
        sendfile: bool,
    },
    Session,
}

pub(crate) enum SinkKind {
    Conn(usize),
    Session,
    Discard,
}

pub(crate) struct Pipe {
    pub gen: u64,
    pub session: usize,
    pub source: SourceKind,
    pub sink: SinkKind,
    pub buf: PipeBuffer,
    pub threshold: usize,
    /// Bytes still to read from a connection source, when limited.
    pub limit: Option<u64>,
    /// FIN the connection sink when finished.
    pub fin: bool,
    /// The source may still produce bytes.
    pub source_active: bool,
    /// The sink may still accept bytes.
    pub sink_active: bool,
    /// A readable notice for a session sink is queued and not yet delivered.
    pub notified: bool,
    /// The session pushed the pipe to its threshold: tell it when it drains below.
    pub was_full: bool,
    /// In `Io::dirty`, waiting to be pumped.
    pub queued: bool,
    /// Why the pipe failed, if it did.
    pub error: Option<PipeEnd>,
}

impl Pipe {
    /// Source ended and everything was handed on, or something failed: the pipe can go.
    pub fn is_over(&self) -> bool {
        self.error.is_some() || (!self.source_active && self.buf.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_across_chunks() {
        let mut b = PipeBuffer::default();
        b.push(Bytes::from_static(b"hello "));
        b.push(Bytes::from_static(b""));
        b.push(Bytes::from_static(b"world"));
        assert_eq!(b.len(), 11);
        b.consume(8);
        assert_eq!(b.len(), 3);
        assert_eq!(b.pop().as_deref(), Some(&b"rld"[..]));
        assert!(b.is_empty());
    }

    #[test]
    fn order_holds_across_the_inline_chunk() {
        let mut b = PipeBuffer::default();
        for part in ["a", "bc", "def"] {
            b.push(Bytes::from(part));
        }
        assert_eq!(b.pop().as_deref(), Some(&b"a"[..]));
        b.push(Bytes::from_static(b"g"));
        b.consume(3);
        assert_eq!(b.len(), 3);
        let mut v = [IoSlice::new(&[]); 8];
        let n = b.slices(&mut v);
        let joined: Vec<u8> = v[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"efg");
        assert_eq!(b.pop().as_deref(), Some(&b"ef"[..]));
        assert_eq!(b.pop().as_deref(), Some(&b"g"[..]));
        assert_eq!(b.pop(), None);
        assert!(b.is_empty());
        b.push(Bytes::from_static(b"h"));
        b.clear();
        assert_eq!((b.len(), b.pop()), (0, None));
    }

    #[test]
    fn slices_in_order() {
        let mut b = PipeBuffer::default();
        b.push(Bytes::from_static(b"ab"));
        b.push(Bytes::from_static(b"cd"));
        let mut v = [IoSlice::new(&[]); 8];
        let n = b.slices(&mut v);
        let joined: Vec<u8> = v[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"abcd");
    }
}
