//! Shared by the integration tests: deterministic bodies, an encoder driver that feeds
//! uneven chunks with flushes, and the Debian `gzip`/`brotli`/`zstd` CLIs as decoders.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use bytes::BytesMut;
use tether_compress::{Coding, Encoder};

/// xorshift64*: the same bytes on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `len` random bytes (incompressible).
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A JSON array of records like an API answer, at least `len` bytes, cut to `len`.
pub fn json(len: usize) -> Vec<u8> {
    const NAMES: [&str; 8] = [
        "ada", "grace", "edsger", "barbara", "ken", "dennis", "linus", "margaret",
    ];
    const CITIES: [&str; 5] = ["Lausanne", "Paris", "Zurich", "Bern", "Geneva"];
    let mut rng = Rng::new(7);
    let mut s = String::from("[");
    let mut id = 0u64;
    while s.len() < len {
        let r = rng.next();
        s.push_str(&format!(
            "{{\"id\":{id},\"name\":\"{}\",\"city\":\"{}\",\"score\":{}.{},\"active\":{},\"tags\":[\"t{}\",\"t{}\"]}},",
            NAMES[(r % 8) as usize],
            CITIES[((r >> 8) % 5) as usize],
            (r >> 16) % 1000,
            (r >> 32) % 100,
            (r >> 40) & 1 == 0,
            (r >> 44) % 50,
            (r >> 52) % 50,
        ));
        id += 1;
    }
    let mut v = s.into_bytes();
    v.truncate(len);
    v
}

/// Chunk sizes that do not line up with anything: 1, 7, 1000, 4096, 65 539, 13, 16 384, ...
pub const CHUNKS: [usize; 7] = [1, 7, 1000, 4096, 65_539, 13, 16_384];

/// What [`encode_streamed`] saw.
pub struct Streamed {
    /// The whole compressed body.
    pub compressed: Vec<u8>,
    /// (input bytes fed so far, compressed bytes out so far) at each flush.
    pub flushes: Vec<(usize, usize)>,
}

/// Compress `body` fed in [`CHUNKS`] sizes, flushing after every third chunk.
pub fn encode_streamed(coding: Coding, level: u32, body: &[u8]) -> Streamed {
    let mut enc = Encoder::new(coding, level).expect("encoder");
    let mut compressed = Vec::new();
    let mut flushes = Vec::new();
    let mut out = BytesMut::new();
    let (mut at, mut i) = (0, 0);
    while at < body.len() {
        let n = CHUNKS[i % CHUNKS.len()].min(body.len() - at);
        enc.feed(&body[at..at + n], &mut out).expect("feed");
        at += n;
        i += 1;
        if i % 3 == 0 {
            enc.flush(&mut out).expect("flush");
            compressed.extend_from_slice(&out);
            out.clear();
            flushes.push((at, compressed.len()));
        }
        compressed.extend_from_slice(&out);
        out.clear();
    }
    let (fed, handed) = (enc.bytes_in(), enc.bytes_out());
    assert_eq!(fed, body.len() as u64);
    assert_eq!(handed, compressed.len() as u64 + out.len() as u64);
    enc.finish(&mut out).expect("finish");
    compressed.extend_from_slice(&out);
    Streamed {
        compressed,
        flushes,
    }
}

/// The Debian CLI that decodes `coding`, as `(program, args)`.
pub fn decoder_cli(coding: Coding) -> (&'static str, &'static [&'static str]) {
    match coding {
        Coding::Gzip => ("gzip", &["-dc"]),
        Coding::Brotli => ("brotli", &["-dc"]),
        Coding::Zstd => ("zstd", &["-dcq"]),
    }
}

/// Whether the CLI is installed. Without it the caller prints SKIPPED and passes, unless
/// `CI` is set: then a missing tool is a failure (`scripts/setup.sh` installs them).
pub fn have_cli(coding: Coding) -> bool {
    let (prog, _) = decoder_cli(coding);
    let found = Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{prog}` is not installed (apt-get install {prog}) and CI is set"
        );
        eprintln!("SKIPPED: `{prog}` is not installed (apt-get install {prog})");
    }
    found
}

/// Decode `compressed` with the real CLI; panics with its stderr if it fails.
pub fn cli_decode(coding: Coding, compressed: &[u8]) -> Vec<u8> {
    let (prog, args) = decoder_cli(coding);
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn decoder");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = compressed.to_vec();
    // A writer thread: the decoder's stdout pipe must be drained while we write.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut stdout)
        .expect("read");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    let status = child.wait().expect("wait");
    writer.join().expect("writer");
    assert!(
        status.success(),
        "{prog} {args:?} failed: {status}: {stderr}"
    );
    stdout
}

/// Decode a possibly unfinished stream with the Rust decoders (the CLIs print nothing or
/// fail on a truncated brotli stream): returns what can be decoded so far.
pub fn lib_decode_prefix(coding: Coding, compressed: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            d.write_all(compressed).expect("gzip prefix");
            d.flush().expect("gzip flush");
            d.get_ref().clone()
        }
        Coding::Brotli => {
            // The reader hands out what it has decoded, then fails at the missing end.
            let mut d = brotli::Decompressor::new(compressed, 4096);
            let mut v = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = d.read(&mut buf) {
                v.extend_from_slice(&buf[..n]);
            }
            v
        }
        Coding::Zstd => {
            let mut d = zstd::stream::write::Decoder::new(Vec::new()).expect("zstd");
            d.write_all(compressed).expect("zstd prefix");
            d.flush().expect("zstd flush");
            d.get_ref().clone()
        }
    }
}
