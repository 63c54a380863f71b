//! The wheel against a model: random sequences of insert / cancel / advance
//! (pop until `None` at a random `now`) / `next_deadline`, run on a
//! `TimerWheel` and on a `BinaryHeap<Reverse<(deadline, seq)>>` with a set of
//! pending insertion numbers, must give identical outputs at every step.
//!
//! By default 1,000 cases of 200 operations run, plus 40 "crowded" cases of
//! 1,500 operations that pile timers into few slots and cancel the earliest
//! one often. The environment variable `EVLOOP_PROPTEST_SCALE` multiplies
//! the number of cases of both; for the long run:
//!
//! ```text
//! EVLOOP_PROPTEST_SCALE=100 cargo test --release -p evloop-timer --test model
//! ```
//!
//! Deadlines cluster around the current time (equal deadlines are frequent,
//! on purpose, to check FIFO order), lie in the past, or reach far ahead:
//! seconds, hours, years, `u64::MAX`, so that every level of the wheel is
//! used and cascaded.

use evloop_timer::{TICK_NANOS, TimerKey, TimerWheel};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

/// Operations per case.
const OPS_PER_CASE: usize = 200;

/// Cases at scale 1.
const BASE_CASES: u32 = 1_000;

/// Operations per case of the crowded variant: enough to fill slots with
/// hundreds of timers.
const CROWDED_OPS_PER_CASE: usize = 1_500;

/// Cases of the crowded variant at scale 1.
const CROWDED_BASE_CASES: u32 = 40;

/// Where a new deadline lies, relative to the current time when the
/// operation runs.
#[derive(Clone, Debug)]
enum When {
    /// Within a few ticks ahead.
    Near(u64),
    /// One of a handful of fixed offsets: many inserts share a deadline.
    Grid(u8),
    /// Exactly the deadline of an earlier insert (picked by index).
    Reuse(usize),
    /// Before the current time.
    Past(u64),
    /// Uniform below `2^bits` ahead: bits 20..64 cover every level.
    Far { bits: u32, fraction: u64 },
    /// A little below `u64::MAX`, or `u64::MAX` itself.
    NearMax(u64),
    /// Ahead by `seconds` (0..60) plus up to a tick: many timers in the
    /// same level-1 and level-2 slots.
    Crowd { seconds: u64, nanos: u64 },
}

/// How far `now` moves for an advance.
#[derive(Clone, Debug)]
enum Step {
    /// Backwards (the clock stepped back): must change nothing.
    Back(u64),
    /// Within a few ticks.
    Small(u64),
    /// Uniform below `2^bits`.
    Far { bits: u32, fraction: u64 },
    /// To the end of time.
    ToMax,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(When),
    /// Cancel an earlier key (picked by index; expired and cancelled keys
    /// included, to check they match nothing).
    Cancel(usize),
    /// Cancel the earliest pending timer (what a loop does when timeouts of
    /// equal length complete in order).
    CancelEarliest,
    /// Cancel `count` earlier keys in a row (picked from `pick` on), more
    /// than the wheel releases in one batch.
    CancelRun {
        count: usize,
        pick: usize,
    },
    Advance(Step),
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        6 => (0..4 * TICK_NANOS).prop_map(When::Near),
        4 => (0u8..6).prop_map(When::Grid),
        4 => any::<usize>().prop_map(When::Reuse),
        2 => (0..4 * TICK_NANOS).prop_map(When::Past),
        4 => (20u32..64, any::<u64>()).prop_map(|(bits, fraction)| When::Far { bits, fraction }),
        1 => (0u64..3).prop_map(When::NearMax),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..2 * TICK_NANOS).prop_map(Step::Back),
        6 => (0..3 * TICK_NANOS).prop_map(Step::Small),
        3 => (20u32..64, any::<u64>()).prop_map(|(bits, fraction)| Step::Far { bits, fraction }),
        1 => Just(Step::ToMax),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => when().prop_map(Op::Insert),
        5 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::CancelEarliest),
        3 => step().prop_map(Op::Advance),
    ]
}

/// Many timers in few slots, many cancels: exercises slots that order
/// themselves, lose their earliest timer, and the batched release of
/// cancelled timers.
fn crowded_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => prop_oneof![
            3 => (0u64..60, 0..TICK_NANOS).prop_map(|(seconds, nanos)| When::Crowd { seconds, nanos }),
            2 => (0..2 * TICK_NANOS).prop_map(When::Near),
            1 => any::<usize>().prop_map(When::Reuse),
        ]
        .prop_map(Op::Insert),
        4 => any::<usize>().prop_map(Op::Cancel),
        2 => Just(Op::CancelEarliest),
        1 => (1usize..150, any::<usize>()).prop_map(|(count, pick)| Op::CancelRun { count, pick }),
        2 => prop_oneof![
            8 => (0..3 * TICK_NANOS).prop_map(Step::Small),
            1 => (30u32..34, any::<u64>()).prop_map(|(bits, fraction)| Step::Far { bits, fraction }),
        ]
        .prop_map(Op::Advance),
    ]
}

/// Uniform below `2^bits` from 64 random bits.
fn below_power_of_two(bits: u32, fraction: u64) -> u64 {
    fraction.checked_shr(64 - bits).unwrap_or(0)
}

/// The reference: a binary heap of `(deadline, seq)` with lazy deletion.
#[derive(Default)]
struct Model {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    pending: HashSet<u64>,
    now: u64,
}

impl Model {
    fn drop_stale_top(&mut self) {
        while let Some(Reverse((_, seq))) = self.heap.peek() {
            if self.pending.contains(seq) {
                break;
            }
            self.heap.pop();
        }
    }

    fn next_deadline(&mut self) -> Option<u64> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// The insertion number of the earliest pending timer.
    fn earliest(&mut self) -> Option<u64> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((_, seq))| *seq)
    }

    fn pop_expired(&mut self, now: u64) -> Option<(u64, u64)> {
        self.now = self.now.max(now);
        self.drop_stale_top();
        let Reverse((deadline, seq)) = *self.heap.peek()?;
        if deadline > self.now {
            return None;
        }
        self.heap.pop();
        self.pending.remove(&seq);
        Some((deadline, seq))
    }
}

/// Runs `ops` on both and fails at the first difference.
fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut wheel = TimerWheel::new();
    let mut model = Model::default();
    let mut keys: Vec<TimerKey> = Vec::new();
    let mut deadlines: Vec<u64> = Vec::new();
    let grid_base = 5 * TICK_NANOS / 2;

    for (step_number, op) in ops.iter().enumerate() {
        let now = model.now;
        match op {
            Op::Insert(when) => {
                let deadline = match *when {
                    When::Near(offset) => now.saturating_add(offset),
                    When::Grid(k) => (now / grid_base)
                        .saturating_mul(grid_base)
                        .saturating_add(u64::from(k) * TICK_NANOS / 3),
                    When::Reuse(pick) if !deadlines.is_empty() => deadlines[pick % deadlines.len()],
                    When::Reuse(_) => now,
                    When::Past(offset) => now.saturating_sub(offset),
                    When::Far { bits, fraction } => {
                        now.saturating_add(below_power_of_two(bits, fraction))
                    }
                    When::NearMax(below) => u64::MAX - below,
                    When::Crowd { seconds, nanos } => {
                        now.saturating_add(seconds * 1_000_000_000 + nanos)
                    }
                };
                let seq = keys.len() as u64;
                keys.push(wheel.insert(deadline, seq));
                deadlines.push(deadline);
                model.heap.push(Reverse((deadline, seq)));
                model.pending.insert(seq);
            }
            Op::Cancel(pick) => {
                if keys.is_empty() {
                    continue;
                }
                let seq = pick % keys.len();
                let expected = model.pending.remove(&(seq as u64)).then_some(seq as u64);
                prop_assert_eq!(
                    wheel.cancel(keys[seq]),
                    expected,
                    "step {}: cancel of timer {}",
                    step_number,
                    seq
                );
            }
            Op::CancelRun { count, pick } => {
                // Walk the pending timers in a scrambled order (a fixed odd
                // stride), so that most of the run cancels live timers.
                let mut pending: Vec<u64> = model.pending.iter().copied().collect();
                pending.sort_unstable();
                for k in 0..(*count).min(pending.len()) {
                    let seq = pending[pick.wrapping_add(k.wrapping_mul(7_919)) % pending.len()];
                    let expected = model.pending.remove(&seq).then_some(seq);
                    prop_assert_eq!(
                        wheel.cancel(keys[seq as usize]),
                        expected,
                        "step {}: cancel {} of a run: timer {}",
                        step_number,
                        k,
                        seq
                    );
                    prop_assert_eq!(wheel.next_deadline(), model.next_deadline());
                }
            }
            Op::CancelEarliest => {
                let Some(seq) = model.earliest() else {
                    continue;
                };
                model.pending.remove(&seq);
                prop_assert_eq!(
                    wheel.cancel(keys[seq as usize]),
                    Some(seq),
                    "step {}: cancel of the earliest timer {}",
                    step_number,
                    seq
                );
            }
            Op::Advance(step) => {
                let target = match *step {
                    Step::Back(offset) => now.saturating_sub(offset),
                    Step::Small(offset) => now.saturating_add(offset),
                    Step::Far { bits, fraction } => {
                        now.saturating_add(below_power_of_two(bits, fraction))
                    }
                    Step::ToMax => u64::MAX,
                };
                loop {
                    let got = wheel.pop_expired(target);
                    let expected = model.pop_expired(target);
                    prop_assert_eq!(got, expected, "step {}: pop at {}", step_number, target);
                    if got.is_none() {
                        break;
                    }
                }
                prop_assert_eq!(wheel.now(), model.now);
            }
        }
        prop_assert_eq!(
            wheel.next_deadline(),
            model.next_deadline(),
            "step {}: next_deadline after {:?}",
            step_number,
            op
        );
        prop_assert_eq!(wheel.len(), model.pending.len());
    }

    // Everything left comes out, in order, at the end of time.
    let rest: Vec<_> = wheel.drain_expired(u64::MAX).collect();
    let mut expected = Vec::new();
    while let Some(item) = model.pop_expired(u64::MAX) {
        expected.push(item);
    }
    prop_assert_eq!(rest, expected);
    prop_assert!(wheel.is_empty());
    Ok(())
}

/// `base` cases times `EVLOOP_PROPTEST_SCALE` (default 1).
fn cases(base: u32) -> u32 {
    let scale = std::env::var("EVLOOP_PROPTEST_SCALE")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    base.saturating_mul(scale)
}

/// The runner settings for `base` cases.
fn config(base: u32) -> Config {
    Config {
        cases: cases(base),
        // Failures print the minimal case; nothing is written to the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(BASE_CASES))]

    #[test]
    fn wheel_matches_binary_heap_model(ops in prop::collection::vec(op(), OPS_PER_CASE)) {
        check(&ops)?;
    }
}

proptest! {
    #![proptest_config(config(CROWDED_BASE_CASES))]

    #[test]
    fn crowded_wheel_matches_binary_heap_model(
        ops in prop::collection::vec(crowded_op(), CROWDED_OPS_PER_CASE),
    ) {
        check(&ops)?;
    }
}
