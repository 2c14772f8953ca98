//! Sessions without a client (`Core::spawn`) and wake-ups from other threads
//! (`Cx::remote`, `Remote::wake`), with the real loop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_core::{ConnId, Core, Cx, Session};

/// Hands its remote to a thread that wakes it three times; records the keys; ends after
/// the third.
struct Woken {
    seen: Arc<Mutex<Vec<u64>>>,
    done: bool,
}

impl Session for Woken {
    fn on_start(&mut self, cx: &mut Cx<'_>, _client: ConnId) {
        cx.close();
    }

    fn on_spawn(&mut self, cx: &mut Cx<'_>) {
        let remote = cx.remote().expect("a core has a waker");
        std::thread::spawn(move || {
            for key in [7, 8, 9] {
                std::thread::sleep(Duration::from_millis(5));
                remote.wake(key);
            }
        });
    }

    fn on_wake(&mut self, _cx: &mut Cx<'_>, key: u64) {
        let mut seen = self.seen.lock().expect("lock");
        seen.push(key);
        self.done = seen.len() == 3;
    }

    fn is_done(&self, _cx: &Cx<'_>) -> bool {
        self.done
    }
}

#[test]
fn a_spawned_session_is_woken_from_another_thread_in_order() {
    let mut core = Core::new().expect("core");
    let seen = Arc::new(Mutex::new(Vec::new()));
    core.spawn(Box::new(Woken {
        seen: seen.clone(),
        done: false,
    }));
    assert_eq!(
        core.sessions(),
        1,
        "a spawned session lives until it is done"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while core.sessions() > 0 && Instant::now() < deadline {
        core.turn(Some(Duration::from_millis(50))).expect("turn");
    }
    assert_eq!(*seen.lock().expect("lock"), vec![7, 8, 9]);
    assert_eq!(core.sessions(), 0, "freed once done");
}

/// A remote kept after its session ended wakes nothing (and does not panic).
struct Quick {
    keep: Arc<Mutex<Option<tether_core::Remote>>>,
}

impl Session for Quick {
    fn on_start(&mut self, cx: &mut Cx<'_>, _client: ConnId) {
        cx.close();
    }
    fn on_spawn(&mut self, cx: &mut Cx<'_>) {
        *self.keep.lock().expect("lock") = cx.remote();
    }
    fn on_wake(&mut self, _cx: &mut Cx<'_>, _key: u64) {
        panic!("woken after it ended");
    }
}

#[test]
fn a_remote_of_an_ended_session_is_ignored() {
    let mut core = Core::new().expect("core");
    let keep = Arc::new(Mutex::new(None));
    core.spawn(Box::new(Quick { keep: keep.clone() }));
    // No pipe, no connect: done at once.
    assert_eq!(core.sessions(), 0);
    let remote = keep.lock().expect("lock").take().expect("remote");
    remote.wake(1);
    core.turn(Some(Duration::from_millis(50))).expect("turn");
    assert_eq!(core.sessions(), 0);
}
