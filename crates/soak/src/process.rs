//! Subprocess churn: 1,000 children (200 in the quick run) started through the loop in waves
//! of [`WAVE`] at once, each through `communicate` (its output checked) or, one in ten, killed
//! while it sleeps. Every exit must be reported with the right code, no child may be left a
//! zombie, and the fds must be the same before and after.

use std::rc::Rc;
use std::time::Duration;

use evloop::prelude::*;
use evloop::{LoopProcessExt, ProcessOptions, ProcessStdio, timeout};

use crate::line::Line;
use crate::{Scale, alloc, sys};

/// Children running at once.
const WAVE: usize = 10;

/// How long one child may take, from its start to its reported exit.
const CHILD_LIMIT: f64 = 20.0;

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "subprocess-churn",
        "start a child, communicate (its echo checked) or kill it, read its exit; 10 at once",
        |line| churn(scale, line),
    )
}

/// How one child ended, as the loop saw it.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Exits reported with the expected code and output.
    right: usize,
    /// Exits reported with a wrong code or output.
    wrong: usize,
    /// Children whose exit was never reported (within [`CHILD_LIMIT`]) or could not start.
    lost: usize,
}

fn churn(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let total = scale.pick(1000, 200);
    line.amount = format!("{total} children, {WAVE} at a time, one in ten killed");
    if scale.quick {
        line.amount.push_str(" (quick run; full run 1,000)");
    }
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    // One child first: what the loop makes once (its read buffer, registries) is not a leak.
    let first = lp
        .run_until_complete(one_child(lp.clone(), 0))
        .map_err(|e| format!("run_until_complete: {e}"))?;
    if first.0 != Some(true) {
        return Err(format!("the first child did not end right: {first:?}"));
    }
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let heap_before = alloc::live();
    let pids: Rc<std::cell::RefCell<Vec<u32>>> = Rc::default();
    let started = std::time::Instant::now();
    let tally = lp
        .run_until_complete(waves(lp.clone(), total, pids.clone()))
        .map_err(|e| format!("run_until_complete: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    // The pipes of the last children close on the iteration after their connection_lost.
    let _ = lp.run_until_complete(sleep(0.05));
    let fds_after = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let heap_after = alloc::live();
    let zombies = pids.borrow().iter().filter(|&&pid| !reaped(pid)).count()
        + usize::from(first.1.is_some_and(|pid| !reaped(pid)));
    line.lost = (tally.lost + tally.wrong) as u64;
    line.check(tally.right == total, || {
        format!(
            "{} of {total} exits right, {} wrong, {} lost",
            tally.right, tally.wrong, tally.lost
        )
    });
    line.leaked = (zombies + fds_after.saturating_sub(fds_before)) as u64;
    line.check(zombies == 0, || {
        format!("{zombies} children left as zombies")
    });
    line.check(fds_after == fds_before, || {
        format!("fds {fds_before} before, {fds_after} after")
    });
    line.note(format!(
        "{total} children in {secs:.2} s ({:.0} µs per child, {WAVE} at a time); fds {fds_before} \
         before, {fds_after} after; heap {heap_before} B before, {heap_after} B after; \
         0 zombies checked with waitid(WNOWAIT)",
        secs * 1e6 / total as f64
    ));
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// Runs `total` children in waves of [`WAVE`]; the tally of their ends.
async fn waves(lp: EventLoop, total: usize, pids: Rc<std::cell::RefCell<Vec<u32>>>) -> Tally {
    let mut tally = Tally::default();
    let mut next = 0;
    while next < total {
        let mut tasks = Vec::with_capacity(WAVE);
        for i in next..(next + WAVE).min(total) {
            match lp.create_task(one_child(lp.clone(), i)) {
                Ok(task) => tasks.push(task),
                Err(_) => tally.lost += 1,
            }
        }
        next += WAVE;
        for task in tasks {
            match task.await {
                Ok((ok, pid)) => {
                    if let Some(pid) = pid {
                        pids.borrow_mut().push(pid);
                    }
                    match ok {
                        Some(true) => tally.right += 1,
                        Some(false) => tally.wrong += 1,
                        None => tally.lost += 1,
                    }
                }
                Err(_) => tally.lost += 1,
            }
        }
    }
    tally
}

/// Child `i`: `echo i` through `communicate`, or (one in ten) `sleep 30` killed. Returns
/// whether its exit was right (`None`: never reported or not started) and its pid.
async fn one_child(lp: EventLoop, i: usize) -> (Option<bool>, Option<u32>) {
    let kill = i % 10 == 9;
    let options = ProcessOptions::new().stderr(ProcessStdio::Null);
    let started = if kill {
        lp.create_subprocess_exec("sleep", ["30"], options).await
    } else {
        lp.create_subprocess_exec("echo", [i.to_string()], options)
            .await
    };
    let Ok(mut child) = started else {
        return (None, None);
    };
    let pid = Some(child.pid());
    let ended = timeout(CHILD_LIMIT, async {
        if kill {
            child.kill()?;
            let code = child.wait().await?;
            Ok::<_, std::io::Error>(code == -libc::SIGKILL)
        } else {
            let (out, _) = child.communicate(None).await?;
            let expected = format!("{i}\n");
            Ok(out.as_deref() == Some(expected.as_bytes()) && child.returncode() == Some(0))
        }
    })
    .await;
    match ended {
        Ok(Ok(right)) => (Some(right), pid),
        _ => (None, pid),
    }
}

/// Whether `pid` is no child of ours any more (reaped), asked with `WNOWAIT`, which reaps
/// nothing; waits up to a second for a reaper thread.
fn reaped(pid: u32) -> bool {
    for _ in 0..100 {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child as it is.
        let ret = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if ret < 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
