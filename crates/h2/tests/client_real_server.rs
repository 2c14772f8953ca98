//! tether-h2's client against a real HTTP/2 server: Python's `h2` package
//! (`tests/h2_server.py`, h2c with prior knowledge) over a plain `std` TcpStream. A reader
//! thread drains the socket into a channel so neither side can block the other; every wait
//! is bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_h2::{ClientConn, ClientEvent, ClientSettings, RequestError, StreamId};

const WAIT: Duration = Duration::from_secs(30);

/// The Python server, killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(max_streams: u32) -> (Server, u16) {
    start_server_with(max_streams, &[])
}

fn start_server_with(max_streams: u32, tls: &[&Path]) -> (Server, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2_server.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(max_streams.to_string())
        .args(tls)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with the h2 package (scripts/setup.sh installs it)");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server's port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from h2_server.py (is `h2` installed?): {line:?}"));
    (server, port)
}

type Trailers = Vec<(&'static [u8], &'static [u8])>;

/// One client connection, driven the way the loop would drive it.
struct Client {
    conn: ClientConn,
    sock: TcpStream,
    rx: Receiver<Vec<u8>>,
    events: Vec<ClientEvent>,
    /// Request bodies still to send: (rest, trailers after it).
    uploads: HashMap<StreamId, (Bytes, Option<Trailers>)>,
    /// Largest single send_data, to see the windows at work.
    largest_send: usize,
}

impl Client {
    fn connect(port: u16, settings: ClientSettings) -> Client {
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_nodelay(true).expect("nodelay");
        let mut reader = sock.try_clone().expect("clone");
        reader.set_read_timeout(Some(WAIT)).expect("timeout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Client {
            conn: ClientConn::new(settings),
            sock,
            rx,
            events: Vec::new(),
            uploads: HashMap::new(),
            largest_send: 0,
        }
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&[u8], &[u8])],
        body: Option<Bytes>,
        trailers: Option<Trailers>,
    ) -> Result<StreamId, RequestError> {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", method.as_bytes()),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
            (b":path", path.as_bytes()),
        ];
        fields.extend_from_slice(extra);
        let id = self.conn.send_request(&fields, body.is_none())?;
        if let Some(body) = body {
            self.uploads.insert(id, (body, trailers));
        }
        Ok(id)
    }

    /// Send what the windows allow of every upload; trailers once a body is out.
    fn push_uploads(&mut self) {
        let ids: Vec<StreamId> = self.uploads.keys().copied().collect();
        for id in ids {
            let Some((mut rest, trailers)) = self.uploads.remove(&id) else {
                continue;
            };
            let end = trailers.is_none();
            let sent = self.conn.send_data(id, &mut rest, end).expect("send_data");
            self.largest_send = self.largest_send.max(sent);
            if !rest.is_empty() {
                self.uploads.insert(id, (rest, trailers));
            } else if let Some(t) = trailers {
                self.conn.send_trailers(id, &t).expect("trailers");
            }
        }
    }

    /// Drive the connection until `done` says so (bounded by WAIT).
    fn until(&mut self, what: &str, done: impl Fn(&Client) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.push_uploads();
            for b in self.conn.take_output() {
                self.sock.write_all(&b).expect("write");
            }
            if done(self) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("waiting for {what}: {:?}", self.events));
            for e in self.conn.receive(&chunk) {
                if let ClientEvent::Data { id, bytes, .. } = &e {
                    // The caller passed the bytes on at once.
                    self.conn.consumed(*id, bytes.len());
                }
                assert!(
                    !matches!(e, ClientEvent::Error(_)),
                    "connection error: {e:?}"
                );
                self.events.push(e);
            }
        }
    }

    /// A stream's response: status, fields, body, trailers; None until it ended.
    fn response(&self, id: StreamId) -> Option<Response> {
        let mut r = Response::default();
        let mut ended = false;
        for e in &self.events {
            match e {
                ClientEvent::Headers {
                    id: i,
                    status,
                    fields,
                    end,
                } if *i == id => {
                    r.status = *status;
                    r.fields = text(fields);
                    ended |= *end;
                }
                ClientEvent::Data { id: i, bytes, end } if *i == id => {
                    r.body.extend_from_slice(bytes);
                    ended |= *end;
                }
                ClientEvent::Trailers { id: i, fields } if *i == id => {
                    r.trailers = text(fields);
                    ended = true;
                }
                _ => {}
            }
        }
        ended.then_some(r)
    }
}

#[derive(Default, Debug)]
struct Response {
    status: u16,
    fields: HashMap<String, String>,
    body: Vec<u8>,
    trailers: HashMap<String, String>,
}

fn text(fields: &[(Bytes, Bytes)]) -> HashMap<String, String> {
    fields
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

#[test]
fn get_post_a_mebibyte_and_trailers_against_python_h2() {
    let (_server, port) = start_server(2);
    let mut c = Client::connect(port, ClientSettings::default());
    c.until("the server's SETTINGS", |c| {
        c.events.contains(&ClientEvent::Settings {
            max_concurrent_streams: 2,
        })
    });

    // GET and a 1 MiB POST share the connection; a third request is Busy (the server's
    // MAX_CONCURRENT_STREAMS is 2).
    let get = c.request("GET", "/hello", &[], None, None).expect("get");
    let upload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let post = c
        .request(
            "POST",
            "/echo",
            &[(b"content-length", b"1048576")],
            Some(Bytes::from(upload.clone())),
            None,
        )
        .expect("post");
    assert_eq!(
        c.request("GET", "/hello", &[], None, None),
        Err(RequestError::Busy)
    );
    c.until("the GET's response", |c| c.response(get).is_some());
    let r = c.response(get).expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello from python h2");
    assert_eq!(
        r.fields.get("content-type").map(String::as_str),
        Some("text/plain")
    );
    assert_eq!(r.fields.get("x-method").map(String::as_str), Some("GET"));

    // A stream ended: a third request fits now, alongside the upload still in flight.
    let trailers = c
        .request(
            "POST",
            "/trailers",
            &[(b"te", b"trailers"), (b"content-type", b"application/grpc")],
            Some(Bytes::from_static(b"\0\0\0\0\x05hello")),
            Some(vec![(b"x-checksum", b"c0ffee")]),
        )
        .expect("a stream is free again");
    c.until("the echo and the trailers", |c| {
        c.response(post).is_some() && c.response(trailers).is_some()
    });
    let r = c.response(post).expect("post");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.fields.get("x-received-length").map(String::as_str),
        Some("1048576")
    );
    assert_eq!(r.body.len(), upload.len());
    assert!(r.body == upload, "the 1 MiB body came back changed");
    // Python h2's windows are 64 KiB: the upload went out in window-sized pieces.
    assert!(
        c.largest_send > 0 && c.largest_send <= 65_535,
        "{}",
        c.largest_send
    );
    let r = c.response(trailers).expect("trailers");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"payload");
    assert_eq!(r.trailers.get("grpc-status").map(String::as_str), Some("0"));
    assert_eq!(
        r.trailers.get("x-echo-trailer").map(String::as_str),
        Some("c0ffee")
    );
    assert!(c.conn.is_idle());

    // Keep-alive: the server answers our PING.
    let data = c.conn.ping();
    c.until("the PING's answer", |c| {
        c.events.contains(&ClientEvent::Ping { data })
    });
    assert_eq!(c.conn.pings_outstanding(), 0);
}

#[test]
fn goaway_from_python_h2_names_the_streams_to_retry() {
    let (_server, port) = start_server(10);
    let mut c = Client::connect(port, ClientSettings::default());
    let first = c.request("GET", "/goaway", &[], None, None).expect("first");
    let second = c.request("GET", "/hello", &[], None, None).expect("second");
    let third = c.request("GET", "/hello", &[], None, None).expect("third");
    c.until("the GOAWAY", |c| {
        c.events
            .iter()
            .any(|e| matches!(e, ClientEvent::GoAway { .. }))
    });
    let goaway = c
        .events
        .iter()
        .find(|e| matches!(e, ClientEvent::GoAway { .. }))
        .cloned();
    assert_eq!(
        goaway,
        Some(ClientEvent::GoAway {
            last_stream_id: first,
            code: tether_h2::ErrorCode::NoError,
            retryable: vec![second, third],
        })
    );
    let r = c
        .response(first)
        .expect("the first stream was answered before the GOAWAY");
    assert_eq!((r.status, &r.body[..]), (200, &b"bye"[..]));
    assert_eq!(
        c.request("GET", "/hello", &[], None, None),
        Err(RequestError::GoingAway)
    );
    assert!(c.conn.is_idle() && c.conn.is_going_away());
}

/// A self-signed certificate for `localhost` in a fresh directory (cert.pem, key.pem),
/// and its DER to trust.
fn certificate(name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let dir = std::env::temp_dir().join(format!("tether-h2-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).expect("key");
    (dir, cert.der().to_vec())
}

#[test]
fn over_tls_with_alpn_h2_against_python_h2() {
    use std::sync::Arc;
    let (dir, der) = certificate("tls");
    let (_server, port) = start_server_with(10, &[&dir.join("cert.pem"), &dir.join("key.pem")]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rustls::ClientConnection::new(Arc::new(cfg), name).expect("tls");
    let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut stream = rustls::StreamOwned::new(tls, sock);

    let mut conn = ClientConn::new(ClientSettings::default());
    let get = conn
        .send_request(
            &[
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", b"/hello"),
            ],
            true,
        )
        .expect("get");
    let post = conn
        .send_request(
            &[
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", b"/trailers"),
                (b"te", b"trailers"),
            ],
            false,
        )
        .expect("post");
    conn.send_data(post, &mut Bytes::from_static(b"body"), false)
        .expect("data");
    conn.send_trailers(post, &[(b"x-checksum", b"tls-ok")])
        .expect("trailers");
    // Small messages only: a blocking read after each write cannot deadlock here.
    let mut events = Vec::new();
    let deadline = Instant::now() + WAIT;
    let ended = |events: &[ClientEvent], id: StreamId| {
        events.iter().any(|e| match e {
            ClientEvent::Headers { id: i, end, .. } | ClientEvent::Data { id: i, end, .. } => {
                *i == id && *end
            }
            ClientEvent::Trailers { id: i, .. } => *i == id,
            _ => false,
        })
    };
    while !(ended(&events, get) && ended(&events, post)) {
        assert!(Instant::now() < deadline, "no answer over TLS: {events:?}");
        for b in conn.take_output() {
            stream.write_all(&b).expect("write");
        }
        stream.flush().expect("flush");
        let mut buf = vec![0u8; 16 * 1024];
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed: {events:?}");
        events.extend(conn.receive(&buf[..n]));
    }
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"h2"[..]));
    let body: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Data { id, bytes, .. } if *id == get => Some(bytes.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(body, b"hello from python h2");
    assert!(events.iter().any(|e| matches!(e,
        ClientEvent::Trailers { id, fields } if *id == post
            && fields.contains(&(Bytes::from_static(b"x-echo-trailer"), Bytes::from_static(b"tls-ok"))))));
    let _ = std::fs::remove_dir_all(&dir);
}
