//! [`TimerWheel`]: the public face that ties the slab, the slots and the
//! level arithmetic together.
//!
//! Invariants the methods keep (each relies on the ones before):
//! 1. Every entry with tick `t` waits in `global_slot(elapsed, t)`, and the
//!    bit of every non-empty slot is set in `occupied`. Entries whose tick is
//!    at or before `elapsed` wait in the *current* slot (level 0, index
//!    `elapsed % 64`).
//! 2. `elapsed` only moves forward, and only to the start of the first
//!    non-empty slot, which is then moved down (cascaded) at once. So no entry
//!    is ever left on a level that no longer matches `elapsed`, and the slot
//!    of an entry can be recomputed from its deadline instead of stored.
//! 3. The first non-empty slot (lowest level, then lowest index) holds the
//!    earliest entry: level-0 entries share every bit above level 0 with
//!    `elapsed`, while an entry on level `L > 0` differs from `elapsed` in a
//!    higher bit of level `L`, so it lies after the whole span of every level
//!    below.
//! 4. `next` is the exact earliest pending deadline, updated by every method
//!    that changes the set of entries.
//! 5. Entries listed in `cancelled` have handed back their payload and
//!    started a new generation, but still sit in their slots (so 1 holds for
//!    them too). Everything that reads the slots' contents (`pop_expired`,
//!    `refresh_next`) runs after `unlink_cancelled` has emptied the list;
//!    `insert` only adds to slots, which is safe with them present.

use crate::expired::Expired;
use crate::key::TimerKey;
use crate::levels::{LEVELS, SLOTS, SLOTS_PER_LEVEL, global_slot, slot_for, slot_start, tick_of};
use crate::slab::{Entry, Slab};
use crate::slot::Slot;
use std::fmt;

/// Entries moved per batch when a slot cascades: enough independent reads to
/// keep the memory system busy, few enough to stay in the L1 cache.
const CASCADE_BATCH: usize = 64;

/// Cancelled entries that may wait to be taken out of their slots (see
/// `TimerWheel::cancelled`): at most 64 records of bookkeeping, never a
/// payload.
const UNLINK_BATCH: usize = 64;

/// A hierarchical timing wheel (Varghese & Lauck) holding payloads of type
/// `T` until their deadline, handed out in exact `(deadline, insertion)`
/// order.
///
/// Time is a `u64` count of nanoseconds on whatever clock the caller uses;
/// the wheel never reads a clock. It starts at time 0 and its current time is
/// the largest `now` ever passed to [`pop_expired`](Self::pop_expired).
///
/// | operation | cost |
/// |---|---|
/// | [`insert`](Self::insert) | `O(1)` |
/// | [`cancel`](Self::cancel) | `O(1)` amortised; `O(log k)` for a timer in a slot ordered as a heap (`k` timers in that slot) |
/// | [`next_deadline`](Self::next_deadline) | `O(1)`, exact |
/// | [`pop_expired`](Self::pop_expired) | `O(log k)` amortised, plus at most one move per level over a timer's life |
///
/// # Precision
///
/// Deadlines are kept and compared to the nanosecond; the ~1 ms tick
/// ([`TICK_NANOS`](crate::TICK_NANOS)) only decides where a timer waits. A
/// timer is never handed out before `now` reaches its deadline, and timers
/// come out earliest deadline first, in insertion order among equal
/// deadlines.
///
/// # Memory
///
/// Each pending timer takes [`ENTRY_BYTES`](Self::ENTRY_BYTES) bytes of
/// record (24 bytes of bookkeeping plus `Option<T>`, rounded up to `T`'s
/// alignment: 32 bytes for `T = u32`, 40 for a `u64` or a
/// `Box<dyn FnOnce()>`) plus its 4-byte index in its slot's vector (8 with
/// the vector's spare capacity). That is at most 48 bytes besides the
/// payload for any payload aligned to 8 bytes or less. Records of expired
/// and cancelled timers are reused by later ones and not returned to the
/// allocator, like a `Vec`'s storage; a slot's vector with room for more
/// than 1024 timers is released when the slot empties, so empty slots keep
/// at most 4 KiB each. The wheel itself takes about 20 KiB for its 512
/// slots.
///
/// # Examples
///
/// ```
/// use evloop::raw::TimerWheel;
///
/// const MS: u64 = 1_000_000;
/// let mut wheel = TimerWheel::new();
/// wheel.insert(30 * MS, "slow");
/// let cancelled = wheel.insert(20 * MS, "cancelled");
/// wheel.insert(10 * MS, "fast");
/// wheel.cancel(cancelled);
///
/// assert_eq!(wheel.next_deadline(), Some(10 * MS));
/// let fired: Vec<_> = wheel.drain_expired(50 * MS).collect();
/// assert_eq!(fired, [(10 * MS, "fast"), (30 * MS, "slow")]);
/// assert!(wheel.is_empty());
/// ```
pub struct TimerWheel<T> {
    /// The entries and their free list.
    slab: Slab<T>,
    /// `LEVELS * SLOTS_PER_LEVEL` slots, level by level.
    slots: Box<[Slot]>,
    /// One bit per non-empty slot, one word per level.
    occupied: [u64; LEVELS],
    /// The tick of the current slot: the wheel has moved every entry of an
    /// earlier tick into the current slot.
    elapsed: u64,
    /// The largest `now` passed to `pop_expired`.
    now: u64,
    /// The earliest pending deadline.
    next: Option<u64>,
    /// The insertion number of the next insert.
    seq: u64,
    /// Entries cancelled since the last `unlink_cancelled`: their
    /// payload is already handed back and their key already stale, but they
    /// still sit in their slots. Taking them out in a batch lets a run of
    /// cancels overlap their memory accesses (each cancel is one short
    /// sequence of dependent loads instead of a long one); the batch is
    /// emptied when it is full and before anything reads the slots.
    cancelled: Vec<u32>,
}

impl<T> TimerWheel<T> {
    /// Bytes of storage per pending timer (see the type's `# Memory`
    /// section): 24 bytes plus `Option<T>`, rounded up to `T`'s alignment.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// assert_eq!(TimerWheel::<u32>::ENTRY_BYTES, 32);
    /// assert_eq!(TimerWheel::<Box<dyn FnOnce()>>::ENTRY_BYTES, 40);
    /// ```
    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry<T>>();

    /// An empty wheel whose current time is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let wheel: TimerWheel<()> = TimerWheel::new();
    /// assert_eq!((wheel.len(), wheel.now(), wheel.next_deadline()), (0, 0, None));
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel with room for `capacity` timers before its storage
    /// grows.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::with_capacity(1024);
    /// wheel.insert(1, 'x');
    /// assert_eq!(wheel.len(), 1);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slab: Slab::with_capacity(capacity),
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
            occupied: [0; LEVELS],
            elapsed: 0,
            now: 0,
            next: None,
            seq: 0,
            cancelled: Vec::with_capacity(UNLINK_BATCH),
        }
    }

    /// Number of pending timers.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// wheel.insert(7, ());
    /// wheel.insert(7, ());
    /// assert_eq!(wheel.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no timer is pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// assert!(wheel.is_empty());
    /// let key = wheel.insert(7, ());
    /// assert!(!wheel.is_empty());
    /// wheel.cancel(key);
    /// assert!(wheel.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wheel's current time: the largest `now` ever passed to
    /// [`pop_expired`](Self::pop_expired) or
    /// [`drain_expired`](Self::drain_expired), 0 before that.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel: TimerWheel<()> = TimerWheel::new();
    /// wheel.pop_expired(500);
    /// wheel.pop_expired(200); // the clock stepped back: clamped
    /// assert_eq!(wheel.now(), 500);
    /// ```
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Adds a timer due at `deadline` (nanoseconds) carrying `value`, and
    /// returns the key that cancels it.
    ///
    /// A deadline at or before the current time is due at once: the next
    /// [`pop_expired`](Self::pop_expired) hands it out, in its place in
    /// deadline order. Any `u64` deadline is accepted, `u64::MAX` included.
    ///
    /// # Panics
    ///
    /// If about 2^32 timers are already pending (over 128 GiB of them), as
    /// `Vec::push` panics on capacity overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// wheel.insert(u64::MAX, "never, in practice");
    /// wheel.insert(2_000_000, "in 2 ms");
    /// assert_eq!(wheel.next_deadline(), Some(2_000_000));
    /// ```
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let seq = self.seq;
        // 2^64 inserts take centuries at one per nanosecond: the insertion
        // number never wraps in practice, and wrapping keeps it panic-free.
        self.seq = self.seq.wrapping_add(1);
        let (index, generation) = self.slab.alloc(deadline, seq, value);
        self.place(index, deadline);
        self.next = Some(self.next.map_or(deadline, |next| next.min(deadline)));
        TimerKey { index, generation }
    }

    /// Removes the timer named by `key` and returns its payload, or `None`
    /// if that timer already expired or was cancelled.
    ///
    /// The payload is handed back at once (nothing of it stays in the wheel
    /// until its deadline), the key is stale at once and never touches
    /// another timer, even one that reuses the same storage, and
    /// [`len`](Self::len) and [`next_deadline`](Self::next_deadline) change at
    /// once. Only the timer's bookkeeping record (its storage without the
    /// payload) is recycled in batches, so that a run of cancels overlaps
    /// its memory accesses: at the latest 64 cancels later, or at the next
    /// [`pop_expired`](Self::pop_expired) that finds a timer due.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// let key = wheel.insert(1_000, String::from("payload"));
    /// assert_eq!(wheel.cancel(key).as_deref(), Some("payload"));
    /// assert_eq!(wheel.cancel(key), None);
    /// assert_eq!(wheel.next_deadline(), None);
    /// ```
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let (deadline, value) = self.slab.kill(key.index, key.generation)?;
        self.cancelled.push(key.index);
        let was_first = self.next == Some(deadline);
        if was_first || self.cancelled.len() >= UNLINK_BATCH {
            self.unlink_cancelled();
            if was_first {
                self.refresh_next();
            }
        }
        Some(value)
    }

    /// The exact earliest deadline among pending timers, or `None` if there
    /// are none. It may lie in the past (a timer that is due but not yet
    /// popped). Constant time: it is kept up to date by every change.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// let a = wheel.insert(1_234_567, 'a');
    /// wheel.insert(9_999_999_999, 'b');
    /// assert_eq!(wheel.next_deadline(), Some(1_234_567));
    /// wheel.cancel(a);
    /// assert_eq!(wheel.next_deadline(), Some(9_999_999_999));
    /// ```
    pub fn next_deadline(&self) -> Option<u64> {
        self.next
    }

    /// Hands out the earliest timer whose deadline is at or before `now`, as
    /// `(deadline, payload)`, or `None` if no timer is due.
    ///
    /// Repeated calls give the due timers in exact `(deadline, insertion)`
    /// order. The wheel's current time becomes `now`; a `now` smaller than the
    /// current time (a clock that stepped back) is treated as the current
    /// time.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// wheel.insert(20, 'b');
    /// wheel.insert(10, 'a');
    /// wheel.insert(20, 'c');
    /// assert_eq!(wheel.pop_expired(15), Some((10, 'a')));
    /// assert_eq!(wheel.pop_expired(15), None);
    /// assert_eq!(wheel.pop_expired(20), Some((20, 'b')));
    /// assert_eq!(wheel.pop_expired(20), Some((20, 'c')));
    /// ```
    pub fn pop_expired(&mut self, now: u64) -> Option<(u64, T)> {
        self.now = self.now.max(now);
        if self.next? > self.now {
            return None;
        }
        if !self.cancelled.is_empty() {
            self.unlink_cancelled();
        }
        // The earliest timer is due. It sits in the first non-empty slot
        // (invariant 3); walk the current tick forward to that slot, moving
        // down each higher-level slot reached, until it is the current one.
        let mut current = slot_for(self.elapsed, 0);
        while self.occupied[0] & (1 << current) == 0 {
            let first = self.first_occupied()?;
            let (level, index) = (first / SLOTS_PER_LEVEL, first % SLOTS_PER_LEVEL);
            self.elapsed = slot_start(self.elapsed, level, index);
            if level > 0 {
                self.cascade(first);
            }
            current = slot_for(self.elapsed, 0);
        }
        let slot = &mut self.slots[current];
        let (index, next) = slot.pop_first(&mut self.slab.entries);
        let expired = self.slab.release(index);
        match next {
            // The current slot still holds the earliest entry.
            Some(next) => self.next = Some(self.slab.entries[next as usize].deadline),
            None => {
                self.unmark(current);
                self.refresh_next();
            }
        }
        expired
    }

    /// An iterator handing out every timer due at or before `now`, in
    /// order; see [`pop_expired`](Self::pop_expired). Timers it does not
    /// reach (if dropped early) stay in the wheel.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// for deadline in [30, 10, 20, 40] {
    ///     wheel.insert(deadline, deadline / 10);
    /// }
    /// let due: Vec<u64> = wheel.drain_expired(30).map(|(_, n)| n).collect();
    /// assert_eq!(due, [1, 2, 3]);
    /// assert_eq!(wheel.len(), 1);
    /// ```
    pub fn drain_expired(&mut self, now: u64) -> Expired<'_, T> {
        Expired::new(self, now)
    }

    /// The deadline of the timer named by `key`, if it is still pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// let key = wheel.insert(42, ());
    /// assert_eq!(wheel.deadline(key), Some(42));
    /// wheel.pop_expired(42);
    /// assert_eq!(wheel.deadline(key), None);
    /// ```
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.slab
            .get(key.index, key.generation)
            .map(|entry| entry.deadline)
    }

    /// Whether the timer named by `key` is still pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// let key = wheel.insert(42, ());
    /// assert!(wheel.contains(key));
    /// wheel.cancel(key);
    /// assert!(!wheel.contains(key));
    /// ```
    pub fn contains(&self, key: TimerKey) -> bool {
        self.slab.get(key.index, key.generation).is_some()
    }

    /// The payload of the timer named by `key`, if it is still pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// let key = wheel.insert(42, "hello");
    /// assert_eq!(wheel.get(key), Some(&"hello"));
    /// ```
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.slab
            .get(key.index, key.generation)
            .and_then(|entry| entry.value.as_ref())
    }

    /// Mutable access to the payload of the timer named by `key`, if it is
    /// still pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::TimerWheel;
    ///
    /// let mut wheel = TimerWheel::new();
    /// let key = wheel.insert(42, 1);
    /// if let Some(count) = wheel.get_mut(key) {
    ///     *count += 1;
    /// }
    /// assert_eq!(wheel.pop_expired(42), Some((42, 2)));
    /// ```
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.slab.get_mut(key.index, key.generation)
    }

    /// Puts entry `index`, due at `deadline`, into its slot (invariant 1).
    fn place(&mut self, index: u32, deadline: u64) {
        let slot_number = global_slot(self.elapsed, tick_of(deadline));
        self.slots[slot_number].insert(&mut self.slab.entries, index);
        self.occupied[slot_number / SLOTS_PER_LEVEL] |= 1 << (slot_number % SLOTS_PER_LEVEL);
    }

    /// Clears the occupancy bit of a slot that has just become empty.
    fn unmark(&mut self, slot_number: usize) {
        self.occupied[slot_number / SLOTS_PER_LEVEL] &= !(1 << (slot_number % SLOTS_PER_LEVEL));
    }

    /// The first non-empty slot in time order (invariant 3).
    fn first_occupied(&self) -> Option<usize> {
        let (level, bits) = self
            .occupied
            .iter()
            .enumerate()
            .find(|(_, bits)| **bits != 0)?;
        let index = bits.trailing_zeros() as usize;
        debug_assert!(level > 0 || index >= slot_for(self.elapsed, 0));
        Some(level * SLOTS_PER_LEVEL + index)
    }

    /// Empties slot `slot_number`, whose start `elapsed` has just reached,
    /// into the levels below it.
    fn cascade(&mut self, slot_number: usize) {
        self.unmark(slot_number);
        let indices = self.slots[slot_number].take();
        let mut deadlines = [0u64; CASCADE_BATCH];
        for batch in indices.chunks(CASCADE_BATCH) {
            // First read the batch's deadlines in a tight loop, so that the
            // processor fetches the entries in parallel; placing them then
            // finds them in cache.
            for (deadline, &index) in deadlines.iter_mut().zip(batch) {
                *deadline = self.slab.entries[index as usize].deadline;
            }
            for (&deadline, &index) in deadlines.iter().zip(batch) {
                self.place(index, deadline);
            }
        }
        self.slots[slot_number].recycle(indices);
    }

    /// Takes the entries in `cancelled` out of their slots and frees them.
    /// `elapsed` has not moved since they were cancelled (only
    /// `pop_expired` moves it, and it calls this first), so their slots are
    /// still the ones their deadlines name.
    fn unlink_cancelled(&mut self) {
        let cancelled = std::mem::take(&mut self.cancelled);
        for &index in &cancelled {
            let deadline = self.slab.entries[index as usize].deadline;
            let slot_number = global_slot(self.elapsed, tick_of(deadline));
            let slot = &mut self.slots[slot_number];
            slot.remove(&mut self.slab.entries, index);
            if slot.is_empty() {
                self.unmark(slot_number);
            }
            self.slab.free(index);
        }
        // Keep the allocation for the next batch.
        self.cancelled = cancelled;
        self.cancelled.clear();
    }

    /// Recomputes `next` from the first non-empty slot (invariant 4).
    fn refresh_next(&mut self) {
        debug_assert!(
            self.cancelled.is_empty(),
            "slots read with cancelled entries"
        );
        self.next = self.first_occupied().map(|slot_number| {
            let first = self.slots[slot_number].first(&mut self.slab.entries);
            self.slab.entries[first as usize].deadline
        });
    }
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len())
            .field("now", &self.now)
            .field("next_deadline", &self.next)
            .finish_non_exhaustive()
    }
}
