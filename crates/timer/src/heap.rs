//! An indexed binary min-heap of entry indices, ordered by
//! `(deadline, seq)`.
//!
//! A slot's vector is turned into this form, in place, when its entries must
//! come out in exact order (it is the current slot) or when its earliest
//! entry must be known again after that entry was cancelled. Each entry
//! remembers its position in `pos`, so removing any entry is `O(log k)` for a
//! slot of `k` entries and leaves nothing behind.

use crate::slab::Entry;

/// Whether entry `a` comes out before entry `b`.
fn before<T>(entries: &[Entry<T>], a: u32, b: u32) -> bool {
    entries[a as usize].order_key() < entries[b as usize].order_key()
}

/// Records that `heap[pos]` sits at `pos`.
fn place<T>(heap: &[u32], entries: &mut [Entry<T>], pos: usize) {
    entries[heap[pos] as usize].pos = pos as u32;
}

/// Moves `heap[pos]` up until its parent comes before it.
fn sift_up<T>(heap: &mut [u32], entries: &mut [Entry<T>], mut pos: usize) {
    while pos > 0 {
        let parent = (pos - 1) / 2;
        if !before(entries, heap[pos], heap[parent]) {
            break;
        }
        heap.swap(pos, parent);
        place(heap, entries, pos);
        pos = parent;
    }
    place(heap, entries, pos);
}

/// Moves `heap[pos]` down until both children come after it.
fn sift_down<T>(heap: &mut [u32], entries: &mut [Entry<T>], mut pos: usize) {
    loop {
        let left = 2 * pos + 1;
        if left >= heap.len() {
            break;
        }
        let right = left + 1;
        let child = if right < heap.len() && before(entries, heap[right], heap[left]) {
            right
        } else {
            left
        };
        if !before(entries, heap[child], heap[pos]) {
            break;
        }
        heap.swap(pos, child);
        place(heap, entries, pos);
        pos = child;
    }
    place(heap, entries, pos);
}

/// Orders `heap`, whose elements are arbitrary entry indices, and records
/// every position (Floyd's bottom-up construction, `O(k)`).
pub(crate) fn build<T>(heap: &mut [u32], entries: &mut [Entry<T>]) {
    for pos in 0..heap.len() {
        place(heap, entries, pos);
    }
    for pos in (0..heap.len() / 2).rev() {
        sift_down(heap, entries, pos);
    }
}

/// Adds entry `index`.
pub(crate) fn push<T>(heap: &mut Vec<u32>, entries: &mut [Entry<T>], index: u32) {
    heap.push(index);
    let pos = heap.len() - 1;
    sift_up(heap, entries, pos);
}

/// Removes the entry at position `pos` and restores the order.
pub(crate) fn remove_at<T>(heap: &mut Vec<u32>, entries: &mut [Entry<T>], pos: usize) -> u32 {
    let removed = heap.swap_remove(pos);
    if pos < heap.len() {
        // The former last element now sits at `pos`: it may belong above or
        // below it.
        if pos > 0 && before(entries, heap[pos], heap[(pos - 1) / 2]) {
            sift_up(heap, entries, pos);
        } else {
            sift_down(heap, entries, pos);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::Slab;

    fn slab_with(deadlines: &[u64]) -> Slab<()> {
        let mut slab = Slab::with_capacity(deadlines.len());
        for (seq, &deadline) in deadlines.iter().enumerate() {
            slab.alloc(deadline, seq as u64, ());
        }
        slab
    }

    fn drain(heap: &mut Vec<u32>, slab: &mut Slab<()>) -> Vec<u32> {
        let mut out = Vec::new();
        while !heap.is_empty() {
            out.push(remove_at(heap, &mut slab.entries, 0));
        }
        out
    }

    #[test]
    fn build_then_drain_is_deadline_then_insertion_order() {
        let mut slab = slab_with(&[5, 3, 5, 1, 3, 9, 0, 5]);
        let mut heap: Vec<u32> = (0..8).collect();
        build(&mut heap, &mut slab.entries);
        assert_eq!(drain(&mut heap, &mut slab), [6, 3, 1, 4, 0, 2, 7, 5]);
    }

    #[test]
    fn positions_track_every_move() {
        let mut slab = slab_with(&[8, 7, 6, 5, 4, 3, 2, 1]);
        let mut heap = Vec::new();
        for index in 0..8 {
            push(&mut heap, &mut slab.entries, index);
            for (pos, &entry) in heap.iter().enumerate() {
                assert_eq!(slab.entries[entry as usize].pos, pos as u32);
            }
        }
        // Remove from the middle by recorded position.
        let pos = slab.entries[4].pos as usize;
        assert_eq!(remove_at(&mut heap, &mut slab.entries, pos), 4);
        for (pos, &entry) in heap.iter().enumerate() {
            assert_eq!(slab.entries[entry as usize].pos, pos as u32);
        }
        assert_eq!(drain(&mut heap, &mut slab), [7, 6, 5, 3, 2, 1, 0]);
    }
}
