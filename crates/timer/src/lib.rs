//! evloop-timer is floor 1 of evloop: a hierarchical timing wheel
//! (Varghese & Lauck) that holds payloads until their deadline and hands them
//! out in exact `(deadline, insertion)` order. It depends on no other crate,
//! evloop's or external, and must never know about the event loop, file
//! descriptors or any clock: time is the `u64` count of nanoseconds the
//! caller passes in. Use it on its own as a plain data structure; to schedule
//! callbacks (`call_later`, `call_at`) use the facade crate `evloop`, whose
//! loop drives a wheel like this one.
//!
//! # Overview
//!
//! [`TimerWheel::insert`] files a payload under a deadline and returns a
//! [`TimerKey`]; [`TimerWheel::cancel`] hands the payload back at once, in
//! amortised `O(1)`, and nothing of it stays behind until its deadline;
//! [`TimerWheel::next_deadline`] is the exact earliest
//! deadline in `O(1)` (what a loop sleeps until); [`TimerWheel::pop_expired`]
//! hands out due payloads one at a time, and [`TimerWheel::drain_expired`]
//! iterates over them.
//!
//! # Precision
//!
//! Deadlines are exact to the nanosecond. The wheel buckets them by ticks of
//! [`TICK_NANOS`] (about 1.05 ms), but the bucket only decides where a timer
//! waits, never the order in which timers come out:
//! - no timer is handed out before the `now` given to `pop_expired` reaches
//!   its deadline;
//! - timers come out earliest deadline first, and in insertion order among
//!   equal deadlines (FIFO);
//! - a deadline at or before the current time is due at once, ordered among
//!   the other due timers by its own (past) deadline;
//! - any `u64` deadline works, up to `u64::MAX` (about 584 years): the top
//!   level of the wheel reaches the end of the `u64` range, so nothing
//!   overflows and no input panics;
//! - the current time never goes back: a `now` smaller than an earlier one (a
//!   clock stepping back) is treated as the earlier one.
//!
//! # Shape and memory
//!
//! [`LEVELS`] levels of [`SLOTS_PER_LEVEL`] slots; a level-`L` slot is
//! `TICK_NANOS * 64^L` wide ([`LEVEL_SPAN_NANOS`] has the figures). Timers
//! live in a slab (a vector of records plus a free list); a slot is a vector
//! of record indices, unordered while timers wait and ordered as a binary
//! heap, in place, when its timers must come out in exact order.
//!
//! Memory per pending timer is [`TimerWheel::ENTRY_BYTES`] (24 bytes plus
//! `Option<T>`, rounded up to `T`'s alignment: 32 bytes for a `u32` payload,
//! 40 for a `Box<dyn FnOnce()>`) plus its 4-byte index in its slot (8 with
//! the vector's spare capacity): at most 48 bytes besides the payload for
//! payloads aligned to 8 bytes or less.
//!
//! # Testing at scale
//!
//! The model test `tests/model.rs` runs random sequences of insert, cancel,
//! advance and `next_deadline` on the wheel and on a `BinaryHeap` model and
//! requires identical output: 1,000 cases of 200 operations, plus 40
//! "crowded" cases of 1,500 operations. Set the environment variable
//! `EVLOOP_PROPTEST_SCALE=100` to run 100 times as many cases:
//!
//! ```text
//! EVLOOP_PROPTEST_SCALE=100 cargo test --release -p evloop-timer --test model
//! ```
//!
//! # Examples
//!
//! ```
//! use evloop::raw::TimerWheel;
//!
//! const MS: u64 = 1_000_000;
//! let mut wheel = TimerWheel::new();
//! let _tea = wheel.insert(3 * 60_000 * MS, "tea is ready");
//! let alarm = wheel.insert(60_000 * MS, "alarm");
//! wheel.insert(60_000 * MS, "second alarm, same deadline");
//! wheel.insert(5 * MS, "blink");
//!
//! wheel.cancel(alarm);
//! assert_eq!(wheel.next_deadline(), Some(5 * MS));
//!
//! // Ten minutes later, in order:
//! let fired: Vec<&str> = wheel.drain_expired(600_000 * MS).map(|(_, what)| what).collect();
//! assert_eq!(fired, ["blink", "second alarm, same deadline", "tea is ready"]);
//! ```

mod expired;
mod heap;
mod key;
mod levels;
mod slab;
mod slot;
mod wheel;

pub use expired::Expired;
pub use key::TimerKey;
pub use levels::{LEVEL_SPAN_NANOS, LEVELS, SLOT_BITS, SLOTS_PER_LEVEL, TICK_NANOS, TICK_SHIFT};
pub use wheel::TimerWheel;
