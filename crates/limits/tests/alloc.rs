//! Allocations on the hot path, counted by a global allocator: a check of a key already
//! held and a permit of a key already held allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use tether_limits::{ConcurrencyLimiter, RateLimiter, RateRule};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn checking_a_known_key_allocates_nothing() {
    let l = RateLimiter::new(RateRule::per_second(100, 10, false), 1000);
    let t0 = Instant::now();
    for i in 0..500u32 {
        l.check(&i.to_be_bytes(), t0);
    }
    let new_key = allocations(|| {
        l.check(b"new key", t0);
    });
    assert!(new_key > 0, "a new key is stored (the counter works)");
    let known = allocations(|| {
        for round in 0..20u32 {
            for i in 0..500u32 {
                l.check(
                    &i.to_be_bytes(),
                    t0 + std::time::Duration::from_millis(round.into()),
                );
            }
        }
    });
    assert_eq!(known, 0);
}

#[test]
fn a_permit_for_a_held_key_allocates_nothing() {
    let l = ConcurrencyLimiter::new(10);
    let first = l.acquire(b"10.0.0.1").expect("first");
    let held = allocations(|| {
        for _ in 0..1000 {
            let p = l.acquire(b"10.0.0.1");
            assert!(p.is_some());
        }
    });
    assert_eq!(held, 0);
    drop(first);
    let fresh = allocations(|| {
        let _p = l.acquire(b"10.0.0.1");
    });
    assert!(
        fresh > 0,
        "a key with no holder was removed and is stored again"
    );
}

#[test]
fn composing_a_key_into_a_reused_buffer_allocates_nothing() {
    let mut key = Vec::with_capacity(64);
    let n = allocations(|| {
        for _ in 0..100 {
            tether_limits::compose_key(&mut key, &[b"192.0.2.7", b"session=abc", b"/api"]);
        }
    });
    assert_eq!(n, 0);
    let mut other = Vec::new();
    tether_limits::compose_key(&mut other, &[b"192.0.2.7session=abc", b"", b"/api"]);
    assert_ne!(key, other, "parts are delimited by their lengths");
}
