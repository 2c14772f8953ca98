//! Heap per encoder, measured with glibc's `mallinfo2` (it counts the Rust allocations and
//! zstd's C ones alike): at creation, and the peak while an answer streams through in
//! 16 KiB chunks (50 MiB at the default levels, 20 MiB at the others). The peak must not grow with the body (nothing hoards it) and must
//! stay within a per-coding bound. One test in this binary, so no other test allocates
//! meanwhile. `cargo test -p tether-compress --test memory -- --nocapture` prints the table.

mod common;

use bytes::BytesMut;
use common::{json, random};
use tether_compress::{Coding, Encoder};

fn heap() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

struct Measure {
    created: usize,
    /// Peak over the first 10 MiB fed, and over the last 10 MiB.
    early_peak: usize,
    late_peak: usize,
}

fn measure(coding: Coding, level: u32, body: &[u8], repeats: usize, flushes: bool) -> Measure {
    let base = heap();
    let mut enc = Encoder::new(coding, level).expect("encoder");
    let created = heap().saturating_sub(base);
    let mut out = BytesMut::new();
    let (mut early_peak, mut late_peak, mut fed) = (0, 0, 0usize);
    let total = body.len() * repeats;
    for _ in 0..repeats {
        for (i, chunk) in body.chunks(16 << 10).enumerate() {
            enc.feed(chunk, &mut out).expect("feed");
            if flushes && i % 4 == 3 {
                enc.flush(&mut out).expect("flush");
            }
            // The proxy sends `out` and drops it; taking it here does the same.
            drop(out.split());
            fed += chunk.len();
            let now = heap().saturating_sub(base);
            if fed <= 10 << 20 {
                early_peak = early_peak.max(now);
            } else if fed > total - (10 << 20) {
                late_peak = late_peak.max(now);
            }
        }
    }
    enc.finish(&mut out).expect("finish");
    Measure {
        created,
        early_peak,
        late_peak,
    }
}

#[test]
fn heap_per_encoder_is_bounded_and_flat() {
    // Unique bytes (no repeats within any window): the encoders' worst case.
    let text = json(25 << 20);
    let noise = random(25 << 20, 9);
    // (coding, level, MiB streamed, bound on the peak in KiB); the bounds are the
    // measured peaks (README) with some headroom: a regression to the libraries' default
    // windows (brotli 4 MiB, zstd 2 MiB) or a hoarded body breaks them.
    let cases = [
        (Coding::Gzip, 1, 20, 1024),
        (Coding::Gzip, 6, 50, 1024),
        (Coding::Brotli, 1, 20, 1024),
        (Coding::Brotli, 4, 50, 6656),
        (Coding::Brotli, 5, 20, 7 << 10),
        (Coding::Zstd, 1, 20, 2 << 10),
        (Coding::Zstd, 3, 50, 3 << 10),
    ];
    let mut failures = Vec::new();
    println!(
        "coding level  body, flushes        created KiB  peak KiB (first 10 MiB)  (last 10 MiB)"
    );
    for (coding, level, mib, bound_kib) in cases {
        let runs = [
            ("json, none", &text, false),
            ("json, every 64 KiB", &text, true),
            ("random, every 64 KiB", &noise, true),
        ];
        for (name, body, flushes) in runs {
            let body = &body[..(mib << 20).min(body.len())];
            let m = measure(coding, level, body, mib.div_ceil(25), flushes);
            println!(
                "{:<6} {:>5}  {:<20} {:>11}  {:>23}  {:>13}",
                coding.name(),
                level,
                name,
                m.created >> 10,
                m.early_peak >> 10,
                m.late_peak >> 10
            );
            if m.early_peak.max(m.late_peak) > bound_kib << 10 {
                failures.push(format!(
                    "{coding} {level} {name}: peak over {bound_kib} KiB"
                ));
            }
            // Flat: the last 10 MiB need no more than the first 10 (+64 KiB of noise).
            if m.late_peak > m.early_peak + (64 << 10) {
                failures.push(format!("{coding} {level} {name}: the heap grew"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
