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
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
///
/// A socket-to-socket pipe moving a large stream also holds bytes in a kernel pipe
/// ([`Spliced`]): they go socket → kernel pipe → socket with `splice(2)` and never reach
/// user space. Those bytes come before every chunk in the queue (bytes are spliced in only
/// while the queue is empty), and count in `len()`.
#[derive(Default)]
pub struct PipeBuffer {
    /// The oldest chunk; `None` only when the queue is empty.
    first: Option<Bytes>,
    /// The rest of the queue and the kernel pipe, allocated when first needed.
    more: Option<Box<More>>,
    /// Bytes in the queue (not in the kernel pipe).
    len: usize,
}

#[derive(Default)]
struct More {
    /// The chunks after `first`, oldest first.
    rest: VecDeque<Bytes>,
    kernel: Option<Spliced>,
}

impl PipeBuffer {
    /// Bytes held (queued, and in the kernel pipe).
    pub fn len(&self) -> usize {
        self.len + self.spliced()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            self.more.get_or_insert_default().rest.push_back(b);
        }
    }

    /// Take the oldest queued chunk (never bytes in the kernel pipe).
    pub fn pop(&mut self) -> Option<Bytes> {
        let b = self.first.take()?;
        self.first = self.next();
        self.len -= b.len();
        Some(b)
    }

    /// Fill `out` with slices of the queued bytes, oldest first, for a vectored write;
    /// returns how many slots were filled.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let rest = self.more.iter().flat_map(|m| m.rest.iter());
        let mut n = 0;
        for (slot, c) in out.iter_mut().zip(self.first.iter().chain(rest)) {
            *slot = IoSlice::new(c);
            n += 1;
        }
        n
    }

    /// Drop the first `n` queued bytes (they were written).
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

    /// Drop everything (what the kernel pipe holds too).
    pub fn clear(&mut self) {
        self.first = None;
        if let Some(m) = self.more.as_mut() {
            m.rest.clear();
            if m.kernel.as_ref().is_some_and(|k| k.held > 0) {
                // The bytes cannot be taken back out cheaply: close that pipe.
                m.kernel = None;
            }
        }
        self.len = 0;
    }

    /// The chunk after `first`, taken out of `rest`.
    fn next(&mut self) -> Option<Bytes> {
        self.more.as_mut().and_then(|m| m.rest.pop_front())
    }

    /// Bytes in the kernel pipe.
    pub(crate) fn spliced(&self) -> usize {
        self.more
            .as_ref()
            .and_then(|m| m.kernel.as_ref())
            .map_or(0, |k| k.held)
    }

    /// The kernel pipe, if this buffer splices and may splice in now: it has one and the
    /// queue is empty (so spliced bytes stay ahead of queued ones).
    pub(crate) fn splice_in(&mut self) -> Option<&mut Spliced> {
        if self.len > 0 {
            return None;
        }
        self.more.as_mut()?.kernel.as_mut()
    }

    /// The kernel pipe when it holds bytes (they go out before the queue).
    pub(crate) fn splice_out(&mut self) -> Option<&mut Spliced> {
        self.more.as_mut()?.kernel.as_mut().filter(|k| k.held > 0)
    }

    /// Move the rest of the stream through a kernel pipe of about `size` bytes. False if
    /// one cannot be made (then the buffer goes on as it was).
    pub(crate) fn start_splicing(&mut self, size: usize) -> bool {
        let more = self.more.get_or_insert_default();
        if more.kernel.is_none() {
            match Spliced::new(size) {
                Ok(k) => more.kernel = Some(k),
                Err(e) => {
                    log::debug!("no kernel pipe for splice: {e}");
                    return false;
                }
            }
        }
        true
    }

    /// Whether bytes go through a kernel pipe.
    pub(crate) fn splicing(&self) -> bool {
        self.more.as_ref().is_some_and(|m| m.kernel.is_some())
    }
}

/// A kernel pipe for `splice(2)`: bytes spliced in from one socket wait here and are
/// spliced out to another, never copied to user space.
pub(crate) struct Spliced {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe.
    pub held: usize,
    /// Its capacity in bytes.
    pub cap: usize,
}

impl Spliced {
    fn new(size: usize) -> io::Result<Spliced> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just made and belong to nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: plain fcntl calls on a descriptor we own. Growing the pipe may be refused
        // (pipe-max-size, the per-user page limit): the default size then serves.
        let cap = unsafe {
            let grown = libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int);
            if grown > 0 {
                grown
            } else {
                libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
            }
        };
        if cap <= 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Spliced {
            read,
            write,
            held: 0,
            cap: cap as usize,
        })
    }

    /// Splice at most `want` bytes from socket `from` into the pipe.
    pub fn fill_from(&mut self, from: RawFd, want: usize) -> io::Result<usize> {
        let n = splice(from, self.write.as_raw_fd(), want)?;
        self.held += n;
        Ok(n)
    }

    /// Splice what the pipe holds out to socket `to`.
    pub fn drain_to(&mut self, to: RawFd) -> io::Result<usize> {
        let n = splice(self.read.as_raw_fd(), to, self.held)?;
        self.held -= n;
        Ok(n)
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open; null offsets (streams).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
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
