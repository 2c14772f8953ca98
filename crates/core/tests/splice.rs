//! Socket-to-socket pipes moving streams large enough to go through a kernel pipe
//! (`splice(2)`, `crates/core/src/pipe.rs`): every byte arrives, in order, after what the
//! session pushed first; a limited pipe stops exactly at its limit (the bytes after it stay
//! in the socket for the next pipe); FINs pass in both directions.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ConnId, Core, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};

/// Deterministic bytes that are not a repeating short pattern.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What the session does once the upstream is connected.
#[derive(Clone, Copy)]
enum Mode {
    /// `HEAD:` then the first `limit` client bytes to the upstream (FIN after them); then
    /// the rest of the client's bytes to the session, reported on `rest`.
    Limited(u64),
    /// Both ways until each side's FIN.
    Tunnel,
}

struct Forward {
    mode: Mode,
    upstream: SocketAddr,
    client: Option<ConnId>,
    limited: Option<PipeId>,
    rest: Option<PipeId>,
    got: Vec<u8>,
    report: mpsc::Sender<Vec<u8>>,
}

impl Session for Forward {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        if cx.connect(self.upstream).is_err() {
            cx.close();
        }
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: std::io::Result<()>) {
        let (Some(client), Ok(())) = (self.client, result) else {
            return cx.close();
        };
        match self.mode {
            Mode::Limited(n) => {
                let opts = PipeOpts {
                    limit: Some(n),
                    ..PipeOpts::default()
                };
                let p = cx.pipe_with(Source::Conn(client), Sink::Conn(up), opts);
                cx.push(p, Bytes::from_static(b"HEAD:"));
                self.limited = Some(p);
            }
            Mode::Tunnel => {
                cx.pipe(Source::Conn(client), Sink::Conn(up));
                cx.pipe(Source::Conn(up), Sink::Conn(client));
            }
        }
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        while let Some(b) = cx.take(pipe) {
            self.got.extend_from_slice(&b);
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        assert_eq!(end, PipeEnd::Finished, "a pipe failed");
        if Some(pipe) == self.limited {
            if let Some(client) = self.client {
                self.rest = Some(cx.pipe(Source::Conn(client), Sink::Session));
            }
        } else if Some(pipe) == self.rest {
            let _ = self.report.send(std::mem::take(&mut self.got));
        }
    }
}

/// A core relaying to `upstream` in `mode`, on its own thread; its address and the channel
/// on which the session reports what it kept.
fn relay(upstream: SocketAddr, mode: Mode) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut core = Core::new().expect("core");
        let factory = Box::new(move |_: &tether_core::Accepted| -> Box<dyn Session> {
            Box::new(Forward {
                mode,
                upstream,
                client: None,
                limited: None,
                rest: None,
                got: Vec::new(),
                report: tx.clone(),
            })
        });
        let l = core
            .listen("127.0.0.1:0".parse().unwrap(), factory)
            .expect("listen");
        atx.send(core.local_addr(l).expect("addr")).expect("send");
        core.run().expect("run");
    });
    (arx.recv().expect("address"), rx)
}

/// An upstream that takes one connection and hands it to `serve` on a thread.
fn upstream(serve: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            serve(s);
        }
    });
    addr
}

#[test]
fn a_limited_stream_arrives_whole_and_stops_at_its_limit() {
    let body = noise(24 * 1024 * 1024 + 12_345, 7);
    let (utx, urx) = mpsc::channel();
    let up = upstream(move |mut s| {
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let _ = utx.send(got);
    });
    let (addr, kept) = relay(up, Mode::Limited(body.len() as u64));
    let mut c = TcpStream::connect(addr).expect("connect");
    let mut all = body.clone();
    all.extend_from_slice(b"TAIL");
    c.write_all(&all).expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    let got = urx.recv_timeout(Duration::from_secs(30)).expect("upstream");
    assert_eq!(got.len(), body.len() + 5);
    assert!(
        got[..5] == *b"HEAD:" && got[5..] == body[..],
        "bytes differ"
    );
    let rest = kept.recv_timeout(Duration::from_secs(10)).expect("rest");
    assert_eq!(rest, b"TAIL");
}

#[test]
fn a_tunnel_carries_big_streams_both_ways_and_their_fins() {
    let up = upstream(|mut s| {
        // Echo until EOF, then close.
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let (addr, _) = relay(up, Mode::Tunnel);
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = noise(32 * 1024 * 1024, 11);
    let mut w = c.try_clone().expect("clone");
    let sent = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).expect("write");
        w.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut back = Vec::with_capacity(body.len());
    (&c).read_to_end(&mut back).expect("echo then EOF");
    writer.join().expect("writer");
    assert_eq!(back.len(), body.len());
    assert!(back == body, "echoed bytes differ");
}
