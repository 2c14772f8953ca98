//! The two helper threads of one `LogWriter` and the state they share with its callers.
//! The writer thread takes the whole queue at once (`Queue::take`), writes it to the
//! target (blocking as long as the target does: a full pipe, a slow disk), reopens the
//! file where a `reopen` was asked, and counts. The reporter thread wakes once per
//! interval and warns of the lines dropped since its last report: it is a thread of its
//! own because the writer thread may be stuck inside `write(2)` on a pipe nobody reads,
//! which is exactly when the drops must be reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::queue::{Batch, Queue};
use crate::target::{Sink, Target};

/// What the callers and both threads share.
pub(crate) struct Shared {
    pub target: Target,
    pub queue: Mutex<Queue>,
    /// The writer waits on it for work; the reporter for shutdown.
    pub work: Condvar,
    pub stop: Condvar,
    /// Set by the writer thread when it has written its last batch.
    pub finished: Mutex<bool>,
    pub finished_signal: Condvar,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub bytes: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(target: Target, capacity: usize) -> Shared {
        Shared {
            target,
            queue: Mutex::new(Queue::new(capacity)),
            work: Condvar::new(),
            stop: Condvar::new(),
            finished: Mutex::new(false),
            finished_signal: Condvar::new(),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Mark the writer done and tell whoever waits in `LogWriter::shutdown`.
    fn finish(&self) {
        *lock(&self.finished) = true;
        self.finished_signal.notify_all();
    }

    /// Wait (at most `limit`) for the writer thread's last batch. True if it was written.
    pub(crate) fn wait_finished(&self, limit: Duration) -> bool {
        let guard = lock(&self.finished);
        match self
            .finished_signal
            .wait_timeout_while(guard, limit, |f| !*f)
        {
            Ok((f, _)) => *f,
            Err(poisoned) => *poisoned.into_inner().0,
        }
    }
}

/// The writer thread's state between batches.
struct Writer {
    shared: Arc<Shared>,
    sink: Sink,
    /// The last write failed (logged once until a write succeeds again).
    failing: bool,
}

impl Writer {
    fn write(&mut self, bytes: &[u8], lines: u64) {
        if lines == 0 {
            return;
        }
        match self.sink.write_all(bytes) {
            Ok(()) => {
                self.shared.written.fetch_add(lines, Ordering::Relaxed);
                self.shared
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if self.failing {
                    self.failing = false;
                    log::info!("log {}: writing again", self.shared.target);
                }
            }
            Err(e) => {
                // A part may have been written; the batch counts as lost.
                self.shared.dropped.fetch_add(lines, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    log::error!(
                        "log {}: cannot write ({e}); lines are dropped",
                        self.shared.target
                    );
                }
            }
        }
    }

    fn batch(&mut self, b: &Batch) {
        match b.reopen_at {
            Some((at, lines_before)) => {
                let (before, after) = b.bytes.split_at(at.min(b.bytes.len()));
                self.write(before, lines_before);
                if let Err(m) = self.sink.reopen(&self.shared.target) {
                    log::error!("{m}; still writing to the file open before");
                }
                self.write(after, b.lines.saturating_sub(lines_before));
            }
            None => self.write(&b.bytes, b.lines),
        }
    }
}

/// The writer thread: batches until shutdown, then the last one.
pub(crate) fn run_writer(shared: Arc<Shared>, sink: Sink) {
    let mut w = Writer {
        shared,
        sink,
        failing: false,
    };
    let mut spare = Vec::new();
    loop {
        let batch = {
            let mut q = lock(&w.shared.queue);
            while !q.has_work() {
                q = w
                    .shared
                    .work
                    .wait(q)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            q.take(std::mem::take(&mut spare))
        };
        w.batch(&batch);
        if batch.last {
            break;
        }
        spare = batch.bytes;
    }
    w.shared.finish();
}

/// The reporter thread: every `every`, warn of the lines dropped since the last report;
/// a last report at shutdown.
pub(crate) fn run_reporter(shared: Arc<Shared>, every: Duration) {
    let mut reported = 0u64;
    loop {
        let stopping = {
            let q = lock(&shared.queue);
            match shared
                .stop
                .wait_timeout_while(q, every, |q| !q.is_shut_down())
            {
                Ok((q, _)) => q.is_shut_down(),
                Err(poisoned) => poisoned.into_inner().0.is_shut_down(),
            }
        };
        let total = shared.dropped.load(Ordering::Relaxed);
        if total > reported {
            log::warn!(
                "log {}: {} line(s) dropped {}: the target does not keep up ({} since start)",
                shared.target,
                total - reported,
                if stopping {
                    "since the last report".to_string()
                } else {
                    format!("in the last {every:?}")
                },
                total
            );
            reported = total;
        }
        if stopping {
            return;
        }
    }
}
