//! The cache of recent successes: `(file, Authorization value) → user` for a time to live,
//! so that a client sending the same right credentials on every request pays for one hash
//! verification per TTL, not one per request.
//!
//! Entries are keyed by a keyed hash, HMAC-SHA-256 with a random per-cache key, of the
//! file's load number and the whole header value: the cache never holds a password, and
//! nobody can compute a key without the secret. A lookup finds the slot by the tag's first
//! 8 bytes and confirms it by comparing the full 32-byte tag in constant time (`subtle`).
//! Only successes are stored, so a wrong password is never answered from here. The size is
//! bounded (the oldest entry goes first) and every entry expires after the TTL.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The keyed hash of one `(file, Authorization value)` pair.
pub(crate) type Tag = [u8; 32];

struct Slot {
    tag: Tag,
    user: String,
    expires: Instant,
}

struct Inner {
    slots: HashMap<u64, Slot>,
    /// Insertion order (= expiry order, the TTL being fixed): `(slot key, expires)`.
    order: VecDeque<(u64, Instant)>,
}

/// A bounded map of recent successes with a TTL; shared by the callers' threads (lookups)
/// and the helper threads (inserts) behind one short lock.
pub(crate) struct SuccessCache {
    mac: Hmac<Sha256>,
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl SuccessCache {
    /// A cache of at most `max_entries` (0 turns it off) living `ttl` each, keyed with
    /// `secret` (random per process: see `Verifier::new`).
    pub(crate) fn new(secret: &[u8; 32], max_entries: usize, ttl: Duration) -> SuccessCache {
        SuccessCache {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
            ttl,
            max_entries,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// The tag of `authorization` sent to the file loaded as number `file_id`.
    pub(crate) fn tag(&self, file_id: u64, authorization: &[u8]) -> Tag {
        let mut mac = self.mac.clone();
        mac.update(&file_id.to_le_bytes());
        mac.update(authorization);
        mac.finalize().into_bytes().into()
    }

    fn slot_key(tag: &Tag) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        u64::from_le_bytes(first)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (no invariant spans
        // two statements that could panic): keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user of a live success stored under `tag`.
    pub(crate) fn get(&self, tag: &Tag, now: Instant) -> Option<String> {
        if self.max_entries == 0 {
            return None;
        }
        let inner = self.lock();
        let slot = inner.slots.get(&Self::slot_key(tag))?;
        let same: bool = slot.tag.ct_eq(tag).into();
        (same && now < slot.expires).then(|| slot.user.clone())
    }

    /// Stores a success for `tag` until `now + ttl`, making room by dropping expired
    /// entries and then the oldest ones.
    pub(crate) fn insert(&self, tag: Tag, user: &str, now: Instant) {
        if self.max_entries == 0 {
            return;
        }
        let expires = now + self.ttl;
        let key = Self::slot_key(&tag);
        let mut inner = self.lock();
        let Inner { slots, order } = &mut *inner;
        slots.insert(
            key,
            Slot {
                tag,
                user: user.to_string(),
                expires,
            },
        );
        order.push_back((key, expires));
        while let Some(&(old, old_expires)) = order.front() {
            if old_expires > now && order.len() <= self.max_entries {
                break;
            }
            order.pop_front();
            // The slot may have been stored again since: drop it only if this is its
            // latest insertion.
            if slots.get(&old).is_some_and(|s| s.expires == old_expires) {
                slots.remove(&old);
            }
        }
    }

    /// Entries held now (expired ones not yet dropped included).
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max: usize) -> SuccessCache {
        SuccessCache::new(&[7; 32], max, Duration::from_secs(300))
    }

    #[test]
    fn hit_then_expiry() {
        let c = cache(10);
        let t0 = Instant::now();
        let tag = c.tag(1, b"Basic YWxpY2U6cHc=");
        assert_eq!(c.get(&tag, t0), None);
        c.insert(tag, "alice", t0);
        assert_eq!(
            c.get(&tag, t0 + Duration::from_secs(299)).as_deref(),
            Some("alice")
        );
        assert_eq!(c.get(&tag, t0 + Duration::from_secs(300)), None);
    }

    #[test]
    fn tags_depend_on_file_value_and_secret() {
        let c = cache(10);
        let other = SuccessCache::new(&[8; 32], 10, Duration::from_secs(1));
        let tag = c.tag(1, b"Basic YWxpY2U6cHc=");
        assert_ne!(tag, c.tag(2, b"Basic YWxpY2U6cHc="));
        assert_ne!(tag, c.tag(1, b"Basic YWxpY2U6cHd="));
        assert_ne!(tag, other.tag(1, b"Basic YWxpY2U6cHc="));
        assert_eq!(tag, c.tag(1, b"Basic YWxpY2U6cHc="));
    }

    #[test]
    fn a_slot_collision_is_not_a_hit() {
        let c = cache(10);
        let t0 = Instant::now();
        let tag = c.tag(1, b"x");
        c.insert(tag, "alice", t0);
        let mut forged = tag;
        forged[31] ^= 1; // same first 8 bytes, other tag
        assert_eq!(c.get(&forged, t0), None);
    }

    #[test]
    fn bounded_oldest_first() {
        let c = cache(3);
        let t0 = Instant::now();
        let tags: Vec<Tag> = (0..5u8).map(|i| c.tag(1, &[i])).collect();
        for (i, tag) in tags.iter().enumerate() {
            c.insert(*tag, "u", t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(c.len(), 3);
        let now = t0 + Duration::from_millis(10);
        assert_eq!(c.get(&tags[0], now), None);
        assert_eq!(c.get(&tags[1], now), None);
        assert!(c.get(&tags[2], now).is_some());
        assert!(c.get(&tags[4], now).is_some());
    }

    #[test]
    fn reinserting_keeps_the_entry_and_expired_ones_go() {
        let c = cache(2);
        let t0 = Instant::now();
        let (a, b) = (c.tag(1, b"a"), c.tag(1, b"b"));
        c.insert(a, "u", t0);
        c.insert(a, "u", t0 + Duration::from_secs(1));
        c.insert(b, "u", t0 + Duration::from_secs(2));
        // a's first insertion left the order queue; a itself stays.
        assert!(c.get(&a, t0 + Duration::from_secs(3)).is_some());
        // Much later, inserting drops everything expired.
        let late = t0 + Duration::from_secs(1000);
        c.insert(c.tag(1, b"c"), "u", late);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&a, late), None);
    }

    #[test]
    fn zero_entries_turns_it_off() {
        let c = cache(0);
        let t0 = Instant::now();
        let tag = c.tag(1, b"x");
        c.insert(tag, "u", t0);
        assert_eq!(c.get(&tag, t0), None);
        assert_eq!(c.len(), 0);
    }
}
