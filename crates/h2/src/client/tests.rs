//! The client driven against the crate's own server side (`Conn`) in memory: requests and
//! responses, bodies larger than every window, trailers both ways, GOAWAY's retry set,
//! resets both ways, MAX_CONCURRENT_STREAMS giving Busy, PING, and a server that breaks
//! the rules.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame;
use crate::{
    ClientConn, ClientEvent, ClientSettings, Config, Conn, ErrorCode, Event, RequestError,
    StreamError,
};

/// A client and a server joined in memory.
struct Pair {
    c: ClientConn,
    s: Conn,
    /// Bytes the server has not read yet (a partial frame).
    s_in: BytesMut,
    cev: Vec<ClientEvent>,
    sev: Vec<Event>,
}

impl Pair {
    fn new(client: ClientSettings, server: Config) -> Pair {
        let mut p = Pair {
            c: ClientConn::new(client),
            s: Conn::new(server),
            s_in: BytesMut::new(),
            cev: Vec::new(),
            sev: Vec::new(),
        };
        p.pump();
        p
    }

    fn deliver_to_server(&mut self) -> bool {
        let out = self.c.take_output();
        if out.is_empty() {
            return false;
        }
        for b in out {
            self.s_in.put_slice(&b);
        }
        let r = self.s.recv(Instant::now(), &mut self.s_in, &mut self.sev);
        assert_eq!(r, Ok(()), "the server refused the client's bytes");
        true
    }

    fn deliver_to_client(&mut self) -> bool {
        let out = self.s.take_output();
        if out.is_empty() {
            return false;
        }
        for b in out {
            let ev = self.c.receive(&b);
            self.cev.extend(ev);
        }
        true
    }

    /// Deliver both ways until nothing more is written (bounded).
    fn pump(&mut self) {
        for _ in 0..1000 {
            let a = self.deliver_to_server();
            let b = self.deliver_to_client();
            if !a && !b {
                return;
            }
        }
        panic!("the two sides never went quiet");
    }

    fn server_request(&mut self) -> (u32, bool) {
        let i = self
            .sev
            .iter()
            .position(|e| matches!(e, Event::Request { .. }))
            .expect("a request reached the server");
        match self.sev.remove(i) {
            Event::Request {
                stream, end_stream, ..
            } => (stream, end_stream),
            _ => unreachable!(),
        }
    }
}

fn get(path: &str) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (b":method", b"GET".to_vec()),
        (b":scheme", b"http".to_vec()),
        (b":authority", b"backend".to_vec()),
        (b":path", path.as_bytes().to_vec()),
    ]
}

fn fields<'a>(v: &'a [(&'static [u8], Vec<u8>)]) -> Vec<(&'a [u8], &'a [u8])> {
    v.iter().map(|(n, v)| (*n, &v[..])).collect()
}

fn request(p: &mut Pair, method: &str, path: &str, end: bool) -> u32 {
    let mut h = get(path);
    h[0].1 = method.as_bytes().to_vec();
    p.c.send_request(&fields(&h), end).expect("request opened")
}

/// The response body and trailers a stream got, and whether it ended.
fn body_of(events: &[ClientEvent], id: u32) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let mut ended = false;
    for e in events {
        match e {
            ClientEvent::Data { id: i, bytes, end } if *i == id => {
                body.extend_from_slice(bytes);
                ended |= *end;
            }
            ClientEvent::Headers { id: i, end, .. } if *i == id => ended |= *end,
            ClientEvent::Trailers { id: i, .. } if *i == id => ended = true,
            _ => {}
        }
    }
    (body, ended)
}

#[test]
fn get_and_response_with_the_servers_settings() {
    let mut p = Pair::new(ClientSettings::default(), Config::default());
    assert!(p.cev.contains(&ClientEvent::Settings {
        max_concurrent_streams: 128
    }));
    let id = request(&mut p, "GET", "/index.html", true);
    assert_eq!(id, 1);
    p.pump();
    let Some(Event::Request {
        stream,
        head,
        end_stream,
    }) = p
        .sev
        .iter()
        .find(|e| matches!(e, Event::Request { .. }))
        .cloned()
    else {
        panic!("no request: {:?}", p.sev);
    };
    assert_eq!((stream, end_stream), (1, true));
    assert_eq!(&head.path[..], b"/index.html");
    assert_eq!(head.authority.as_deref(), Some(&b"backend"[..]));
    p.s.send_headers(1, 200, &[(b"content-type", b"text/plain")], false)
        .expect("headers");
    let mut body = Bytes::from_static(b"hello");
    p.s.send_data(1, &mut body, true).expect("data");
    p.pump();
    let head = p.cev.iter().find_map(|e| match e {
        ClientEvent::Headers {
            id: 1,
            status,
            fields,
            end,
        } => Some((*status, fields.clone(), *end)),
        _ => None,
    });
    assert_eq!(
        head,
        Some((
            200,
            vec![(
                Bytes::from_static(b"content-type"),
                Bytes::from_static(b"text/plain")
            )],
            false
        ))
    );
    assert_eq!(body_of(&p.cev, 1), (b"hello".to_vec(), true));
    assert!(p.c.is_idle());
    // The next request gets the next odd id, and HPACK's dynamic table stays in step.
    p.cev.clear();
    p.sev.clear();
    assert_eq!(request(&mut p, "GET", "/second", true), 3);
    p.pump();
    let (stream, _) = p.server_request();
    assert_eq!(stream, 3);
}

#[test]
fn big_bodies_cross_every_window_both_ways_and_a_slow_reader_holds_the_server() {
    let client = ClientSettings {
        initial_window: 65_535,
        conn_window: 128 * 1024,
        ..ClientSettings::default()
    };
    let server = Config {
        initial_window: 65_535,
        conn_window: 100_000,
        ..Config::default()
    };
    let mut p = Pair::new(client, server);
    let upload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let id = request(&mut p, "POST", "/upload", false);
    let mut rest = Bytes::from(upload.clone());
    let mut got = Vec::new();
    let mut done = false;
    for _ in 0..10_000 {
        if !rest.is_empty() {
            let before = rest.len();
            let sent = p.c.send_data(id, &mut rest, true).expect("send");
            assert_eq!(before - rest.len(), sent);
            assert!(sent <= 100_000, "past the server's windows: {sent}");
        }
        p.pump();
        // The server's application consumes what it got (and so opens the windows).
        for e in p.sev.drain(..) {
            if let Event::Data {
                stream,
                data,
                end_stream,
            } = e
            {
                got.extend_from_slice(&data);
                p.s.consumed(stream, data.len());
                done |= end_stream;
            }
        }
        if done {
            break;
        }
    }
    assert!(done, "the upload never ended");
    assert_eq!(got.len(), upload.len());
    assert!(got == upload, "the upload arrived changed");

    // The response: 1 MiB the client reads slowly.
    let download: Vec<u8> = (0..1024 * 1024).map(|i| (i % 241) as u8).collect();
    p.s.send_headers(id, 200, &[], false).expect("head");
    let mut out = Bytes::from(download.clone());
    p.s.send_data(id, &mut out, true).expect("data");
    p.pump();
    let (first, _) = body_of(&p.cev, id);
    // Nothing consumed yet: the server stopped at the client's stream window.
    assert_eq!(first.len(), 65_535);
    assert_eq!(p.s.send_window(id), 0);
    let mut received = first.len();
    let mut body = first;
    p.cev.clear();
    p.c.consumed(id, received);
    for _ in 0..10_000 {
        p.pump();
        let mut out_again = std::mem::take(&mut out);
        if !out_again.is_empty() {
            p.s.send_data(id, &mut out_again, true).expect("data");
            out = out_again;
            p.pump();
        }
        let (chunk, ended) = body_of(&p.cev, id);
        p.cev.clear();
        received += chunk.len();
        body.extend_from_slice(&chunk);
        p.c.consumed(id, chunk.len());
        if ended {
            break;
        }
    }
    assert_eq!(received, download.len());
    assert!(body == download, "the download arrived changed");
    assert!(p.c.is_idle());
}

#[test]
fn trailers_both_ways() {
    let mut p = Pair::new(ClientSettings::default(), Config::default());
    let mut h = get("/grpc.Service/Call");
    h[0].1 = b"POST".to_vec();
    h.push((b"te", b"trailers".to_vec()));
    h.push((b"content-type", b"application/grpc".to_vec()));
    let id = p.c.send_request(&fields(&h), false).expect("open");
    let mut body = Bytes::from_static(b"\0\0\0\0\x05hello");
    p.c.send_data(id, &mut body, false).expect("data");
    p.c.send_trailers(id, &[(b"x-request-checksum", b"abc")])
        .expect("trailers");
    assert_eq!(
        p.c.send_data(id, &mut Bytes::from_static(b"late"), true),
        Err(StreamError::Closed)
    );
    p.pump();
    let (stream, _) = p.server_request();
    assert!(p.sev.iter().any(|e| matches!(e,
        Event::Trailers { stream: s, fields } if *s == stream
            && fields == &vec![(Bytes::from_static(b"x-request-checksum"), Bytes::from_static(b"abc"))])));
    p.s.send_headers(
        stream,
        200,
        &[(b"content-type", b"application/grpc")],
        false,
    )
    .expect("head");
    p.s.send_data(stream, &mut Bytes::from_static(b"\0\0\0\0\x02ok"), false)
        .expect("data");
    p.s.send_trailers(
        stream,
        &[(b"grpc-status", b"0"), (b"grpc-message", b"fine")],
    )
    .expect("trailers");
    p.pump();
    let trailers = p.cev.iter().find_map(|e| match e {
        ClientEvent::Trailers { id: i, fields } if *i == id => Some(fields.clone()),
        _ => None,
    });
    assert_eq!(
        trailers,
        Some(vec![
            (Bytes::from_static(b"grpc-status"), Bytes::from_static(b"0")),
            (
                Bytes::from_static(b"grpc-message"),
                Bytes::from_static(b"fine")
            ),
        ])
    );
    assert_eq!(body_of(&p.cev, id), (b"\0\0\0\0\x02ok".to_vec(), true));
    assert!(p.c.is_idle());
}

#[test]
fn goaway_names_the_streams_the_server_never_processed() {
    let mut p = Pair::new(ClientSettings::default(), Config::default());
    let first = request(&mut p, "GET", "/one", true);
    p.pump();
    let (seen, _) = p.server_request();
    assert_eq!(seen, first);
    // Two more requests leave the client while the server is already going away.
    let second = request(&mut p, "GET", "/two", true);
    let third = request(&mut p, "GET", "/three", true);
    p.s.go_away(ErrorCode::NoError);
    p.deliver_to_client();
    assert!(
        p.cev.contains(&ClientEvent::GoAway {
            last_stream_id: first,
            code: ErrorCode::NoError,
            retryable: vec![second, third],
        }),
        "{:?}",
        p.cev
    );
    assert_eq!(
        p.c.send_request(&fields(&get("/four")), true),
        Err(RequestError::GoingAway)
    );
    assert!(p.c.is_going_away());
    // The first stream finishes; the server's refusals of the others are dropped.
    p.pump();
    p.s.send_headers(first, 204, &[], true).expect("answer");
    p.pump();
    assert!(p.cev.iter().any(|e| matches!(e,
        ClientEvent::Headers { id, status: 204, end: true, .. } if *id == first)));
    assert!(!p.cev.iter().any(|e| matches!(e, ClientEvent::Reset { .. })));
    assert!(p.c.is_idle() && !p.c.is_failed());
}

#[test]
fn resets_both_ways_and_refused_is_retryable() {
    let mut p = Pair::new(ClientSettings::default(), Config::default());
    let a = request(&mut p, "GET", "/a", true);
    let b = request(&mut p, "POST", "/b", false);
    p.pump();
    p.s.reset(a, ErrorCode::Cancel);
    p.pump();
    assert!(p.cev.contains(&ClientEvent::Reset {
        id: a,
        code: ErrorCode::Cancel,
        retryable: false
    }));
    // The client cancels the other one: the server hears of it, and later frames are
    // dropped quietly.
    p.c.reset(b, ErrorCode::Cancel);
    p.pump();
    assert!(p.sev.iter().any(|e| matches!(e,
        Event::Reset { stream, code: ErrorCode::Cancel } if *stream == b)));
    assert_eq!(
        p.c.send_data(b, &mut Bytes::from_static(b"x"), true),
        Err(StreamError::Closed)
    );
    assert!(p.c.is_idle());

    // A server over its limit refuses with REFUSED_STREAM: safe to retry.
    let mut p = Pair::new(
        ClientSettings::default(),
        Config {
            max_concurrent_streams: 1,
            ..Config::default()
        },
    );
    // The client is told 1, but a stream opened past it (forced by two requests sent
    // before the SETTINGS arrived) is refused.
    let mut c = ClientConn::new(ClientSettings::default());
    let x = c.send_request(&fields(&get("/x")), false).expect("x");
    let y = c.send_request(&fields(&get("/y")), false).expect("y");
    p.c = c;
    p.s = Conn::new(Config {
        max_concurrent_streams: 1,
        ..Config::default()
    });
    p.s_in.clear();
    p.cev.clear();
    p.pump();
    assert!(p.cev.contains(&ClientEvent::Reset {
        id: y,
        code: ErrorCode::RefusedStream,
        retryable: true
    }));
    assert!(!p
        .cev
        .iter()
        .any(|e| matches!(e, ClientEvent::Reset { id, .. } if *id == x)));
}

#[test]
fn max_concurrent_streams_two_gives_busy_until_a_stream_ends() {
    let mut p = Pair::new(
        ClientSettings::default(),
        Config {
            max_concurrent_streams: 2,
            ..Config::default()
        },
    );
    assert_eq!(p.c.max_concurrent_streams(), 2);
    let a = request(&mut p, "GET", "/a", true);
    let _b = request(&mut p, "GET", "/b", true);
    assert_eq!(p.c.available_streams(), 0);
    assert!(!p.c.can_open());
    assert_eq!(
        p.c.send_request(&fields(&get("/c")), true),
        Err(RequestError::Busy)
    );
    p.pump();
    p.s.send_headers(a, 200, &[], true).expect("answer");
    p.pump();
    assert!(p.c.can_open());
    let c = request(&mut p, "GET", "/c", true);
    assert_eq!(c, 5, "a Busy request used no id");
    p.pump();
    assert!(!p.sev.iter().any(|e| matches!(e, Event::Reset { .. })));
}

#[test]
fn a_head_over_the_servers_max_header_list_size_is_refused_before_sending() {
    let mut p = Pair::new(
        ClientSettings::default(),
        Config {
            max_header_list: 200,
            ..Config::default()
        },
    );
    let big = vec![b'a'; 300];
    let mut h = get("/");
    h.push((b"x-big", big));
    assert_eq!(
        p.c.send_request(&fields(&h), true),
        Err(RequestError::TooLarge)
    );
    assert!(!p.c.has_output());
    assert_eq!(request(&mut p, "GET", "/small", true), 1);
}

#[test]
fn ping_is_answered_and_the_servers_ping_is_acked() {
    let mut p = Pair::new(ClientSettings::default(), Config::default());
    let data = p.c.ping();
    assert_eq!(p.c.pings_outstanding(), 1);
    p.pump();
    assert!(p.cev.contains(&ClientEvent::Ping { data }));
    assert_eq!(p.c.pings_outstanding(), 0);
    // A PING from the server is acked by the client without an event.
    let mut raw = BytesMut::new();
    frame::put_header(&mut raw, 8, frame::PING, 0, 0);
    raw.put_slice(b"12345678");
    let ev = p.c.receive(&raw);
    assert!(ev.is_empty());
    let out: Vec<u8> = p.c.take_output().concat();
    assert_eq!(
        &out[..9],
        &[0, 0, 8, frame::PING, frame::FLAG_ACK, 0, 0, 0, 0]
    );
    assert_eq!(&out[9..], b"12345678");
}

#[test]
fn a_server_that_breaks_the_rules() {
    let settings = {
        let mut b = BytesMut::new();
        frame::put_settings(&mut b, &[]);
        b
    };
    // Not SETTINGS first.
    let mut c = ClientConn::new(ClientSettings::default());
    let mut raw = BytesMut::new();
    frame::put_window_update(&mut raw, 0, 10);
    let ev = c.receive(&raw);
    assert!(matches!(ev.last(), Some(ClientEvent::Error(_))), "{ev:?}");
    assert!(c.is_failed());
    let out: Vec<u8> = c.take_output().concat();
    let goaway = out.windows(4).any(|w| w == [0, 0, 8, frame::GOAWAY]);
    assert!(goaway, "no GOAWAY queued");

    // DATA on a stream the client never opened.
    let mut c = ClientConn::new(ClientSettings::default());
    let mut raw = settings.clone();
    frame::put_header(&mut raw, 2, frame::DATA, 0, 7);
    raw.put_slice(b"hi");
    let ev = c.receive(&raw);
    assert!(matches!(ev.last(), Some(ClientEvent::Error(_))), "{ev:?}");

    // A response head without :status resets that stream only; split across reads.
    let mut c = ClientConn::new(ClientSettings::default());
    let id = c.send_request(&fields(&get("/")), true).expect("open");
    let block = crate::encode_fields(&[(b"x-a", b"b")]);
    let mut raw = settings.clone();
    frame::put_header_block(&mut raw, id, &block, true, 16_384);
    let (one, two) = raw.split_at(raw.len() - 3);
    assert!(c
        .receive(one)
        .iter()
        .all(|e| !matches!(e, ClientEvent::Reset { .. })));
    let ev = c.receive(two);
    assert!(
        ev.contains(&ClientEvent::Reset {
            id,
            code: ErrorCode::ProtocolError,
            retryable: false
        }),
        "{ev:?}"
    );
    assert!(!c.is_failed());
    // DATA past the connection window.
    let mut c = ClientConn::new(ClientSettings {
        initial_window: 65_535,
        conn_window: 65_535,
        ..ClientSettings::default()
    });
    let id = c.send_request(&fields(&get("/")), true).expect("open");
    let mut raw = settings.clone();
    let head = crate::encode_response(200, &[]);
    frame::put_header_block(&mut raw, id, &head, false, 16_384);
    for _ in 0..5 {
        frame::put_header(&mut raw, 16_000, frame::DATA, 0, id);
        raw.put_slice(&[0u8; 16_000]);
    }
    let ev = c.receive(&raw);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            ClientEvent::Reset {
                code: ErrorCode::FlowControlError,
                ..
            }
        ) || matches!(e, ClientEvent::Error(_))),
        "{ev:?}"
    );
}

#[test]
fn content_length_is_held_to_the_body_except_for_head_204_and_304() {
    let settings = {
        let mut b = BytesMut::new();
        frame::put_settings(&mut b, &[]);
        b
    };
    let respond = |method: &str, status: u16, cl: &[u8], body: &[u8]| -> Vec<ClientEvent> {
        let mut c = ClientConn::new(ClientSettings::default());
        let mut h = get("/");
        h[0].1 = method.as_bytes().to_vec();
        let id = c.send_request(&fields(&h), true).expect("open");
        let mut raw = settings.clone();
        let head = crate::encode_response(status, &[(b"content-length", cl)]);
        frame::put_header_block(&mut raw, id, &head, body.is_empty(), 16_384);
        if !body.is_empty() {
            frame::put_header(
                &mut raw,
                body.len(),
                frame::DATA,
                frame::FLAG_END_STREAM,
                id,
            );
            raw.put_slice(body);
        }
        c.receive(&raw)
    };
    let reset = |ev: &[ClientEvent]| {
        ev.iter().any(|e| {
            matches!(
                e,
                ClientEvent::Reset {
                    code: ErrorCode::ProtocolError,
                    ..
                }
            )
        })
    };
    assert!(!reset(&respond("GET", 200, b"5", b"hello")));
    assert!(reset(&respond("GET", 200, b"5", b"hell")));
    assert!(reset(&respond("GET", 200, b"5", b"hello!")));
    assert!(reset(&respond("GET", 200, b"5", b"")));
    assert!(reset(&respond("GET", 200, b"x", b"hello")));
    assert!(!reset(&respond("HEAD", 200, b"5", b"")));
    assert!(!reset(&respond("GET", 304, b"5", b"")));
}

#[test]
fn random_server_frames_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut c = ClientConn::new(ClientSettings::default());
        for _ in 0..(next() % 4) {
            let _ = c.send_request(&fields(&get("/")), next() & 1 == 1);
        }
        let mut raw = BytesMut::new();
        if next() % 4 != 0 {
            frame::put_settings(&mut raw, &[]);
        }
        for _ in 0..(next() % 12) {
            let r = next();
            let kind = (r % 11) as u8;
            let flags = (r >> 8) as u8;
            let stream = ((r >> 16) % 8) as u32;
            let len = ((r >> 24) % 40) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            frame::put_header(&mut raw, payload.len(), kind, flags, stream);
            raw.put_slice(&payload);
        }
        // In random pieces.
        let mut rest = &raw[..];
        while !rest.is_empty() {
            let n = ((next() % 50) as usize + 1).min(rest.len());
            let _ = c.receive(&rest[..n]);
            rest = &rest[n..];
            let _ = c.take_output();
        }
        let _ = c.send_data(1, &mut Bytes::from_static(b"x"), true);
        c.consumed(1, 10);
        let _ = c.take_output();
    }
}
