//! `EventLoop::close` and what happens to a loop that is not closed.
//!
//! `close()` drops everything pending, in an order that keeps every destructor's view of the
//! loop consistent, and catches each destructor's panic so that the close hooks (the crates
//! above release their transports and shut the default executor down there) always run. A loop
//! dropped or left at its thread's end unclosed is reported in debug mode (see `owned`).

use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use crate::clock::NEVER;
use crate::event_loop::{State, Watch};
use crate::exception::Context;
use crate::handle::{Callback, Handle, arrived};
use crate::job::{Job, JobKind};
use crate::{Error, EventLoop};

impl EventLoop {
    /// Closes the loop; required once you are done with it (see [`new`](EventLoop::new)):
    /// pending callbacks and timers are dropped without running (their handles
    /// read `cancelled()`), fd watches and signal handlers are removed (restoring the default
    /// signal dispositions), the reactor is closed, and then the close hooks run (the crates
    /// above release their transports and shut the default executor down there). Calling it
    /// again does nothing.
    ///
    /// A destructor that panics (of a dropped callback's captured value, say) or a close hook
    /// that panics is caught and reported to the exception handler, and the rest of the close
    /// goes on: every hook runs.
    ///
    /// # Errors
    ///
    /// - [`Error::close_while_running`] if the loop is running; it keeps running.
    pub fn close(&self) -> Result<(), Error> {
        match self.inner.state.get() {
            State::Running => return Err(Error::close_while_running()),
            State::Closed => return Ok(()),
            State::Idle => {}
        }
        let inner = &*self.inner;
        inner.state.set(State::Closed);
        inner.stopping.set(false);

        // Collect everything first, release every borrow, then cancel: cancelling drops user
        // closures, whose destructors may call back into the (now closed) loop.
        inner.remote.shared.queue.close();
        let mut dropped: Vec<Job> = Vec::new();
        while let Ok(cb) = inner.remote.shared.queue.pop() {
            dropped.push(arrived(cb));
        }
        dropped.extend(inner.ready.borrow_mut().drain(..));
        {
            let mut timers = inner.timers.borrow_mut();
            while let Some((_, job)) = timers.pop_expired(NEVER) {
                dropped.push(job);
            }
        }
        let watches: Vec<(RawFd, Watch)> = inner.watches.borrow_mut().drain().collect();
        let waits: Vec<Rc<dyn Callback>> = inner
            .waits
            .borrow_mut()
            .drain()
            .flat_map(|(_, waits)| waits.readable.into_iter().chain(waits.writable))
            .collect();
        let handlers: Vec<(i32, Rc<dyn Callback>)> =
            inner.signal_handlers.borrow_mut().drain().collect();
        let reactor = inner.reactor.borrow_mut().take();
        if let Some(mut reactor) = reactor {
            for (fd, _) in &watches {
                // Closed fds are already gone from the kernel's set; nothing else can fail here.
                let _ = reactor.remove(*fd);
            }
            for (sig, _) in &handlers {
                if let Err(err) = reactor.unwatch_signal(*sig) {
                    crate::log_report(
                        log::Level::Warn,
                        &format!("removing the handler of signal {sig}: {err}"),
                    );
                }
            }
        }
        // In queue order: callbacks are cancelled (their handles read cancelled), steps are
        // dropped, each as its turn comes, so a step's destructor sees the callbacks before it
        // cancelled and those after it still pending, as it would have at run time. Every drop
        // is user code that may panic: each is caught and reported, and the rest goes on, so
        // that the close hooks (which release fds and threads) always run.
        for job in dropped {
            match job.into_kind() {
                JobKind::Callback(entry) => self.release_entry(entry),
                JobKind::Step(step) => self.release("a queued step", || drop(step)),
            }
        }
        for (_, watch) in watches {
            for cb in watch.reader.into_iter().chain(watch.writer) {
                self.release_entry(cb);
            }
        }
        for cb in waits {
            self.release_entry(cb);
        }
        for (_, cb) in handlers {
            self.release_entry(cb);
        }
        let hooks = std::mem::take(&mut *inner.close_hooks.borrow_mut());
        for hook in hooks {
            self.release("a close hook", hook);
        }
        Ok(())
    }

    /// `close()`: cancels a callback (dropping its closure), reporting a destructor's panic.
    fn release_entry(&self, entry: Rc<dyn Callback>) {
        let outcome = catch_unwind(AssertUnwindSafe(|| entry.cancel()));
        if let Err(payload) = outcome {
            let handle = Handle { entry };
            self.call_exception_handler(
                Context::new(format!(
                    "Exception in the destructor of {handle:?} at close()"
                ))
                .with_exception(crate::Exception::from_panic(payload))
                .with("handle", handle),
            );
        }
    }

    /// `close()`: runs `f` (a drop, a close hook), reporting a panic as coming from `what`.
    fn release(&self, what: &str, f: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
            self.call_exception_handler(
                Context::new(format!("Exception in {what} at close()"))
                    .with_exception(crate::Exception::from_panic(payload)),
            );
        }
    }

    /// Debug mode: reports this loop as left open (see `owned`).
    pub(crate) fn warn_unclosed(&self) {
        if self.inner.debug.get() {
            self.inner.warn_unclosed();
        }
    }
}
