//! Sessions that start other sessions on the loop (`Cx::spawn`) and wake them
//! (`Cx::wake`): what a multiplexer shared by many sessions needs. A wake is queued like
//! every notice (delivered after the current callback, never inside it), a wake of a gone
//! session says so (as `Cx::alive` does, without waking), and a spawned session lives
//! until it is done.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tether_core::{ConnId, Core, Cx, Session, SessionId};

type Log = Rc<RefCell<Vec<String>>>;

/// Spawned by `Parent`: records its wakes, wakes its parent back, ends on key 3.
struct Child {
    log: Log,
    parent: SessionId,
    done: bool,
}

impl Session for Child {
    fn on_start(&mut self, cx: &mut Cx<'_>, _client: ConnId) {
        cx.close();
    }

    fn on_spawn(&mut self, _cx: &mut Cx<'_>) {
        self.log.borrow_mut().push("child spawned".into());
    }

    fn on_wake(&mut self, cx: &mut Cx<'_>, key: u64) {
        self.log.borrow_mut().push(format!("child woken {key}"));
        if key > 3 {
            return;
        }
        let back = cx.wake(self.parent, 100 + key);
        self.log.borrow_mut().push(format!("parent there {back}"));
        self.done = key == 3;
    }

    fn is_done(&self, _cx: &Cx<'_>) -> bool {
        self.done
    }
}

/// Spawns a child, wakes it with 1, 2, 3 (one per wake back), then checks that a wake of
/// the ended child fails.
struct Parent {
    log: Log,
    child: Option<SessionId>,
    done: bool,
}

impl Session for Parent {
    fn on_start(&mut self, cx: &mut Cx<'_>, _client: ConnId) {
        cx.close();
    }

    fn on_spawn(&mut self, cx: &mut Cx<'_>) {
        let child = cx.spawn(Box::new(Child {
            log: self.log.clone(),
            parent: cx.id(),
            done: false,
        }));
        assert_ne!(child, cx.id());
        self.child = Some(child);
        assert!(cx.alive(child) && cx.alive(cx.id()));
        let queued = cx.wake(child, 1);
        // Queued, not called: the child has not run yet.
        self.log.borrow_mut().push(format!("woke child {queued}"));
    }

    fn on_wake(&mut self, cx: &mut Cx<'_>, key: u64) {
        self.log.borrow_mut().push(format!("parent woken {key}"));
        let Some(child) = self.child else { return };
        match key {
            101 | 102 => {
                cx.wake(child, key - 99);
            }
            _ => {
                // The child is freed once the queue is settled: look on a later turn.
                cx.set_timer(Duration::from_millis(1), 7);
            }
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, _key: u64) {
        let Some(child) = self.child else { return };
        let alive = cx.alive(child);
        let gone = !cx.wake(child, 9);
        self.log
            .borrow_mut()
            .push(format!("child gone {gone}, alive {alive}"));
        self.done = true;
    }

    fn is_done(&self, _cx: &Cx<'_>) -> bool {
        self.done
    }
}

#[test]
fn a_session_spawns_and_wakes_another_through_the_queue() {
    let mut core = Core::new().expect("core");
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    core.spawn(Box::new(Parent {
        log: log.clone(),
        child: None,
        done: false,
    }));
    let deadline = Instant::now() + Duration::from_secs(5);
    while core.sessions() > 0 && Instant::now() < deadline {
        core.turn(Some(Duration::from_millis(20))).expect("turn");
    }
    let log = log.borrow().clone();
    assert_eq!(
        &log[..9],
        &[
            "child spawned",
            "woke child true",
            "child woken 1",
            "parent there true",
            "parent woken 101",
            "child woken 2",
            "parent there true",
            "parent woken 102",
            "child woken 3",
        ],
        "{log:?}"
    );
    assert!(
        log.contains(&"child gone true, alive false".to_string()),
        "{log:?}"
    );
    assert_eq!(core.sessions(), 0, "both freed once done");
}
