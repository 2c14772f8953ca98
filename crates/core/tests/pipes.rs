//! The core with real loopback sockets: limited pipes (a message on a connection that
//! carries more), re-attaching a connection to new pipes, and an early end of a limited
//! source.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ConnId, Core, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};

/// Echo the first 5 bytes as they are (no FIN), then upper-case the rest through the session.
struct Framed {
    client: Option<ConnId>,
    first: Option<PipeId>,
    reply: Option<PipeId>,
    ends: mpsc::Sender<PipeEnd>,
}

impl Session for Framed {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        let opts = PipeOpts {
            limit: Some(5),
            fin: false,
            ..PipeOpts::default()
        };
        self.first = Some(cx.pipe_with(Source::Conn(client), Sink::Conn(client), opts));
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        while let Some(b) = cx.take(pipe) {
            if let Some(r) = self.reply {
                cx.push(r, Bytes::from(b.to_ascii_uppercase()));
            }
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        let _ = self.ends.send(end);
        let Some(client) = self.client else { return };
        if Some(pipe) == self.first {
            if end != PipeEnd::Finished {
                return cx.close();
            }
            // The connection is free again: wire it anew.
            cx.pipe(Source::Conn(client), Sink::Session);
            self.reply = Some(cx.pipe(Source::Session, Sink::Conn(client)));
        } else if Some(pipe) != self.reply {
            if let Some(r) = self.reply {
                cx.end(r);
            }
        }
    }
}

fn start() -> (SocketAddr, mpsc::Receiver<PipeEnd>) {
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut core = Core::new().expect("core");
        let tx2 = tx.clone();
        let l = core
            .listen(
                "127.0.0.1:0".parse().unwrap(),
                Box::new(move |_| {
                    Box::new(Framed {
                        client: None,
                        first: None,
                        reply: None,
                        ends: tx2.clone(),
                    })
                }),
            )
            .expect("listen");
        atx.send(core.local_addr(l).expect("addr"))
            .expect("send addr");
        core.run().expect("run");
    });
    (arx.recv().expect("address"), rx)
}

#[test]
fn limited_pipe_stops_at_the_boundary_without_fin() {
    let (addr, ends) = start();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"helloworld").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to EOF");
    assert_eq!(got, b"helloWORLD");
    assert_eq!(
        ends.recv_timeout(Duration::from_secs(5)),
        Ok(PipeEnd::Finished)
    );
}

#[test]
fn limited_source_ending_early_is_an_error() {
    let (addr, ends) = start();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"hi").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got); // EOF or reset: the session is closed
    assert_eq!(got, b"hi");
    assert_eq!(
        ends.recv_timeout(Duration::from_secs(5)),
        Ok(PipeEnd::SourceError(std::io::ErrorKind::UnexpectedEof))
    );
}
