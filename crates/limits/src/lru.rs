//! A bounded-by-the-caller map `key bytes → V` that remembers the order keys were last
//! seen: lookup, touch, insert, and removal of the least recently seen key, all O(1).
//!
//! Nodes live in a `Vec` (a slab: freed slots are reused through an intrusive free list)
//! linked in a doubly linked list, most recently seen first; a `hashbrown::HashTable`
//! maps a key's hash to its slot. The caller hashes the key (once, also to pick a shard)
//! and passes the hash in. Looking up a key that is present allocates nothing.

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

struct Node<V> {
    key: Box<[u8]>,
    hash: u64,
    value: V,
    prev: u32,
    next: u32,
}

/// See the module documentation.
pub(crate) struct Lru<V> {
    table: HashTable<u32>,
    nodes: Vec<Node<V>>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen.
    tail: u32,
    /// First free slot; free slots are chained through `next`.
    free: u32,
    len: usize,
}

impl<V: Copy + Default> Lru<V> {
    pub fn new() -> Self {
        Lru {
            table: HashTable::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`, which becomes the most recently seen.
    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        let nodes = &self.nodes;
        let slot = *self.table.find(hash, |&i| *nodes[i as usize].key == *key)?;
        if slot != self.head {
            self.unlink(slot);
            self.push_front(slot);
        }
        Some(&mut self.nodes[slot as usize].value)
    }

    /// Adds `key`, which must be absent, as the most recently seen.
    pub fn insert(&mut self, hash: u64, key: &[u8], value: V) {
        let node = Node {
            key: key.into(),
            hash,
            value,
            prev: NIL,
            next: NIL,
        };
        let slot = if self.free != NIL {
            let slot = self.free;
            self.free = self.nodes[slot as usize].next;
            self.nodes[slot as usize] = node;
            slot
        } else {
            // More than u32::MAX - 1 keys cannot be bounded in memory anyway; the
            // limiter's bound is far below.
            let slot = u32::try_from(self.nodes.len()).unwrap_or(NIL - 1);
            self.nodes.push(node);
            slot
        };
        let nodes = &self.nodes;
        self.table
            .insert_unique(hash, slot, |&i| nodes[i as usize].hash);
        self.push_front(slot);
        self.len += 1;
    }

    /// The value of the least recently seen key.
    pub fn oldest(&self) -> Option<&V> {
        (self.tail != NIL).then(|| &self.nodes[self.tail as usize].value)
    }

    /// Removes the least recently seen key.
    pub fn pop_oldest(&mut self) -> Option<V> {
        let slot = self.tail;
        if slot == NIL {
            return None;
        }
        let hash = self.nodes[slot as usize].hash;
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == slot) {
            entry.remove();
        }
        self.unlink(slot);
        let node = &mut self.nodes[slot as usize];
        node.key = Box::default(); // frees the key now, not when the slot is reused
        node.next = self.free;
        self.free = slot;
        self.len -= 1;
        Some(std::mem::take(&mut node.value))
    }

    /// Keys from the most to the least recently seen (for tests and debugging).
    #[cfg(test)]
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = self.head;
        while at != NIL {
            out.push(self.nodes[at as usize].key.to_vec());
            at = self.nodes[at as usize].next;
        }
        out
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let n = &self.nodes[slot as usize];
            (n.prev, n.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[slot as usize];
            n.prev = NIL;
            n.next = old;
        }
        match old {
            NIL => self.tail = slot,
            o => self.nodes[o as usize].prev = slot,
        }
        self.head = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    fn h(key: &[u8]) -> u64 {
        // A poor hash on purpose: collisions must not confuse keys.
        key.len() as u64
    }

    #[test]
    fn order_follows_the_last_sighting_and_slots_are_reused() {
        let mut lru: Lru<u64> = Lru::new();
        for (i, k) in [&b"a"[..], b"bb", b"c", b"dd"].iter().enumerate() {
            lru.insert(h(k), k, i as u64);
        }
        assert_eq!(
            lru.keys(),
            vec![b"dd".to_vec(), b"c".to_vec(), b"bb".to_vec(), b"a".to_vec()]
        );
        assert_eq!(lru.get_mut(h(b"a"), b"a").copied(), Some(0));
        assert_eq!(lru.get_mut(h(b"zz"), b"zz"), None);
        assert_eq!(lru.oldest(), Some(&1));
        assert_eq!(lru.pop_oldest(), Some(1)); // "bb"
        assert_eq!(lru.get_mut(h(b"bb"), b"bb"), None);
        assert_eq!(lru.pop_oldest(), Some(2)); // "c"
        assert_eq!(lru.len(), 2);
        lru.insert(h(b"e"), b"e", 4);
        lru.insert(h(b"ff"), b"ff", 5);
        assert_eq!(lru.nodes.len(), 4, "freed slots are reused");
        assert_eq!(
            lru.keys(),
            vec![b"ff".to_vec(), b"e".to_vec(), b"a".to_vec(), b"dd".to_vec()]
        );
        *lru.get_mut(h(b"dd"), b"dd").unwrap() = 9;
        assert_eq!(lru.pop_oldest(), Some(0));
        assert_eq!(lru.pop_oldest(), Some(4));
        assert_eq!(lru.pop_oldest(), Some(5));
        assert_eq!(lru.pop_oldest(), Some(9));
        assert_eq!(lru.pop_oldest(), None);
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.oldest(), None);
    }
}
