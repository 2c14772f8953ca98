//! tether-logwriter: log lines (access log, error log) to a file or stderr without ever
//! blocking the caller. A caller — an event loop, a worker thread — hands a line to
//! `LogWriter::write_line`, which copies it into a bounded queue (`queue.rs`, counted in
//! bytes) under a short lock and returns; a writer thread (`writer.rs`) takes the whole
//! queue at once and writes it to the target (`target.rs`). When the target is stuck (a
//! pipe nobody reads, a full or hung disk) the queue fills and new lines are dropped and
//! counted (`Stats::dropped`, for `/metrics`), and a reporter thread warns of them once per
//! interval (one minute by default) through the `log` crate: the one place where losing a
//! line is the right call. `reopen` (SIGUSR1, `tether reopen`, logrotate) has the writer
//! thread open the file's path again before it writes the next line queued after the call.
//!
//! One writer (a writer thread and a reporter thread) per target: a stuck target delays
//! only its own lines, and targets are few (one per route or server with a log of its
//! own); handles are `Clone` and shared by every worker thread.

mod queue;
mod target;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use target::Target;

use queue::Refused;
use target::Sink;
use writer::{lock, Shared};

/// How often dropped lines are reported (`LogWriter::open`).
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// How long dropping the last handle waits for the queued lines to be written.
pub const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines written to the target.
    pub written: u64,
    /// Lines lost: refused by a full queue, given after shutdown, or in a failed write.
    pub dropped: u64,
    /// Bytes written to the target (newlines included).
    pub bytes: u64,
}

/// A handle to one target's writer; clones share it. The last one dropped flushes
/// (waiting at most `FLUSH_WAIT`) and stops the threads.
#[derive(Clone)]
pub struct LogWriter {
    handle: Arc<Handle>,
}

/// Owned by the handles; stops the threads when the last goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !stop(&self.shared, FLUSH_WAIT) {
            log::warn!(
                "log {}: lines still queued after {FLUSH_WAIT:?} at shutdown (the target is stuck)",
                self.shared.target
            );
        }
    }
}

/// Ask the threads to stop after the last batch; wait at most `limit` for it.
fn stop(shared: &Shared, limit: Duration) -> bool {
    lock(&shared.queue).shut_down();
    shared.work.notify_all();
    shared.stop.notify_all();
    shared.wait_finished(limit)
}

impl LogWriter {
    /// Open `target` (a file is created if needed and appended to; an error names the path)
    /// and start its writer and reporter threads. At most `capacity_bytes` of lines wait
    /// for the writer (plus the batch it is writing). Call it at start-up or reload, not on
    /// an event loop: opening a file may block.
    pub fn open(target: Target, capacity_bytes: usize) -> Result<LogWriter, String> {
        LogWriter::open_reporting(target, capacity_bytes, REPORT_EVERY)
    }

    /// `open`, with drops reported every `report_every` instead of every minute.
    pub fn open_reporting(
        target: Target,
        capacity_bytes: usize,
        report_every: Duration,
    ) -> Result<LogWriter, String> {
        let sink = Sink::open(&target)?;
        let shared = Arc::new(Shared::new(target, capacity_bytes));
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer::run_writer(s, sink))
            .map_err(|e| format!("log {}: cannot start its writer thread: {e}", shared.target))?;
        let s = Arc::clone(&shared);
        let reporter = std::thread::Builder::new()
            .name("log-report".into())
            .spawn(move || writer::run_reporter(s, report_every.max(Duration::from_millis(1))));
        if let Err(e) = reporter {
            stop(&shared, FLUSH_WAIT);
            return Err(format!(
                "log {}: cannot start its reporter thread: {e}",
                shared.target
            ));
        }
        Ok(LogWriter {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// Queue one line (a `\n` is added if it has none). Never blocks on I/O: when the
    /// queue is full, or after `shutdown`, the line is dropped and counted.
    pub fn write_line(&self, line: &[u8]) {
        let shared = &self.handle.shared;
        let queued = {
            let mut q = lock(&shared.queue);
            let was_idle = !q.has_work();
            q.push(line).map(|()| was_idle)
        };
        match queued {
            // The writer waits only for an empty queue: wake it on the first line only.
            Ok(true) => shared.work.notify_one(),
            Ok(false) => {}
            Err(Refused::Full) | Err(Refused::ShutDown) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reopen the file by its path (after logrotate renamed it): lines queued before this
    /// call go to the file open now, lines queued after it to the new one. A file that
    /// cannot be opened is logged and the old one kept. Nothing for stderr.
    pub fn reopen(&self) {
        let shared = &self.handle.shared;
        lock(&shared.queue).reopen();
        shared.work.notify_one();
    }

    /// Lines written and dropped, bytes written, so far.
    pub fn stats(&self) -> Stats {
        let s = &self.handle.shared;
        Stats {
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
        }
    }

    /// Bytes waiting for the writer thread now.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.handle.shared.queue).queued_bytes()
    }

    /// Where the lines go.
    pub fn target(&self) -> &Target {
        &self.handle.shared.target
    }

    /// Stop taking lines (later ones are dropped), write what is queued, and wait at most
    /// `limit` for it. True if everything queued was written (or failed) in time; false if
    /// the target is stuck (the writer thread finishes on its own if it ever unblocks).
    /// Blocks the caller up to `limit`: call it at shutdown, not on a running loop.
    pub fn shutdown(&self, limit: Duration) -> bool {
        stop(&self.handle.shared, limit)
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("target", self.target())
            .field("stats", &self.stats())
            .finish()
    }
}
