//! The timer groups `timers_100k` and `timers_1m`: insert N deadlines uniform
//! in `[now, now + 10 s)`, cancel a seeded random half, expire the rest.
//!
//! Subjects, each doing the same work on its own structure:
//! - `evloop`: `evloop_timer::TimerWheel`;
//! - `binaryheap`: `BinaryHeap<Reverse<(deadline, seq, idx)>>` with a
//!   cancelled flag per timer, skipped when it reaches the top (asyncio's
//!   structure);
//! - `btreemap`: `BTreeMap<(deadline, seq), idx>`, cancel = remove (smol's
//!   async-io structure);
//! - `delayqueue`: tokio-util's `time::DelayQueue` under a paused tokio clock.
//!
//! Expiry advances time in 1 ms steps, as a loop waking every millisecond
//! would, and at each step takes every due timer. Every subject's output is
//! checked against the model (the non-cancelled timers in `(deadline, seq)`
//! order) in every mode, so the smoke run catches a lost, duplicated or
//! misordered timer; the metric is the wall time of insert + cancel + expire.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use evloop_timer::{TimerKey, TimerWheel};
use tokio_util::time::DelayQueue;

use crate::harness::{Ctx, median};

/// Deadlines are uniform in `[0, SPAN_NS)` after the start.
const SPAN_NS: u64 = 10_000_000_000;

/// Expiry step: 1 ms.
const STEP_NS: u64 = 1_000_000;

/// Steps: to the end of the span, plus two so that DelayQueue, which rounds
/// deadlines up to its 1 ms ticks, has reached its last one too.
const STEPS: u64 = SPAN_NS / STEP_NS + 2;

/// Seed of the workload: the same deadlines and cancellations in every run.
const SEED: u64 = 0x5eed_7153_0b5e_7e11;

/// The subjects, in the order they run within each repeat.
const SUBJECTS: [&str; 4] = ["evloop", "binaryheap", "btreemap", "delayqueue"];

/// Runs both sizes.
pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    for (group, full) in [("timers_100k", 100_000), ("timers_1m", 1_000_000)] {
        let n = ctx.n(full);
        group_run(ctx, group, n)?;
    }
    Ok(())
}

/// One group: `n` timers, every subject measured `ctx.repeats()` times,
/// interleaved, then the medians recorded.
fn group_run(ctx: &mut Ctx, group: &str, n: usize) -> Result<(), String> {
    let work = Workload::new(n, SEED);
    let expected = work.expected();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| format!("{group}: cannot build the tokio runtime: {e}"))?;

    let mut samples = vec![Vec::new(); SUBJECTS.len()];
    for _ in 0..ctx.repeats() {
        for (i, subject) in SUBJECTS.iter().enumerate() {
            let measured = match *subject {
                "evloop" => Ok(timed(|| run_wheel(&work))),
                "binaryheap" => Ok(timed(|| run_binary_heap(&work))),
                "btreemap" => Ok(timed(|| run_btree_map(&work))),
                _ => runtime.block_on(run_delay_queue(&work)),
            };
            let checked = measured.and_then(|(ms, fired)| {
                if *subject == "delayqueue" {
                    check_ms_order(&work, &expected, &fired)?;
                } else {
                    check_exact(&expected, &fired)?;
                }
                Ok(ms)
            });
            let ms = checked.map_err(|e| format!("{group}/{subject}: {e}"))?;
            samples[i].push(ms);
        }
    }
    for (subject, mut ms) in SUBJECTS.iter().zip(samples) {
        ctx.record(group, subject, "total", median(&mut ms), "ms");
    }
    ctx.note(
        group,
        &format!(
            "{n} deadlines uniform in [now, now + 10 s), a seeded random half cancelled \
             (in random order), then time advanced in 1 ms steps ({STEPS} steps) taking \
             every due timer at each step; total = insert + cancel + expire. Checked in \
             every mode: each subject expired exactly the non-cancelled timers, never \
             one before its deadline; evloop, binaryheap and btreemap in exact \
             (deadline, insertion) order, delayqueue to the millisecond (below)."
        ),
    );
    ctx.note(
        group,
        "binaryheap: BinaryHeap<Reverse<(deadline, seq, idx)>> with a cancelled flag per timer, \
         popped and skipped when it reaches the top (asyncio's structure). btreemap: \
         BTreeMap<(deadline, seq), idx>, cancel = remove (smol's async-io structure).",
    );
    ctx.note(
        group,
        "delayqueue: tokio-util DelayQueue in a current-thread runtime with the clock paused \
         (tokio::time::pause semantics); insert_at(start + deadline), remove(&key) for the \
         cancelled half, then per step tokio::time::advance(1 ms) and poll_expired until \
         Pending. It rounds deadlines up to 1 ms ticks and gives no order within a tick, so \
         it is checked for the same set, none before its deadline, and deadline order to \
         the millisecond.",
    );
    Ok(())
}

/// The work every subject does: deadlines (nanoseconds after the start,
/// timer `i` inserted `i`-th) and the timers to cancel, in cancel order.
struct Workload {
    deadlines: Vec<u64>,
    cancels: Vec<u32>,
}

impl Workload {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let deadlines: Vec<u64> = (0..n).map(|_| rng.below(SPAN_NS)).collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        // Fisher-Yates: the first half of a random permutation.
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        order.truncate(n / 2);
        Self {
            deadlines,
            cancels: order,
        }
    }

    /// The timers that must expire, in `(deadline, seq)` order.
    fn expected(&self) -> Vec<u32> {
        let mut cancelled = vec![false; self.deadlines.len()];
        for &i in &self.cancels {
            cancelled[i as usize] = true;
        }
        let mut kept: Vec<u32> = (0..self.deadlines.len() as u32)
            .filter(|&i| !cancelled[i as usize])
            .collect();
        kept.sort_by_key(|&i| (self.deadlines[i as usize], i));
        kept
    }
}

/// splitmix64: a tiny seeded generator, enough for a workload.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)` (Lemire's multiply-shift; the bias is far
    /// below what a benchmark can see).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

/// Wall time of `f` in milliseconds, with its result.
fn timed<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let began = Instant::now();
    let result = f();
    (began.elapsed().as_secs_f64() * 1e3, result)
}

fn run_wheel(work: &Workload) -> Vec<u32> {
    let n = work.deadlines.len();
    let mut wheel = TimerWheel::with_capacity(n);
    let keys: Vec<TimerKey> = (0..n as u32)
        .map(|i| wheel.insert(work.deadlines[i as usize], i))
        .collect();
    for &i in &work.cancels {
        wheel.cancel(keys[i as usize]);
    }
    let mut fired = Vec::with_capacity(n - work.cancels.len());
    for step in 1..=STEPS {
        while let Some((_, i)) = wheel.pop_expired(step * STEP_NS) {
            fired.push(i);
        }
    }
    fired
}

fn run_binary_heap(work: &Workload) -> Vec<u32> {
    let n = work.deadlines.len();
    let mut heap = BinaryHeap::with_capacity(n);
    let mut cancelled = vec![false; n];
    for (i, &deadline) in work.deadlines.iter().enumerate() {
        heap.push(Reverse((deadline, i as u64, i as u32)));
    }
    for &i in &work.cancels {
        cancelled[i as usize] = true;
    }
    let mut fired = Vec::with_capacity(n - work.cancels.len());
    for step in 1..=STEPS {
        let now = step * STEP_NS;
        while let Some(&Reverse((deadline, _, i))) = heap.peek() {
            if deadline > now {
                break;
            }
            heap.pop();
            if !cancelled[i as usize] {
                fired.push(i);
            }
        }
    }
    fired
}

fn run_btree_map(work: &Workload) -> Vec<u32> {
    let n = work.deadlines.len();
    let mut map = BTreeMap::new();
    for (i, &deadline) in work.deadlines.iter().enumerate() {
        map.insert((deadline, i as u64), i as u32);
    }
    for &i in &work.cancels {
        map.remove(&(work.deadlines[i as usize], u64::from(i)));
    }
    let mut fired = Vec::with_capacity(n - work.cancels.len());
    for step in 1..=STEPS {
        let now = step * STEP_NS;
        while let Some(entry) = map.first_entry() {
            if entry.key().0 > now {
                break;
            }
            fired.push(entry.remove());
        }
    }
    fired
}

/// DelayQueue under the paused clock; runs inside the runtime and times
/// itself (the runtime's construction is not measured). A timer handed out
/// before its deadline is an error.
async fn run_delay_queue(work: &Workload) -> Result<(f64, Vec<u32>), String> {
    let n = work.deadlines.len();
    let start = tokio::time::Instant::now();
    let began = Instant::now();
    let mut queue = DelayQueue::with_capacity(n);
    let keys: Vec<_> = work
        .deadlines
        .iter()
        .enumerate()
        .map(|(i, &deadline)| queue.insert_at(i as u32, start + Duration::from_nanos(deadline)))
        .collect();
    for &i in &work.cancels {
        queue.remove(&keys[i as usize]);
    }
    let mut fired = Vec::with_capacity(n - work.cancels.len());
    let mut early = None;
    for step in 1..=STEPS {
        tokio::time::advance(Duration::from_nanos(STEP_NS)).await;
        let now = step * STEP_NS;
        // Pending (nothing due yet) and Ready(None) (queue empty) both end
        // the step.
        while let Poll::Ready(Some(expired)) =
            poll_fn(|cx| Poll::Ready(queue.poll_expired(cx))).await
        {
            let i = expired.into_inner();
            if work.deadlines[i as usize] > now && early.is_none() {
                early = Some(i);
            }
            fired.push(i);
        }
    }
    let ms = began.elapsed().as_secs_f64() * 1e3;
    match early {
        Some(i) => Err(format!(
            "timer {i} (deadline {} ns) expired early",
            work.deadlines[i as usize]
        )),
        None => Ok((ms, fired)),
    }
}

/// `fired` must be exactly `expected`.
fn check_exact(expected: &[u32], fired: &[u32]) -> Result<(), String> {
    if fired.len() != expected.len() {
        return Err(format!(
            "expired {} timers, expected {}",
            fired.len(),
            expected.len()
        ));
    }
    match expected.iter().zip(fired).position(|(e, f)| e != f) {
        Some(at) => Err(format!(
            "expiry #{at} was timer {}, expected timer {}",
            fired[at], expected[at]
        )),
        None => Ok(()),
    }
}

/// `fired` must hold the same timers as `expected`, each deadline no more
/// than 1 ms before the previous one (DelayQueue's resolution).
fn check_ms_order(work: &Workload, expected: &[u32], fired: &[u32]) -> Result<(), String> {
    let mut sorted = fired.to_vec();
    sorted.sort_by_key(|&i| (work.deadlines[i as usize], i));
    if sorted != expected {
        return Err(format!(
            "expired a different set: {} timers, expected {}",
            fired.len(),
            expected.len()
        ));
    }
    for (at, pair) in fired.windows(2).enumerate() {
        let (before, after) = (
            work.deadlines[pair[0] as usize],
            work.deadlines[pair[1] as usize],
        );
        if after + STEP_NS <= before {
            return Err(format!(
                "expiry #{} (deadline {after} ns) came after a deadline of {before} ns",
                at + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_is_seeded_and_cancels_exactly_half() {
        let a = Workload::new(1_000, 7);
        let b = Workload::new(1_000, 7);
        assert_eq!(a.deadlines, b.deadlines);
        assert_eq!(a.cancels, b.cancels);
        assert_ne!(a.deadlines, Workload::new(1_000, 8).deadlines);
        assert!(a.deadlines.iter().all(|&d| d < SPAN_NS));
        let mut cancels = a.cancels.clone();
        cancels.sort_unstable();
        cancels.dedup();
        assert_eq!(cancels.len(), 500);
        assert_eq!(a.expected().len(), 500);
    }

    #[test]
    fn expected_is_in_deadline_then_insertion_order() {
        let work = Workload {
            deadlines: vec![30, 10, 30, 20, 10],
            cancels: vec![3],
        };
        assert_eq!(work.expected(), [1, 4, 0, 2]);
    }

    #[test]
    fn every_exact_subject_matches_the_model() -> Result<(), String> {
        let work = Workload::new(2_000, SEED);
        let expected = work.expected();
        check_exact(&expected, &run_wheel(&work))?;
        check_exact(&expected, &run_binary_heap(&work))?;
        check_exact(&expected, &run_btree_map(&work))
    }

    #[test]
    fn delay_queue_matches_the_model_to_the_millisecond() -> Result<(), String> {
        let work = Workload::new(2_000, SEED);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|e| e.to_string())?;
        let (_, fired) = runtime.block_on(run_delay_queue(&work))?;
        check_ms_order(&work, &work.expected(), &fired)
    }

    #[test]
    fn check_exact_names_the_first_difference() {
        assert_eq!(check_exact(&[1, 2, 3], &[1, 2, 3]), Ok(()));
        assert_eq!(
            check_exact(&[1, 2, 3], &[1, 3, 2]),
            Err("expiry #1 was timer 3, expected timer 2".to_string())
        );
        assert_eq!(
            check_exact(&[1, 2, 3], &[1, 2]),
            Err("expired 2 timers, expected 3".to_string())
        );
    }

    #[test]
    fn check_ms_order_allows_disorder_within_a_millisecond_only() {
        let work = Workload {
            deadlines: vec![100, 200, 2 * STEP_NS + 5, 0],
            cancels: vec![3],
        };
        let expected = work.expected();
        assert_eq!(check_ms_order(&work, &expected, &[1, 0, 2]), Ok(()));
        assert!(check_ms_order(&work, &expected, &[2, 0, 1]).is_err());
        assert!(check_ms_order(&work, &expected, &[0, 1]).is_err());
        assert!(check_ms_order(&work, &expected, &[0, 1, 2, 3]).is_err());
    }
}
