//! The cross-thread face of a loop: `call_soon_threadsafe` from any thread.
//!
//! # Ground rules
//!
//! - Other threads touch only [`Shared`]: they push onto the lock-free `queue`, then call
//!   `waker.wake()`.
//! - The loop thread, before a poll that may sleep, calls `Reactor::prepare_sleep` and only then
//!   looks at the queue; if it is non-empty it polls with a zero timeout. A push that lands after
//!   that look finds the reactor marked sleeping, so its `wake()` writes the wake-up; a push
//!   before it is seen by the look. Either way nothing waits for a timer. A storm of pushes costs
//!   at most one wake-up write per sleep, because `wake()` writes only when it flips the sleeping
//!   flag.
//! - The loop drains the queue into its ready queue once per iteration, after the poll.
//! - `close()` closes the queue first (a push after it fails and the caller gets
//!   `Error::closed`), then drains it and cancels what it took out.

use std::panic::Location;
use std::sync::Arc;
use std::thread::{self, ThreadId};

use concurrent_queue::{ConcurrentQueue, PushError};
use evloop_reactor::Waker;

use crate::handle::{RemoteCallback, RemoteHandle, RemoteOnce, arrived};
use crate::{Error, EventLoop, running};

/// The part of a loop other threads may touch.
pub(crate) struct Shared {
    pub(crate) queue: ConcurrentQueue<Arc<dyn RemoteCallback>>,
    pub(crate) waker: Waker,
    /// The loop's thread: the one that created it (an `EventLoop` is `!Send`).
    pub(crate) owner: ThreadId,
}

impl Shared {
    pub(crate) fn new(waker: Waker) -> Shared {
        Shared {
            queue: ConcurrentQueue::unbounded(),
            waker,
            owner: thread::current().id(),
        }
    }

    pub(crate) fn push(&self, cb: Arc<dyn RemoteCallback>) -> Result<(), Error> {
        match self.queue.push(cb) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            Err(PushError::Closed(cb) | PushError::Full(cb)) => {
                cb.cancel();
                Err(Error::closed())
            }
        }
    }
}

/// A `Send + Sync` handle to a loop, for scheduling callbacks on it from other threads:
/// asyncio's `call_soon_threadsafe`.
///
/// Get one with [`EventLoop::remote`](crate::EventLoop::remote). Callbacks run on the loop's
/// thread, in submission order, in the loop's single FIFO. A submission wakes a sleeping loop.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let remote = lp.remote();
/// let worker = std::thread::spawn(move || {
///     remote.call_soon_threadsafe(|| println!("from another thread")).map(|_| ())?;
///     remote.stop()
/// });
/// lp.run_forever()?;
/// worker.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RemoteLoop {
    pub(crate) shared: Arc<Shared>,
}

impl RemoteLoop {
    /// Schedules `f` to run on the loop's thread, and wakes the loop if it sleeps.
    ///
    /// Called on the loop's own thread while the loop runs, it joins the ready queue directly,
    /// in FIFO order with `call_soon`, and wakes nothing.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed (or was dropped); `f` is dropped.
    #[track_caller]
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<RemoteHandle, Error> {
        let cb = RemoteOnce::new_arc(f, Location::caller());
        let local = running::with_current(|lp| match lp {
            Some(lp) if Arc::ptr_eq(&lp.inner.remote.shared, &self.shared) => {
                lp.inner.ready.borrow_mut().push_back(arrived(cb.clone()));
                true
            }
            _ => false,
        });
        if !local {
            self.shared.push(cb.clone())?;
        }
        Ok(RemoteHandle { cb })
    }

    /// Asks the loop to stop, as `call_soon_threadsafe(loop.stop)` does in asyncio: the loop
    /// stops after the iteration that runs this request.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed.
    #[track_caller]
    pub fn stop(&self) -> Result<(), Error> {
        // The callback runs on the loop's thread while the loop runs, so the thread's running
        // loop is the one this queue belongs to.
        self.call_soon_threadsafe(|| {
            if let Some(lp) = running::current() {
                lp.stop();
            }
        })
        .map(|_| ())
    }

    /// The loop itself, if it is the loop running on this thread (`None` on any other thread,
    /// or while it is not running). A waker that usually fires on the loop's own thread uses it
    /// to take the local path, and falls back to
    /// [`call_soon_threadsafe`](RemoteLoop::call_soon_threadsafe) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let remote = lp.remote();
    /// assert!(remote.running_here().is_none()); // not running yet
    /// let l2 = lp.clone();
    /// lp.call_soon(move || {
    ///     assert!(remote.running_here().is_some_and(|here| here.ptr_eq(&l2)));
    ///     let elsewhere = std::thread::spawn(move || remote.running_here().is_none());
    ///     assert!(elsewhere.join().unwrap_or(false));
    ///     l2.stop();
    /// })?;
    /// lp.run_forever()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn running_here(&self) -> Option<EventLoop> {
        running::with_current(|lp| match lp {
            Some(lp) if Arc::ptr_eq(&lp.inner.remote.shared, &self.shared) => Some(lp.clone()),
            _ => None,
        })
    }

    /// The id of the loop's thread: the one that created it, and the only one that runs its
    /// callbacks (an [`EventLoop`] is `!Send`).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let remote = lp.remote();
    /// assert_eq!(remote.thread_id(), std::thread::current().id());
    /// let elsewhere = std::thread::spawn(move || remote.thread_id() == std::thread::current().id());
    /// assert!(!elsewhere.join().unwrap_or(true));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn thread_id(&self) -> ThreadId {
        self.shared.owner
    }

    /// True if the loop was closed (or dropped).
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
    }
}

impl std::fmt::Debug for RemoteLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLoop")
            .field("closed", &self.is_closed())
            .field("queued", &self.shared.queue.len())
            .finish()
    }
}
