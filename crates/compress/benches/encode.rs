//! CPU per compressed answer, per coding and level: a 100 KiB JSON answer (the issue's
//! yardstick) and a 1 KiB one (what `DEFAULT_MIN_LENGTH` skips), each through a fresh
//! `Encoder` fed in 16 KiB chunks and finished, as the proxy does per answer.
//!
//! `cargo bench -p tether-compress --bench encode` (criterion prints ns per answer and the
//! throughput over the uncompressed bytes; the compressed sizes are printed first).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tether_compress::{Coding, Encoder};

#[path = "../tests/common/mod.rs"]
mod common;

const LEVELS: [(Coding, u32); 8] = [
    (Coding::Gzip, 1),
    (Coding::Gzip, 2),
    (Coding::Gzip, 6),
    (Coding::Brotli, 1),
    (Coding::Brotli, 4),
    (Coding::Brotli, 5),
    (Coding::Zstd, 1),
    (Coding::Zstd, 3),
];

fn compress(coding: Coding, level: u32, body: &[u8]) -> usize {
    let mut enc = Encoder::new(coding, level).expect("encoder");
    let mut out = BytesMut::new();
    let mut n = 0;
    for chunk in body.chunks(16 << 10) {
        enc.feed(chunk, &mut out).expect("feed");
        n += out.split().len();
    }
    enc.finish(&mut out).expect("finish");
    n + out.len()
}

fn answers(c: &mut Criterion) {
    for (name, len) in [("json_100k", 100 << 10), ("json_1k", 1 << 10)] {
        let body = common::json(len);
        for (coding, level) in LEVELS {
            let size = compress(coding, level, &body);
            println!(
                "{name} {coding} {level}: {} -> {size} bytes ({:.1}%)",
                body.len(),
                100.0 * size as f64 / body.len() as f64
            );
        }
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::BytesDecimal(body.len() as u64));
        for (coding, level) in LEVELS {
            let id = BenchmarkId::new(coding.name(), level);
            group.bench_with_input(id, &body, |b, body| {
                b.iter(|| compress(coding, level, black_box(body)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, answers);
criterion_main!(benches);
