//! Signal storm: another process sends 10,000 SIGUSR1 while the loop is busy with a chain of
//! callbacks; a 10 ms repeating timer must stay within 50 ms of its schedule, the handler must
//! run, and removing the handler must restore the default disposition (read back with
//! sigaction). Always in a child process: a signal disposition is process-wide.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::prelude::*;

use crate::Scale;
use crate::line::Line;
use crate::sys;

const PERIOD: Duration = Duration::from_millis(10);
const MAX_LATE: Duration = Duration::from_millis(50);
/// The work each callback of the busy chain does.
const BUSY: Duration = Duration::from_micros(200);

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "signal-storm",
        "SIGUSR1 from another process into a busy loop with a 10 ms repeating timer, then one more",
        |line| storm(scale, line),
    )
}

/// What the loop saw.
#[derive(Default)]
struct Seen {
    handled: Cell<usize>,
    ticks: Cell<usize>,
    worst: Cell<Duration>,
    busy: Cell<usize>,
    done: Cell<bool>,
    /// Lateness counts only during the storm (the loop is stopped between the two bursts).
    storm_over: Cell<bool>,
}

fn storm(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let n = scale.pick(10_000, 1_000);
    line.amount = format!("{n} signals");
    if scale.quick {
        line.amount.push_str(" (quick run; full run 10,000)");
    }
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let seen = Rc::new(Seen::default());
    let s2 = seen.clone();
    lp.add_signal_handler(libc::SIGUSR1, move || s2.handled.set(s2.handled.get() + 1))
        .map_err(|e| format!("add_signal_handler: {e}"))?;
    busy(&lp, seen.clone());
    let start = Instant::now();
    tick(&lp, seen.clone(), start, 1);
    let sent = burst(&lp, n, start + Duration::from_secs(40))?;
    seen.storm_over.set(true);
    // One more signal after the storm: the handler must still see it.
    let before_last = seen.handled.get();
    let last = burst(&lp, 1, Instant::now() + Duration::from_secs(10))?;
    seen.done.set(true);
    line.check(last == 1 && seen.handled.get() > before_last, || {
        "a signal sent after the storm was not handled".to_string()
    });
    line.lost = (n - sent.min(n)) as u64;
    line.check(seen.handled.get() > 0, || {
        "the handler never ran".to_string()
    });
    line.check(seen.worst.get() <= MAX_LATE, || {
        format!("the 10 ms timer ran {:?} late", seen.worst.get())
    });
    let removed = lp.remove_signal_handler(libc::SIGUSR1);
    line.check(matches!(removed, Ok(true)), || {
        format!("remove_signal_handler: {removed:?}")
    });
    let disposition = current_disposition(libc::SIGUSR1)?;
    line.check(disposition == libc::SIG_DFL, || {
        format!("after removing the handler SIGUSR1's disposition is {disposition:#x}, not SIG_DFL")
    });
    line.note(format!(
        "{sent} sent, handler ran {} times (signals coalesce), {} timer ticks, worst lateness \
         {:.2} ms, {} busy callbacks",
        seen.handled.get(),
        seen.ticks.get(),
        seen.worst.get().as_secs_f64() * 1e3,
        seen.busy.get()
    ));
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// Has a sender process send `n` SIGUSR1 to this process and runs the loop until 100 ms after
/// it exited (or `deadline`); returns how many it sent.
fn burst(lp: &EventLoop, n: usize, deadline: Instant) -> Result<usize, String> {
    let cmd = sys::helper(
        "sigusr1-sender",
        &[std::process::id().to_string(), n.to_string()],
    )
    .map_err(|e| format!("current_exe: {e}"))?;
    let sender = Rc::new(RefCell::new(
        sys::spawn_captured(cmd).map_err(|e| format!("starting the sender: {e}"))?,
    ));
    let timed_out = Rc::new(Cell::new(false));
    wait_sender(lp, sender.clone(), deadline, timed_out.clone());
    lp.run_forever().map_err(|e| format!("run_forever: {e}"))?;
    let sender = Rc::try_unwrap(sender)
        .map_err(|_| "the sender is still shared")?
        .into_inner();
    let (status, out, err) = sender.finish(timed_out.get());
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix("sent ")?.parse().ok())
        .ok_or_else(|| {
            format!(
                "the sender printed no result ({}): {}",
                sys::describe(status, Duration::from_secs(40)),
                sys::tail(&err, 3)
            )
        })
}

/// The disposition of `sig` now.
fn current_disposition(sig: i32) -> Result<libc::sighandler_t, String> {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`, a valid out-pointer.
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } < 0 {
        return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
    }
    Ok(old.sa_sigaction)
}

/// A chain of callbacks, each busy for [`BUSY`], until the test is done.
fn busy(lp: &EventLoop, seen: Rc<Seen>) {
    let l2 = lp.clone();
    let _ = lp.call_soon(move || {
        let until = Instant::now() + BUSY;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        seen.busy.set(seen.busy.get() + 1);
        if !seen.done.get() {
            busy(&l2, seen);
        }
    });
}

/// The repeating timer: tick `k` is due at `start + k * PERIOD`; it notes how late it ran.
fn tick(lp: &EventLoop, seen: Rc<Seen>, start: Instant, k: u32) {
    let due = start + PERIOD * k;
    let l2 = lp.clone();
    let _ = lp.call_at(due, move || {
        if !seen.storm_over.get() {
            let late = Instant::now().saturating_duration_since(due);
            seen.worst.set(seen.worst.get().max(late));
            seen.ticks.set(seen.ticks.get() + 1);
        }
        if !seen.done.get() {
            tick(&l2, seen, start, k + 1);
        }
    });
}

/// Every 10 ms: stops the loop 100 ms after the sender exited, or at the deadline.
fn wait_sender(
    lp: &EventLoop,
    sender: Rc<RefCell<sys::Captured>>,
    deadline: Instant,
    timed_out: Rc<Cell<bool>>,
) {
    let l2 = lp.clone();
    let check = move || {
        let ended = !matches!(sender.borrow_mut().child.try_wait(), Ok(None));
        if ended {
            let l3 = l2.clone();
            let _ = l2.call_later(Duration::from_millis(100), move || l3.stop());
        } else if Instant::now() >= deadline {
            timed_out.set(true);
            l2.stop();
        } else {
            wait_sender(&l2, sender, deadline, timed_out);
        }
    };
    if lp.call_later(Duration::from_millis(10), check).is_err() {
        lp.stop();
    }
}

/// The sender's process: `PID N`. Sends N SIGUSR1 to PID, pausing 1 ms every 10 (about 10,000 a second); prints `sent K`.
pub(crate) fn sender_main(args: &[String]) -> Result<(), String> {
    let [pid, n] = args else {
        return Err("usage: sigusr1-sender PID N".into());
    };
    let pid: i32 = pid.parse().map_err(|e| format!("pid: {e}"))?;
    let n: usize = n.parse().map_err(|e| format!("n: {e}"))?;
    let mut sent = 0;
    for i in 0..n {
        // SAFETY: kill has no memory-safety preconditions; the target is our parent test.
        if unsafe { libc::kill(pid, libc::SIGUSR1) } == 0 {
            sent += 1;
        }
        if i % 10 == 9 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    println!("sent {sent}");
    Ok(())
}
