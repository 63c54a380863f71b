//! The thread's running loop (asyncio's `get_running_loop`).

use std::cell::RefCell;

use crate::{Error, EventLoop};

thread_local! {
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// The loop running on this thread, if any.
pub(crate) fn current() -> Option<EventLoop> {
    RUNNING.with(|r| r.borrow().clone())
}

/// Calls `f` with the loop running on this thread, without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
    RUNNING.with(|r| match r.try_borrow() {
        Ok(slot) => f(slot.as_ref()),
        Err(_) => f(None),
    })
}

/// Makes `lp` the thread's running loop.
///
/// # Errors
///
/// - [`Error::already_running`] if `lp` is the running loop already;
/// - [`Error::other_loop_running`] if another loop runs on this thread.
pub(crate) fn enter(lp: &EventLoop) -> Result<(), Error> {
    RUNNING.with(|r| {
        let mut slot = r.borrow_mut();
        match &*slot {
            Some(other) if other.ptr_eq(lp) => Err(Error::already_running()),
            Some(_) => Err(Error::other_loop_running()),
            None => {
                *slot = Some(lp.clone());
                Ok(())
            }
        }
    })
}

/// Clears the thread's running loop (if it is `lp`).
pub(crate) fn leave(lp: &EventLoop) {
    let old = RUNNING.with(|r| {
        let mut slot = r.borrow_mut();
        if slot.as_ref().is_some_and(|cur| cur.ptr_eq(lp)) {
            slot.take()
        } else {
            None
        }
    });
    drop(old);
}

/// The loop running on the current thread: asyncio's `get_running_loop()`.
///
/// # Errors
///
/// - [`Error::not_running`] when called outside a running loop.
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, get_running_loop};
///
/// assert!(get_running_loop().is_err_and(|e| e.is_not_running()));
/// let lp = EventLoop::new()?;
/// lp.call_soon(|| {
///     let running = get_running_loop().expect("inside a callback");
///     running.stop();
/// })?;
/// lp.run_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn get_running_loop() -> Result<EventLoop, Error> {
    current().ok_or_else(Error::not_running)
}
