//! The GIL is given up around a poll that may sleep, and only there.
//!
//! Holding it while the loop sleeps deadlocks every Python thread that wants to reach the loop
//! (`call_soon_threadsafe`, `run_in_executor`'s result); giving it up around the whole run costs
//! a hand-over per iteration, about +50% on a chain of callbacks. evloop-sched calls a
//! [`SleepHook`] exactly around the polls that may sleep, which is where this releases it.

use std::cell::Cell;
use std::ptr;

use evloop_sched::SleepHook;
use pyo3::ffi;

/// Releases the GIL before a sleeping poll and takes it back after it.
pub(crate) struct ReleaseGil {
    /// The thread state `PyEval_SaveThread` gave, while the GIL is released; null otherwise.
    saved: Cell<*mut ffi::PyThreadState>,
}

impl ReleaseGil {
    pub(crate) fn new() -> Self {
        ReleaseGil {
            saved: Cell::new(ptr::null_mut()),
        }
    }
}

impl SleepHook for ReleaseGil {
    fn before_sleep(&self) {
        // SAFETY: `PyGILState_Check` may be called on any thread, with or without the GIL.
        if unsafe { ffi::PyGILState_Check() } == 0 {
            // Not holding it (a loop driven from Rust, not from Python): nothing to give up.
            return;
        }
        // SAFETY: this thread holds the GIL (checked above), and only the poll, which runs no
        // Python code and touches no Python object, happens before `after_sleep` takes it back.
        let state = unsafe { ffi::PyEval_SaveThread() };
        self.saved.set(state);
    }

    fn after_sleep(&self) {
        let state = self.saved.replace(ptr::null_mut());
        if !state.is_null() {
            // SAFETY: `state` is the one `PyEval_SaveThread` returned on this thread before the
            // poll (the hook is called on the loop's thread, in pairs).
            unsafe { ffi::PyEval_RestoreThread(state) };
        }
    }
}
