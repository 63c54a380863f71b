//! `OnThread<T>`: a value usable only on the thread that made it, in an object any thread holds.
//!
//! PyO3 requires a class to be `Send + Sync`, because any Python thread may hold a reference to
//! its objects. An evloop `EventLoop` is an `Rc` and `!Send`, and must stay so; declaring the
//! class `unsendable` instead would make every method call from another thread panic (so
//! `call_soon_threadsafe` could not be one) and leak the object dropped there. So the loop sits
//! in this cell: every access checks the thread and is an error elsewhere, and a cell dropped on
//! another thread leaks its value rather than touch it there.

use std::mem::ManuallyDrop;
use std::thread::{self, ThreadId};

use pyo3::PyResult;
use pyo3::exceptions::PyRuntimeError;

thread_local! {
    /// This thread's id, read once: `thread::current()` costs more than a thread-local read.
    static ID: ThreadId = thread::current().id();
}

/// The id of the calling thread.
pub(crate) fn current_thread() -> ThreadId {
    ID.with(|id| *id)
}

/// A `T` reached only on the thread that made it (see the module docs).
pub(crate) struct OnThread<T> {
    owner: ThreadId,
    value: ManuallyDrop<T>,
}

// SAFETY: the value is only ever reached through `get`, which checks that the caller is the
// owning thread, and is dropped only there (`Drop` leaks it on any other thread). No reference to
// it can therefore exist on two threads, which is all `Rc` and `RefCell` inside need.
unsafe impl<T> Send for OnThread<T> {}
// SAFETY: as for `Send`: a shared `&OnThread<T>` on another thread can reach nothing of `T`.
unsafe impl<T> Sync for OnThread<T> {}

impl<T> OnThread<T> {
    /// Binds `value` to the calling thread.
    pub(crate) fn new(value: T) -> Self {
        OnThread {
            owner: current_thread(),
            value: ManuallyDrop::new(value),
        }
    }

    /// The value, on its thread; `None` elsewhere.
    #[inline]
    pub(crate) fn try_get(&self) -> Option<&T> {
        (current_thread() == self.owner).then_some(&*self.value)
    }

    /// The value, on its thread; Python's `RuntimeError` elsewhere.
    #[inline]
    pub(crate) fn get(&self) -> PyResult<&T> {
        self.try_get().ok_or_else(|| {
            PyRuntimeError::new_err(
                "this evloop event loop belongs to another thread: it can only be used on the \
                 thread that created it (call_soon_threadsafe works from any thread)",
            )
        })
    }
}

impl<T> Drop for OnThread<T> {
    fn drop(&mut self) {
        if current_thread() == self.owner {
            // SAFETY: dropped once, here, on the owning thread; `value` is not used again.
            unsafe { ManuallyDrop::drop(&mut self.value) };
        }
        // Elsewhere the value is leaked: its `Rc`s must not be touched on this thread.
    }
}
