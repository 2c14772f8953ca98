//! What the core holds for a connection while nothing moves: a file response to a client
//! that does not read it stays in the file (sendfile), not in the pipe's buffer; and a
//! connection watched between requests (`Cx::watch_readable`) needs no pipe, keeps its
//! session alive and wakes it when the client sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ConnId, Core, Cx, PipeEnd, PipeId, PipeOpts, Session, Sink, Source};

/// Bytes of the file sent: far more than the socket buffers of both ends hold.
const FILE_LEN: u64 = 32 << 20;
const HEAD: &[u8] = b"HEAD\n";

/// Sends a head and then a large file; reports what its pipe buffers once the client has
/// stopped taking bytes.
struct SendFile {
    path: std::path::PathBuf,
    pipe: Option<PipeId>,
    report: mpsc::Sender<(usize, bool)>,
}

impl Session for SendFile {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        let Ok(file) = std::fs::File::open(&self.path) else {
            return cx.close();
        };
        let p = cx.pipe(Source::file(file), Sink::Conn(client));
        cx.push(p, Bytes::from_static(HEAD));
        self.pipe = Some(p);
        cx.set_timer(Duration::from_millis(500), 1);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, _key: u64) {
        if let Some(p) = self.pipe {
            let _ = self.report.send((cx.buffered(p), cx.pipe_open(p)));
        }
    }
}

fn serve(make: impl Fn() -> Box<dyn Session> + Send + 'static) -> SocketAddr {
    let (atx, arx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut core = Core::new().expect("core");
        let l = core
            .listen("127.0.0.1:0".parse().unwrap(), Box::new(move |_| make()))
            .expect("listen");
        atx.send(core.local_addr(l).expect("addr"))
            .expect("send addr");
        core.run().expect("run");
    });
    arx.recv().expect("address")
}

#[test]
fn a_file_the_client_does_not_read_is_not_buffered() {
    let dir = std::env::temp_dir().join(format!("tether-held-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.bin");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(FILE_LEN))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    let addr = serve(move || {
        Box::new(SendFile {
            path: p.clone(),
            pipe: None,
            report: tx.clone(),
        })
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    // The client reads nothing until the session has looked at its pipe.
    let (buffered, open) = rx.recv_timeout(Duration::from_secs(5)).expect("report");
    assert!(open, "the response cannot be over: the client read nothing");
    assert_eq!(buffered, 0, "bytes of the file held in the pipe's buffer");
    // All of it still arrives, in order.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to EOF");
    assert_eq!(got.len() as u64, HEAD.len() as u64 + FILE_LEN);
    assert_eq!(&got[..HEAD.len()], HEAD);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Echoes each line, and between lines holds no pipe: it watches the connection.
struct Watcher {
    client: Option<ConnId>,
    reader: Option<PipeId>,
    report: mpsc::Sender<(usize, bool)>,
}

impl Session for Watcher {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        let watching = cx.watch_readable(client);
        let _ = self.report.send((cx.open_pipes(), watching));
    }

    fn on_conn_readable(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        if self.client == Some(conn) {
            self.reader = Some(cx.pipe(Source::Conn(conn), Sink::Session));
        }
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        let Some(client) = self.client else { return };
        let mut line = Vec::new();
        while let Some(b) = cx.take(pipe) {
            line.extend_from_slice(&b);
        }
        // Back to watching, with no pipe, then answer.
        cx.close_pipe(pipe);
        self.reader = None;
        let watching = cx.watch_readable(client);
        let opts = PipeOpts {
            fin: false,
            ..PipeOpts::default()
        };
        let reply = cx.pipe_with(Source::Session, Sink::Conn(client), opts);
        cx.push(reply, Bytes::from(line));
        cx.end(reply);
        let _ = self.report.send((cx.open_pipes(), watching));
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if Some(pipe) == self.reader || end != PipeEnd::Finished {
            cx.close(); // the client's FIN (or an error)
        }
    }
}

#[test]
fn a_watched_connection_holds_no_pipe_and_wakes_its_session() {
    let (tx, rx) = mpsc::channel();
    let addr = serve(move || {
        Box::new(Watcher {
            client: None,
            reader: None,
            report: tx.clone(),
        })
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Duration::from_secs(5);
    assert_eq!(rx.recv_timeout(t), Ok((0, true)), "watching, no pipe");
    // Silent for a while: the session, with no pipe, is not freed; each line wakes it.
    for line in [&b"one\n"[..], b"two\n"] {
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(line).unwrap();
        assert_eq!(rx.recv_timeout(t), Ok((1, true)), "the reply pipe only");
        let mut got = [0u8; 4];
        s.read_exact(&mut got).expect("reply");
        assert_eq!(&got[..], line);
    }
    // The client's FIN wakes it too: it closes the connection.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("closed by the session");
    assert!(rest.is_empty());
}
