//! The shape of the wheel: tick size, slots per level, number of levels, and
//! the pure arithmetic that places a tick in a slot.
//!
//! Time inside the wheel is counted in *ticks* of [`TICK_NANOS`] nanoseconds.
//! Level `L` has [`SLOTS_PER_LEVEL`] slots, each `64^L` ticks wide, so a level
//! spans 64 times the slot width of the level below. An entry sits on the
//! level of the highest bit in which its tick differs from the wheel's
//! current tick (`elapsed`), in the slot given by that level's six bits of its
//! tick. Entries therefore only ever move down a level ("cascade") when the
//! wheel's current tick reaches the start of their slot.
//!
//! Ticks only decide where an entry waits; they never decide the order in
//! which entries come out. That order is always the exact
//! `(deadline, insertion)` order (see the crate's `# Precision` section).

/// Bits of a nanosecond deadline below the tick: one tick is `2^20` ns.
///
/// A tick of about one millisecond matches what an event loop sleeps on
/// (`epoll_wait` counts milliseconds) and keeps the slot that is being
/// ordered small when timers are dense.
pub const TICK_SHIFT: u32 = 20;

/// Nanoseconds per tick: `2^TICK_SHIFT` = 1,048,576 ns, about 1.05 ms.
///
/// This is the width of one level-0 slot. It is a bucketing granularity,
/// not a precision: deadlines are kept and compared to the nanosecond.
pub const TICK_NANOS: u64 = 1 << TICK_SHIFT;

/// Bits of the tick that select a slot within one level: 6, so that the
/// occupancy of a level fits in one `u64` bitmap.
pub const SLOT_BITS: u32 = 6;

/// Slots per level: `2^SLOT_BITS` = 64.
pub const SLOTS_PER_LEVEL: usize = 1 << SLOT_BITS;

/// Number of levels: enough for every `u64` deadline, so no overflow list is
/// needed.
///
/// A tick has `64 - TICK_SHIFT` = 44 significant bits and each level consumes
/// `SLOT_BITS` = 6 of them: `ceil(44 / 6)` = 8 levels. Level `L` covers a span
/// of `TICK_NANOS * 64^(L + 1)` nanoseconds ahead of the current tick (see
/// [`LEVEL_SPAN_NANOS`]); the top level only uses its first four slots, which
/// reach `u64::MAX` nanoseconds (about 584 years).
pub const LEVELS: usize = (64 - TICK_SHIFT).div_ceil(SLOT_BITS) as usize;

/// The span each level covers, in nanoseconds, saturating at `u64::MAX`:
/// `TICK_NANOS * 64^(L + 1)` for level `L`.
///
/// | level | slot width | level span |
/// |---|---|---|
/// | 0 | 1.05 ms | 67.1 ms |
/// | 1 | 67.1 ms | 4.29 s |
/// | 2 | 4.29 s | 4.58 min |
/// | 3 | 4.58 min | 4.89 h |
/// | 4 | 4.89 h | 13.0 days |
/// | 5 | 13.0 days | 2.28 years |
/// | 6 | 2.28 years | 146 years |
/// | 7 | 146 years | the rest of `u64` (584 years) |
///
/// # Examples
///
/// ```
/// use evloop::raw::{LEVEL_SPAN_NANOS, LEVELS, TICK_NANOS};
///
/// assert_eq!(LEVELS, 8);
/// assert_eq!(LEVEL_SPAN_NANOS[0], 64 * TICK_NANOS);
/// assert_eq!(LEVEL_SPAN_NANOS[1], 64 * 64 * TICK_NANOS);
/// assert_eq!(LEVEL_SPAN_NANOS[LEVELS - 1], u64::MAX);
/// ```
pub const LEVEL_SPAN_NANOS: [u64; LEVELS] = level_spans();

const fn level_spans() -> [u64; LEVELS] {
    let mut spans = [u64::MAX; LEVELS];
    let mut level = 0;
    while level < LEVELS {
        let bits = TICK_SHIFT + SLOT_BITS * (level as u32 + 1);
        if bits < 64 {
            spans[level] = 1 << bits;
        }
        level += 1;
    }
    spans
}

/// Total number of slots over all levels; a slot is named by its global
/// number `level * SLOTS_PER_LEVEL + index`.
pub(crate) const SLOTS: usize = LEVELS * SLOTS_PER_LEVEL;

/// Mask of the slot index bits within one level.
const SLOT_MASK: u64 = SLOTS_PER_LEVEL as u64 - 1;

/// The tick a deadline falls in.
#[inline]
pub(crate) fn tick_of(deadline: u64) -> u64 {
    deadline >> TICK_SHIFT
}

/// The level on which an entry due at `tick` waits while the wheel stands at
/// `elapsed`; `tick` must not be smaller than `elapsed` (callers clamp).
///
/// It is the level of the highest bit in which the two ticks differ. The low
/// `SLOT_BITS` are forced on so that equal ticks, and ticks that differ only
/// within level 0, land on level 0.
#[inline]
pub(crate) fn level_for(elapsed: u64, tick: u64) -> usize {
    debug_assert!(tick >= elapsed, "tick {tick} before elapsed {elapsed}");
    let masked = (elapsed ^ tick) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// The slot index of `tick` within `level`.
#[inline]
pub(crate) fn slot_for(tick: u64, level: usize) -> usize {
    ((tick >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize
}

/// The global slot number for an entry due at `tick` while the wheel stands
/// at `elapsed`; ticks in the past are clamped to the current tick.
#[inline]
pub(crate) fn global_slot(elapsed: u64, tick: u64) -> usize {
    let tick = tick.max(elapsed);
    let level = level_for(elapsed, tick);
    level * SLOTS_PER_LEVEL + slot_for(tick, level)
}

/// The first tick of slot `index` on `level`, for a slot that lies ahead of
/// `elapsed` on that level (it shares every bit above the level with
/// `elapsed`).
#[inline]
pub(crate) fn slot_start(elapsed: u64, level: usize, index: usize) -> u64 {
    let low_bits = SLOT_BITS * level as u32;
    let level_bits = low_bits + SLOT_BITS;
    // `checked_shr` keeps the top level well-defined: above it there are no
    // bits to keep (a 48-bit shift of a 44-bit tick is zero anyway).
    let above = elapsed
        .checked_shr(level_bits)
        .and_then(|high| high.checked_shl(level_bits))
        .unwrap_or(0);
    above | ((index as u64) << low_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_follow_their_derivation() {
        assert_eq!(TICK_NANOS, 1_048_576);
        assert_eq!(SLOTS_PER_LEVEL, 64);
        assert_eq!(LEVELS, 8);
        assert_eq!(SLOTS, 512);
        // The top level is the first whose span reaches past every tick.
        assert!(TICK_SHIFT + SLOT_BITS * LEVELS as u32 >= 64);
        assert!(TICK_SHIFT + SLOT_BITS * (LEVELS as u32 - 1) < 64);
    }

    #[test]
    fn level_spans_grow_by_sixty_four() {
        assert_eq!(LEVEL_SPAN_NANOS[0], 67_108_864);
        for level in 1..LEVELS - 1 {
            assert_eq!(LEVEL_SPAN_NANOS[level], LEVEL_SPAN_NANOS[level - 1] * 64);
        }
        assert_eq!(LEVEL_SPAN_NANOS[LEVELS - 1], u64::MAX);
    }

    #[test]
    fn equal_and_near_ticks_are_level_zero() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(100, 100), 0);
        assert_eq!(level_for(64, 127), 0);
    }

    #[test]
    fn level_is_set_by_the_highest_differing_bit() {
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(4095, 4096), 2);
        assert_eq!(level_for(0, 1 << 42), 7);
        assert_eq!(level_for(0, tick_of(u64::MAX)), 7);
        assert_eq!(level_for(tick_of(u64::MAX), tick_of(u64::MAX)), 0);
    }

    #[test]
    fn slot_index_takes_six_bits_per_level() {
        let tick = 0b10_000011_000010_000001;
        assert_eq!(slot_for(tick, 0), 1);
        assert_eq!(slot_for(tick, 1), 2);
        assert_eq!(slot_for(tick, 2), 3);
        assert_eq!(slot_for(tick, 3), 2);
        assert_eq!(slot_for(tick_of(u64::MAX), 7), 3);
    }

    #[test]
    fn past_ticks_go_to_the_current_slot() {
        assert_eq!(global_slot(70, 3), slot_for(70, 0));
        assert_eq!(global_slot(70, 70), 6);
    }

    #[test]
    fn global_slot_names_level_and_index() {
        assert_eq!(global_slot(0, 5), 5);
        assert_eq!(global_slot(0, 64 * 3 + 7), SLOTS_PER_LEVEL + 3);
        assert_eq!(global_slot(0, tick_of(u64::MAX)), 7 * SLOTS_PER_LEVEL + 3);
    }

    #[test]
    fn slot_start_keeps_the_prefix_above_the_level() {
        // Elapsed tick 0x1_0041 (level-2 index 16, level-1 index 1, level-0 1).
        let elapsed = 0x1_0041;
        assert_eq!(slot_start(elapsed, 0, 5), 0x1_0045);
        assert_eq!(slot_start(elapsed, 1, 3), 0x1_00c0);
        assert_eq!(slot_start(elapsed, 2, 17), 17 << 12);
        assert_eq!(slot_start(elapsed, 7, 3), 3 << 42);
    }

    #[test]
    fn an_entry_starts_in_the_slot_that_starts_at_or_before_it() {
        // For ticks ahead of elapsed, the slot chosen must begin at or before
        // the tick and after elapsed: cascading at the slot's start is never
        // late and never moves an entry past its own tick.
        let elapsed_values = [0u64, 1, 63, 64, 4095, 4096, 123_456, 1 << 40];
        let offsets = [1u64, 2, 63, 64, 65, 4095, 4096, 1 << 20, 1 << 35];
        for &elapsed in &elapsed_values {
            for &offset in &offsets {
                let tick = elapsed + offset;
                let level = level_for(elapsed, tick);
                let index = slot_for(tick, level);
                let start = slot_start(elapsed, level, index);
                assert!(start <= tick, "elapsed {elapsed} tick {tick}");
                assert!(
                    start > elapsed || (level == 0 && start == elapsed),
                    "elapsed {elapsed} tick {tick} start {start}"
                );
                assert!(index > slot_for(elapsed, level) || level == 0);
            }
        }
    }
}
