//! tether-h2's connection on arbitrary bytes after a valid preface and SETTINGS: `recv`
//! never panics, fed whole or in two pieces (split at the first input byte) it gives the
//! same events and the same result, and whatever it answers is whole frames. Each frame the
//! input holds is also decoded alone with `frame::decode`.
#![no_main]

use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tether_h2::frame::{self, FrameHeader};
use tether_h2::{Config, Conn};

fn feed(parts: &[&[u8]]) -> (String, Vec<String>, Vec<u8>) {
    let mut conn = Conn::new(Config::default());
    let now = Instant::now();
    let mut input = BytesMut::from(frame::PREFACE);
    frame::put_settings(&mut input, &[]);
    let mut events = Vec::new();
    let mut result = Ok(());
    for p in parts {
        input.extend_from_slice(p);
        result = conn.recv(now, &mut input, &mut events);
        if result.is_err() {
            break;
        }
    }
    let out: Vec<u8> = conn.take_output().concat();
    (
        format!("{result:?}"),
        events.iter().map(|e| format!("{e:?}")).collect(),
        out,
    )
}

fuzz_target!(|data: &[u8]| {
    let whole = feed(&[data]);
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let split = feed(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1, split.1);
    // The output is whole frames.
    let mut out = &whole.2[..];
    while let Some(h) = FrameHeader::peek(out) {
        out = &out[frame::HEADER_LEN + h.len as usize..];
    }
    assert!(out.is_empty());
    // Each frame of the input, decoded alone.
    let mut rest = data;
    while let Some(h) = FrameHeader::peek(rest) {
        let total = frame::HEADER_LEN + h.len as usize;
        if rest.len() < total {
            break;
        }
        let _ = frame::decode(h, bytes::Bytes::copy_from_slice(&rest[..total]));
        rest = &rest[total..];
    }
});
