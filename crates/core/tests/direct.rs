//! `Cx::write_now` and `Cx::read_now` with real loopback sockets: a message read straight
//! from a watched connection, an answer written straight until the socket is full and the
//! rest through a pipe (every byte arrives, in order), the end of the stream seen by a
//! straight read, and no straight read of a connection a pipe reads.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ConnId, Core, Cx, ReadNow, Session, Sink, Source};

/// What the session saw, for the test to check.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Bytes written straight, bytes left to a pipe.
    Answered {
        straight: usize,
        piped: usize,
    },
    Eof,
    /// `read_now` on a connection a pipe reads.
    PipedRead(bool),
}

/// Reads a decimal count of KiB straight, answers that many KiB (byte `i` is `i % 251`)
/// straight as far as the socket takes them, the rest through a pipe.
struct Straight {
    seen: mpsc::Sender<Seen>,
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

impl Session for Straight {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        cx.watch_readable(client);
    }

    fn on_conn_readable(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        let b = match cx.read_now(client) {
            ReadNow::Data(b) => b,
            ReadNow::Nothing => {
                cx.watch_readable(client);
                return;
            }
            ReadNow::Eof => {
                let _ = self.seen.send(Seen::Eof);
                return cx.close();
            }
            other => panic!("read_now: {other:?}"),
        };
        let kib: usize = std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let all = Bytes::from(pattern(kib * 1024));
        let rest = cx.write_now(client, all.clone());
        let straight = all.len() - rest.len();
        let piped = rest.len();
        if !rest.is_empty() {
            let p = cx.pipe(Source::Session, Sink::Conn(client));
            cx.push(p, rest);
            cx.end(p);
            // A pipe writes the connection now: a straight write would jump the queue, so
            // it writes nothing.
            let more = cx.write_now(client, Bytes::from_static(b"x"));
            assert_eq!(more.len(), 1, "no straight write past a pipe");
            // And a pipe reading it: no straight read either.
            let r = cx.pipe(Source::Conn(client), Sink::Discard);
            let piped_read = matches!(cx.read_now(client), ReadNow::Unsupported);
            cx.close_pipe(r);
            let _ = self.seen.send(Seen::PipedRead(piped_read));
        } else {
            cx.watch_readable(client);
        }
        let _ = self.seen.send(Seen::Answered { straight, piped });
    }
}

fn start() -> (SocketAddr, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut core = Core::new().expect("core");
        let l = core
            .listen(
                "127.0.0.1:0".parse().expect("addr"),
                Box::new(move |_| Box::new(Straight { seen: tx.clone() })),
            )
            .expect("listen");
        atx.send(core.local_addr(l).expect("addr"))
            .expect("send addr");
        core.run().expect("run");
    });
    (arx.recv().expect("address"), rx)
}

fn next(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the session said nothing")
}

#[test]
fn a_small_answer_goes_straight_and_the_end_is_seen() {
    let (addr, rx) = start();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    for _ in 0..3 {
        s.write_all(b"4").expect("ask");
        let mut got = vec![0u8; 4096];
        s.read_exact(&mut got).expect("answer");
        assert_eq!(got, pattern(4096));
        assert_eq!(
            next(&rx),
            Seen::Answered {
                straight: 4096,
                piped: 0
            }
        );
    }
    s.shutdown(Shutdown::Write).expect("FIN");
    assert_eq!(next(&rx), Seen::Eof);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("close");
    assert!(rest.is_empty());
}

#[test]
fn an_answer_the_socket_cannot_take_goes_on_through_a_pipe() {
    let (addr, rx) = start();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    // 32 MiB: more than loopback's socket buffers hold, read only once it is all written.
    let kib = 32 * 1024;
    s.write_all(kib.to_string().as_bytes()).expect("ask");
    assert_eq!(next(&rx), Seen::PipedRead(true));
    let Seen::Answered { straight, piped } = next(&rx) else {
        panic!("no answer")
    };
    assert!(
        straight > 0 && piped > 0,
        "{straight} straight, {piped} piped"
    );
    assert_eq!(straight + piped, kib * 1024);
    let mut got = vec![0u8; kib * 1024];
    s.read_exact(&mut got).expect("the whole answer");
    assert!(got == pattern(kib * 1024), "bytes lost or out of order");
}
