//! The sleep hook: what an embedder does around a poll that may sleep.
//!
//! A host language that runs its code on the loop's thread under a global lock (CPython's GIL)
//! must give that lock up while the loop sleeps, or its other threads can never reach the loop
//! (`call_soon_threadsafe` from a Python thread would wait for a lock the sleeping loop holds).
//! Giving it up around *every* poll costs a lock hand-over per iteration, most of which never
//! sleep (a poll with a zero timeout because callbacks are ready); so the loop calls the hook
//! only around a poll that may sleep: a timeout that is not zero, or none at all.
//!
//! # Ground rules
//!
//! - [`SleepHook::before_sleep`] runs on the loop's thread right before such a poll, and
//!   [`SleepHook::after_sleep`] right after it, always as a pair and in that order, before any
//!   callback the poll made ready runs.
//! - No borrow of the loop's state is held while either runs, but the hook must not run loop
//!   code in between: after `before_sleep` the embedder's lock is given up, and only the poll
//!   itself, which runs no user code, happens until `after_sleep` takes it back.
//! - Polls with a zero timeout (callbacks are ready, the loop is stopping, a timer is due, or a
//!   `run_once_timeout(Duration::ZERO)`) and skipped polls never call the hook.

use std::rc::Rc;

use crate::EventLoop;

/// Called around each poll of the loop that may sleep: how an embedder releases a lock
/// (CPython's GIL) while the loop waits, and takes it back after.
///
/// Both methods run on the loop's thread, as a pair and in order, before any callback the poll
/// made ready runs, and outside every borrow of the loop's state; between them only the poll
/// runs, so neither may run loop code. A poll with a zero timeout (callbacks are ready, the loop
/// is stopping, a timer is due, `run_once_timeout(Duration::ZERO)`) and a skipped poll never
/// call the hook.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// // The facade does not re-export it yet: an embedder reaches it through evloop-sched.
/// use evloop::{EventLoop, SleepHook};
///
/// #[derive(Default)]
/// struct Record(RefCell<Vec<&'static str>>);
/// impl SleepHook for Record {
///     fn before_sleep(&self) {
///         self.0.borrow_mut().push("release");
///     }
///     fn after_sleep(&self) {
///         self.0.borrow_mut().push("take back");
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let hook = Rc::new(Record::default());
/// lp.set_sleep_hook(Some(hook.clone()));
/// let l2 = lp.clone();
/// lp.call_later(Duration::from_millis(5), move || l2.stop())?;
/// lp.run_forever()?;
/// assert_eq!(hook.0.borrow()[..2], ["release", "take back"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait SleepHook {
    /// Runs on the loop's thread right before a poll that may sleep.
    fn before_sleep(&self);
    /// Runs on the loop's thread right after that poll, before any callback runs.
    fn after_sleep(&self);
}

impl EventLoop {
    /// Sets the hook called around each poll that may sleep (`None` removes it); see
    /// [`SleepHook`]. The hook set when a poll begins is the one called after it.
    pub fn set_sleep_hook(&self, hook: Option<Rc<dyn SleepHook>>) {
        let old = self.inner.sleep_hook.replace(hook);
        drop(old);
    }

    /// The hook for a poll with `timeout`: only a poll that may sleep has one.
    pub(crate) fn sleep_hook_for(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Option<Rc<dyn SleepHook>> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return None;
        }
        self.inner.sleep_hook.borrow().clone()
    }
}
