//! Round trips through the real decoders: bodies compressed by `Encoder` in uneven chunks
//! with sync flushes, decoded by Debian's `gzip -d`, `brotli -d` and `zstd -d`; and the
//! streaming promise: what a flush hands out decodes to everything fed before it.

mod common;

use bytes::BytesMut;
use common::*;
use tether_compress::{Coding, Encoder};

fn round_trip(coding: Coding, level: u32, body: &[u8]) -> Streamed {
    let s = encode_streamed(coding, level, body);
    let back = cli_decode(coding, &s.compressed);
    assert_eq!(
        back.len(),
        body.len(),
        "{coding} level {level}: decoded length"
    );
    assert!(back == body, "{coding} level {level}: decoded bytes differ");
    s
}

#[test]
fn one_byte() {
    for coding in Coding::ALL {
        if have_cli(coding) {
            round_trip(coding, coding.default_level(), b"x");
        }
    }
}

#[test]
fn empty_body_is_a_valid_stream() {
    for coding in Coding::ALL {
        if !have_cli(coding) {
            continue;
        }
        let mut out = BytesMut::new();
        let enc = Encoder::new(coding, coding.default_level()).expect("encoder");
        enc.finish(&mut out).expect("finish");
        assert!(
            !out.is_empty(),
            "{coding}: a stream has framing even when empty"
        );
        assert_eq!(cli_decode(coding, &out), b"");
    }
}

#[test]
fn json_100k_shrinks_and_streams() {
    let body = json(100 << 10);
    for coding in Coding::ALL {
        if !have_cli(coding) {
            continue;
        }
        let s = round_trip(coding, coding.default_level(), &body);
        // Text like this compresses at least 4:1 with any of the three.
        assert!(
            s.compressed.len() * 4 < body.len(),
            "{coding}: {} -> {} bytes",
            body.len(),
            s.compressed.len()
        );
        // The first flush comes well before the end of the input, and hands out bytes.
        let (fed, out) = s.flushes[0];
        assert!(
            fed < body.len() / 2,
            "{coding}: first flush after {fed} bytes"
        );
        assert!(out > 0, "{coding}: the first flush handed out nothing");
    }
}

#[test]
fn random_5m_at_every_benched_level() {
    let body = random(5 << 20, 42);
    let levels: [(Coding, &[u32]); 3] = [
        (Coding::Gzip, &[1, 6]),
        (Coding::Brotli, &[1, 4, 5]),
        (Coding::Zstd, &[1, 3]),
    ];
    for (coding, levels) in levels {
        if !have_cli(coding) {
            continue;
        }
        for &level in levels {
            let s = round_trip(coding, level, &body);
            // Incompressible: the coding may add a little framing, never much (2%). gzip
            // 1 is zlib-rs's "quick" strategy (zlib-ng's): fixed Huffman codes only, never
            // a stored block, so random bytes cost 8.44 bits each (literals 0-143 take 8
            // bits, 144-255 take 9): 5.5% more. Levels 2-9 fall back to stored blocks.
            let bound = if (coding, level) == (Coding::Gzip, 1) {
                body.len() + body.len() * 56 / 1000
            } else {
                body.len() + body.len() / 50
            };
            assert!(
                s.compressed.len() < bound,
                "{coding} {level}: {} bytes",
                s.compressed.len()
            );
            eprintln!(
                "random 5 MiB, {coding} {level}: {} bytes",
                s.compressed.len()
            );
        }
    }
}

#[test]
fn levels_out_of_range_are_clamped() {
    let body = json(8 << 10);
    for (coding, level) in [
        (Coding::Gzip, 0),
        (Coding::Gzip, 99),
        (Coding::Brotli, 99),
        (Coding::Zstd, 0),
        (Coding::Zstd, 99),
    ] {
        if have_cli(coding) {
            round_trip(coding, level, &body);
        }
    }
}

/// The streaming promise, checked byte for byte: after each flush, the compressed bytes
/// handed out so far decode to exactly the input fed so far — so the client gets the
/// answer's first bytes before the backend sends its last.
#[test]
fn each_flush_makes_everything_fed_decodable() {
    let body = json(300 << 10);
    for coding in Coding::ALL {
        let mut enc = Encoder::new(coding, coding.default_level()).expect("encoder");
        let mut sent = Vec::new();
        let mut out = BytesMut::new();
        let mut at = 0;
        for (i, n) in CHUNKS.iter().cycle().take(12).enumerate() {
            enc.feed(&body[at..at + n], &mut out).expect("feed");
            at += n;
            if i % 4 == 3 {
                enc.flush(&mut out).expect("flush");
                sent.extend_from_slice(&out);
                out.clear();
                let decoded = lib_decode_prefix(coding, &sent);
                assert_eq!(decoded.len(), at, "{coding}: after a flush at {at}");
                assert!(decoded == body[..at], "{coding}: flushed prefix differs");
            }
        }
        assert!(at < body.len());
    }
}

/// Without flushes, output still comes out while feeding (the encoders do not hoard the
/// body): of a 5 MiB body, at most one window (1 MiB, brotli's ring buffer) plus a block
/// is held back until `finish`.
#[test]
fn output_flows_before_finish_without_flushes() {
    let body = random(5 << 20, 3);
    for coding in Coding::ALL {
        let mut enc = Encoder::new(coding, coding.default_level()).expect("encoder");
        let mut out = BytesMut::new();
        let mut before_finish = 0;
        for chunk in body.chunks(16 << 10) {
            enc.feed(chunk, &mut out).expect("feed");
            before_finish += out.len();
            out.clear();
        }
        enc.finish(&mut out).expect("finish");
        let total = before_finish + out.len();
        assert!(
            total - before_finish <= (1 << 20) + (128 << 10),
            "{coding}: only {before_finish} of {total} bytes before finish"
        );
    }
}

#[test]
fn output_appends_to_a_non_empty_buffer() {
    for coding in Coding::ALL {
        let mut enc = Encoder::new(coding, coding.default_level()).expect("encoder");
        let mut out = BytesMut::from(&b"HEAD"[..]);
        enc.feed(b"hello hello hello", &mut out).expect("feed");
        enc.flush(&mut out).expect("flush");
        enc.finish(&mut out).expect("finish");
        assert_eq!(&out[..4], b"HEAD");
        assert_eq!(lib_decode_prefix(coding, &out[4..]), b"hello hello hello");
        assert_eq!(Encoder::new(coding, 1).expect("encoder").coding(), coding);
    }
}
