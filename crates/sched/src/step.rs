//! [`RawStep`]: a unit of work that joins the ready queue without an allocation of its own.
//!
//! A callback scheduled with `call_soon` is a closure, boxed in a [`Handle`](crate::Handle) so
//! that it can be cancelled. The crates above need something cheaper for the work they queue
//! most often: a task step, woken once per `await`, whose state already lives in an allocation
//! of its own (evloop-task hands over a pointer to the task, owning one reference count). A
//! `RawStep` is that pointer plus two functions, one to run it and one to drop it, so queueing
//! it allocates nothing. It has no handle: whoever made it cancels it by its own means (a
//! cancelled task's step runs and finds it has nothing to do).
//!
//! # Ground rules
//!
//! - A `RawStep` is consumed exactly once: either [`StepVTable::run`] or [`StepVTable::drop`]
//!   is called with its pointer, never both, never twice.
//! - It is `!Send` (it holds a raw pointer): it is made, queued, run and dropped on the loop's
//!   thread. A loop closed with steps queued drops them in `close()`, with no borrow held.

use std::any::Any;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

/// The functions of a [`RawStep`]: how to run the work behind its pointer, how to release it
/// unrun, and (optionally) how its owner finds it while it is queued.
#[derive(Debug)]
pub struct StepVTable {
    /// Runs the work; it takes ownership of the pointer.
    pub run: unsafe fn(NonNull<()>),
    /// Releases the work without running it; it takes ownership of the pointer.
    pub drop: unsafe fn(NonNull<()>),
    /// Shows the queued work to its owner, for
    /// [`EventLoop::inspect_queued_steps`](crate::EventLoop::inspect_queued_steps), and to
    /// debug mode as a [`StepName`] sink just before the step runs: called with the pointer
    /// (borrowed, not owned) and the caller's sink, which it may downcast and fill. It may run
    /// while the ready queue is borrowed, so it must not use the loop (doing so panics).
    /// `None`: the step is not shown.
    pub inspect: Option<unsafe fn(NonNull<()>, &mut dyn Any)>,
}

/// The sink debug mode hands to a step's [`StepVTable::inspect`] just before running it. A
/// step that fills it in is called by that name if it runs longer than the slow-callback
/// threshold (`Executing <Task pending name='Task-3'> took 0.120 seconds`); one that leaves it
/// empty is `<queued step>`. Outside debug mode it is never made.
#[derive(Debug, Default)]
pub struct StepName(pub Option<String>);

/// A unit of work for [`EventLoop::call_soon_step`](crate::EventLoop::call_soon_step): a pointer
/// and the [`StepVTable`] that runs or drops it. Queueing one allocates nothing.
///
/// Dropping a `RawStep` calls its `drop` function; running it calls `run` instead.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, ptr::NonNull, rc::Rc};
/// use evloop::EventLoop;
/// use evloop::raw::{RawStep, StepVTable};
///
/// /// Bumps the counter behind `ptr` and releases the reference count `ptr` owns.
/// unsafe fn run(ptr: NonNull<()>) {
///     // SAFETY: `ptr` came from `Rc::into_raw` below and is handed back exactly once.
///     let count = unsafe { Rc::from_raw(ptr.as_ptr().cast_const().cast::<Cell<u32>>()) };
///     count.set(count.get() + 1);
/// }
/// /// Releases the reference count `ptr` owns.
/// unsafe fn release(ptr: NonNull<()>) {
///     // SAFETY: as in `run`.
///     drop(unsafe { Rc::from_raw(ptr.as_ptr().cast_const().cast::<Cell<u32>>()) });
/// }
/// static BUMP: StepVTable = StepVTable { run, drop: release, inspect: None };
///
/// let lp = EventLoop::new()?;
/// let count = Rc::new(Cell::new(0));
/// let raw = Rc::into_raw(count.clone()).cast_mut().cast::<()>();
/// let ptr = NonNull::new(raw).expect("Rc::into_raw never returns null");
/// // SAFETY: `ptr` owns one reference count, which `run` or `release` gives back once.
/// let step = unsafe { RawStep::new(ptr, &BUMP) };
/// lp.call_soon_step(step)?;
/// let l2 = lp.clone();
/// lp.call_soon(move || l2.stop())?;
/// lp.run_forever()?;
/// assert_eq!(count.get(), 1);
/// assert_eq!(Rc::strong_count(&count), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct RawStep {
    ptr: NonNull<()>,
    vtable: &'static StepVTable,
}

impl RawStep {
    /// Wraps `ptr` and the functions that run or drop it.
    ///
    /// # Safety
    ///
    /// Calling `vtable.run(ptr)` or `vtable.drop(ptr)` once, on the thread that made the
    /// `RawStep`, at any time until then, must be sound; the `RawStep` calls exactly one of
    /// them, exactly once, on that thread. So must calling `vtable.inspect` with `ptr`, on that
    /// thread, any number of times before then.
    #[inline]
    pub unsafe fn new(ptr: NonNull<()>, vtable: &'static StepVTable) -> RawStep {
        RawStep { ptr, vtable }
    }
}

impl RawStep {
    /// Takes the step apart without calling either function: the caller takes over `new`'s
    /// contract for the pointer (the ready queue's [`Job`](crate::job::Job) does, to store a
    /// step in two words).
    #[inline]
    pub(crate) fn into_raw(self) -> (NonNull<()>, &'static StepVTable) {
        let this = ManuallyDrop::new(self);
        (this.ptr, this.vtable)
    }
}

impl Drop for RawStep {
    fn drop(&mut self) {
        // SAFETY: `new`'s contract; a step that was run is never dropped (see `run`), so this
        // is the one call made with this pointer.
        unsafe { (self.vtable.drop)(self.ptr) }
    }
}

impl fmt::Debug for RawStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStep").field("ptr", &self.ptr).finish()
    }
}
