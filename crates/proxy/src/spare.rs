//! Boxes kept for the next request: a proxied request's `Exchange`, `Current` (its log and
//! metrics record) and affinity `Pick` are each one allocation, made and freed once per
//! request. A per-thread list of spare boxes (`Spares`) gives a freed box's memory to the
//! next request of the same kind on that thread, so a worker's steady state allocates none
//! of them (`docs/benchmarks.md`, "The hot path").
//!
//! A spare box holds no value: its contents are dropped when it is given back (so it keeps
//! no `Arc`, buffer or permit alive), and it is written whole when taken again.

use std::cell::RefCell;
use std::mem::MaybeUninit;

/// Spare boxes kept per list; more are freed (a burst of concurrent requests ends).
const KEEP: usize = 64;

/// A per-thread list of spare `Box<T>` allocations: declare one with `thread_local!` and
/// use it through [`boxed`], [`recycle`] and [`unbox`].
pub(crate) struct Spares<T> {
    list: RefCell<Vec<Box<MaybeUninit<T>>>>,
}

impl<T> Spares<T> {
    pub(crate) const fn new() -> Self {
        Spares {
            list: RefCell::new(Vec::new()),
        }
    }

    fn take(&self) -> Option<Box<MaybeUninit<T>>> {
        self.list.try_borrow_mut().ok().and_then(|mut l| l.pop())
    }

    fn give(&self, spare: Box<MaybeUninit<T>>) {
        if let Ok(mut l) = self.list.try_borrow_mut() {
            if l.len() < KEEP {
                l.push(spare);
            }
        }
    }
}

/// `Box::new(value)`, in a spare box of `spares` when it has one.
pub(crate) fn boxed<T: 'static>(
    spares: &'static std::thread::LocalKey<Spares<T>>,
    value: T,
) -> Box<T> {
    match spares.try_with(Spares::take).ok().flatten() {
        Some(spare) => Box::write(spare, value),
        None => Box::new(value),
    }
}

/// Drop `b`'s value and keep its allocation in `spares` for the next [`boxed`].
pub(crate) fn recycle<T: 'static>(spares: &'static std::thread::LocalKey<Spares<T>>, b: Box<T>) {
    let raw = Box::into_raw(b);
    // SAFETY: `raw` comes from a `Box<T>`: valid, initialised and owned here alone. Its value
    // is dropped once, here; what is left is an allocation of `T`'s layout holding no value,
    // which is exactly what a `Box<MaybeUninit<T>>` owns (same layout, same allocator).
    let spare = unsafe {
        std::ptr::drop_in_place(raw);
        Box::from_raw(raw.cast::<MaybeUninit<T>>())
    };
    // (While the thread's locals are torn down: the allocation is simply freed.)
    let _ = spares.try_with(|s| s.give(spare));
}

/// Move `b`'s value out and keep its allocation in `spares` for the next [`boxed`].
pub(crate) fn unbox<T: 'static>(spares: &'static std::thread::LocalKey<Spares<T>>, b: Box<T>) -> T {
    let raw = Box::into_raw(b);
    // SAFETY: `raw` comes from a `Box<T>`: valid, initialised and owned here alone. The value
    // is read out once (and owned by the caller from then on); the allocation left holds no
    // value, as a `Box<MaybeUninit<T>>` of the same layout and allocator.
    let (value, spare) = unsafe { (raw.read(), Box::from_raw(raw.cast::<MaybeUninit<T>>())) };
    let _ = spares.try_with(|s| s.give(spare));
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    thread_local! {
        static TEST: Spares<(Rc<()>, [u8; 100])> = const { Spares::new() };
    }

    #[test]
    fn a_recycled_box_is_reused_and_its_value_dropped() {
        let held = Rc::new(());
        let b = boxed(&TEST, (held.clone(), [7; 100]));
        let at = &*b as *const _ as usize;
        assert_eq!(Rc::strong_count(&held), 2);
        recycle(&TEST, b);
        // The value is gone (the Rc it held was dropped), the allocation kept.
        assert_eq!(Rc::strong_count(&held), 1);
        let again = boxed(&TEST, (held.clone(), [9; 100]));
        assert_eq!(
            &*again as *const _ as usize, at,
            "the spare box is taken again"
        );
        assert_eq!(again.1[99], 9);
        // A second box while the first is in use is a new allocation.
        let other = boxed(&TEST, (held.clone(), [1; 100]));
        assert_ne!(&*other as *const _ as usize, at);
        let other_at = &*other as *const _ as usize;
        drop(again); // (an ordinary drop: freed, not kept)
        let (rc, bytes) = unbox(&TEST, other);
        // The value moved out whole (its Rc still counts); the allocation is kept.
        assert_eq!((Rc::strong_count(&held), bytes[0]), (2, 1));
        drop(rc);
        assert_eq!(Rc::strong_count(&held), 1);
        let third = boxed(&TEST, (held.clone(), [2; 100]));
        assert_eq!(
            &*third as *const _ as usize, other_at,
            "the unboxed one's allocation is taken again"
        );
        drop(third);
        assert_eq!(Rc::strong_count(&held), 1);
    }

    #[test]
    fn at_most_keep_spares_are_kept() {
        let boxes: Vec<_> = (0..KEEP + 10)
            .map(|_| boxed(&TEST, (Rc::new(()), [0; 100])))
            .collect();
        for b in boxes {
            recycle(&TEST, b);
        }
        assert_eq!(TEST.with(|s| s.list.borrow().len()), KEEP);
    }
}
