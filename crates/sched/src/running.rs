//! The thread's running loop (asyncio's `get_running_loop`).

use std::cell::RefCell;

use crate::{Error, EventLoop};

thread_local! {
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// The loop running on this thread, if any.
pub(crate) fn current() -> Option<EventLoop> {
    // `try_with`: a loop closed by its thread's end (`owned`) may run code that asks, after
    // this thread-local is gone; no loop runs then.
    RUNNING
        .try_with(|r| r.try_borrow().ok().and_then(|r| r.clone()))
        .ok()
        .flatten()
}

/// Calls `f` with the loop running on this thread, without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
    let mut f = Some(f);
    let out = RUNNING.try_with(|r| {
        let f = f.take()?;
        Some(match r.try_borrow() {
            Ok(slot) => f(slot.as_ref()),
            Err(_) => f(None),
        })
    });
    match (out, f) {
        (Ok(Some(out)), _) => out,
        // The thread-local is gone (the thread is ending): no loop runs.
        (_, Some(f)) => f(None),
        // `f` is taken only inside the closure, which then returns `Some`.
        (_, None) => unreachable!("`f` is taken only by a call that returns its output"),
    }
}

/// Makes `lp` the thread's running loop.
///
/// # Errors
///
/// - [`Error::already_running`] if `lp` is the running loop already;
/// - [`Error::other_loop_running`] if another loop runs on this thread.
pub(crate) fn enter(lp: &EventLoop) -> Result<(), Error> {
    RUNNING
        .try_with(|r| {
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
        // The thread is ending (its thread-locals are being destroyed): no loop may start.
        .unwrap_or_else(|_| Err(Error::not_running()))
}

/// Clears the thread's running loop (if it is `lp`).
pub(crate) fn leave(lp: &EventLoop) {
    let old = RUNNING.try_with(|r| {
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
