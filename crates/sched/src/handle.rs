//! Handles: the cancellable callbacks that sit in the ready queue and the timer wheel.
//!
//! A callback is stored once, in a single allocation shared by the queue and the user's
//! [`Handle`]: `Rc<Once<F>>` for `call_soon`/`call_later`, `Rc<Repeating<F>>` for fd and signal
//! callbacks (asyncio reuses one handle for every readiness event), `Arc<RemoteOnce<F>>` for
//! callbacks submitted from other threads. Cancelling drops the closure at once, so whatever it
//! captured is released then and there, not when the queue gets round to it.
//!
//! The ready queue holds [`Job`]s: such a callback, or a [`RawStep`](crate::RawStep) (a task's
//! step from the crates above), which has no handle and costs no allocation to queue. A `Job` is
//! two words (see [`crate::job`]): a callback sits in it as `Rc::into_raw` of its concrete type
//! plus a vtable made for that type, which turns it back into an [`Entry`] when it is needed
//! whole. [`Callback::into_job`] makes that job from an `Entry` whose type is already erased.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use evloop_timer::TimerKey;

use crate::clock;
use crate::event_loop::Inner;
use crate::job::Job;

/// What a handle does when the loop runs it.
pub(crate) trait Callback {
    /// Runs the callback if it is still live (once for one-shot handles).
    fn run(&self);
    /// Marks the handle cancelled and drops the closure (deferred to the end of the run if the
    /// closure is running right now).
    fn cancel(&self);
    fn cancelled(&self) -> bool;
    fn location(&self) -> &'static Location<'static>;
    /// The ready-queue job of this callback, owning the count `self` held. Every implementation
    /// is `Job::callback(self)`: it names the concrete type, whose vtable the job stores.
    fn into_job(self: Rc<Self>) -> Job;
}

/// A callback submitted from another thread.
pub(crate) trait RemoteCallback: Send + Sync {
    fn run(&self);
    fn cancel(&self);
    fn cancelled(&self) -> bool;
    fn location(&self) -> &'static Location<'static>;
}

/// A one-shot callback (`call_soon`, `call_later`, `call_at`).
pub(crate) struct Once<F> {
    cancelled: Cell<bool>,
    location: &'static Location<'static>,
    f: Cell<Option<F>>,
}

impl<F: FnOnce() + 'static> Once<F> {
    /// The callback, with its concrete type (for [`Job::callback`]).
    pub(crate) fn new_rc(f: F, location: &'static Location<'static>) -> Rc<Once<F>> {
        Rc::new(Once {
            cancelled: Cell::new(false),
            location,
            f: Cell::new(Some(f)),
        })
    }
}

impl<F: FnOnce() + 'static> Callback for Once<F> {
    fn run(&self) {
        if let Some(f) = self.f.take() {
            f();
        }
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        // Taken before it is dropped: the closure's destructor may call back into the loop.
        drop(self.f.take());
    }

    fn cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn into_job(self: Rc<Self>) -> Job {
        Job::callback(self)
    }
}

/// A callback run on every event (fd readiness, signal delivery) until it is cancelled.
pub(crate) struct Repeating<F> {
    cancelled: Cell<bool>,
    location: &'static Location<'static>,
    f: RefCell<Option<F>>,
}

impl<F: FnMut() + 'static> Repeating<F> {
    pub(crate) fn new_entry(f: F, location: &'static Location<'static>) -> Rc<dyn Callback> {
        Rc::new(Repeating {
            cancelled: Cell::new(false),
            location,
            f: RefCell::new(Some(f)),
        })
    }
}

impl<F: FnMut() + 'static> Callback for Repeating<F> {
    fn run(&self) {
        if self.cancelled.get() {
            return;
        }
        // A repeating callback is queued at most once per iteration, so it is never re-entered;
        // `try_borrow_mut` keeps even a misuse from panicking.
        if let Ok(mut slot) = self.f.try_borrow_mut() {
            if let Some(f) = slot.as_mut() {
                f();
            }
        }
        if self.cancelled.get() {
            // Cancelled while it ran: drop the closure now that it has returned.
            let dead = self.f.borrow_mut().take();
            drop(dead);
        }
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        let dead = match self.f.try_borrow_mut() {
            Ok(mut slot) => slot.take(),
            Err(_) => None, // running: `run` drops it when the closure returns
        };
        drop(dead);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn into_job(self: Rc<Self>) -> Job {
        Job::callback(self)
    }
}

/// A one-shot callback submitted from another thread.
pub(crate) struct RemoteOnce<F> {
    cancelled: AtomicBool,
    location: &'static Location<'static>,
    f: Mutex<Option<F>>,
}

impl<F: FnOnce() + Send + 'static> RemoteOnce<F> {
    pub(crate) fn new_arc(f: F, location: &'static Location<'static>) -> Arc<dyn RemoteCallback> {
        Arc::new(RemoteOnce {
            cancelled: AtomicBool::new(false),
            location,
            f: Mutex::new(Some(f)),
        })
    }
}

impl<F> RemoteOnce<F> {
    /// The one place the closure's lock is taken; a poisoned lock only means a closure's
    /// destructor panicked on another thread, which leaves the `Option` consistent.
    fn slot(&self) -> MutexGuard<'_, Option<F>> {
        self.f
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<F: FnOnce() + Send> RemoteCallback for RemoteOnce<F> {
    fn run(&self) {
        let f = self.slot().take();
        if let Some(f) = f {
            f();
        }
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let dead = self.slot().take();
        drop(dead);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

/// A cross-thread callback once it has reached the loop's thread: one small `Rc` around the
/// `Arc`, so that every callback in the ready queue is the same kind of [`Entry`].
struct Arrived(Arc<dyn RemoteCallback>);

impl Callback for Arrived {
    fn run(&self) {
        self.0.run();
    }

    fn cancel(&self) {
        self.0.cancel();
    }

    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }

    fn location(&self) -> &'static Location<'static> {
        self.0.location()
    }

    fn into_job(self: Rc<Self>) -> Job {
        Job::callback(self)
    }
}

/// A callback with a handle: what a `Handle`, the fd watches and the signal handlers hold. The
/// ready queue and the timer wheel hold it as a [`Job`] (see [`Callback::into_job`]).
pub(crate) type Entry = Rc<dyn Callback>;

/// The ready-queue job of a callback that arrived from another thread.
pub(crate) fn arrived(cb: Arc<dyn RemoteCallback>) -> Job {
    Job::callback(Rc::new(Arrived(cb)))
}

/// A callback scheduled on the loop, as returned by
/// [`call_soon`](crate::EventLoop::call_soon): asyncio's `Handle`.
///
/// Cloning a `Handle` gives another reference to the same callback. A `Handle` is `!Send`: it
/// belongs to the loop's thread (use [`RemoteHandle`] across threads).
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let h = lp.call_soon(|| panic!("never runs"))?;
/// h.cancel();
/// assert!(h.cancelled());
/// let l2 = lp.clone();
/// lp.call_soon(move || l2.stop())?;
/// lp.run_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) entry: Entry,
}

impl Handle {
    /// Cancels the callback: it will not run, and the closure (with everything it captured) is
    /// dropped now. Calling it again, or after the callback ran, has no further effect.
    pub fn cancel(&self) {
        self.entry.cancel();
    }

    /// True once [`cancel`](Handle::cancel) was called (also after the callback ran), or the loop
    /// was closed before the callback ran.
    pub fn cancelled(&self) -> bool {
        self.entry.cancelled()
    }

    /// Where the callback was scheduled (`file:line:column`), as debug-mode warnings report it.
    pub fn location(&self) -> &'static Location<'static> {
        self.entry.location()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { " cancelled" } else { "" };
        write!(f, "<Handle{state} created at {}>", self.location())
    }
}

/// A callback scheduled for a later time, as returned by
/// [`call_later`](crate::EventLoop::call_later) and [`call_at`](crate::EventLoop::call_at):
/// asyncio's `TimerHandle`.
///
/// Cancelling removes the timer from the loop's timer wheel at once (O(1)) and drops its closure.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let t = lp.call_later(10.0, || panic!("never runs"))?;
/// assert!(t.when() >= lp.time() + 9.0);
/// t.cancel();
/// assert!(t.cancelled());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) handle: Handle,
    pub(crate) deadline: u64,
    pub(crate) key: TimerKey,
    pub(crate) owner: Weak<Inner>,
}

impl TimerHandle {
    /// Cancels the timer: it will not run, it leaves the timer wheel now, and its closure is
    /// dropped now. Calling it again, or after the callback ran, has no further effect.
    pub fn cancel(&self) {
        self.handle.cancel();
        if let Some(inner) = self.owner.upgrade() {
            inner.cancel_timer(self.key);
        }
    }

    /// True once [`cancel`](TimerHandle::cancel) was called, or the loop was closed before the
    /// timer fired.
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// The time the callback is scheduled for, on the clock of
    /// [`EventLoop::time`](crate::EventLoop::time) (`f64::INFINITY` for a timer that never fires).
    ///
    /// # Precision
    ///
    /// Deadlines are kept in whole nanoseconds, rounded up, so `when()` may exceed the requested
    /// time by less than a nanosecond.
    pub fn when(&self) -> f64 {
        clock::ns_to_secs(self.deadline)
    }

    /// The plain [`Handle`] of this timer (the one passed to the exception handler).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { " cancelled" } else { "" };
        write!(
            f,
            "<TimerHandle{state} when={:.6} created at {}>",
            self.when(),
            self.handle.location()
        )
    }
}

/// A callback submitted from another thread with
/// [`RemoteLoop::call_soon_threadsafe`](crate::RemoteLoop::call_soon_threadsafe).
///
/// It is `Send + Sync`: any thread may cancel it. Cancelling after the loop has started running
/// the callback has no effect on that run.
#[derive(Clone)]
pub struct RemoteHandle {
    pub(crate) cb: Arc<dyn RemoteCallback>,
}

impl RemoteHandle {
    /// Cancels the callback and drops its closure now (unless it is already running).
    pub fn cancel(&self) {
        self.cb.cancel();
    }

    /// True once [`cancel`](RemoteHandle::cancel) was called or the loop closed before running it.
    pub fn cancelled(&self) -> bool {
        self.cb.cancelled()
    }
}

impl fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { " cancelled" } else { "" };
        write!(f, "<RemoteHandle{state} created at {}>", self.cb.location())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pending `Handle` costs its `Rc` allocation (two counts, the flag, the creation site,
    /// the closure) plus one ready-queue slot (a [`Job`], two words): at most 64 bytes besides
    /// what the closure captures (48 on a 64-bit target).
    #[test]
    fn a_pending_handle_costs_at_most_64_bytes_plus_its_closure() {
        let rc_counts = 2 * size_of::<usize>();
        let capture_free = rc_counts + size_of::<Once<()>>() + size_of::<Job>();
        assert!(capture_free <= 64, "{capture_free} bytes");
        assert_eq!(size_of::<Job>(), 16);
    }
}
