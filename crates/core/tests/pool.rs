//! The pool of idle upstream connections, with real sockets: sequential sessions reuse one
//! upstream connection; one the server closed is not reused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ConnId, Core, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};

/// For each client: "ping" to the upstream, its 4-byte answer to the client, then the
/// upstream connection goes back to the pool.
struct Relay {
    upstream: SocketAddr,
    client: Option<ConnId>,
    up: Option<ConnId>,
    answer: Option<PipeId>,
}

impl Session for Relay {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        match cx.connect(self.upstream) {
            Ok(up) => self.up = Some(up),
            Err(_) => cx.close(),
        }
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        let (Some(client), Ok(())) = (self.client, result) else {
            return cx.close();
        };
        let keep = PipeOpts {
            fin: false,
            ..PipeOpts::default()
        };
        let ping = cx.pipe_with(Source::Session, Sink::Conn(up), keep);
        cx.push(ping, Bytes::from_static(b"ping"));
        cx.end(ping);
        let four = PipeOpts {
            limit: Some(4),
            ..PipeOpts::default()
        };
        self.answer = Some(cx.pipe_with(Source::Conn(up), Sink::Conn(client), four));
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if end != PipeEnd::Finished {
            return cx.close();
        }
        if Some(pipe) == self.answer {
            if let Some(up) = self.up {
                cx.park(up);
            }
        }
    }
}

/// An upstream answering each "ping" with "pong"; counts accepted connections. With
/// `close_after_one`, it closes each connection after one answer.
/// Each connection's close is reported on the returned channel.
fn upstream(close_after_one: bool) -> (SocketAddr, Arc<AtomicUsize>, mpsc::Receiver<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (closed_tx, closed) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().take(32) {
            let Ok(mut s) = s else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let closed_tx = closed_tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(b"pong").is_err() || close_after_one {
                        break;
                    }
                }
                drop(s);
                let _ = closed_tx.send(());
            });
        }
    });
    (addr, accepted, closed)
}

/// A core whose listener (on a free loopback port) relays to `upstream`.
fn relay_core(upstream: SocketAddr) -> (Core, SocketAddr) {
    let mut core = Core::new().expect("core");
    let factory = Box::new(move |_: &tether_core::Accepted| -> Box<dyn Session> {
        Box::new(Relay {
            upstream,
            client: None,
            up: None,
            answer: None,
        })
    });
    let l = core
        .listen("127.0.0.1:0".parse().unwrap(), factory)
        .expect("listen");
    let addr = core.local_addr(l).expect("addr");
    (core, addr)
}

/// `relay_core` running on its own thread; returns its address.
fn proxy(upstream: SocketAddr) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut core, addr) = relay_core(upstream);
        tx.send(addr).expect("send");
        core.run().expect("run");
    });
    rx.recv().expect("proxy address")
}

fn ask(proxy: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("answer then EOF");
    got
}

#[test]
fn sequential_sessions_reuse_one_upstream_connection() {
    let (up, accepted, _) = upstream(false);
    let p = proxy(up);
    for _ in 0..5 {
        assert_eq!(ask(p), b"pong");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_connection_the_server_closed_is_not_reused() {
    let (up, accepted, closed) = upstream(true);
    let p = proxy(up);
    for _ in 0..3 {
        assert_eq!(ask(p), b"pong");
        // The server has closed that connection before the next request is made.
        closed
            .recv_timeout(Duration::from_secs(5))
            .expect("server closed");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn reuse_leaves_no_timer_behind() {
    let (up, accepted, _) = upstream(false);
    let (mut core, addr) = relay_core(up);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let client = std::thread::spawn(move || {
        let answers: Vec<Vec<u8>> = (0..50).map(|_| ask(addr)).collect();
        done2.store(true, Ordering::SeqCst);
        answers
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        core.turn(Some(Duration::from_millis(10))).expect("turn");
    }
    // Let the last session finish.
    for _ in 0..20 {
        core.turn(Some(Duration::from_millis(5))).expect("turn");
    }
    let answers = client.join().expect("client");
    assert!(answers.iter().all(|a| a == b"pong"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(core.pooled(), 1);
    // One idle deadline for the one pooled connection, not one per request.
    assert_eq!(core.timers(), 1, "timers left armed after 50 reuses");
}

/// Turn `core` until `until` holds or `limit` passes; true if it held.
fn turn_until(core: &mut Core, limit: Duration, mut until: impl FnMut(&Core) -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if until(core) {
            return true;
        }
        core.turn(Some(Duration::from_millis(5))).expect("turn");
    }
    until(core)
}

/// Ask `addr` from another thread while `core` turns; the answer.
fn ask_through(core: &mut Core, addr: SocketAddr) -> Vec<u8> {
    let client = std::thread::spawn(move || ask(addr));
    while !client.is_finished() {
        core.turn(Some(Duration::from_millis(5))).expect("turn");
    }
    let answer = client.join().expect("client");
    // Let the session finish and park its upstream connection.
    turn_until(core, Duration::from_secs(5), |c| c.pooled() == 1);
    answer
}

#[test]
fn the_idle_deadline_counts_from_the_last_park() {
    let idle = Duration::from_millis(400);
    let (up, accepted, _) = upstream(false);
    let (mut core, addr) = relay_core(up);
    core.set_pool(4, idle);
    assert_eq!(ask_through(&mut core, addr), b"pong");
    let first_park = std::time::Instant::now();
    // Reuse it (and park it again) well before the first deadline.
    std::thread::sleep(idle / 2);
    // The second park happens after this instant.
    let second_park = std::time::Instant::now();
    assert_eq!(ask_through(&mut core, addr), b"pong");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "reused");
    assert_eq!(
        core.timers(),
        1,
        "one idle deadline, moved, not a second one"
    );
    // Past the first park's deadline: still pooled, the deadline moved with the second park.
    let past_first = first_park + idle + idle / 8;
    while std::time::Instant::now() < past_first {
        core.turn(Some(Duration::from_millis(5))).expect("turn");
    }
    if second_park.elapsed() < idle {
        assert_eq!(
            core.pooled(),
            1,
            "dropped before its idle time since the last park"
        );
    }
    // Then it goes, with its timer.
    let gone = turn_until(&mut core, idle * 4, |c| c.pooled() == 0);
    assert!(gone, "the idle connection was never dropped");
    assert!(second_park.elapsed() >= idle);
    assert_eq!(core.timers(), 0);
    assert_eq!(core.connections(), 0);
}
