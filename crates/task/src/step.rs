//! What one step of a task does: its per-task state ([`TaskInfo`]) and the poll of its body
//! ([`run`]), with cancellation and panics handled at the step boundary. Where the body lives
//! and how a step is queued is `raw`'s business.
//!
//! # Ground rules
//!
//! - Everything here runs on the loop's thread, with no borrow held while the body runs.
//! - Cancellation is a request (`must_cancel`). The next step does not poll the body: it drops
//!   it, on the loop's thread, and the task ends cancelled. `cancel()` also cancels what the
//!   task awaits (a loop future, a task, a sleep's timer) and wakes the task, so that step
//!   comes on the next iteration.

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{Context, EventLoop, Exception, TimerHandle};

use crate::Error;
use crate::core::{Core, Node};
use crate::current::{self, Registry};
use crate::raw::{self, TaskCore};

/// Default task names are `Task-N` from a process-wide counter, as asyncio's. Each thread takes
/// a block of [`ID_BLOCK`] ids at a time, so that spawning a task costs no atomic operation:
/// ids stay unique in the process and increase on each thread (so on each loop).
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

/// How many ids a thread takes from [`NEXT_BLOCK`] at once.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// This thread's next id and the end of its block (`next == end`: take a new block).
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh task id (non-zero: the counter starts at 1).
#[inline]
fn next_id() -> NonZeroU64 {
    let id = IDS
        .try_with(|ids| {
            let (next, end) = ids.get();
            if next != end {
                ids.set((next + 1, end));
                return next;
            }
            let start = new_id_block();
            ids.set((start.saturating_add(1), start.saturating_add(ID_BLOCK)));
            start
        })
        // During this thread's teardown: one id of a block of its own.
        .unwrap_or_else(|_| new_id_block());
    // The counter would take centuries to wrap; `MAX` keeps the id non-zero without a panic
    // path.
    NonZeroU64::new(id).unwrap_or(NonZeroU64::MAX)
}

/// The first id of a fresh block.
#[cold]
fn new_id_block() -> u64 {
    NEXT_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed)
}

/// What a suspended task awaits (a loop future, a task, or a sleep's timer), so that cancelling
/// the task cancels it too. One trait object (two words) covers both kinds, where an enum of
/// them would need a third word for its tag.
pub(crate) trait Awaited {
    /// Cancels it: a future or a task with the task's cancel message; a timer leaves the wheel.
    fn cancel_awaited(self: Rc<Self>, msg: Option<Arc<str>>);
    /// Drops the wakers it holds (`close()` breaks the cycles through them).
    fn clear_awaited(self: Rc<Self>);
}

impl Awaited for TimerHandle {
    fn cancel_awaited(self: Rc<Self>, _msg: Option<Arc<str>>) {
        self.cancel();
    }

    /// The timer's callback owns the waker; `close()` drops the timers itself.
    fn clear_awaited(self: Rc<Self>) {}
}

type Waiter = Option<Rc<dyn Awaited>>;

/// What few tasks need: a name set by hand, a cancel message, a cancel count. Boxed on first
/// use.
#[derive(Default)]
struct Extra {
    name: Option<String>,
    cancel_msg: Option<Arc<str>>,
    num_cancels: u32,
}

/// The state a task has beyond a future's.
pub(crate) struct TaskInfo {
    /// Non-zero, so that `Option<TaskInfo>` needs no tag of its own (its `Cell`s offer no niche).
    id: NonZeroU64,
    /// A `Cell`, not a `RefCell` (one word less per task): taken out and put back around each
    /// use, with no foreign code in between (see `with_extra`).
    extra: Cell<Option<Box<Extra>>>,
    must_cancel: Cell<bool>,
    waiter: Cell<Waiter>,
    running: Cell<bool>,
    /// Its first step was queued or run (a factory may drop a task without starting it).
    pub(crate) started: Cell<bool>,
    /// The task still holds its own waker (see `raw`'s ground rules); kept here, not in the
    /// body's part, where it fits in padding.
    pub(crate) own_waker: Cell<bool>,
    slot: Cell<u32>,
}

impl TaskInfo {
    #[inline]
    pub(crate) fn new() -> TaskInfo {
        TaskInfo {
            id: next_id(),
            extra: Cell::new(None),
            must_cancel: Cell::new(false),
            waiter: Cell::new(None),
            running: Cell::new(false),
            started: Cell::new(false),
            own_waker: Cell::new(true),
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
        self.read_extra(|e| Some(e.num_cancels)).unwrap_or(0)
    }

    pub(crate) fn set_waiter_future(&self, node: Rc<dyn Node>) {
        let old = self.waiter.replace(Some(node));
        drop(old);
    }

    pub(crate) fn set_waiter_timer(&self, timer: TimerHandle) {
        let old = self.waiter.replace(Some(Rc::new(timer)));
        drop(old);
    }

    /// True while a step of the task polls its body.
    pub(crate) fn running(&self) -> bool {
        self.running.get()
    }

    pub(crate) fn take_waiter(&self) -> Option<Rc<dyn Awaited>> {
        self.waiter.take()
    }

    #[inline]
    pub(crate) fn set_slot(&self, slot: u32) {
        self.slot.set(slot);
    }

    /// True once the task is in its loop's registry (see `current`'s ground rules).
    #[inline]
    pub(crate) fn registered(&self) -> bool {
        self.slot.get() != u32::MAX
    }

    /// Called when the task's core completes (or is dropped pending): leaves the registry if
    /// it joined it, drops what it awaited.
    #[inline]
    pub(crate) fn finish(&self, lp: &EventLoop) {
        let slot = self.slot.replace(u32::MAX);
        if slot != u32::MAX {
            lp.local::<Registry>().remove(slot);
        }
        let waiter = self.waiter.take();
        drop(waiter);
    }

    /// asyncio's `Task.cancel(msg)`: a request; the task ends cancelled at its next step.
    /// Returns (accepted, wake): `wake` asks the caller to wake the task, so that the step
    /// that ends it comes on the next iteration.
    pub(crate) fn cancel(&self, done: bool, msg: Option<Arc<str>>) -> (bool, bool) {
        if done {
            return (false, false);
        }
        // The first message wins, as in asyncio where the awaited future keeps it.
        let unused = self.with_extra(|e| {
            e.num_cancels = e.num_cancels.saturating_add(1);
            match &e.cancel_msg {
                Some(_) => msg,
                None => {
                    e.cancel_msg = msg;
                    None
                }
            }
        });
        drop(unused);
        self.must_cancel.set(true);
        if self.running.get() {
            // Cancelled by its own step: the step itself takes care (see `run`).
            return (true, false);
        }
        self.cancel_waiter();
        // A task whose first step is queued (or not started by the factory) is already
        // scheduled: the wake is then a no-op, and that step sees `must_cancel`.
        (true, true)
    }

    /// Cancels what the task awaits: the future or task (with the cancel message), or the
    /// sleep's timer, which leaves the wheel now.
    fn cancel_waiter(&self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.cancel_awaited(self.cancel_msg());
        }
    }

    fn cancelled_error(&self) -> Error {
        Error::cancelled_shared(self.cancel_msg())
    }

    fn cancel_msg(&self) -> Option<Arc<str>> {
        self.read_extra(|e| e.cancel_msg.clone())
    }
}

/// The task part of a task's core.
fn info_of<T, B: ?Sized + crate::core::Tail>(core: &Core<T, B>) -> &TaskInfo {
    // Steps are only made by `raw::spawn`, for task cores (made with `Some(TaskInfo)`).
    core.task
        .as_ref()
        .unwrap_or_else(|| unreachable!("a step always belongs to a task"))
}

/// Drops the body on the loop's thread; a panicking destructor is reported, not spread.
#[inline]
fn drop_body<F>(core: &Rc<TaskCore<F>>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| raw::drop_body(core)));
    if let Err(payload) = outcome {
        core.lp.call_exception_handler(
            Context::new("a task's future panicked while being dropped")
                .with_exception(Exception::from_panic(payload))
                .with("task", core.describe()),
        );
    }
}

/// One step of the task: polls its body once (or drops it, if the task was cancelled).
pub(crate) fn run<F>(core: &Rc<TaskCore<F>>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let info = info_of(core);
    if core.done() || !raw::has_body(core) {
        return;
    }
    if !raw::has_own_waker(core) {
        // The loop closed and released the task's own waker (a factory starting the task
        // afterwards): the body cannot be woken any more, so it is not polled.
        abandon(core);
        return;
    }
    // As asyncio clears `_fut_waiter` at the start of a step.
    let old = info.waiter.take();
    drop(old);
    if info.must_cancel.get() {
        // The body observes its cancel in `Drop`. A panic there is what asyncio's coroutine
        // raising instead of `CancelledError` is: the task ends with it, not cancelled.
        let dropped = catch_unwind(AssertUnwindSafe(|| raw::drop_body(core)));
        core.complete(match dropped {
            Ok(()) => Err(info.cancelled_error()),
            Err(payload) => Err(Error::failed(Exception::from_panic(payload))),
        });
        return;
    }

    info.running.set(true);
    let node: *const TaskCore<F> = Rc::as_ptr(core);
    let node: *const dyn Node = node;
    let node = NonNull::new(node.cast_mut()).unwrap_or_else(|| unreachable!("an Rc is never null"));
    // SAFETY: `node` is `Rc::as_ptr` of the task's `Rc`, which `core` keeps alive until the
    // `restore` below.
    let prev = unsafe { current::enter(node) };
    // The task holds its own waker while it is pending, so this borrowed one stays valid (and
    // its clones count) for the whole poll.
    let waker = raw::borrowed_waker(core);
    let mut cx = TaskContext::from_waker(&waker);
    let outcome = catch_unwind(AssertUnwindSafe(|| raw::poll_body(core, &mut cx)));
    current::restore(prev);
    info.running.set(false);

    match outcome {
        Ok(Poll::Pending) => {
            // A task suspended is listed by `all_tasks` through the registry from now on.
            if !info.registered() {
                let node: Rc<dyn Node> = core.clone();
                current::register_node(&node);
            }
            if info.must_cancel.get() {
                // The task cancelled itself during this step: cancel what it awaits now
                // and come back next iteration to drop the body.
                info.cancel_waiter();
                waker.wake_by_ref();
            }
        }
        Ok(Poll::Ready(value)) => {
            drop_body(core);
            if info.must_cancel.get() {
                // asyncio: a cancel requested and never delivered wins over the result.
                core.complete(Err(info.cancelled_error()));
            } else {
                core.complete(Ok(value));
            }
        }
        Err(payload) => {
            drop_body(core);
            core.complete(Err(Error::failed(Exception::from_panic(payload))));
        }
    }
}

/// A step dropped unrun (the loop closed with it queued, or a factory dropped the task
/// unstarted): nobody can finish the task any more, so it ends cancelled (asyncio leaves it
/// pending; awaiters here would then hang).
pub(crate) fn abandon<F>(core: &Rc<TaskCore<F>>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    if core.done() {
        return;
    }
    let info = info_of(core);
    if info.running.get() {
        // Dropped while its own step polls it (an eagerly started body woke itself, then
        // closed the loop): that step wakes it once more, and the wake, refused by the closed
        // loop, ends it.
        info.must_cancel.set(true);
        raw::unqueue(core);
        return;
    }
    let started = info.started.get();
    let describe = core.describe();
    drop_body(core);
    if started {
        core.lp.call_exception_handler(
            Context::new("Task was destroyed but it is pending!").with("task", describe),
        );
    }
    let msg = if started {
        "task was destroyed but it is pending"
    } else {
        "the task factory did not start the task"
    };
    core.complete(Err(Error::cancelled(Some(msg))));
}

/// The core of a pending task is being dropped (the loop closed and released the last waker):
/// drops the body, reports it, and leaves the registry.
pub(crate) fn dying<F>(core: &TaskCore<F>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    if core.done() || !raw::has_body(core) {
        return;
    }
    let info = info_of(core);
    let describe = core.describe();
    let outcome = catch_unwind(AssertUnwindSafe(|| raw::drop_body(core)));
    if let Err(payload) = outcome {
        core.lp.call_exception_handler(
            Context::new("a task's future panicked while being dropped")
                .with_exception(Exception::from_panic(payload))
                .with("task", describe.clone()),
        );
    }
    if info.started.get() {
        core.lp.call_exception_handler(
            Context::new("Task was destroyed but it is pending!").with("task", describe),
        );
    }
    raw::finish(core);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::thread;

    use super::{ID_BLOCK, next_id};

    // Ours: `Task-N` ids come from per-thread blocks; they must still be unique in the
    // process and increase on each thread, past the end of a block.
    #[test]
    fn task_ids_are_unique_across_threads_and_increase_on_each() {
        let per_thread = usize::try_from(ID_BLOCK * 2 + 5).unwrap_or(usize::MAX);
        let threads: Vec<_> = (0..4)
            .map(|_| thread::spawn(move || (0..per_thread).map(|_| next_id().get()).collect()))
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            let ids: Vec<u64> = t.join().expect("the id thread panicked");
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids increase on a thread"
            );
            for id in ids {
                assert!(all.insert(id), "id {id} handed out twice");
            }
        }
        assert_eq!(all.len(), 4 * per_thread);
    }
}
