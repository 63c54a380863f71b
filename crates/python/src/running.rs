//! What the loop running on this thread asks of the callbacks it runs.
//!
//! A callback never needs its loop's core for the common case: it runs, in its context, and
//! reports an ordinary exception to its loop's Python `call_exception_handler`. Two things need
//! the loop that runs it, and a thread runs at most one loop at a time, so they live here, per
//! thread, rather than in every handle:
//!
//! - the exception that must leave `run_forever` (`SystemExit`, `KeyboardInterrupt`, or one
//!   the exception handler itself raised), kept until the run returns; the loop is stopped;
//! - whether debug mode is on, for the slow-callback report.

use std::cell::{Cell, RefCell};

use pyo3::PyErr;

thread_local! {
    static ESCAPING: RefCell<Option<PyErr>> = const { RefCell::new(None) };
    static DEBUG: Cell<bool> = const { Cell::new(false) };
}

/// Keeps `err` to be raised by `run_forever` once this iteration's callbacks ran, and stops
/// the running loop. A second one while the first waits replaces nothing: the first wins.
pub(crate) fn escape(err: PyErr) {
    ESCAPING.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(err);
        }
    });
    if let Ok(lp) = evloop_sched::get_running_loop() {
        lp.stop();
    }
}

/// Whether an exception waits to leave `run_forever`.
pub(crate) fn is_escaping() -> bool {
    ESCAPING.with(|slot| slot.borrow().is_some())
}

/// The exception kept by [`escape`], taken.
pub(crate) fn take_escaping() -> Option<PyErr> {
    ESCAPING.with(|slot| slot.borrow_mut().take())
}

/// Whether the loop running on this thread is in debug mode.
#[inline]
pub(crate) fn debug() -> bool {
    DEBUG.with(Cell::get)
}

/// Sets what [`debug`] says, for the loop that runs on this thread now.
pub(crate) fn set_debug(on: bool) {
    DEBUG.with(|d| d.set(on));
}
