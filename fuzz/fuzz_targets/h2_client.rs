//! tether-h2's client side (`ClientConn::receive`) on arbitrary server bytes after a valid
//! SETTINGS, with no stream open or with three (a bodiless GET, a HEAD, a POST whose body
//! waits for window): never panics; fed whole or in two pieces (split at the second input
//! byte) it means the same (`WindowOpened`, a per-call hint, aside); the output is whole
//! frames; a failed connection said `Error` once, last, queued a GOAWAY and reads nothing
//! more; and the connection still takes calls afterwards. The first input byte picks the
//! streams; the rest is the server's.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tether_h2::frame::{self, FrameHeader};
use tether_h2::{ClientConn, ClientEvent, ClientSettings, ErrorCode};

fn request(method: &'static [u8]) -> [(&'static [u8], &'static [u8]); 4] {
    [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", b"fuzz"),
        (b":path", b"/"),
    ]
}

fn connection(streams: bool) -> ClientConn {
    let mut c = ClientConn::new(ClientSettings::default());
    if streams {
        let _ = c.send_request(&request(b"GET"), true);
        let _ = c.send_request(&request(b"HEAD"), true);
        if let Ok(id) = c.send_request(&request(b"POST"), false) {
            let mut body = Bytes::from(vec![b'x'; 100_000]);
            let _ = c.send_data(id, &mut body, true);
        }
    }
    let mut settings = BytesMut::new();
    frame::put_settings(&mut settings, &[]);
    let _ = c.receive(&settings);
    let _ = c.take_output();
    c
}

fn feed(streams: bool, parts: &[&[u8]]) -> (Vec<ClientEvent>, Vec<u8>, ClientConn) {
    let mut c = connection(streams);
    let mut events = Vec::new();
    for p in parts {
        events.extend(c.receive(p));
    }
    let out = c.take_output().concat();
    (events, out, c)
}

fn meaning(events: &[ClientEvent]) -> Vec<&ClientEvent> {
    events
        .iter()
        .filter(|e| !matches!(e, ClientEvent::WindowOpened))
        .collect()
}

/// The frame types of `out`, which must be whole frames.
fn kinds(out: &[u8]) -> Vec<u8> {
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

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let streams = first & 1 == 1;
    let (events, out, mut c) = feed(streams, &[input]);
    let errors = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Error(_)))
        .count();
    let sent = kinds(&out);
    if c.is_failed() {
        assert_eq!(errors, 1);
        assert!(matches!(events.last(), Some(ClientEvent::Error(_))));
        assert_eq!(sent.last(), Some(&frame::GOAWAY));
        assert!(c.receive(b"more").is_empty());
        assert!(!c.can_open());
    } else {
        assert_eq!(errors, 0);
    }
    let cut = input.first().map_or(0, |&b| b as usize % (input.len() + 1));
    let (split, _, _) = feed(streams, &[&input[..cut], &input[cut..]]);
    assert_eq!(meaning(&events), meaning(&split));
    // Calls after whatever the server sent.
    if let Ok(id) = c.send_request(&request(b"POST"), false) {
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
    kinds(&c.take_output().concat());
});
