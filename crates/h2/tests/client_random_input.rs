//! The client side (`ClientConn::receive`) fed a few thousand pseudo-random server byte
//! strings after a valid SETTINGS, with and without streams open (seeded: the same inputs on
//! every run). Each must end without a panic, and cleanly: the output is whole frames, a
//! failed connection said `Error` once (its last event) and queued a GOAWAY, fed whole or
//! in pieces it means the same, and the connection still answers calls afterwards.
//! `fuzz/fuzz_targets/h2_client.rs` runs the same checks under libFuzzer.

use bytes::{BufMut, Bytes, BytesMut};
use tether_h2::frame::{self, FrameHeader};
use tether_h2::{ClientConn, ClientEvent, ClientSettings, ErrorCode};

/// xorshift64*: small, seeded, good enough to pick frame shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A frame payload that is often well formed for its type (so the input gets past the
/// frame decoder and into the stream logic), sometimes not.
fn payload(rng: &mut Rng, kind: u8) -> Vec<u8> {
    if rng.below(4) == 0 {
        let n = rng.below(48) as usize;
        return rng.bytes(n);
    }
    match kind {
        frame::HEADERS | frame::CONTINUATION => {
            // HPACK: `:status 200` (static 8), `:status 204` (9), `:status 404` (13), a
            // literal `grpc-status: <digit>`, a content-length, or garbage.
            let mut p = Vec::new();
            for _ in 0..=rng.below(3) {
                match rng.below(6) {
                    0 => p.push(0x88),
                    1 => p.push(0x89),
                    2 => p.push(0x8d),
                    3 => {
                        p.extend_from_slice(b"\x00\x0bgrpc-status\x01");
                        p.push(b'0' + rng.below(10) as u8);
                    }
                    4 => {
                        // content-length (static 28), literal value
                        p.extend_from_slice(b"\x0f\x0d\x01");
                        p.push(b'0' + rng.below(10) as u8);
                    }
                    _ => {
                        let n = rng.below(6) as usize;
                        p.extend(rng.bytes(n));
                    }
                }
            }
            p
        }
        frame::SETTINGS => {
            let mut p = Vec::new();
            for _ in 0..rng.below(4) {
                p.put_u16(rng.below(10) as u16);
                let v = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(70_000) as u32,
                    2 => u32::MAX,
                    _ => rng.next() as u32,
                };
                p.put_u32(v);
            }
            p
        }
        frame::WINDOW_UPDATE => {
            let v = match rng.below(3) {
                0 => 0,
                1 => rng.below(1 << 20) as u32,
                _ => rng.next() as u32,
            };
            v.to_be_bytes().to_vec()
        }
        frame::RST_STREAM => (rng.below(16) as u32).to_be_bytes().to_vec(),
        frame::GOAWAY => {
            let mut p = Vec::new();
            p.put_u32(rng.below(9) as u32);
            p.put_u32(rng.below(16) as u32);
            let n = rng.below(8) as usize;
            p.extend(rng.bytes(n));
            p
        }
        frame::PING => rng.bytes(8),
        _ => {
            let n = rng.below(32) as usize;
            rng.bytes(n)
        }
    }
}

/// A server's bytes: frames of random shapes, sometimes padded, sometimes with a wrong
/// length, sometimes plain noise.
fn server_bytes(rng: &mut Rng) -> Vec<u8> {
    if rng.below(10) == 0 {
        let n = rng.below(200) as usize;
        return rng.bytes(n);
    }
    let mut out = BytesMut::new();
    for _ in 0..=rng.below(8) {
        let kind = match rng.below(12) {
            10 => rng.next() as u8,
            11 => frame::DATA,
            k => k as u8,
        };
        let flags = match rng.below(3) {
            0 => 0,
            1 => frame::FLAG_END_HEADERS | (rng.below(2) as u8),
            _ => rng.next() as u8,
        };
        let stream = match rng.below(6) {
            0 => 0,
            1 => 1,
            2 => 3,
            3 => 5,
            4 => 2,
            _ => rng.next() as u32 & 0x7fff_ffff,
        };
        let mut body = payload(rng, kind);
        if flags & frame::FLAG_PADDED != 0 && !body.is_empty() {
            body[0] = rng.below(8) as u8;
        }
        let len = match rng.below(12) {
            0 => body.len() + rng.below(4) as usize,
            1 => body.len().saturating_sub(1),
            _ => body.len(),
        };
        frame::put_header(&mut out, len, kind, flags, stream);
        out.extend_from_slice(&body);
    }
    out.to_vec()
}

/// A connection after the server's valid SETTINGS, with `streams` requests open (the last
/// one with a body still to send).
fn connection(streams: usize) -> ClientConn {
    let mut c = ClientConn::new(ClientSettings::default());
    for i in 0..streams {
        let fields: [(&[u8], &[u8]); 4] = [
            (b":method", if i % 2 == 0 { b"POST" } else { b"HEAD" }),
            (b":scheme", b"http"),
            (b":authority", b"t"),
            (b":path", b"/"),
        ];
        let id = c.send_request(&fields, i + 1 != streams).expect("a stream");
        if i + 1 == streams {
            let mut body = Bytes::from(vec![7u8; 100_000]);
            let _ = c.send_data(id, &mut body, true);
        }
    }
    let mut settings = BytesMut::new();
    frame::put_settings(&mut settings, &[]);
    let events = c.receive(&settings);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, ClientEvent::Settings { .. })),
        "{events:?}"
    );
    let _ = c.take_output();
    c
}

/// The events without `WindowOpened`: a hint given at most once per `receive` call, so
/// how often it comes depends on how the bytes were split.
fn meaning(events: &[ClientEvent]) -> Vec<&ClientEvent> {
    events
        .iter()
        .filter(|e| !matches!(e, ClientEvent::WindowOpened))
        .collect()
}

/// Feed `parts` in order: the events and the output.
fn feed(streams: usize, parts: &[&[u8]]) -> (Vec<ClientEvent>, Vec<u8>, ClientConn) {
    let mut c = connection(streams);
    let mut events = Vec::new();
    for p in parts {
        events.extend(c.receive(p));
    }
    let out = c.take_output().concat();
    (events, out, c)
}

/// The frame types of `out`, which must be whole frames.
fn frame_kinds(out: &[u8]) -> Vec<u8> {
    let mut rest = out;
    let mut kinds = Vec::new();
    while let Some(h) = FrameHeader::peek(rest) {
        let total = frame::HEADER_LEN + h.len as usize;
        assert!(rest.len() >= total, "a cut frame in the output");
        kinds.push(h.kind);
        rest = &rest[total..];
    }
    assert!(rest.is_empty(), "the output is not whole frames");
    kinds
}

fn check(seed: u64, streams: usize, input: &[u8]) {
    let (events, out, mut c) = feed(streams, &[input]);
    let errors = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Error(_)))
        .count();
    let kinds = frame_kinds(&out);
    if c.is_failed() {
        assert_eq!(errors, 1, "seed {seed}: {events:?}");
        assert!(
            matches!(events.last(), Some(ClientEvent::Error(_))),
            "seed {seed}: Error is the last event: {events:?}"
        );
        assert_eq!(
            kinds.last(),
            Some(&frame::GOAWAY),
            "seed {seed}: a failed connection ends with its GOAWAY"
        );
        assert!(c.receive(b"more bytes").is_empty(), "seed {seed}");
        assert!(!c.can_open(), "seed {seed}");
    } else {
        assert_eq!(errors, 0, "seed {seed}: {events:?}");
    }
    // The same bytes in pieces (at a seeded cut, and byte by byte) mean the same.
    let cut = (seed as usize) % (input.len() + 1);
    let (split, _, _) = feed(streams, &[&input[..cut], &input[cut..]]);
    assert_eq!(
        meaning(&events),
        meaning(&split),
        "seed {seed}: cut at {cut}"
    );
    if input.len() < 64 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let (single, _, _) = feed(streams, &bytes);
        assert_eq!(
            meaning(&events),
            meaning(&single),
            "seed {seed}: byte by byte"
        );
    }
    // The connection still takes calls without panicking.
    let fields: [(&[u8], &[u8]); 4] = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"t"),
        (b":path", b"/x"),
    ];
    if let Ok(id) = c.send_request(&fields, false) {
        let mut body = Bytes::from_static(b"abc");
        let _ = c.send_data(id, &mut body, true);
        c.consumed(id, 3);
        c.reset(id, ErrorCode::Cancel);
    }
    for id in [1, 3, 5, 7] {
        c.consumed(id, 1000);
        let _ = c.sendable(id);
    }
    c.ping();
    c.go_away();
    frame_kinds(&c.take_output().concat());
}

#[test]
fn random_server_bytes_end_cleanly() {
    let mut failed = 0;
    let mut rng = Rng(0x7e7e_2026_1207);
    for seed in 0..4000u64 {
        let input = server_bytes(&mut rng);
        for streams in [0, 3] {
            check(seed, streams, &input);
        }
        let (_, _, c) = feed(3, &[&input]);
        failed += c.is_failed() as usize;
    }
    // The inputs reach both outcomes (a generator whose every input fails at the first
    // frame would test little).
    assert!(
        failed > 400 && failed < 3900,
        "failed connections: {failed}"
    );
}

#[test]
fn a_valid_answer_then_noise_still_delivers_the_answer() {
    let mut rng = Rng(42);
    for seed in 0..500u64 {
        let mut input = BytesMut::new();
        // `:status 200` on stream 1, END_HEADERS, then random bytes.
        frame::put_header(&mut input, 1, frame::HEADERS, frame::FLAG_END_HEADERS, 1);
        input.put_u8(0x88);
        input.extend(server_bytes(&mut rng));
        let (events, _, _) = feed(3, &[&input]);
        assert!(
            matches!(
                events.first(),
                Some(ClientEvent::Headers {
                    id: 1,
                    status: 200,
                    ..
                })
            ),
            "seed {seed}: {events:?}"
        );
    }
}
