//! [`LoopFuture`]: asyncio's `Future`, bound to a loop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{EventLoop, Exception};

use crate::Error;
use crate::core::{CallbackId, Shared, Status};
use crate::current;

/// A future bound to a loop, completed by hand: asyncio's `Future`, made by
/// [`LoopTaskExt::create_future`](crate::LoopTaskExt::create_future).
///
/// Someone calls [`set_result`](LoopFuture::set_result), [`set_exception`](LoopFuture::set_exception)
/// or [`cancel`](LoopFuture::cancel); awaiting it (it implements [`std::future::Future`])
/// gives `Ok(value)` or the [`Error`]. Clones share the same future. It is `!Send`: it belongs
/// to the loop's thread.
///
/// # The value is handed out once
///
/// `.await` and [`take_result`](LoopFuture::take_result) move the value out; a second taker
/// (another clone awaiting it, say) gets an invalid-state error. For `T: Clone`,
/// [`result`](LoopFuture::result) clones it and can be called any number of times, as asyncio's
/// `result()`. Errors are always cloned, never taken.
///
/// # Done callbacks
///
/// Callbacks added with [`add_done_callback`](LoopFuture::add_done_callback) are *scheduled*
/// with `call_soon` when the future completes, one entry each, in the order they were added;
/// never run inline, also when added to a future that is already done.
///
/// # Never retrieved
///
/// A future that failed and is dropped without anyone looking at the outcome (`result`,
/// `exception`, `take_result`, `.await`, or `cancel`) is reported to the exception handler with
/// the keys `message` ("Future exception was never retrieved"), `exception` and `future`.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// let lp = EventLoop::new()?;
/// let fut = lp.create_future::<u32>();
/// let setter = fut.clone();
/// lp.call_soon(move || { let _ = setter.set_result(42); })?;
/// assert_eq!(lp.run_until_complete(fut)??, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct LoopFuture<T> {
    pub(crate) core: Shared<T>,
}

impl<T> Clone for LoopFuture<T> {
    fn clone(&self) -> Self {
        LoopFuture {
            core: self.core.clone(),
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    /// A pending future bound to `lp` (also on a closed loop, as asyncio's `create_future()`).
    pub fn new(lp: &EventLoop) -> LoopFuture<T> {
        LoopFuture {
            core: Shared::new_future(lp.clone()),
        }
    }

    /// True once the future has a result, a failure, or was cancelled.
    pub fn done(&self) -> bool {
        self.core.done()
    }

    /// True if the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.core.status() == Status::Cancelled
    }

    /// The result, cloned (asyncio's `result()`).
    ///
    /// # Errors
    ///
    /// - invalid state ("result is not set") while pending, or once the value was taken out;
    /// - cancelled (with its message) if the future was cancelled;
    /// - the failure, if an exception was set.
    pub fn result(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.core.result_cloned()
    }

    /// Takes the result out (the value is handed out once; see the type's docs).
    ///
    /// # Errors
    ///
    /// As [`result`](LoopFuture::result); a second call is an invalid-state error.
    pub fn take_result(&self) -> Result<T, Error> {
        self.core.take_result()
    }

    /// The failure, if any (asyncio's `exception()`): `Ok(None)` for a result, `Ok(Some(err))`
    /// for a failure.
    ///
    /// # Errors
    ///
    /// - invalid state ("exception is not set") while pending;
    /// - cancelled if the future was cancelled.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        self.core.exception()
    }

    /// Completes the future with `value`; wakes the awaiters and schedules the done callbacks.
    ///
    /// # Errors
    ///
    /// - invalid state if the future is already done (the value is dropped).
    pub fn set_result(&self, value: T) -> Result<(), Error> {
        if self.core.complete(Ok(value)) {
            Ok(())
        } else {
            Err(Error::invalid_state(
                "invalid state: the future is already done",
            ))
        }
    }

    /// Completes the future with a failure (asyncio's `set_exception`): an error value
    /// ([`Exception::from_error`]) or a panic payload ([`Exception::from_panic`]).
    ///
    /// # Errors
    ///
    /// - invalid state if the future is already done.
    pub fn set_exception(&self, exception: Exception) -> Result<(), Error> {
        if self.core.complete(Err(Error::failed(exception))) {
            Ok(())
        } else {
            Err(Error::invalid_state(
                "invalid state: the future is already done",
            ))
        }
    }

    /// Cancels the future, with an optional message: true if it was pending. Awaiters get a
    /// cancelled error carrying the message; done callbacks are scheduled.
    pub fn cancel(&self, msg: Option<&str>) -> bool {
        self.core.cancel_future(msg.map(Arc::from))
    }

    /// Adds a callback to be scheduled with `call_soon` when the future completes (at once if it
    /// is already done); see the type's docs. The id removes it again.
    pub fn add_done_callback(&self, f: impl FnOnce(&LoopFuture<T>) + 'static) -> CallbackId {
        self.core.add_callback(Box::new(move |core: &Shared<T>| {
            f(&LoopFuture { core: core.clone() });
        }))
    }

    /// Removes a callback not yet scheduled; returns how many were removed (0 or 1).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        self.core.remove_callback(id)
    }

    /// The loop the future is bound to.
    pub fn get_loop(&self) -> EventLoop {
        self.core.lp.clone()
    }
}

impl<T: 'static> Future for LoopFuture<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        current::with_current(|cur| self.core.poll_result(cur, cx))
    }
}

impl<T: 'static> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.core.describe())
    }
}
