//! One iteration of the loop: asyncio's `_run_once`.
//!
//! 1. The poll timeout: zero if callbacks are ready or the loop is stopping; otherwise the time
//!    to the next timer, at most a day; otherwise "block until woken".
//! 2. The I/O poll, which queues the fd callbacks whose fds are ready and the handlers of the
//!    signals that arrived. It may be skipped, see below.
//! 3. Callbacks submitted from other threads join the ready queue.
//! 4. Expired timers join the ready queue, in (deadline, scheduling) order; none early.
//! 5. The callbacks that were ready when this step began run; what they schedule waits for the
//!    next iteration.
//!
//! # Skipped polls
//!
//! When callbacks are ready the poll cannot sleep, so all it can do is notice fds that became
//! ready. An iteration may skip it, but never more than [`MAX_SKIPPED_POLLS`] in a row, and never
//! when the loop is stopping (so `stop(); run_forever()` polls exactly once). A chain of callbacks
//! thus sees I/O at least every 64 iterations, and pays for a poll syscall on one iteration in
//! 64. Ordering is unaffected: the fd callbacks are queued behind everything already ready,
//! exactly as if the skipped polls had found nothing.

use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::EventLoop;
use crate::clock::{self, MAX_POLL_TIMEOUT};
use crate::exception::{Context, Exception};
use crate::handle::{Entry, Handle, arrived};
use crate::job::Job;
use crate::step::StepName;

/// The most consecutive iterations that may skip the I/O poll because callbacks were ready: I/O
/// is looked at on at least one iteration in `MAX_SKIPPED_POLLS + 1` = 64.
pub const MAX_SKIPPED_POLLS: u32 = 63;

/// Ready-queue entries whose memory the loop keeps after a burst (see `shrink_ready`).
const KEEP_READY_CAPACITY: usize = 1024;

impl EventLoop {
    /// Runs one iteration (see the module docs); the poll waits at most `max_wait` (`None`: as
    /// long as the loop's own timeout says).
    pub(crate) fn tick(&self, max_wait: Option<Duration>) {
        let inner = &*self.inner;
        let stopping = inner.stopping.get();
        let has_ready = !inner.ready.borrow().is_empty();
        let timeout = if has_ready || stopping {
            Some(Duration::ZERO)
        } else {
            match (self.sleep_timeout(), max_wait) {
                (Some(t), Some(max)) => Some(t.min(max)),
                (t, None) => t,
                (None, max) => max,
            }
        };
        let skipped = inner.skipped_polls.get();
        if timeout == Some(Duration::ZERO) && !stopping && skipped < MAX_SKIPPED_POLLS {
            inner.skipped_polls.set(skipped + 1);
        } else {
            inner.skipped_polls.set(0);
            self.poll_io(timeout);
        }
        self.drain_remote();
        self.expire_timers();
        self.run_ready();
    }

    /// The timeout of a poll that may sleep; arms the cross-thread wake-up first.
    fn sleep_timeout(&self) -> Option<Duration> {
        let inner = &*self.inner;
        let next = inner.timers.borrow().next_deadline();
        let timeout = next.map(|deadline| {
            let now = clock::now_ns();
            Duration::from_nanos(deadline.saturating_sub(now)).min(MAX_POLL_TIMEOUT)
        });
        if timeout != Some(Duration::ZERO) {
            if let Some(reactor) = inner.reactor.borrow().as_ref() {
                reactor.prepare_sleep();
            }
            // Armed before looking: a submission after this look will wake the poll.
            if !inner.remote.shared.queue.is_empty() {
                return Some(Duration::ZERO);
            }
        }
        timeout
    }

    fn poll_io(&self, timeout: Option<Duration>) {
        let inner = &*self.inner;
        let mut events = mem::take(&mut *inner.events.borrow_mut());
        let mut signals = mem::take(&mut *inner.signals.borrow_mut());
        events.clear();
        signals.clear();
        // Called outside every borrow of the loop's state (see `crate::sleep`).
        let hook = self.sleep_hook_for(timeout);
        if let Some(hook) = &hook {
            hook.before_sleep();
        }
        let outcome = match inner.reactor.borrow_mut().as_mut() {
            Some(reactor) => {
                let outcome = reactor.poll(timeout, &mut events);
                reactor.take_signals(&mut signals);
                outcome
            }
            None => Ok(0),
        };
        if let Some(hook) = &hook {
            hook.after_sleep();
        }
        if !events.is_empty() || !signals.is_empty() {
            let watches = inner.watches.borrow();
            let handlers = inner.signal_handlers.borrow();
            let mut ready = inner.ready.borrow_mut();
            for event in &events {
                let Some(watch) = watches.get(&event.fd) else {
                    continue;
                };
                if event.readable {
                    if let Some(reader) = &watch.reader {
                        ready.push_back(reader.clone().into_job());
                    }
                }
                if event.writable {
                    if let Some(writer) = &watch.writer {
                        ready.push_back(writer.clone().into_job());
                    }
                }
            }
            drop(watches);
            let mut waits = inner.waits.borrow_mut();
            if !waits.is_empty() {
                for event in &events {
                    let Some(wait) = waits.get_mut(&event.fd) else {
                        continue;
                    };
                    // The reactor reported each one-shot wait at most once, and ended it.
                    if event.readable {
                        if let Some(cb) = wait.readable.take() {
                            ready.push_back(cb.into_job());
                        }
                    }
                    if event.writable {
                        if let Some(cb) = wait.writable.take() {
                            ready.push_back(cb.into_job());
                        }
                    }
                    if wait.readable.is_none() && wait.writable.is_none() {
                        waits.remove(&event.fd);
                    }
                }
            }
            drop(waits);
            for sig in &signals {
                if let Some(handler) = handlers.get(sig) {
                    ready.push_back(handler.clone().into_job());
                }
            }
        }
        *inner.events.borrow_mut() = events;
        *inner.signals.borrow_mut() = signals;
        if let Err(err) = outcome {
            self.call_exception_handler(
                Context::new("error while polling for I/O")
                    .with_exception(Exception::from_error(err)),
            );
        }
    }

    fn drain_remote(&self) {
        let queue = &self.inner.remote.shared.queue;
        if queue.is_empty() {
            return;
        }
        let mut ready = self.inner.ready.borrow_mut();
        // Bounded by the length seen now, so a producer that never stops cannot starve the loop.
        for _ in 0..queue.len() {
            match queue.pop() {
                Ok(cb) => ready.push_back(arrived(cb)),
                Err(_) => break,
            }
        }
    }

    fn expire_timers(&self) {
        let mut timers = self.inner.timers.borrow_mut();
        if timers.is_empty() {
            return;
        }
        let now = clock::now_ns();
        let mut ready = self.inner.ready.borrow_mut();
        while let Some((_, job)) = timers.pop_expired(now) {
            ready.push_back(job);
        }
    }

    fn run_ready(&self) {
        // Exactly the callbacks ready now: what they schedule lands behind them, for the next
        // iteration. Each is popped on its own, so no borrow is held while it runs.
        let n = self.inner.ready.borrow().len();
        if n > 0 {
            self.run_batch(n);
        }
        if n > KEEP_READY_CAPACITY {
            self.shrink_ready();
        }
    }

    /// After a burst: gives back the ready queue's memory, unless the queue is still about as
    /// long. A `VecDeque` never shrinks by itself, so a million callbacks scheduled once would
    /// otherwise keep 16 MiB for the loop's lifetime, and every later push and pop would walk
    /// that whole ring, a new cache line every few entries.
    #[cold]
    fn shrink_ready(&self) {
        let mut ready = self.inner.ready.borrow_mut();
        let keep = ready.len().max(KEEP_READY_CAPACITY);
        if ready.capacity() > 4 * keep {
            ready.shrink_to(2 * keep);
        }
    }

    /// Runs the first `n` entries of the ready queue. A panic is caught at the callback
    /// boundary, reported to the exception handler, and the rest of the batch runs.
    fn run_batch(&self, n: usize) {
        let debug = self.inner.debug.get();
        let ready = &self.inner.ready;
        let mut left = n;
        // The callback running now, to name in a panic report (a step has no handle; it is
        // consumed by running it). `Job::run` keeps it up to date.
        let mut current: Option<Entry> = None;
        while left > 0 {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                while left > 0 {
                    left -= 1;
                    let Some(job) = ready.borrow_mut().pop_front() else {
                        // Only close() empties the queue, and it refuses a running loop.
                        left = 0;
                        break;
                    };
                    if debug {
                        self.run_job_timed(job, &mut current);
                    } else {
                        job.run(&mut current);
                    }
                }
            }));
            if let Err(payload) = outcome {
                let exception = Exception::from_panic(payload);
                match current.take() {
                    Some(entry) => {
                        let handle = Handle { entry };
                        self.call_exception_handler(
                            Context::new(format!("Exception in callback {handle:?}"))
                                .with_exception(exception)
                                .with("handle", handle),
                        );
                    }
                    None => self.call_exception_handler(
                        Context::new("Exception in a queued step").with_exception(exception),
                    ),
                }
            }
        }
    }

    /// Debug mode: runs `job` as [`Job::run`] does, and warns if it took longer than the
    /// slow-callback threshold, naming the callback (left in `current`) or the step (by the
    /// [`StepName`] it gave before it ran: afterwards it may be gone).
    #[cold]
    fn run_job_timed(&self, job: Job, current: &mut Option<Entry>) {
        let mut name = StepName(None);
        job.inspect_step(&mut name);
        let start = Instant::now();
        job.run(current);
        let took = start.elapsed();
        if took < self.inner.slow_callback.get() {
            return;
        }
        let secs = took.as_secs_f64();
        let text = match current {
            Some(entry) => format!(
                "Executing <Handle created at {}> took {secs:.3} seconds",
                entry.location()
            ),
            None => {
                let name = name.0.as_deref().unwrap_or("<queued step>");
                format!("Executing {name} took {secs:.3} seconds")
            }
        };
        crate::log_report(log::Level::Warn, &text);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use crate::EventLoop;

    /// A burst of callbacks does not leave the ready queue at its peak size for good.
    #[test]
    fn the_ready_queue_gives_its_memory_back_after_a_burst() -> std::io::Result<()> {
        const BURST: usize = 100_000;
        let lp = EventLoop::new()?;
        let ran = Rc::new(Cell::new(0));
        let (l2, r2) = (lp.clone(), ran.clone());
        lp.call_soon(move || {
            for _ in 0..BURST {
                let r = r2.clone();
                let _ = l2.call_soon(move || r.set(r.get() + 1));
            }
        })?;
        lp.run_forever_setup()?;
        lp.run_once()?;
        assert!(lp.inner.ready.borrow().capacity() >= BURST);
        lp.run_once()?;
        lp.run_forever_cleanup()?;
        assert_eq!(ran.get(), BURST);
        let cap = lp.inner.ready.borrow().capacity();
        assert!(cap <= 2 * super::KEEP_READY_CAPACITY, "capacity {cap}");
        Ok(())
    }
}
