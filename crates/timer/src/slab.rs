//! Storage of pending entries: a vector of entries plus a free list, so that
//! an entry is freed the moment it is cancelled or expires and its place is
//! reused by the next insert.
//!
//! An entry is named by its index and its generation, both `u32` so that a
//! [`TimerKey`](crate::TimerKey) is 8 bytes. The generation grows by one each
//! time the entry is freed, so a key only matches the occupant it was made
//! for. An entry whose generation would wrap around is retired instead of
//! reused: it then never matches any key, at the cost of one entry's storage
//! per 2^32 reuses of the same place.
//!
//! Separately, every entry carries its insertion number `seq` (a `u64` that
//! grows by one on every insert and never wraps in practice), the tie-breaker
//! that keeps equal deadlines in insertion order.

/// The "no entry" value of a link or index.
pub(crate) const NIL: u32 = u32::MAX;

/// The largest number of entries the slab hands out: indices stay below the
/// two sentinel values [`NIL`] and `Slot`'s stale marker.
pub(crate) const MAX_ENTRIES: usize = (u32::MAX - 1) as usize;

/// One timer: its exact deadline, its insertion number, its generation,
/// where it sits, and the payload (`None` once the entry is free).
///
/// `pos` is the entry's position in its slot's vector of indices while the
/// entry is pending, and the next free entry once it is free. Which slot an
/// entry is in is not stored: it follows from the deadline and the wheel's
/// current tick (see `levels::global_slot`), because entries are moved
/// whenever the current tick reaches the start of their slot.
pub(crate) struct Entry<T> {
    pub(crate) deadline: u64,
    pub(crate) seq: u64,
    pub(crate) generation: u32,
    pub(crate) pos: u32,
    pub(crate) value: Option<T>,
}

impl<T> Entry<T> {
    /// The key entries are ordered by: earliest deadline first, then
    /// insertion order.
    #[inline]
    pub(crate) fn order_key(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

/// The entries and the head of the free list.
pub(crate) struct Slab<T> {
    pub(crate) entries: Vec<Entry<T>>,
    free: u32,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity.min(MAX_ENTRIES)),
            free: NIL,
            len: 0,
        }
    }

    /// Number of occupied entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores a new entry, reusing a free one if there is any, and returns
    /// its index and generation. Its position is left for the slot to set.
    ///
    /// # Panics
    ///
    /// If [`MAX_ENTRIES`] entries are already in use.
    pub(crate) fn alloc(&mut self, deadline: u64, seq: u64, value: T) -> (u32, u32) {
        self.len += 1;
        if self.free != NIL {
            let index = self.free;
            let entry = &mut self.entries[index as usize];
            self.free = entry.pos;
            entry.deadline = deadline;
            entry.seq = seq;
            entry.value = Some(value);
            return (index, entry.generation);
        }
        assert!(
            self.entries.len() < MAX_ENTRIES,
            "evloop-timer: more than {MAX_ENTRIES} timers pending at once"
        );
        let index = self.entries.len() as u32;
        self.entries.push(Entry {
            deadline,
            seq,
            generation: 0,
            pos: NIL,
            value: Some(value),
        });
        (index, 0)
    }

    /// The occupied entry `index` if it still has generation `generation`;
    /// `None` for an index never handed out, a free entry, or an entry
    /// reused since.
    #[inline]
    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&Entry<T>> {
        self.entries
            .get(index as usize)
            .filter(|entry| entry.generation == generation && entry.value.is_some())
    }

    /// Mutable access to the payload of a live entry (see [`Slab::get`]).
    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        self.entries
            .get_mut(index as usize)
            .filter(|entry| entry.generation == generation)
            .and_then(|entry| entry.value.as_mut())
    }

    /// Takes the payload out of occupied entry `index` if it still has
    /// generation `generation`, and ends that generation, so no key matches
    /// the entry any more; its storage (and its place in its slot) is kept
    /// until [`Slab::free`]. Returns the deadline and the payload.
    #[inline]
    pub(crate) fn kill(&mut self, index: u32, generation: u32) -> Option<(u64, T)> {
        let entry = self.entries.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        self.take(index)
    }

    /// Puts entry `index`, emptied by [`Slab::kill`] and let go of by its
    /// slot, on the free list; unless its generation has wrapped around to
    /// 0, in which case it is retired: never handed out again, so no key
    /// made for one of its earlier generations can match a later timer.
    #[inline]
    pub(crate) fn free(&mut self, index: u32) {
        if let Some(entry) = self.entries.get_mut(index as usize) {
            if entry.generation != 0 {
                entry.pos = self.free;
                self.free = index;
            }
        }
    }

    /// Takes the payload out of occupied entry `index`, which its slot has
    /// already let go of, frees the entry, and returns its deadline and
    /// payload.
    #[inline]
    pub(crate) fn release(&mut self, index: u32) -> Option<(u64, T)> {
        let taken = self.take(index)?;
        self.free(index);
        Some(taken)
    }

    /// Empties occupied entry `index` and moves it to its next generation.
    #[inline]
    fn take(&mut self, index: u32) -> Option<(u64, T)> {
        let entry = self.entries.get_mut(index as usize)?;
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.len -= 1;
        Some((entry.deadline, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn entry_is_twenty_four_bytes_plus_the_optional_payload() {
        // These pin the figures the crate documentation states.
        assert_eq!(size_of::<Entry<()>>(), 32);
        assert_eq!(size_of::<Entry<u32>>(), 32);
        assert_eq!(size_of::<Entry<u64>>(), 40);
        assert_eq!(size_of::<Entry<usize>>(), 40);
        assert_eq!(size_of::<Entry<Box<dyn FnOnce()>>>(), 40);
        assert_eq!(size_of::<Entry<String>>(), 48);
        assert_eq!(size_of::<Entry<[u64; 4]>>(), 64);
    }

    #[test]
    fn entry_fits_the_forty_eight_byte_budget() {
        // Bookkeeping (24 bytes) + the payload's Option (at most one word
        // more than the payload), rounded to 8 + the entry's index in its
        // slot's vector, counted twice for the vector's spare capacity: at
        // most 48 bytes besides the payload.
        fn overhead<T>() -> usize {
            size_of::<Entry<T>>() + 2 * size_of::<u32>() - size_of::<T>()
        }
        assert!(overhead::<()>() <= 48);
        assert!(overhead::<u8>() <= 48);
        assert!(overhead::<u32>() <= 48);
        assert!(overhead::<u64>() <= 48);
        assert!(overhead::<Box<dyn FnOnce()>>() <= 48);
        assert!(overhead::<String>() <= 48);
        assert!(overhead::<[u64; 4]>() <= 48);
        assert!(overhead::<(u64, u32)>() <= 48);
    }

    #[test]
    fn freed_entries_are_reused_last_in_first_out() {
        let mut slab = Slab::with_capacity(0);
        let (a, _) = slab.alloc(10, 0, 'a');
        let (b, _) = slab.alloc(20, 1, 'b');
        assert_eq!((a, b), (0, 1));
        assert_eq!(slab.release(a), Some((10, 'a')));
        assert_eq!(slab.release(a), None);
        assert_eq!(slab.len(), 1);
        let (c, generation) = slab.alloc(30, 2, 'c');
        assert_eq!((c, generation), (a, 1));
        assert_eq!(slab.entries.len(), 2);
    }

    #[test]
    fn get_checks_the_generation() {
        let mut slab = Slab::with_capacity(4);
        let (a, first) = slab.alloc(10, 7, 'a');
        assert_eq!(slab.get(a, first).map(|e| e.deadline), Some(10));
        assert!(slab.get(a, first + 1).is_none());
        assert!(slab.get(a + 1, first).is_none());
        assert!(slab.release(a).is_some());
        assert!(slab.get(a, first).is_none());
        assert!(slab.get_mut(a, first).is_none());
        let (b, second) = slab.alloc(10, 8, 'b');
        assert_eq!((b, second), (a, first + 1));
        assert!(slab.get(a, first).is_none());
        assert_eq!(slab.get_mut(b, second).copied(), Some('b'));
    }

    #[test]
    fn an_entry_whose_generation_wraps_is_retired() {
        let mut slab = Slab::with_capacity(4);
        let (a, _) = slab.alloc(10, 0, 'a');
        slab.entries[a as usize].generation = u32::MAX;
        assert_eq!(slab.release(a), Some((10, 'a')));
        assert_eq!(slab.len(), 0);
        assert!(slab.get(a, u32::MAX).is_none());
        // The next insert gets fresh storage, not the retired entry.
        let (b, generation) = slab.alloc(20, 1, 'b');
        assert_eq!((b, generation), (1, 0));
        assert!(slab.get(a, u32::MAX).is_none());
        assert!(slab.get(a, 0).is_none());
    }

    #[test]
    fn a_killed_entry_is_reused_only_once_freed() {
        let mut slab = Slab::with_capacity(4);
        let (a, first) = slab.alloc(10, 0, 'a');
        assert_eq!(slab.kill(a, first + 1), None, "wrong generation");
        assert_eq!(slab.kill(a, first), Some((10, 'a')));
        assert_eq!(slab.kill(a, first), None, "already killed");
        assert_eq!(slab.len(), 0);
        let (b, _) = slab.alloc(20, 1, 'b');
        assert_ne!(b, a, "still held by its slot");
        slab.free(a);
        let (c, generation) = slab.alloc(30, 2, 'c');
        assert_eq!((c, generation), (a, first + 1));
    }
}
