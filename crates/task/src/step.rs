//! How a task runs: its per-task state ([`TaskInfo`]), the future `async-task` drives
//! ([`Step`]), and the schedule function that puts a woken task back on the loop.
//!
//! # Ground rules
//!
//! - A task step is one entry in the loop's ready queue, in FIFO order with `call_soon`. The
//!   first step is queued with `call_soon`; later ones are queued by the task's waker through
//!   [`RemoteLoop::call_soon_threadsafe`], which on the loop's own thread pushes straight onto
//!   the ready queue, and from other threads goes through the cross-thread queue and wakes the
//!   loop.
//! - The body future never leaves the loop's thread (`async_task::spawn_local`). A waker woken
//!   on another thread after the loop closed cannot queue the step; the step is then leaked
//!   rather than dropped there, because a local task must not be dropped off its thread.
//! - Cancellation is a request (`must_cancel`). The next step does not poll the body: it drops
//!   it, on the loop's thread, and the task ends cancelled. `cancel()` also cancels what the
//!   task awaits (a loop future, a task, a sleep's timer) and wakes the task, so that step
//!   comes on the next iteration.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread::{self, ThreadId};

use async_task::Runnable;
use evloop_sched::{Context, EventLoop, Exception, RemoteLoop, TimerHandle, get_running_loop};

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
    id: u64,
    extra: RefCell<Option<Box<Extra>>>,
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
            id: NEXT_TASK.fetch_add(1, Ordering::Relaxed),
            extra: RefCell::new(None),
            must_cancel: Cell::new(false),
            num_cancels: Cell::new(0),
            waiter: Cell::new(Waiter::None),
            waker: Cell::new(None),
            running: Cell::new(false),
            started: Cell::new(false),
            slot: Cell::new(u32::MAX),
        }
    }

    pub(crate) fn name(&self) -> String {
        match self.extra.borrow().as_ref().and_then(|e| e.name.as_ref()) {
            Some(name) => name.clone(),
            None => format!("Task-{}", self.id),
        }
    }

    pub(crate) fn set_name(&self, name: String) {
        self.extra.borrow_mut().get_or_insert_default().name = Some(name);
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
        {
            // The first message wins, as in asyncio where the awaited future keeps it.
            let mut extra = self.extra.borrow_mut();
            let first = &mut extra.get_or_insert_default().cancel_msg;
            if first.is_none() {
                *first = msg;
            }
        }
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
        self.extra
            .borrow()
            .as_ref()
            .and_then(|e| e.cancel_msg.clone())
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

/// The current thread's id; ids are never reused within a process.
fn thread_mark() -> ThreadId {
    THREAD_ID.with(|id| *id)
}

/// Owns a task's step while it is queued. Dropped on the loop's thread it cancels the task's
/// run (async-task then drops the body); dropped on another thread (a push to a closed loop)
/// it leaks the step instead, because a local task must be dropped on its own thread.
struct Queued {
    runnable: Option<Runnable>,
    origin: ThreadId,
}

impl Queued {
    /// `origin` is the mark of the thread that spawned the task (not the one waking it).
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
    let remote: RemoteLoop = core.lp.remote();
    // The registry's address identifies the loop: it lives as long as the loop, and the loop
    // lives as long as this task (its core holds it).
    let loop_id = Rc::as_ptr(reg) as usize;
    let origin = thread_mark();
    let schedule = move |runnable: Runnable| {
        let queued = Queued::new(runnable, origin);
        // Woken on the loop's thread while it runs (the common case: a future set by a
        // callback or another task): `call_soon`, without the cross-thread machinery.
        let local = get_running_loop()
            .ok()
            .filter(|lp| Rc::as_ptr(&lp.local::<Registry>()) as usize == loop_id);
        if let Some(lp) = local {
            let _ = lp.call_soon(move || queued.run());
            return;
        }
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

/// Queues a first step with `call_soon` (FIFO with callbacks even before the loop runs).
pub(crate) fn queue_first_step(lp: &EventLoop, runnable: Runnable) -> Result<(), Error> {
    // Called by `create_task`'s caller: the thread that spawned the task.
    let queued = Queued::new(runnable, thread_mark());
    lp.call_soon(move || queued.run())?;
    Ok(())
}
