//! Draining a core with real loopback sockets: `Handle::drain` closes the listener (a new
//! connection is refused), accepts what was already queued, tells the sessions
//! (`on_drain`), lets an echo session under way finish, and `run` returns once no session is
//! left. A session that ignores the drain is ended by `Handle::stop`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tether_core::{ConnId, Core, Cx, Handle, Session, Sink, Source};

/// Echo until the client's FIN; counts the drains it hears.
struct Echo(Arc<AtomicUsize>);

impl Session for Echo {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        cx.pipe(Source::Conn(client), Sink::Conn(client));
    }

    fn on_drain(&mut self, _cx: &mut Cx<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A core with an echo listener on its own thread; returns when it runs.
fn start() -> (
    SocketAddr,
    Handle,
    Arc<AtomicUsize>,
    std::thread::JoinHandle<std::io::Result<()>>,
) {
    let drains = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let counter = drains.clone();
    let t = std::thread::spawn(move || {
        let mut core = Core::new()?;
        let id = core.listen(
            "127.0.0.1:0".parse().expect("addr"),
            Box::new(move |_| Box::new(Echo(counter.clone()))),
        )?;
        let addr = core.local_addr(id).expect("bound");
        tx.send((addr, core.handle())).expect("send");
        core.run()
    });
    let (addr, handle) = rx.recv().expect("core started");
    (addr, handle, drains, t)
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).expect("write");
    let mut got = vec![0; msg.len()];
    s.read_exact(&mut got).expect("read");
    got
}

#[test]
fn drain_finishes_sessions_then_returns() {
    let (addr, handle, drains, t) = start();
    let mut busy = TcpStream::connect(addr).expect("connect");
    busy.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(echo(&mut busy, b"before"), b"before");

    handle.drain();
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        TcpStream::connect(addr).is_err()
    });
    assert!(refused, "the listener is still open while draining");
    assert_eq!(
        drains.load(Ordering::SeqCst),
        1,
        "on_drain once per session"
    );

    // The session under way goes on until its client is done.
    assert_eq!(echo(&mut busy, b"during the drain"), b"during the drain");
    assert!(!t.is_finished(), "run returned with a session left");
    busy.shutdown(Shutdown::Write).expect("FIN");
    let mut rest = Vec::new();
    busy.read_to_end(&mut rest).expect("EOF");
    assert!(rest.is_empty());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        t.is_finished(),
        "run did not return once no session was left"
    );
    t.join().expect("thread").expect("run ok");
}

#[test]
fn stop_ends_a_drain_that_would_wait() {
    let (addr, handle, _drains, t) = start();
    let mut idle = TcpStream::connect(addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(echo(&mut idle, b"x"), b"x");
    handle.drain();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!t.is_finished(), "an echo session ignores the drain");
    handle.stop();
    t.join().expect("thread").expect("run ok");
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn queued_connections_are_accepted_before_the_close() {
    // Connections queued in the backlog before the loop runs, then a drain: each is
    // accepted and served, not reset by the close of the listener.
    let drains = Arc::new(AtomicUsize::new(0));
    let mut core = Core::new().expect("core");
    let counter = drains.clone();
    let id = core
        .listen(
            "127.0.0.1:0".parse().expect("addr"),
            Box::new(move |_| Box::new(Echo(counter.clone()))),
        )
        .expect("listen");
    let addr = core.local_addr(id).expect("bound");
    let mut queued: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr).expect("queued in the backlog"))
        .collect();
    for s in &mut queued {
        s.write_all(b"hi").expect("write");
        s.shutdown(Shutdown::Write).expect("FIN");
    }
    core.handle().drain();
    // Every queued client already sent its bytes and FIN: run returns once they are echoed.
    core.run().expect("run ok");
    for s in &mut queued {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("answered, not reset");
        assert_eq!(got, b"hi");
    }
    assert_eq!(drains.load(Ordering::SeqCst), 3);
    drop(core);
    assert!(TcpStream::connect(addr).is_err());
}
