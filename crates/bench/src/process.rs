//! The subprocess groups: start a child and wait for its exit, evloop's subprocesses
//! (`create_subprocess_exec` then `Process::wait`, a pidfd watched by the loop) beside
//! `tokio::process` (`Command::spawn` then `Child::wait`) on a current-thread runtime.
//!
//! - `subprocess_spawn_wait_1k`: 1,000 children of `true`, one after the other;
//! - `subprocess_spawn_wait_1k_c10`: the same 1,000, ten in flight at a time.
//!
//! The children inherit the bench's stdio on both sides (asyncio's and tokio's default), so no
//! pipe is made; every exit status is checked. Subjects alternate within each repeat; the
//! figure is the total time, and `ratio_vs_tokio` the median of the ratios paired per repeat.

use std::io;
use std::time::Instant;

use evloop::prelude::*;
use evloop::{ProcessOptions, ProcessStdio, Task};

use crate::common::check;
use crate::harness::{Ctx, median};

/// The program every child runs: it exits 0 at once.
const PROGRAM: &str = "true";

/// The children in flight at a time in the `_c10` group.
const IN_FLIGHT: usize = 10;

/// A subject: `(children, in flight)` to milliseconds, or a wrong result.
type Subject = (&'static str, fn(usize, usize) -> Result<f64, String>);

const SUBJECTS: [Subject; 2] = [("evloop", evloop_children), ("tokio", tokio_children)];

/// Runs every group of this file.
pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000);
    group(ctx, "subprocess_spawn_wait_1k", n, 1)?;
    group(ctx, "subprocess_spawn_wait_1k_c10", n, IN_FLIGHT)?;
    ctx.note("subprocess_spawn_wait_1k", &format!("{n} children of `{PROGRAM}` started and awaited one after the other (_c10: {IN_FLIGHT} tasks, each starting and awaiting {} in turn); evloop: create_subprocess_exec + Process::wait on one loop (the exit seen through a pidfd); tokio: tokio::process::Command::spawn + Child::wait on a current_thread runtime; stdio inherited on both sides (with ProcessOptions::new(), which pipes all three as asyncio's loop.subprocess_exec does, evloop took 1.59× tokio's inherited time in a first run: three pipe transports per child, not the spawn); ratio_vs_tokio is the median of per-repeat ratios (below 1: evloop faster)", n.div_ceil(IN_FLIGHT)));
    Ok(())
}

/// Measures both subjects `ctx.repeats()` times, alternating, and records their medians and
/// evloop's paired ratio to tokio.
fn group(ctx: &mut Ctx, group: &str, n: usize, in_flight: usize) -> Result<(), String> {
    let mut samples = vec![Vec::new(); SUBJECTS.len()];
    for repeat in 0..ctx.repeats() {
        for i in 0..SUBJECTS.len() {
            // Rotated, so that neither always goes first.
            let s = (i + repeat) % SUBJECTS.len();
            let (name, f) = SUBJECTS[s];
            let ms = f(n, in_flight).map_err(|e| format!("{group}/{name}: {e}"))?;
            samples[s].push(ms);
        }
    }
    let mut ratios: Vec<f64> = samples[0]
        .iter()
        .zip(&samples[1])
        .map(|(ours, theirs)| ours / theirs)
        .collect();
    for (s, (name, _)) in SUBJECTS.iter().enumerate() {
        ctx.record(group, name, "total", median(&mut samples[s]), "ms");
    }
    ctx.record(group, "evloop", "ratio_vs_tokio", median(&mut ratios), "×");
    Ok(())
}

/// The children each of `in_flight` workers starts, so that they add up to `n`.
fn share(n: usize, in_flight: usize, worker: usize) -> usize {
    n / in_flight + usize::from(worker < n % in_flight)
}

fn evloop_children(n: usize, in_flight: usize) -> Result<f64, String> {
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let l2 = lp.clone();
    let start = Instant::now();
    let outcome = lp.run_until_complete(async move {
        let mut workers: Vec<Task<io::Result<usize>>> = Vec::with_capacity(in_flight);
        for worker in 0..in_flight {
            let l3 = l2.clone();
            let count = share(n, in_flight, worker);
            workers.push(l2.create_task(evloop_worker(l3, count))?);
        }
        let mut exited = 0;
        for worker in workers {
            exited += worker.await??;
        }
        Ok::<_, io::Error>(exited)
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    lp.close().map_err(|e| e.to_string())?;
    let exited = outcome
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    check("evloop", exited, n)?;
    Ok(ms)
}

/// Every stream inherited, as tokio's `Command` and asyncio's `create_subprocess_exec` do by
/// default (`ProcessOptions::new()` pipes all three, as asyncio's `loop.subprocess_exec`).
fn inherited() -> ProcessOptions {
    ProcessOptions::new()
        .stdin(ProcessStdio::Inherit)
        .stdout(ProcessStdio::Inherit)
        .stderr(ProcessStdio::Inherit)
}

/// Starts `count` children one after the other; how many exited 0.
async fn evloop_worker(lp: EventLoop, count: usize) -> io::Result<usize> {
    let mut exited = 0;
    for _ in 0..count {
        let child = lp
            .create_subprocess_exec(PROGRAM, [] as [&str; 0], inherited())
            .await?;
        if child.wait().await? == 0 {
            exited += 1;
        }
    }
    Ok(exited)
}

fn tokio_children(n: usize, in_flight: usize) -> Result<f64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let exited = rt.block_on(async move {
        let workers: Vec<_> = (0..in_flight)
            .map(|worker| tokio::spawn(tokio_worker(share(n, in_flight, worker))))
            .collect();
        let mut exited = 0;
        for worker in workers {
            exited += worker.await.map_err(io::Error::other)??;
        }
        Ok::<_, io::Error>(exited)
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    check("tokio", exited.map_err(|e| e.to_string())?, n)?;
    Ok(ms)
}

/// tokio's side of [`evloop_worker`].
async fn tokio_worker(count: usize) -> io::Result<usize> {
    let mut exited = 0;
    for _ in 0..count {
        let mut child = tokio::process::Command::new(PROGRAM).spawn()?;
        if child.wait().await?.success() {
            exited += 1;
        }
    }
    Ok(exited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (n, k) in [(1000, 10), (10, 1), (7, 3), (1, 10)] {
            let total: usize = (0..k).map(|w| share(n, k, w)).sum();
            assert_eq!(total, n, "{n} over {k}");
        }
    }

    #[test]
    fn both_subjects_wait_for_every_child() -> Result<(), String> {
        for (name, f) in SUBJECTS {
            f(12, 1).map_err(|e| format!("{name}: {e}"))?;
            f(12, 5).map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(())
    }
}
