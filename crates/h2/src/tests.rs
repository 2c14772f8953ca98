//! The connection driven by hand-made client frames: requests and bodies, flow control
//! both ways, and each attack the limits are for.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use loona_hpack::{Decoder, Encoder};

use crate::frame::{self, FrameHeader};
use crate::{Config, Conn, ErrorCode, Event, H2Error};

/// A client: its HPACK encoder and the bytes it sends.
struct Client {
    enc: Encoder<'static>,
    out: BytesMut,
}

impl Client {
    fn new() -> Client {
        let mut c = Client {
            enc: Encoder::new(),
            out: BytesMut::new(),
        };
        c.out.put_slice(frame::PREFACE);
        c.settings(&[]);
        c
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        frame::put_header(&mut self.out, payload.len(), kind, flags, stream);
        self.out.put_slice(payload);
    }

    fn settings(&mut self, params: &[(u16, u32)]) {
        frame::put_settings(&mut self.out, params);
    }

    fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.enc
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// A whole header block in one HEADERS frame that also ends the stream.
    fn last_headers(&mut self, stream: u32, block: &[u8]) {
        let flags = frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM;
        self.frame(frame::HEADERS, flags, stream, block);
    }

    fn get(&mut self, stream: u32, path: &str, end_stream: bool) {
        let block = self.block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "example.org"),
            (":path", path),
        ]);
        let flags = frame::FLAG_END_HEADERS
            | if end_stream {
                frame::FLAG_END_STREAM
            } else {
                0
            };
        self.frame(frame::HEADERS, flags, stream, &block);
    }

    fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) {
        let flags = if end_stream {
            frame::FLAG_END_STREAM
        } else {
            0
        };
        self.frame(frame::DATA, flags, stream, data);
    }
}

fn run(conn: &mut Conn, client: &mut Client) -> (Result<(), H2Error>, Vec<Event>) {
    run_at(conn, client, Instant::now())
}

fn run_at(conn: &mut Conn, client: &mut Client, now: Instant) -> (Result<(), H2Error>, Vec<Event>) {
    let mut events = Vec::new();
    let r = conn.recv(now, &mut client.out, &mut events);
    (r, events)
}

/// The frames the server wrote: (header, payload).
fn frames(conn: &mut Conn) -> Vec<(FrameHeader, Bytes)> {
    let mut all = BytesMut::new();
    for b in conn.take_output() {
        all.put_slice(&b);
    }
    let mut out = Vec::new();
    while let Some(h) = FrameHeader::peek(&all) {
        let f = all.split_to(frame::HEADER_LEN + h.len as usize).freeze();
        out.push((h, f.slice(frame::HEADER_LEN..)));
    }
    assert!(all.is_empty(), "a partial frame written");
    out
}

fn kinds(fs: &[(FrameHeader, Bytes)]) -> Vec<u8> {
    fs.iter().map(|(h, _)| h.kind).collect()
}

fn goaway_code(fs: &[(FrameHeader, Bytes)]) -> Option<u32> {
    fs.iter()
        .find(|(h, _)| h.kind == frame::GOAWAY)
        .map(|(_, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
}

#[test]
fn preface_settings_request_and_response() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.get(1, "/index.html", true);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    let Event::Request {
        stream,
        head,
        end_stream,
    } = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!((*stream, *end_stream), (1, true));
    assert_eq!(&head.method[..], b"GET");
    assert_eq!(&head.path[..], b"/index.html");
    assert_eq!(head.authority.as_deref(), Some(&b"example.org"[..]));
    conn.send_headers(
        1,
        200,
        &[(b"Content-Type", b"text/plain"), (b"Connection", b"close")],
        false,
    )
    .expect("headers");
    let mut body = Bytes::from_static(b"hello");
    assert_eq!(conn.send_data(1, &mut body, true), Ok(5));
    assert!(conn.is_idle());
    let fs = frames(&mut conn);
    // Our SETTINGS, the connection window, the SETTINGS ack, then the answer.
    assert_eq!(
        kinds(&fs),
        [
            frame::SETTINGS,
            frame::WINDOW_UPDATE,
            frame::SETTINGS,
            frame::HEADERS,
            frame::DATA
        ]
    );
    let mut dec = Decoder::new();
    let head = dec.decode(&fs[3].1).expect("hpack");
    assert_eq!(head[0], (b":status".to_vec(), b"200".to_vec()));
    assert_eq!(head[1], (b"content-type".to_vec(), b"text/plain".to_vec()));
    assert_eq!(head.len(), 2, "connection-specific fields are dropped");
    assert_eq!(&fs[4].1[..], b"hello");
    assert_ne!(fs[4].0.flags & frame::FLAG_END_STREAM, 0);
}

#[test]
fn not_a_preface_or_no_settings_first_is_a_protocol_error() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client {
        enc: Encoder::new(),
        out: BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]),
    };
    let (r, _) = run(&mut conn, &mut c);
    assert!(matches!(
        r,
        Err(H2Error::Connection(ErrorCode::ProtocolError, _))
    ));
    assert_eq!(goaway_code(&frames(&mut conn)), Some(1));
    let mut conn = Conn::new(Config::default());
    let mut c = Client {
        enc: Encoder::new(),
        out: BytesMut::from(frame::PREFACE),
    };
    c.frame(frame::PING, 0, 0, &[0; 8]);
    let (r, _) = run(&mut conn, &mut c);
    assert!(matches!(
        r,
        Err(H2Error::Connection(ErrorCode::ProtocolError, _))
    ));
}

#[test]
fn partial_frames_wait_for_the_rest() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.get(1, "/", true);
    let all = c.out.split();
    let mut events = Vec::new();
    let mut input = BytesMut::new();
    for b in all.iter() {
        input.put_u8(*b);
        conn.recv(Instant::now(), &mut input, &mut events)
            .expect("byte by byte");
    }
    assert!(input.is_empty());
    assert!(matches!(
        events.as_slice(),
        [Event::Request { stream: 1, .. }]
    ));
}

#[test]
fn body_flow_control_and_window_given_back() {
    let cfg = Config {
        initial_window: 1000,
        conn_window: 65_535,
        ..Config::default()
    };
    let mut conn = Conn::new(cfg);
    let mut c = Client::new();
    c.get(1, "/upload", false);
    c.data(1, &[7u8; 600], false);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert!(
        matches!(&events[1], Event::Data { stream: 1, data, end_stream: false } if data.len() == 600)
    );
    frames(&mut conn);
    // Consumed: half the stream window is owed, so a WINDOW_UPDATE goes out for the stream.
    conn.consumed(1, 600);
    let fs = frames(&mut conn);
    assert_eq!(kinds(&fs), [frame::WINDOW_UPDATE]);
    assert_eq!(fs[0].0.stream, 1);
    // 1000 - 600 + 600 = 1000 left: 1001 more is past the window.
    c.data(1, &[7u8; 1001], false);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert!(matches!(
        events.as_slice(),
        [Event::Reset {
            stream: 1,
            code: ErrorCode::FlowControlError
        }]
    ));
    assert_eq!(kinds(&frames(&mut conn)), [frame::RST_STREAM]);
}

#[test]
fn send_data_stops_at_the_clients_window_and_goes_on_after_window_update() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.settings(&[(frame::SETTINGS_INITIAL_WINDOW_SIZE, 10)]);
    c.get(1, "/big", true);
    run(&mut conn, &mut c).0.expect("ok");
    conn.send_headers(1, 200, &[], false).expect("headers");
    let mut body = Bytes::from(vec![1u8; 25]);
    assert_eq!(conn.send_data(1, &mut body, true), Ok(10));
    assert_eq!(body.len(), 15);
    assert_eq!(conn.send_window(1), 0);
    c.frame(frame::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes());
    let (_, events) = run(&mut conn, &mut c);
    assert!(events.contains(&Event::WindowOpened));
    assert_eq!(conn.send_data(1, &mut body, true), Ok(15));
    assert!(conn.is_idle());
    let data: usize = frames(&mut conn)
        .iter()
        .filter(|(h, _)| h.kind == frame::DATA)
        .map(|(_, p)| p.len())
        .sum();
    assert_eq!(data, 25);
}

#[test]
fn rapid_reset_ends_in_goaway_enhance_your_calm() {
    let cfg = Config {
        max_resets_per_sec: 10,
        ..Config::default()
    };
    let mut conn = Conn::new(cfg);
    let mut c = Client::new();
    for i in 0..20u32 {
        let id = 1 + 2 * i;
        c.get(id, "/", true);
        c.frame(frame::RST_STREAM, 0, id, &8u32.to_be_bytes());
    }
    let (r, events) = run(&mut conn, &mut c);
    assert!(
        matches!(r, Err(H2Error::Connection(ErrorCode::EnhanceYourCalm, _))),
        "{r:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        11
    );
    assert_eq!(goaway_code(&frames(&mut conn)), Some(0xb));
    // Under the limit, a second later, resets are fine.
    let mut conn = Conn::new(Config {
        max_resets_per_sec: 10,
        ..Config::default()
    });
    let mut c = Client::new();
    let t0 = Instant::now();
    for i in 0..20u32 {
        let id = 1 + 2 * i;
        c.get(id, "/", true);
        c.frame(frame::RST_STREAM, 0, id, &8u32.to_be_bytes());
        let at = t0 + Duration::from_millis(200 * u64::from(i));
        assert_eq!(run_at(&mut conn, &mut c, at).0, Ok(()));
    }
}

#[test]
fn continuation_flood_and_hpack_bomb_are_bounded() {
    // Endless CONTINUATION frames: GOAWAY once the block is too large or too many frames.
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.frame(frame::HEADERS, 0, 1, &[]);
    for _ in 0..100 {
        c.frame(frame::CONTINUATION, 0, 1, &[]);
    }
    let (r, _) = run(&mut conn, &mut c);
    assert!(
        matches!(r, Err(H2Error::Connection(ErrorCode::EnhanceYourCalm, _))),
        "{r:?}"
    );
    // An HPACK bomb: one 4000-byte entry in the dynamic table, then referenced 100 times
    // (a few hundred bytes that decode to 400 KB): refused with 431, the connection lives.
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    let big = "x".repeat(4000);
    let mut block = c.block(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        ("big", &big),
    ]);
    let again = c.block(&[("big", &big)]);
    assert!(
        again.len() < 4,
        "the entry is referenced by index: {again:?}"
    );
    for _ in 0..100 {
        block.extend_from_slice(&again);
    }
    c.last_headers(1, &block);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert_eq!(
        events,
        [Event::Refused {
            stream: 1,
            status: 431
        }]
    );
    conn.send_headers(1, 431, &[], true)
        .expect("answer the refused stream");
    assert!(conn.is_idle());
    // The decoder stayed in step: a next request on the same connection decodes.
    c.get(3, "/after", true);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert!(matches!(&events[0], Event::Request { stream: 3, .. }));
}

#[test]
fn ping_and_settings_floods_end_in_goaway() {
    let mut conn = Conn::new(Config {
        max_control_per_sec: 50,
        ..Config::default()
    });
    let mut c = Client::new();
    for _ in 0..100 {
        c.frame(frame::PING, 0, 0, &[1; 8]);
    }
    let (r, _) = run(&mut conn, &mut c);
    assert!(matches!(
        r,
        Err(H2Error::Connection(ErrorCode::EnhanceYourCalm, _))
    ));
    let fs = frames(&mut conn);
    assert!(fs.iter().filter(|(h, _)| h.kind == frame::PING).count() <= 50);
    let mut conn = Conn::new(Config {
        max_control_per_sec: 50,
        ..Config::default()
    });
    let mut c = Client::new();
    for _ in 0..100 {
        c.settings(&[]);
    }
    let (r, _) = run(&mut conn, &mut c);
    assert!(matches!(
        r,
        Err(H2Error::Connection(ErrorCode::EnhanceYourCalm, _))
    ));
}

#[test]
fn window_updates_replenishing_sent_data_are_not_a_flood() {
    let mut conn = Conn::new(Config {
        max_control_per_sec: 50,
        ..Config::default()
    });
    let mut c = Client::new();
    c.settings(&[(frame::SETTINGS_INITIAL_WINDOW_SIZE, 10)]);
    c.get(1, "/big", true);
    run(&mut conn, &mut c).0.expect("ok");
    conn.send_headers(1, 200, &[], false).expect("headers");
    let mut body = Bytes::from(vec![1u8; 2000]);
    // 200 rounds of 10 bytes, each given back in two updates per window: 800 in the same
    // second.
    for _ in 0..200 {
        assert_eq!(conn.send_data(1, &mut body, true), Ok(10));
        for id in [1, 0, 1, 0] {
            c.frame(frame::WINDOW_UPDATE, 0, id, &5u32.to_be_bytes());
        }
        run(&mut conn, &mut c)
            .0
            .expect("replenishing updates are fine");
    }
    assert!(body.is_empty());
    // Updates nothing asked for still count.
    let mut conn = Conn::new(Config {
        max_control_per_sec: 50,
        ..Config::default()
    });
    let mut c = Client::new();
    for _ in 0..100 {
        c.frame(frame::WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes());
    }
    let (r, _) = run(&mut conn, &mut c);
    assert!(matches!(
        r,
        Err(H2Error::Connection(ErrorCode::EnhanceYourCalm, _))
    ));
}

#[test]
fn stream_id_misuse_is_a_protocol_error() {
    // An even id; a new stream below one opened (skipped ids: RFC 9113 5.1.1); HEADERS
    // again on a stream the client closed (RFC 9113 5.1: STREAM_CLOSED).
    let cases: [(&[u32], ErrorCode); 4] = [
        (&[2], ErrorCode::ProtocolError),
        (&[5, 3], ErrorCode::ProtocolError),
        (&[3, 1], ErrorCode::ProtocolError),
        (&[1, 3, 1], ErrorCode::StreamClosed),
    ];
    for (ids, want) in cases {
        let mut conn = Conn::new(Config::default());
        let mut c = Client::new();
        for &id in ids {
            c.get(id, "/", true);
        }
        let (r, _) = run(&mut conn, &mut c);
        assert!(
            matches!(r, Err(H2Error::Connection(code, _)) if code == want),
            "{ids:?}: {r:?}"
        );
    }
    // DATA on an idle stream, WINDOW_UPDATE of 0 on the connection.
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.data(7, b"x", false);
    assert!(matches!(
        run(&mut conn, &mut c).0,
        Err(H2Error::Connection(ErrorCode::ProtocolError, _))
    ));
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.frame(frame::WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes());
    assert!(matches!(
        run(&mut conn, &mut c).0,
        Err(H2Error::Connection(ErrorCode::ProtocolError, _))
    ));
}

#[test]
fn malformed_requests_reset_the_stream_only() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    for (id, fields) in [
        (1u32, vec![(":method", "GET"), (":path", "/")]),
        (
            3,
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("Upper", "x"),
            ],
        ),
        (
            5,
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("connection", "close"),
            ],
        ),
        (
            7,
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                ("x", "y"),
                (":path", "/"),
            ],
        ),
        (
            9,
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("te", "gzip"),
            ],
        ),
    ] {
        let block = c.block(&fields);
        c.last_headers(id, &block);
    }
    c.get(11, "/fine", true);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert!(
        matches!(events.as_slice(), [Event::Request { stream: 11, .. }]),
        "{events:?}"
    );
    let rsts = frames(&mut conn)
        .iter()
        .filter(|(h, _)| h.kind == frame::RST_STREAM)
        .count();
    assert_eq!(rsts, 5);
}

#[test]
fn cookies_are_joined_and_content_length_checked() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    let block = c.block(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":path", "/p"),
        ("cookie", "a=1"),
        ("content-length", "3"),
        ("cookie", "b=2"),
    ]);
    c.frame(frame::HEADERS, frame::FLAG_END_HEADERS, 1, &block);
    c.data(1, b"abcd", true);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    let Event::Request { head, .. } = &events[0] else {
        panic!("{events:?}")
    };
    let cookie = head
        .fields
        .iter()
        .find(|(n, _)| &n[..] == b"cookie")
        .map(|(_, v)| v.clone());
    assert_eq!(cookie.as_deref(), Some(&b"a=1; b=2"[..]));
    assert_eq!(head.content_length, Some(3));
    assert!(matches!(
        events[1],
        Event::Reset {
            stream: 1,
            code: ErrorCode::ProtocolError
        }
    ));
}

#[test]
fn concurrency_limit_refuses_and_goaway_drains() {
    let mut conn = Conn::new(Config {
        max_concurrent_streams: 2,
        ..Config::default()
    });
    let mut c = Client::new();
    for id in [1u32, 3, 5] {
        c.get(id, "/", true);
    }
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert_eq!(events.len(), 2);
    let fs = frames(&mut conn);
    let rst = fs
        .iter()
        .find(|(h, _)| h.kind == frame::RST_STREAM)
        .expect("refused");
    assert_eq!(rst.0.stream, 5);
    assert_eq!(&rst.1[..], &7u32.to_be_bytes());
    conn.go_away(ErrorCode::NoError);
    c.get(7, "/", true);
    let (_, events) = run(&mut conn, &mut c);
    assert!(events.is_empty());
    let fs = frames(&mut conn);
    assert_eq!(kinds(&fs), [frame::GOAWAY, frame::RST_STREAM]);
    // In-flight streams still answer.
    conn.send_headers(1, 204, &[], true).expect("stream 1");
    conn.send_headers(3, 204, &[], true).expect("stream 3");
    assert!(conn.is_idle() && conn.is_draining());
}

#[test]
fn trailers_end_the_request() {
    let mut conn = Conn::new(Config::default());
    let mut c = Client::new();
    c.get(1, "/t", false);
    c.data(1, b"body", false);
    let block = c.block(&[("x-checksum", "abc")]);
    c.last_headers(1, &block);
    let (r, events) = run(&mut conn, &mut c);
    assert_eq!(r, Ok(()));
    assert!(matches!(&events[2], Event::Trailers { stream: 1, fields } if fields.len() == 1));
    conn.send_headers(1, 200, &[], false).expect("head");
    conn.send_trailers(1, &[(b"grpc-status", b"0")])
        .expect("trailers");
    assert!(conn.is_idle());
}

/// A small fuzz run inside the test suite (the cargo-fuzz target goes further): random
/// frames of every type, with random flags, streams and payloads, never panic and always
/// leave whole frames to write.
#[test]
fn random_frames_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut conn = Conn::new(Config::default());
        let mut c = Client::new();
        let n = next() % 12;
        for _ in 0..n {
            let r = next();
            let kind = (r % 11) as u8;
            let flags = (r >> 8) as u8;
            let stream = ((r >> 16) % 8) as u32;
            let len = ((r >> 24) % 40) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if r >> 40 & 1 == 1 {
                c.get(1 + 2 * (stream % 4), "/", r >> 41 & 1 == 1);
            }
            c.frame(kind, flags, stream, &payload);
        }
        let _ = run(&mut conn, &mut c);
        frames(&mut conn);
    }
}
