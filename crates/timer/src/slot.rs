//! One slot of the wheel: the entries waiting for the same stretch of ticks,
//! and what is known about the earliest of them.
//!
//! A slot is a vector of entry indices; every entry records its position in
//! it (`Entry::pos`), so any entry leaves in `O(1)` by swapping the last one
//! into its place. A vector rather than a linked list because moving a whole
//! slot down a level, or scanning it, then reads independent entries the
//! processor can fetch in parallel, where a list walk waits for each entry
//! before it knows the next.
//!
//! The vector has two forms:
//! - **unordered** (the usual one): insert and cancel are `O(1)`, and the
//!   index of the earliest entry is kept exact on every insert at the cost of
//!   one comparison;
//! - **ordered**: a binary heap by `(deadline, seq)` (see
//!   [`heap`]), so the earliest entry is known at once and
//!   insert or cancel is `O(log k)`.
//!
//! A slot is ordered when its entries must come out in exact order (the
//! wheel's current slot), or when its earliest entry was cancelled twice
//! while the wheel needed to know it: the first time the slot is scanned
//! again (`O(k)`), the second time it is ordered, so a pattern that keeps
//! cancelling the earliest timer (timeouts of equal length, cancelled in the
//! order they were armed) costs `O(log k)` per cancel rather than a scan
//! each time. An emptied slot goes back to the unordered form.

use crate::heap;
use crate::slab::{Entry, NIL};

/// `Slot::min` after the earliest entry of an unordered slot was cancelled.
const STALE: u32 = u32::MAX - 1;

/// A vector with room for more than this many entries is released when its
/// slot empties rather than kept for reuse: an empty slot keeps at most 4 KiB,
/// all 512 together at most 2 MiB.
const KEEP_CAPACITY: usize = 1024;

/// The entries of one slot.
pub(crate) struct Slot {
    /// Entry indices; a heap when `ordered`.
    indices: Vec<u32>,
    /// Unordered form: the earliest entry, `STALE` once it was cancelled,
    /// `NIL` while the slot is empty.
    min: u32,
    /// Unordered form: the slot was scanned again since it was filled.
    rescanned: bool,
    /// Whether `indices` is a heap.
    ordered: bool,
}

impl Slot {
    /// An empty slot.
    pub(crate) fn new() -> Self {
        Self {
            indices: Vec::new(),
            min: NIL,
            rescanned: false,
            ordered: false,
        }
    }

    /// Whether the slot holds no entry.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Adds entry `index`.
    #[inline]
    pub(crate) fn insert<T>(&mut self, entries: &mut [Entry<T>], index: u32) {
        if self.ordered {
            heap::push(&mut self.indices, entries, index);
            return;
        }
        entries[index as usize].pos = self.indices.len() as u32;
        // The first entry of an empty slot is its earliest; later ones
        // replace it only if earlier (an equal deadline was inserted later).
        let earlier = self.indices.is_empty()
            || (self.min != STALE
                && entries[index as usize].order_key() < entries[self.min as usize].order_key());
        if earlier {
            self.min = index;
        }
        self.indices.push(index);
    }

    /// Takes entry `index`, which is in this slot, out of it.
    #[inline]
    pub(crate) fn remove<T>(&mut self, entries: &mut [Entry<T>], index: u32) {
        let pos = entries[index as usize].pos as usize;
        if self.ordered {
            heap::remove_at(&mut self.indices, entries, pos);
        } else {
            self.indices.swap_remove(pos);
            if let Some(&moved) = self.indices.get(pos) {
                entries[moved as usize].pos = pos as u32;
            }
            if self.min == index {
                self.min = STALE;
            }
        }
        self.reset_if_empty();
    }

    /// The earliest entry of a non-empty slot. When that entry has to be
    /// found again a second time since the slot was filled, the slot is
    /// ordered first.
    pub(crate) fn first<T>(&mut self, entries: &mut [Entry<T>]) -> u32 {
        debug_assert!(!self.is_empty());
        if !self.ordered && self.min == STALE {
            if self.rescanned {
                self.order(entries);
            } else {
                self.min = self.scan(entries);
                self.rescanned = true;
            }
        }
        if self.ordered {
            self.indices[0]
        } else {
            self.min
        }
    }

    /// Takes the earliest entry out of a non-empty slot (ordering it first
    /// if needed) and returns its index, and the index of the new earliest
    /// entry if the slot still holds one.
    pub(crate) fn pop_first<T>(&mut self, entries: &mut [Entry<T>]) -> (u32, Option<u32>) {
        if !self.ordered {
            self.order(entries);
        }
        let first = heap::remove_at(&mut self.indices, entries, 0);
        self.reset_if_empty();
        (first, self.indices.first().copied())
    }

    /// Empties the slot and hands out its entry indices, in no useful
    /// order; give the vector back with [`Slot::recycle`] once done.
    pub(crate) fn take(&mut self) -> Vec<u32> {
        let taken = std::mem::take(&mut self.indices);
        self.reset_if_empty();
        taken
    }

    /// Gives back a vector from [`Slot::take`] so its allocation can be
    /// reused.
    pub(crate) fn recycle(&mut self, mut spare: Vec<u32>) {
        spare.clear();
        if self.indices.capacity() == 0 && spare.capacity() <= KEEP_CAPACITY {
            self.indices = spare;
        }
    }

    /// Turns the vector into a heap.
    fn order<T>(&mut self, entries: &mut [Entry<T>]) {
        heap::build(&mut self.indices, entries);
        self.ordered = true;
        self.min = NIL;
    }

    /// Looks through the unordered vector for its earliest entry.
    fn scan<T>(&self, entries: &[Entry<T>]) -> u32 {
        let mut best = self.indices[0];
        let mut best_key = entries[best as usize].order_key();
        for &index in &self.indices[1..] {
            let key = entries[index as usize].order_key();
            if key < best_key {
                (best, best_key) = (index, key);
            }
        }
        best
    }

    /// Puts an emptied slot back in its initial state.
    #[inline]
    fn reset_if_empty(&mut self) {
        if self.indices.is_empty() {
            self.min = NIL;
            self.rescanned = false;
            self.ordered = false;
            if self.indices.capacity() > KEEP_CAPACITY {
                self.indices = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::Slab;

    fn filled(deadlines: &[u64]) -> (Slab<()>, Slot) {
        let mut slab = Slab::with_capacity(deadlines.len());
        let mut slot = Slot::new();
        for (seq, &deadline) in deadlines.iter().enumerate() {
            let (index, _) = slab.alloc(deadline, seq as u64, ());
            slot.insert(&mut slab.entries, index);
        }
        (slab, slot)
    }

    fn positions_are_recorded(slab: &Slab<()>, slot: &Slot) -> bool {
        slot.indices
            .iter()
            .enumerate()
            .all(|(pos, &index)| slab.entries[index as usize].pos == pos as u32)
    }

    #[test]
    fn unordered_slot_keeps_its_earliest_entry_on_insert() {
        let (mut slab, mut slot) = filled(&[7, 3, 9, 3]);
        // Equal deadlines: the earlier insertion stays first.
        assert_eq!(slot.first(&mut slab.entries), 1);
        assert!(!slot.ordered, "knowing the minimum needs no ordering");
    }

    #[test]
    fn cancelled_minimum_is_rescanned_once_then_ordered() {
        let (mut slab, mut slot) = filled(&[7, 3, 9, 4, 5]);
        slot.remove(&mut slab.entries, 1);
        assert_eq!(slot.first(&mut slab.entries), 3);
        assert!(!slot.ordered, "the first loss of the minimum rescans");
        slot.remove(&mut slab.entries, 3);
        assert_eq!(slot.first(&mut slab.entries), 4);
        assert!(slot.ordered, "the second loss orders the slot");
        slot.remove(&mut slab.entries, 4);
        assert_eq!(slot.first(&mut slab.entries), 0);
        assert!(positions_are_recorded(&slab, &slot));
    }

    #[test]
    fn pop_first_hands_out_exact_order_and_empties() {
        let (mut slab, mut slot) = filled(&[7, 3, 9, 3, 1]);
        let mut order = Vec::new();
        while !slot.is_empty() {
            let (first, next) = slot.pop_first(&mut slab.entries);
            order.push(first);
            if let Some(next) = next {
                assert_eq!(slot.first(&mut slab.entries), next);
            }
        }
        assert_eq!(order, [4, 1, 3, 0, 2]);
        assert_eq!(
            (slot.min, slot.rescanned, slot.ordered),
            (NIL, false, false)
        );
    }

    #[test]
    fn an_emptied_large_slot_releases_its_vector() {
        let deadlines: Vec<u64> = (0..2_000).collect();
        let (mut slab, mut slot) = filled(&deadlines);
        assert!(slot.indices.capacity() > KEEP_CAPACITY);
        for index in 0..2_000 {
            slot.remove(&mut slab.entries, index);
        }
        assert_eq!(slot.indices.capacity(), 0);

        let (mut slab, mut slot) = filled(&[1, 2, 3]);
        slot.remove(&mut slab.entries, 0);
        slot.remove(&mut slab.entries, 1);
        slot.remove(&mut slab.entries, 2);
        assert!(
            slot.indices.capacity() > 0,
            "a small vector is kept for reuse"
        );
    }

    #[test]
    fn swap_remove_keeps_positions_exact() {
        let (mut slab, mut slot) = filled(&[1, 2, 3, 4, 5]);
        // Remove the first, a middle one, and the last.
        for index in [0, 2, 4] {
            slot.remove(&mut slab.entries, index);
            assert!(positions_are_recorded(&slab, &slot));
        }
        let mut left = slot.take();
        left.sort_unstable();
        assert_eq!(left, [1, 3]);
        assert!(slot.is_empty());
    }
}
