//! How a task runs: its per-task state ([`TaskInfo`]), the future `async-task` drives
//! ([`Step`]), and the schedule function that puts a woken task back on the loop.
//!
//! # Ground rules
//!
//! - A task step is one entry in the loop's ready queue, in FIFO order with `call_soon`: the
//!   task's `Runnable` itself, handed to [`EventLoop::call_soon_step`] as a [`RawStep`], so
//!   queueing a step allocates nothing. The first step is queued so by `create_task`; later
//!   ones by the task's waker when it is woken on the loop's thread while the loop runs
//!   ([`RemoteLoop::running_here`]). Woken anywhere else (another thread, or the loop's thread
//!   while the loop is not running), the waker goes through
//!   [`RemoteLoop::call_soon_threadsafe`], which allocates a callback and wakes the loop.
//! - The body future never leaves the loop's thread (`async_task::spawn_local`). A waker woken
//!   on another thread after the loop closed cannot queue the step; the step is then leaked
//!   rather than dropped there, because a local task must not be dropped off its thread.
//! - Cancellation is a request (`must_cancel`). The next step does not poll the body: it drops
//!   it, on the loop's thread, and the task ends cancelled. `cancel()` also cancels what the
//!   task awaits (a loop future, a task, a sleep's timer) and wakes the task, so that step
//!   comes on the next iteration.

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread::{self, ThreadId};

use async_task::Runnable;
use evloop_sched::{Context, EventLoop, Exception, RawStep, RemoteLoop, StepVTable, TimerHandle};

use crate::Error;
use crate::core::{Core, Node};
use crate::current::{self, Registry};

/// Default task names are `Task-N` from a process-wide counter, as asyncio's.
static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// What a suspended task awaits, so that cancelling the task cancels it too.
enum Waiter {
    None,
    Future(Rc<dyn Node>),
    /// Boxed: a timer handle is several words, and most tasks never sleep on a timer.
    Timer(Box<TimerHandle>),
}

/// What few tasks need: a name set by hand, a cancel message. Boxed on first use.
#[derive(Default)]
struct Extra {
    name: Option<String>,
    cancel_msg: Option<Arc<str>>,
}

/// The state a task has beyond a future's.
pub(crate) struct TaskInfo {
    /// Non-zero, so that `Option<TaskInfo>` needs no tag of its own (its `Cell`s offer no niche).
    id: NonZeroU64,
    /// A `Cell`, not a `RefCell` (one word less per task): taken out and put back around each
    /// use, with no foreign code in between (see `with_extra`).
    extra: Cell<Option<Box<Extra>>>,
    must_cancel: Cell<bool>,
    num_cancels: Cell<u32>,
    waiter: Cell<Waiter>,
    /// The task's own waker, kept from its first step (to wake it on cancel); dropped when it
    /// finishes or the loop closes.
    waker: Cell<Option<Waker>>,
    running: Cell<bool>,
    /// Its first step was queued or run (a factory may drop a task without starting it).
    pub(crate) started: Cell<bool>,
    slot: Cell<u32>,
}

impl TaskInfo {
    pub(crate) fn new() -> TaskInfo {
        TaskInfo {
            // The counter starts at 1 and would take centuries to wrap; `MAX` keeps it non-zero
            // without a panic path.
            id: NonZeroU64::new(NEXT_TASK.fetch_add(1, Ordering::Relaxed))
                .unwrap_or(NonZeroU64::MAX),
            extra: Cell::new(None),
            must_cancel: Cell::new(false),
            num_cancels: Cell::new(0),
            waiter: Cell::new(Waiter::None),
            waker: Cell::new(None),
            running: Cell::new(false),
            started: Cell::new(false),
            slot: Cell::new(u32::MAX),
        }
    }

    /// Runs `f` on the extra state, created on first use. `f` must not call foreign code.
    fn with_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        let mut extra = self.extra.take().unwrap_or_default();
        let out = f(&mut extra);
        self.extra.set(Some(extra));
        out
    }

    /// Reads the extra state, if any. `f` must not call foreign code.
    fn read_extra<R>(&self, f: impl FnOnce(&Extra) -> Option<R>) -> Option<R> {
        let extra = self.extra.take();
        let out = extra.as_deref().and_then(f);
        self.extra.set(extra);
        out
    }

    pub(crate) fn name(&self) -> String {
        match self.read_extra(|e| e.name.clone()) {
            Some(name) => name,
            None => format!("Task-{}", self.id),
        }
    }

    pub(crate) fn set_name(&self, name: String) {
        let old = self.with_extra(|e| e.name.replace(name));
        // Dropped after the extra state is back in place.
        drop(old);
    }

    pub(crate) fn cancelling(&self) -> u32 {
        self.num_cancels.get()
    }

    pub(crate) fn set_waiter_future(&self, node: Rc<dyn Node>) {
        let old = self.waiter.replace(Waiter::Future(node));
        drop(old);
    }

    pub(crate) fn set_waiter_timer(&self, timer: TimerHandle) {
        let old = self.waiter.replace(Waiter::Timer(Box::new(timer)));
        drop(old);
    }

    pub(crate) fn take_waiter_node(&self) -> Option<Rc<dyn Node>> {
        match self.waiter.replace(Waiter::None) {
            Waiter::Future(node) => Some(node),
            _ => None,
        }
    }

    pub(crate) fn forget_waker(&self) {
        let waker = self.waker.take();
        drop(waker);
    }

    /// Called when the task's core completes: leaves the registry, drops the self-waker.
    pub(crate) fn finish(&self, lp: &EventLoop) {
        Registry::remove(lp, self.slot.get());
        let waker = self.waker.take();
        let waiter = self.waiter.replace(Waiter::None);
        drop((waker, waiter));
    }

    /// asyncio's `Task.cancel(msg)`: a request; the task ends cancelled at its next step.
    pub(crate) fn cancel(&self, done: bool, msg: Option<Arc<str>>) -> bool {
        if done {
            return false;
        }
        self.num_cancels
            .set(self.num_cancels.get().saturating_add(1));
        // The first message wins, as in asyncio where the awaited future keeps it.
        let unused = self.with_extra(|e| match &e.cancel_msg {
            Some(_) => msg,
            None => {
                e.cancel_msg = msg;
                None
            }
        });
        drop(unused);
        self.must_cancel.set(true);
        if !self.running.get() {
            self.cancel_waiter();
            if let Some(waker) = self.waker.take() {
                let wake = waker.clone();
                self.waker.set(Some(waker));
                wake.wake();
            }
            // No waker yet: the first step is queued (or the factory has not started the
            // task), and it will see `must_cancel` before polling the body.
        }
        true
    }

    /// Cancels what the task awaits: the future or task (with the cancel message), or the
    /// sleep's timer, which leaves the wheel now.
    fn cancel_waiter(&self) {
        let waiter = self.waiter.replace(Waiter::None);
        match waiter {
            Waiter::None => {}
            Waiter::Future(node) => {
                let msg = self.cancel_msg();
                node.cancel_node(msg);
            }
            Waiter::Timer(timer) => timer.cancel(),
        }
    }

    fn cancelled_error(&self) -> Error {
        Error::cancelled_shared(self.cancel_msg())
    }

    fn cancel_msg(&self) -> Option<Arc<str>> {
        self.read_extra(|e| e.cancel_msg.clone())
    }
}

/// The future `async-task` runs: one poll is one task step.
pub(crate) struct Step<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    core: Rc<Core<F::Output>>,
    /// `None` once the body finished, panicked or was dropped by a cancellation.
    body: Option<F>,
}

/// The task part of a task's core.
fn info_of<T>(core: &Core<T>) -> &TaskInfo {
    // Steps are only made by `spawn`, for task cores (`Core::new` with `Some(TaskInfo)`).
    core.task
        .as_ref()
        .unwrap_or_else(|| unreachable!("a step always belongs to a task"))
}

impl<F> Step<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    /// Drops the body on the loop's thread; a panicking destructor is reported, not spread.
    fn drop_body(self: Pin<&mut Self>) {
        // SAFETY: the body is structurally pinned and dropped in place here (assigning `None`
        // runs its destructor before the memory is reused); nothing is moved out of it.
        let this = unsafe { self.get_unchecked_mut() };
        let outcome = catch_unwind(AssertUnwindSafe(|| this.body = None));
        if let Err(payload) = outcome {
            this.core.lp.call_exception_handler(
                Context::new("a task's future panicked while being dropped")
                    .with_exception(Exception::from_panic(payload))
                    .with("task", this.core.describe()),
            );
        }
    }
}

impl<F> Future for Step<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let core = self.core.clone();
        let info = info_of(&core);
        if core.done() || self.body.is_none() {
            return Poll::Ready(());
        }
        match info.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => info.waker.set(Some(w)),
            _ => info.waker.set(Some(cx.waker().clone())),
        }
        // As asyncio clears `_fut_waiter` at the start of a step.
        let old = info.waiter.replace(Waiter::None);
        drop(old);
        if info.must_cancel.get() {
            self.as_mut().drop_body();
            core.complete(Err(info.cancelled_error()));
            return Poll::Ready(());
        }

        info.running.set(true);
        let prev = current::enter(core.clone());
        // SAFETY: the body is structurally pinned: it is never moved out of `self.body`, only
        // dropped in place (`drop_body`, or when `Step` itself is dropped).
        let body = unsafe {
            self.as_mut().map_unchecked_mut(|s| match s.body.as_mut() {
                Some(body) => body,
                None => unreachable!("checked above: the body is still there"),
            })
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| body.poll(cx)));
        current::restore(prev);
        info.running.set(false);

        match outcome {
            Ok(Poll::Pending) => {
                if info.must_cancel.get() {
                    // The task cancelled itself during this step: cancel what it awaits now
                    // and come back next iteration to drop the body.
                    info.cancel_waiter();
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Ok(Poll::Ready(value)) => {
                self.as_mut().drop_body();
                if info.must_cancel.get() {
                    // asyncio: a cancel requested and never delivered wins over the result.
                    core.complete(Err(info.cancelled_error()));
                } else {
                    core.complete(Ok(value));
                }
                Poll::Ready(())
            }
            Err(payload) => {
                self.as_mut().drop_body();
                core.complete(Err(Error::failed(Exception::from_panic(payload))));
                Poll::Ready(())
            }
        }
    }
}

impl<F> Drop for Step<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn drop(&mut self) {
        if self.core.done() {
            return;
        }
        // The step was dropped without finishing: the loop closed with it queued, or whatever
        // would have woken it was dropped. Nobody can finish the task any more, so it ends
        // cancelled (asyncio leaves it pending; awaiters here would then hang).
        let info = info_of(&self.core);
        let started = info.started.get();
        let describe = self.core.describe();
        let body = self.body.take();
        drop(body);
        if started {
            self.core.lp.call_exception_handler(
                Context::new("Task was destroyed but it is pending!").with("task", describe),
            );
        }
        let msg = if started {
            "task was destroyed but it is pending"
        } else {
            "the task factory did not start the task"
        };
        self.core.complete(Err(Error::cancelled(Some(msg))));
    }
}

thread_local! {
    /// This thread's id, read once (`thread::current()` costs a reference count each time).
    static THREAD_ID: ThreadId = thread::current().id();
}

/// Owns a task's step while it is queued. Dropped on the loop's thread it cancels the task's
/// run (async-task then drops the body); dropped on another thread (a push to a closed loop)
/// it leaks the step instead, because a local task must be dropped on its own thread.
struct Queued {
    runnable: Option<Runnable>,
    origin: ThreadId,
}

impl Queued {
    /// `origin` is the thread that spawned the task (the loop's, not the one waking it).
    fn new(runnable: Runnable, origin: ThreadId) -> Queued {
        Queued {
            runnable: Some(runnable),
            origin,
        }
    }

    fn run(mut self) {
        if let Some(r) = self.runnable.take() {
            r.run();
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Some(r) = self.runnable.take() {
            // `try_with`: during thread teardown the cache may be gone; then assume foreign.
            if THREAD_ID.try_with(|id| *id).ok() != Some(self.origin) {
                std::mem::forget(r);
            }
        }
    }
}

/// Spawns `fut` as the body of the task `core`, registered in `reg` (the loop's registry);
/// returns its first step, not yet queued.
pub(crate) fn spawn<F>(core: &Rc<Core<F::Output>>, reg: &Rc<Registry>, fut: F) -> Runnable
where
    F: Future + 'static,
    F::Output: 'static,
{
    // The one capture: the schedule function lives in every task's allocation. The loop's
    // thread (`RemoteLoop::thread_id`) is the thread that spawned the task, since an
    // `EventLoop` never leaves it.
    let remote: RemoteLoop = core.lp.remote();
    let schedule = move |runnable: Runnable| {
        // Woken on the loop's thread while it runs (the common case: a future set by a
        // callback or another task): straight onto the ready queue, with no allocation and
        // without the cross-thread machinery.
        let local = remote.running_here();
        if let Some(lp) = local {
            // A closed loop drops the step here, on its own thread.
            let _ = lp.call_soon_step(raw_step(runnable));
            return;
        }
        let queued = Queued::new(runnable, remote.thread_id());
        // A closed loop drops `queued` (leaked off-thread, see `Queued`): a waker of a closed
        // loop does nothing.
        let _ = remote.call_soon_threadsafe(move || queued.run());
    };
    let weak: std::rc::Weak<dyn Node> = Rc::downgrade(core) as std::rc::Weak<dyn Node>;
    let slot = reg.insert(&core.lp, weak);
    if let Some(info) = &core.task {
        info.slot.set(slot);
    }
    let step = Step {
        core: core.clone(),
        body: Some(fut),
    };
    let (runnable, handle) = async_task::spawn_local(step, schedule);
    // The core carries the outcome; async-task's own handle is not needed.
    handle.detach();
    runnable
}

/// Queues a first step in the ready queue (FIFO with callbacks even before the loop runs).
pub(crate) fn queue_first_step(lp: &EventLoop, runnable: Runnable) -> Result<(), Error> {
    // Called by `create_task`'s caller: the thread that spawned the task and owns the loop.
    lp.call_soon_step(raw_step(runnable))?;
    Ok(())
}

/// Runs the step behind a pointer made by [`raw_step`].
///
/// # Safety
///
/// `ptr` comes from `Runnable::into_raw` in [`raw_step`], on this thread, and is handed back
/// once (the `RawStep` contract).
unsafe fn run_step(ptr: NonNull<()>) {
    // SAFETY: the caller's contract: `ptr` is a `Runnable` of this thread, given back once.
    let runnable = unsafe { Runnable::<()>::from_raw(ptr) };
    runnable.run();
}

/// Drops, unrun, the step behind a pointer made by [`raw_step`]: async-task then drops the
/// task's future (on this thread, where it was spawned).
///
/// # Safety
///
/// As [`run_step`].
unsafe fn drop_step(ptr: NonNull<()>) {
    // SAFETY: as in `run_step`.
    let runnable = unsafe { Runnable::<()>::from_raw(ptr) };
    drop(runnable);
}

static STEP_VTABLE: StepVTable = StepVTable {
    run: run_step,
    drop: drop_step,
};

/// A task's step as a ready-queue entry that costs no allocation. Call it only on the thread
/// that spawned the task (the loop's).
fn raw_step(runnable: Runnable) -> RawStep {
    let ptr = runnable.into_raw();
    // SAFETY: `ptr` owns the `Runnable`; `run_step` and `drop_step` each turn it back into one,
    // and the `RawStep` calls exactly one of them once, on this thread: the one that spawned
    // the local task, as `spawn_local` requires for running or dropping its `Runnable`.
    unsafe { RawStep::new(ptr, &STEP_VTABLE) }
}
