//! The bounded queue between the callers and the writer thread: one byte buffer of whole
//! lines (at most `capacity` bytes wait; a line that does not fit is dropped and counted,
//! never waited for), the point where a reopen was asked (bytes before it belong to the
//! old file, bytes after it to the new one), and the shutdown flag. Pure data: the
//! `Mutex`/`Condvar` around it and the I/O live in `lib.rs` and `writer.rs`.

/// What waits for the writer thread.
#[derive(Debug)]
pub(crate) struct Queue {
    capacity: usize,
    buf: Vec<u8>,
    lines: u64,
    /// `(bytes, lines)` queued before the first `reopen` not yet carried out.
    reopen_at: Option<(usize, u64)>,
    shutdown: bool,
}

/// One batch for the writer thread, taken whole.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
    /// Reopen the target after this many bytes (and lines) of `bytes`.
    pub reopen_at: Option<(usize, u64)>,
    /// Shutdown was asked: write this batch, then stop.
    pub last: bool,
}

/// Why a line was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    ShutDown,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue {
            capacity,
            buf: Vec::new(),
            lines: 0,
            reopen_at: None,
            shutdown: false,
        }
    }

    /// Append `line` and a `\n` if it has none; refuse it whole when it does not fit.
    pub(crate) fn push(&mut self, line: &[u8]) -> Result<(), Refused> {
        if self.shutdown {
            return Err(Refused::ShutDown);
        }
        let newline = !line.ends_with(b"\n");
        let len = line.len() + usize::from(newline);
        if self.buf.len().saturating_add(len) > self.capacity {
            return Err(Refused::Full);
        }
        self.buf.extend_from_slice(line);
        if newline {
            self.buf.push(b'\n');
        }
        self.lines += 1;
        Ok(())
    }

    /// Mark that the target must be reopened before the lines queued from now on.
    pub(crate) fn reopen(&mut self) {
        if self.reopen_at.is_none() {
            self.reopen_at = Some((self.buf.len(), self.lines));
        }
    }

    pub(crate) fn shut_down(&mut self) {
        self.shutdown = true;
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown
    }

    /// Anything for the writer thread to do?
    pub(crate) fn has_work(&self) -> bool {
        !self.buf.is_empty() || self.reopen_at.is_some() || self.shutdown
    }

    /// Bytes waiting.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Take everything waiting; `spare` (emptied) becomes the new buffer, so the two
    /// allocations take turns.
    pub(crate) fn take(&mut self, mut spare: Vec<u8>) -> Batch {
        spare.clear();
        let bytes = std::mem::replace(&mut self.buf, spare);
        Batch {
            bytes,
            lines: std::mem::take(&mut self.lines),
            reopen_at: self.reopen_at.take(),
            last: self.shutdown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes_whole_lines_only() {
        let mut q = Queue::new(10);
        assert_eq!(q.push(b"abcd"), Ok(())); // 5 with its newline
        assert_eq!(q.push(b"efg\n"), Ok(())); // 4: 9 in all
        assert_eq!(q.push(b"hi"), Err(Refused::Full), "3 more would make 12");
        assert_eq!(q.push(b""), Ok(()), "an empty line is its newline: 10");
        assert_eq!(q.push(b""), Err(Refused::Full));
        let b = q.take(Vec::new());
        assert_eq!(b.bytes, b"abcd\nefg\n\n");
        assert_eq!(b.lines, 3);
        assert!(!q.has_work());
        assert_eq!(q.push(b"0123456789"), Err(Refused::Full), "never fits");
        assert_eq!(q.push(b"012345678"), Ok(()));
    }

    #[test]
    fn reopen_marks_the_first_point_and_shutdown_refuses() {
        let mut q = Queue::new(100);
        q.push(b"old").ok();
        q.reopen();
        q.push(b"new").ok();
        q.reopen(); // a second ask before the writer ran changes nothing
        let b = q.take(vec![1, 2, 3]);
        assert_eq!(b.reopen_at, Some((4, 1)));
        assert_eq!(q.queued_bytes(), 0, "the spare comes in empty");
        q.reopen();
        assert!(q.has_work(), "a reopen alone is work");
        q.shut_down();
        assert_eq!(q.push(b"late"), Err(Refused::ShutDown));
        let b = q.take(Vec::new());
        assert!(b.last && b.bytes.is_empty() && b.reopen_at == Some((0, 0)));
    }
}
