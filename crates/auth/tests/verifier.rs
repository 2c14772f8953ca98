//! The verifier's promises: cheap answers at once and without the callback, every hash on
//! a helper thread, the cache of successes (counted verifications), unknown users costing a
//! verification, `Busy` when the queue is full, answers after the verifier is dropped.
//! Hashes come from the `bcrypt` crate at cost 4 (the format of `htpasswd -B -C 4`), so
//! these tests need no outside tool.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use support::{basic, check_wait, ANSWER_WAIT};
use tether_auth::{AuthResult, Htpasswd, Options, Verifier};

fn file(users: &[(&str, &str)]) -> Arc<Htpasswd> {
    let text: String = users
        .iter()
        .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).expect("bcrypt hash")))
        .collect();
    Arc::new(Htpasswd::parse(&text, "test-users").unwrap_or_else(|e| panic!("{e}")))
}

fn ok(user: &str) -> AuthResult {
    AuthResult::Ok {
        user: user.to_string(),
    }
}

#[test]
fn cheap_answers_come_at_once_without_the_callback() {
    let users = file(&[("alice", "pw")]);
    let verifier = Verifier::new(&Options::default()).expect("verifier");
    let called = Arc::new(AtomicBool::new(false));
    for header in [
        None,
        Some(&b"Bearer abc"[..]),
        Some(b"Basic"),
        Some(b"Basic not*base64"),
        Some(b"Basic YWxpY2U="), // "alice", no colon
    ] {
        let flag = Arc::clone(&called);
        let answer = verifier.check(
            &users,
            header,
            Box::new(move |_| flag.store(true, Ordering::SeqCst)),
        );
        assert_eq!(answer, Some(AuthResult::Denied), "{header:?}");
    }
    assert!(
        !called.load(Ordering::SeqCst),
        "done ran for an at-once answer"
    );
    let stats = verifier.stats();
    assert_eq!(
        (stats.checks, stats.denied, stats.verifications),
        (5, 5, 0),
        "{stats:?}"
    );
}

#[test]
fn hashing_happens_on_a_helper_thread() {
    let users = file(&[("alice", "pw")]);
    let verifier = Verifier::new(&Options::default()).expect("verifier");
    let (tx, rx) = mpsc::channel();
    let answer = verifier.check(
        &users,
        Some(&basic("alice", "wrong")),
        Box::new(move |r| {
            let _ = tx.send((r, std::thread::current().name().map(str::to_string)));
        }),
    );
    assert_eq!(
        answer, None,
        "a wrong password must not be answered on the caller's thread"
    );
    let (result, thread) = rx.recv_timeout(ANSWER_WAIT).expect("an answer");
    assert_eq!(result, AuthResult::Denied);
    let thread = thread.unwrap_or_default();
    assert!(thread.starts_with("tether-auth-"), "answered on {thread:?}");
}

#[test]
fn a_cache_hit_skips_hashing_and_only_successes_are_cached() {
    let users = file(&[("alice", "pw"), ("bob", "pw2")]);
    let verifier = Verifier::new(&Options::default()).expect("verifier");
    let right = basic("alice", "pw");

    assert_eq!(check_wait(&verifier, &users, &right), ok("alice"));
    assert_eq!(verifier.stats().verifications, 1);
    // The same header again: answered at once, no hashing.
    let again = verifier.check(
        &users,
        Some(&right),
        Box::new(|_| panic!("no callback on a hit")),
    );
    assert_eq!(again, Some(ok("alice")));
    let stats = verifier.stats();
    assert_eq!(
        (stats.verifications, stats.cache_hits, stats.cached),
        (1, 1, 1),
        "{stats:?}"
    );

    // Wrong passwords are verified every time.
    for n in 0..3 {
        assert_eq!(
            check_wait(&verifier, &users, &basic("alice", "nope")),
            AuthResult::Denied
        );
        assert_eq!(verifier.stats().verifications, 2 + n);
    }
    // The key is the whole header value: another spelling of the same credentials is a miss.
    let lower = String::from_utf8(right.clone())
        .expect("ascii")
        .replace("Basic", "basic");
    assert_eq!(check_wait(&verifier, &users, lower.as_bytes()), ok("alice"));
    assert_eq!(verifier.stats().verifications, 5);
    // Another file (a reload builds new ones) does not share the success.
    let reloaded = file(&[("alice", "pw")]);
    assert_eq!(check_wait(&verifier, &reloaded, &right), ok("alice"));
    assert_eq!(verifier.stats().verifications, 6);
    // A cache turned off hashes every time.
    let off = Verifier::new(&Options {
        cache_entries: 0,
        ..Options::default()
    })
    .expect("verifier");
    for _ in 0..2 {
        assert_eq!(check_wait(&off, &users, &right), ok("alice"));
    }
    assert_eq!(off.stats().verifications, 2);
}

#[test]
fn an_unknown_user_costs_a_verification_and_is_denied() {
    let users = file(&[("alice", "pw")]);
    let verifier = Verifier::new(&Options::default()).expect("verifier");
    // Even with the password of the entry verified in its place.
    for header in [
        basic("mallory", "pw"),
        basic("mallory", "x"),
        basic("", "pw"),
    ] {
        assert_eq!(check_wait(&verifier, &users, &header), AuthResult::Denied);
    }
    let stats = verifier.stats();
    assert_eq!(
        (stats.verifications, stats.cached, stats.accepted),
        (3, 0, 0),
        "{stats:?}"
    );
}

#[test]
fn busy_when_the_queue_is_full() {
    let users = file(&[("alice", "pw")]);
    let verifier = Verifier::new(&Options {
        threads: 1,
        queue: 1,
        ..Options::default()
    })
    .expect("verifier");
    // Hold the only helper thread inside the first answer's callback.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = verifier.check(
        &users,
        Some(&basic("alice", "a")),
        Box::new(move |r| {
            let _ = entered_tx.send(r);
            let _ = release_rx.recv_timeout(ANSWER_WAIT);
        }),
    );
    assert_eq!(first, None);
    assert_eq!(entered_rx.recv_timeout(ANSWER_WAIT), Ok(AuthResult::Denied));

    let (tx, rx) = mpsc::channel();
    let second = verifier.check(
        &users,
        Some(&basic("alice", "pw")),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    assert_eq!(second, None, "one job fits in the queue");
    let third = verifier.check(
        &users,
        Some(&basic("alice", "b")),
        Box::new(|_| panic!("no callback when busy")),
    );
    assert_eq!(third, Some(AuthResult::Busy));
    let stats = verifier.stats();
    assert_eq!((stats.busy, stats.queued), (1, 1), "{stats:?}");

    release_tx.send(()).expect("the first callback waits");
    assert_eq!(rx.recv_timeout(ANSWER_WAIT), Ok(ok("alice")));
    // Room again.
    assert_eq!(
        check_wait(&verifier, &users, &basic("alice", "c")),
        AuthResult::Denied
    );
}

#[test]
fn answers_still_come_after_the_verifier_is_dropped() {
    let users = file(&[("alice", "pw")]);
    let verifier = Verifier::new(&Options::default()).expect("verifier");
    let (tx, rx) = mpsc::channel();
    for password in ["pw", "no"] {
        let tx = tx.clone();
        let answer = verifier.check(
            &users,
            Some(&basic("alice", password)),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        assert_eq!(answer, None);
    }
    drop(verifier);
    drop(tx);
    let mut got: Vec<AuthResult> = (0..2)
        .map(|_| rx.recv_timeout(ANSWER_WAIT).expect("an answer after drop"))
        .collect();
    got.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(got, [AuthResult::Denied, ok("alice")]);
    // And nothing more: each callback ran once, then was dropped with its sender.
    assert_eq!(
        rx.recv_timeout(ANSWER_WAIT),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
}

#[test]
fn a_user_under_attack_does_not_hold_up_other_logins() {
    let users = file(&[("alice", "pw"), ("bob", "pw2")]);
    let verifier = Verifier::new(&Options {
        threads: 1,
        queue: 4,
        suspect_failures: 3,
        ..Options::default()
    })
    .expect("verifier");
    // Three failures for alice: her name goes to the back lane.
    for _ in 0..3 {
        assert_eq!(
            check_wait(&verifier, &users, &basic("alice", "guess")),
            AuthResult::Denied
        );
    }
    assert_eq!(verifier.stats().back_lane, 0);

    // Hold the only helper thread inside an answer's callback.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let held = verifier.check(
        &users,
        Some(&basic("carol", "x")),
        Box::new(move |r| {
            let _ = entered_tx.send(r);
            let _ = release_rx.recv_timeout(ANSWER_WAIT);
        }),
    );
    assert_eq!(held, None);
    assert_eq!(entered_rx.recv_timeout(ANSWER_WAIT), Ok(AuthResult::Denied));

    let (tx, rx) = mpsc::channel::<(&str, AuthResult)>();
    let send = |label: &'static str| {
        let tx = tx.clone();
        Box::new(move |r| {
            let _ = tx.send((label, r));
        }) as tether_auth::Done
    };
    // More guesses for alice: the back lane holds half the queue (2), then Busy.
    assert_eq!(
        verifier.check(&users, Some(&basic("alice", "g1")), send("guess 1")),
        None
    );
    assert_eq!(
        verifier.check(&users, Some(&basic("alice", "g2")), send("guess 2")),
        None
    );
    assert_eq!(
        verifier.check(&users, Some(&basic("alice", "g3")), send("guess 3")),
        Some(AuthResult::Busy)
    );
    // bob's login queues in front of them.
    assert_eq!(
        verifier.check(&users, Some(&basic("bob", "pw2")), send("bob")),
        None
    );
    let stats = verifier.stats();
    assert_eq!(
        (stats.back_lane, stats.busy, stats.queued),
        (3, 1, 3),
        "{stats:?}"
    );

    release_tx.send(()).expect("the held callback waits");
    let order: Vec<(&str, AuthResult)> = (0..3)
        .map(|_| rx.recv_timeout(ANSWER_WAIT).expect("an answer"))
        .collect();
    assert_eq!(
        order,
        [
            ("bob", ok("bob")),
            ("guess 1", AuthResult::Denied),
            ("guess 2", AuthResult::Denied)
        ]
    );
    // alice's right password still works (from the back lane) and clears her failures.
    assert_eq!(
        check_wait(&verifier, &users, &basic("alice", "pw")),
        ok("alice")
    );
    let before = verifier.stats().back_lane;
    assert_eq!(
        check_wait(&verifier, &users, &basic("alice", "guess")),
        AuthResult::Denied
    );
    assert_eq!(verifier.stats().back_lane, before, "failures were cleared");
}
