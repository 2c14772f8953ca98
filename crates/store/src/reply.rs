//! An answer owed to a caller ([`Reply`]) and the timer thread that bounds how long it
//! waits ([`Timer`]).
//!
//! A `lookup` or `limit` that needs Redis is answered by the writer thread, which may be
//! stuck in a read on a server that stopped answering. So each such callback sits in a
//! shared slot that two parties may empty: the writer with the real answer, or the timer
//! with `Down` once the deadline passes. Whoever comes first calls it; the other finds the
//! slot empty. Callbacks never run under a lock, and a panic in one is logged.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::limit::LimitAnswer;
use crate::Lookup;

/// An answer type with a "could not ask" value, given when the deadline passes.
pub(crate) trait Unanswered: Send + 'static {
    fn down() -> Self;
}

impl Unanswered for Lookup {
    fn down() -> Self {
        Lookup::Down
    }
}

impl Unanswered for LimitAnswer {
    fn down() -> Self {
        LimitAnswer::Down
    }
}

type Callback<T> = Box<dyn FnOnce(T) + Send>;
type Slot<T> = Arc<Mutex<Option<Callback<T>>>>;

/// A callback owed exactly one answer, by [`Reply::answer`] or by its deadline.
pub(crate) struct Reply<T> {
    slot: Slot<T>,
}

impl<T: Unanswered> Reply<T> {
    /// Wraps `done`, and has `timer` answer it `T::down()` at `deadline` unless answered.
    pub(crate) fn new(done: Callback<T>, timer: &Timer, deadline: Instant) -> Reply<T> {
        let slot: Slot<T> = Arc::new(Mutex::new(Some(done)));
        let late = Arc::clone(&slot);
        timer.at(deadline, Box::new(move || fire(&late, T::down())));
        Reply { slot }
    }

    /// Gives the answer, unless the deadline already gave `Down`.
    pub(crate) fn answer(self, answer: T) {
        fire(&self.slot, answer);
    }
}

fn fire<T>(slot: &Mutex<Option<Callback<T>>>, answer: T) {
    let done = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(done) = done {
        if catch_unwind(AssertUnwindSafe(move || done(answer))).is_err() {
            log::error!("a store callback panicked");
        }
    }
}

/// Something to run at a time.
struct Due {
    at: Instant,
    seq: u64,
    run: Box<dyn FnOnce() + Send>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
    stopped: bool,
}

/// Deadlines, run by one thread ([`Timer::run`]).
#[derive(Default)]
pub(crate) struct Timer {
    timers: Mutex<Timers>,
    changed: Condvar,
}

impl Timer {
    /// Runs `f` on the timer thread at `at` (at once if the timer is stopped).
    fn at(&self, at: Instant, run: Box<dyn FnOnce() + Send>) {
        let mut t = self.lock();
        if t.stopped {
            drop(t);
            return run();
        }
        t.seq += 1;
        let seq = t.seq;
        let earliest = match t.heap.peek() {
            Some(Reverse(d)) => at < d.at,
            None => true,
        };
        t.heap.push(Reverse(Due { at, seq, run }));
        drop(t);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// The thread's body: runs what is due until [`Timer::stop`], then runs the rest.
    pub(crate) fn run(&self) {
        loop {
            let mut due = Vec::new();
            let mut t = self.lock();
            let now = Instant::now();
            while t
                .heap
                .peek()
                .is_some_and(|Reverse(d)| d.at <= now || t.stopped)
            {
                if let Some(Reverse(d)) = t.heap.pop() {
                    due.push(d.run);
                }
            }
            if due.is_empty() {
                if t.stopped {
                    return;
                }
                let next = t.heap.peek().map(|Reverse(d)| d.at);
                match next {
                    Some(at) => {
                        let left = at.saturating_duration_since(now);
                        drop(self.changed.wait_timeout(t, left));
                    }
                    None => drop(self.changed.wait(t)),
                }
                continue;
            }
            drop(t);
            for run in due {
                run();
            }
        }
    }

    /// Ends [`Timer::run`] after it runs every pending deadline at once.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn answered_once_by_whoever_comes_first() {
        let timer = Arc::new(Timer::default());
        let t = Arc::clone(&timer);
        let thread = std::thread::spawn(move || t.run());
        let (tx, rx) = mpsc::channel();
        let soon = Instant::now() + Duration::from_millis(30);
        let tx1 = tx.clone();
        let r1 = Reply::<Lookup>::new(Box::new(move |a| drop(tx1.send((1, a)))), &timer, soon);
        let tx2 = tx.clone();
        let r2 = Reply::<Lookup>::new(Box::new(move |a| drop(tx2.send((2, a)))), &timer, soon);
        r1.answer(Lookup::Missing);
        let wait = Duration::from_secs(2);
        assert_eq!(rx.recv_timeout(wait), Ok((1, Lookup::Missing)));
        let started = Instant::now();
        assert_eq!(rx.recv_timeout(wait), Ok((2, Lookup::Down)), "the deadline");
        assert!(started.elapsed() < Duration::from_millis(500));
        r2.answer(Lookup::Found("late".into()));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "once");

        let far = Instant::now() + Duration::from_secs(3600);
        let _r3 = Reply::<Lookup>::new(Box::new(move |a| drop(tx.send((3, a)))), &timer, far);
        timer.stop();
        assert_eq!(
            rx.recv_timeout(wait),
            Ok((3, Lookup::Down)),
            "stop runs all"
        );
        thread.join().expect("timer thread");
    }
}
