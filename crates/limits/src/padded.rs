//! `Padded<T>`: a value alone on its cache lines, so that two threads locking two
//! neighbouring shards do not fight over one line (false sharing).

use std::ops::Deref;

/// `T`, aligned (and so sized) to 128 bytes: two 64-byte lines, as adjacent-line
/// prefetchers fetch them in pairs.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
