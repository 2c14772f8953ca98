//! The helper threads that verify password hashes, fed by a bounded queue of two lanes.
//!
//! [`Pool::submit`] never blocks: a full queue hands the job back at once (the verifier
//! answers `Busy`). Jobs in the front lane are taken first; the back lane (checks for user
//! names under attack, see `failures.rs`) may hold at most half the queue, so it can
//! neither delay nor crowd out the front lane's jobs. The threads run at a lower scheduling priority (nice 10 on Linux) so
//! that a flood of hashes yields the CPU to the event loops. Dropping the pool lets the
//! threads finish the queued jobs (every callback still runs once) and exit; it does not
//! wait for them, so the thread that drops it (a loop, after a reload) never blocks.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

struct State<J> {
    front: VecDeque<J>,
    back: VecDeque<J>,
    closed: bool,
}

impl<J> State<J> {
    fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }
}

struct Shared<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
    capacity: usize,
    back_capacity: usize,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // The state is a queue and a flag, consistent at every point: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fixed set of helper threads running `work` on each submitted job.
pub(crate) struct Pool<J: Send + 'static> {
    shared: Arc<Shared<J>>,
}

impl<J: Send + 'static> Pool<J> {
    /// Starts `threads` (at least 1) threads named `name`, which run `work(job)` for each
    /// job; at most `capacity` jobs (at least 1) wait in the queue.
    pub(crate) fn start(
        name: &str,
        threads: usize,
        capacity: usize,
        work: Arc<dyn Fn(J) + Send + Sync>,
    ) -> Result<Pool<J>, String> {
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                front: VecDeque::with_capacity(capacity),
                back: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
            back_capacity: capacity.div_ceil(2),
        });
        let pool = Pool {
            shared: Arc::clone(&shared),
        };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let work = Arc::clone(&work);
            thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || run(&shared, &*work))
                .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
        }
        Ok(pool)
    }

    /// Queues `job` in the front lane, or in the back lane when `back`; hands it back when
    /// `capacity` jobs already wait, or half of it in the back lane.
    pub(crate) fn submit(&self, job: J, back: bool) -> Result<(), J> {
        let mut state = self.shared.lock();
        if state.len() >= self.shared.capacity
            || (back && state.back.len() >= self.shared.back_capacity)
        {
            return Err(job);
        }
        if back {
            state.back.push_back(job);
        } else {
            state.front.push_back(job);
        }
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Jobs waiting for a thread now (not those being worked on).
    pub(crate) fn queued(&self) -> usize {
        self.shared.lock().len()
    }
}

impl<J: Send + 'static> Drop for Pool<J> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

fn run<J>(shared: &Shared<J>, work: &(dyn Fn(J) + Send + Sync)) {
    lower_priority();
    loop {
        let mut state = shared.lock();
        let job = loop {
            if let Some(job) = state.front.pop_front().or_else(|| state.back.pop_front()) {
                break job;
            }
            if state.closed {
                return;
            }
            state = shared.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        };
        drop(state);
        work(job);
    }
}

/// Nice 10 for this thread (Linux applies `setpriority` to a thread id); elsewhere, or if
/// refused, the thread keeps the normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            log::debug!("could not lower the priority of a password hashing thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn lanes_full_queue_and_drop_drains() {
        let (entered_tx, entered_rx) = mpsc::channel::<u32>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        let done_tx = Mutex::new(done_tx);
        let work: Arc<dyn Fn(u32) + Send + Sync> = Arc::new(move |n| {
            if n == 0 {
                let _ = entered_tx.send(n);
                let _ = release_rx
                    .lock()
                    .map(|rx| rx.recv_timeout(Duration::from_secs(30)));
            }
            let _ = done_tx.lock().map(|tx| tx.send(n));
        });
        let pool = Pool::start("test-pool", 1, 4, work).expect("threads");
        assert!(pool.submit(0, false).is_ok());
        assert_eq!(entered_rx.recv_timeout(Duration::from_secs(30)), Ok(0));
        // The only thread is held inside job 0. The back lane takes half the queue (2).
        assert!(pool.submit(1, true).is_ok());
        assert!(pool.submit(2, true).is_ok());
        assert_eq!(pool.submit(3, true), Err(3));
        // The front lane takes the rest, then the queue is full for both.
        assert!(pool.submit(4, false).is_ok());
        assert!(pool.submit(5, false).is_ok());
        assert_eq!(pool.queued(), 4);
        assert_eq!(pool.submit(6, false), Err(6));
        assert_eq!(pool.submit(7, true), Err(7));
        drop(pool);
        release_tx.send(()).expect("the job waits");
        // The front lane first, each lane in order; every queued job runs after drop.
        let done: Vec<u32> = (0..5)
            .map(|_| {
                done_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a job ran")
            })
            .collect();
        assert_eq!(done, [0, 4, 5, 1, 2]);
    }
}
