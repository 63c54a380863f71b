//! Threadsafe storm across close: 8 threads each make 100,000 `call_soon_threadsafe` calls
//! through a `RemoteLoop` while the loop runs, then stops, then closes. Every call that returned
//! `Ok` must have run exactly once, or (queued after the last run) been dropped unrun by
//! `close()` as documented; every other call must have got the closed error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;

use crate::Scale;
use crate::line::Line;
use crate::sys;

const THREADS: usize = 8;

/// A call's fate, one slot per call.
struct Slots {
    /// 0 not made yet, 1 `Ok`, 2 closed error, 3 another error.
    status: Vec<AtomicU8>,
    /// Times the callback ran.
    ran: Vec<AtomicU8>,
    /// Times the callback was dropped without running.
    dropped: Vec<AtomicU8>,
    made: AtomicUsize,
    ran_total: AtomicUsize,
}

/// Owned by a callback: it knows whether it ran when it is dropped.
struct Guard {
    slot: usize,
    ran: bool,
    slots: Arc<Slots>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.ran {
            self.slots.dropped[self.slot].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "threadsafe-storm",
        "call_soon_threadsafe from 8 threads while the loop runs, stops and closes",
        |line| storm(scale, line),
    )
}

fn storm(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let per_thread = scale.pick(100_000, 10_000);
    let total = THREADS * per_thread;
    line.amount = format!("{THREADS} threads x {per_thread} calls");
    if scale.quick {
        line.amount.push_str(" (quick run; full run 8 x 100,000)");
    }
    let new_slots = || (0..total).map(|_| AtomicU8::new(0)).collect::<Vec<_>>();
    let slots = Arc::new(Slots {
        status: new_slots(),
        ran: new_slots(),
        dropped: new_slots(),
        made: AtomicUsize::new(0),
        ran_total: AtomicUsize::new(0),
    });
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let remote = lp.remote();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (remote, slots) = (remote.clone(), slots.clone());
            thread::spawn(move || {
                for i in 0..per_thread {
                    // Paced a little, so the loop runs, stops and closes amid the storm.
                    if i % 256 == 255 {
                        thread::sleep(Duration::from_micros(200));
                    }
                    let slot = t * per_thread + i;
                    let mut guard = Guard {
                        slot,
                        ran: false,
                        slots: slots.clone(),
                    };
                    let status = match remote.call_soon_threadsafe(move || {
                        guard.ran = true;
                        guard.slots.ran[guard.slot].fetch_add(1, Ordering::SeqCst);
                        guard.slots.ran_total.fetch_add(1, Ordering::SeqCst);
                    }) {
                        Ok(_) => 1,
                        Err(e) if e.is_closed() => 2,
                        Err(_) => 3,
                    };
                    slots.status[slot].store(status, Ordering::SeqCst);
                    slots.made.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Run until a third of the calls ran, then stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    lp.run_forever_setup().map_err(|e| e.to_string())?;
    while slots.ran_total.load(Ordering::SeqCst) < total / 3 && Instant::now() < deadline {
        lp.run_once_timeout(Duration::from_millis(5))
            .map_err(|e| e.to_string())?;
    }
    lp.run_forever_cleanup().map_err(|e| e.to_string())?;
    let made_at_stop = slots.made.load(Ordering::SeqCst);
    // A third of what is left queues up while the loop is stopped; the rest meets the close.
    let close_at = made_at_stop + (total - made_at_stop) / 3;
    while slots.made.load(Ordering::SeqCst) < close_at
        && slots.made.load(Ordering::SeqCst) < total
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(1));
    }
    let made_at_close = slots.made.load(Ordering::SeqCst);
    lp.close().map_err(|e| format!("close: {e}"))?;
    for t in threads {
        t.join().map_err(|_| "a calling thread panicked")?;
    }
    drop(lp);
    let (mut ran_once, mut dropped_unrun, mut closed, mut lost, mut twice, mut other) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for i in 0..total {
        let ran = slots.ran[i].load(Ordering::SeqCst);
        let dropped = slots.dropped[i].load(Ordering::SeqCst);
        match slots.status[i].load(Ordering::SeqCst) {
            1 => match (ran, dropped) {
                (1, 0) => ran_once += 1,
                (0, 1) => dropped_unrun += 1,
                (0, 0) => lost += 1,
                _ => twice += 1,
            },
            2 => {
                closed += 1;
                if ran != 0 {
                    twice += 1;
                }
            }
            _ => other += 1,
        }
    }
    line.lost = (lost + other) as u64;
    line.check(twice == 0, || {
        format!("{twice} calls ran more than once or ran after an error")
    });
    line.check(other == 0, || {
        format!("{other} calls failed with an error other than closed")
    });
    line.check(ran_once + dropped_unrun + closed == total, || {
        format!(
            "{} of {total} calls accounted for",
            ran_once + dropped_unrun + closed
        )
    });
    line.note(format!(
        "{ran_once} ran exactly once, {dropped_unrun} queued after the last run were dropped \
         unrun by close() (documented), {closed} got the closed error; stopped after \
         {made_at_stop} calls, closed after {made_at_close}"
    ));
    Ok(())
}
