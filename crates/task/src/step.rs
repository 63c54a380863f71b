//! A task on `async-task`: its one allocation, how its steps reach the ready queue, and what one
//! step does (cancellation and panics handled at the step boundary).
//!
//! # Ground rules
//!
//! - One allocation per task, `async-task`'s: its metadata ([`TaskMeta`]) holds the task's
//!   [`Core`] (state, outcome, awaiters, [`TaskInfo`]); its future is a [`Body`] around the
//!   user's future, whose own output is `()`: the step logic (cancel, panic capture, registry,
//!   outcome) is ours. The `async_task::Task` is detached at once; handles hold a `Waker` of
//!   the task (`Keep::Waker`), so async-task's reference count keeps the allocation alive.
//! - A queued step is the task's `Runnable` (`Runnable::into_raw`) carried as a [`RawStep`]:
//!   queueing it allocates nothing. At most one is queued or running at a time (async-task's
//!   promise).
//! - Everything but the schedule function and the metadata's `Drop` runs on the loop's
//!   thread. A wake on another thread sends the `Runnable` to the loop with
//!   `call_soon_threadsafe` ([`Parcel`]), reading nothing of the metadata but its
//!   `RemoteLoop`; if the loop is closed, the `Runnable` is leaked there rather than dropped
//!   off its thread. The last reference to a task may go on another thread: the metadata then
//!   sends the core (the loop's `Rc`, the outcome) back to the loop ([`Homebound`]).
//! - The body is polled and dropped only inside `Runnable::run`, on the loop's thread. A step
//!   dropped unrun (a closed loop refuses or drops it; a factory drops a task unstarted) is
//!   run once more with `abandoned` set, so that the body is dropped by our code, with the
//!   task's waker at hand: the task ends cancelled and is reported. async-task aborts on a
//!   panic while it drops a future, so [`Body`]'s own `Drop` catches the user future's.
//! - async-task has no weak count. A task that suspends joins its loop's registry, which
//!   holds a handle: a pending task stays pending (as in asyncio) until it is woken, or until
//!   `close()` sweeps the registry (`current`).
//! - Cancellation is a request (`must_cancel`). The next step does not poll the body: it drops
//!   it, on the loop's thread, and the task ends cancelled. `cancel()` also cancels what the
//!   task awaits (a loop future, a task, a sleep's timer) and wakes the task, so that step
//!   comes on the next iteration.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context as TaskContext, Poll};
use std::thread::{self, ThreadId};

use async_task::{Builder, Runnable};
use evloop_sched::{Context, EventLoop, Exception, RawStep, RemoteLoop, StepName, StepVTable};

use crate::Error;
use crate::core::{Core, Flag, Keep, Node, Shared, State, TaskInfo};
use crate::current::{self, QueuedTasks};

thread_local! {
    /// This thread's id, read once (`thread::current()` costs a reference count each time).
    /// `const`-initialised, so that reading it needs no lazy-initialisation check.
    static THREAD_ID: Cell<Option<ThreadId>> = const { Cell::new(None) };
}

/// True on the loop's thread (false during this thread's teardown: then assume foreign).
#[inline]
fn on_thread(owner: ThreadId) -> bool {
    THREAD_ID
        .try_with(|id| match id.get() {
            Some(id) => id == owner,
            None => {
                let me = thread::current().id();
                id.set(Some(me));
                me == owner
            }
        })
        .unwrap_or(false)
}

thread_local! {
    /// The metadata of the task whose `Runnable` runs now on this thread ([`run_runnable`]):
    /// how its [`Body`] finds its core without a pointer of its own (a word per task).
    static STEPPING: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Runs a task's `Runnable` (polls its body, or drops it if async-task closed the task), with
/// [`STEPPING`] set to its metadata. The only place a `Runnable` runs.
fn run_runnable<T: 'static>(runnable: Runnable<TaskMeta<T>>) {
    /// Puts the previous value back, also if a waker woken at completion panics through `run`.
    struct Restore(*const ());
    impl Drop for Restore {
        fn drop(&mut self) {
            STEPPING.set(self.0);
        }
    }
    let meta: *const TaskMeta<T> = runnable.metadata();
    let _restore = Restore(STEPPING.replace(meta.cast()));
    runnable.run();
}

/// The core of the task whose `Runnable` runs now, if any.
///
/// # Safety
///
/// Called from the [`Body`] of a task with output `T`, while `Runnable::run` polls or drops it
/// (its only callers are `Body`'s `poll` and `Drop`, and a `Body` is polled and dropped only
/// there: see the ground rules); the reference does not outlive that call.
unsafe fn stepping<'a, T: 'static>() -> Option<&'a Core<T>> {
    let meta = STEPPING.get().cast::<TaskMeta<T>>();
    // SAFETY: the caller's contract: `run_runnable` set `STEPPING` to the metadata of the task
    // whose body calls this, of type `TaskMeta<T>`, and the running `Runnable` keeps its
    // allocation alive for the call.
    unsafe { meta.as_ref() }.map(TaskMeta::core)
}

/// A task's metadata in its `async-task` allocation: its core, and where its loop's
/// cross-thread face is (what other threads read).
pub(crate) struct TaskMeta<T: 'static> {
    /// Always `Some` but in `Drop` (an `EventLoop` is never null, so the `Option` is free).
    core: Option<Core<T>>,
    /// `EventLoop::remote_ref` of the core's loop, taken at spawn on the loop's thread: a field
    /// of the loop written once, when the loop was made, and alive while the core's `lp` is.
    /// A pointer, not a `RemoteLoop` clone: no atomic count per task, and other threads never
    /// touch the loop's `Rc`.
    remote: *const RemoteLoop,
}

impl<T: 'static> TaskMeta<T> {
    #[inline]
    fn core(&self) -> &Core<T> {
        self.core
            .as_ref()
            .unwrap_or_else(|| unreachable!("the core is taken out only when dropped"))
    }

    /// The loop's cross-thread face (any thread may call this).
    #[inline]
    fn remote(&self) -> &RemoteLoop {
        // SAFETY: `remote` points into the loop that the core's `lp` keeps alive, and the core
        // is there (it is taken out only in `Drop`, which reads this first); the field is
        // written once, before the task existed, and `RemoteLoop` is `Sync`.
        unsafe { &*self.remote }
    }
}

impl<T: 'static> Drop for TaskMeta<T> {
    fn drop(&mut self) {
        let remote = self.remote();
        let owner = remote.thread_id();
        if on_thread(owner) {
            drop(self.core.take());
            return;
        }
        // The last reference went on another thread: the core goes back to the loop. The
        // clone is taken while the core keeps the loop alive: once the message is sent, the
        // loop may drop the core, and with it the loop, at any time.
        let remote = remote.clone();
        let parcel = Homebound {
            core: self.core.take(),
            owner,
        };
        let _ = remote.call_soon_threadsafe(move || drop(parcel));
    }
}

/// A task's core on its way back to its loop's thread, to be dropped there.
struct Homebound<T: 'static> {
    core: Option<Core<T>>,
    owner: ThreadId,
}

// SAFETY: the core is dropped only on its loop's thread (`owner`); anywhere else (a closed
// loop dropped the message unsent) it is leaked, untouched.
unsafe impl<T: 'static> Send for Homebound<T> {}

impl<T: 'static> Drop for Homebound<T> {
    fn drop(&mut self) {
        let core = self.core.take();
        if !on_thread(self.owner) {
            std::mem::forget(core);
        }
    }
}

/// A `Runnable` woken on another thread, on its way to the loop.
struct Parcel<T: 'static> {
    ptr: NonNull<()>,
    owner: ThreadId,
    _meta: PhantomData<T>,
}

// SAFETY: the `Runnable` behind `ptr` is turned back into one only on its loop's thread
// (`owner`): scheduled there, or dropped there as a step; anywhere else it is leaked.
unsafe impl<T: 'static> Send for Parcel<T> {}

impl<T: 'static> Parcel<T> {
    /// On the loop's thread: queues the step there.
    fn schedule_here(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `ptr` came from `Runnable::into_raw` (`schedule`), is taken back once, here,
        // on the loop's thread (this runs as a `call_soon_threadsafe` callback), and `this` is
        // never dropped.
        let runnable = unsafe { Runnable::<TaskMeta<T>>::from_raw(this.ptr) };
        runnable.schedule();
    }
}

impl<T: 'static> Drop for Parcel<T> {
    fn drop(&mut self) {
        if on_thread(self.owner) {
            // Dropped by the closing loop: a step dropped unrun.
            // SAFETY: as in `schedule_here`: the `Runnable` is handed over once, on its thread.
            drop(unsafe { RawStep::new(self.ptr, &Steps::<T>::VTABLE) });
        }
    }
}

/// The schedule function of every task: a wake queues the task's step on the loop's thread,
/// and goes through `call_soon_threadsafe` from any other.
fn schedule<T: 'static>(runnable: Runnable<TaskMeta<T>>) {
    let remote = runnable.metadata().remote();
    let owner = remote.thread_id();
    if on_thread(owner) {
        let lp = runnable.metadata().core().lp.clone();
        // SAFETY: the pointer is the `Runnable`'s, handed over to the step, which the loop runs
        // or drops once, on this thread (`Steps`).
        let step = unsafe { RawStep::new(runnable.into_raw(), &Steps::<T>::VTABLE) };
        // A closed loop drops the step, here on its own thread: the task ends cancelled.
        let _ = lp.call_soon_step(step);
        return;
    }
    // Cloned while the `Runnable` keeps the loop alive (see `TaskMeta`'s `Drop`).
    let remote = remote.clone();
    let parcel = Parcel::<T> {
        ptr: runnable.into_raw(),
        owner,
        _meta: PhantomData,
    };
    let _ = remote.call_soon_threadsafe(move || parcel.schedule_here());
}

/// The functions of a task's queued step.
struct Steps<T>(PhantomData<T>);

impl<T: 'static> Steps<T> {
    const VTABLE: StepVTable = StepVTable {
        run: Self::run,
        drop: Self::drop,
        inspect: Some(Self::inspect),
    };

    /// Runs a queued step.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `ptr` is from `Runnable::<TaskMeta<T>>::into_raw`, handed over.
    unsafe fn run(ptr: NonNull<()>) {
        // SAFETY: the caller's contract.
        let runnable = unsafe { Runnable::<TaskMeta<T>>::from_raw(ptr) };
        run_runnable(runnable);
    }

    /// A step dropped unrun: it runs once more, to drop the body and end the task.
    ///
    /// # Safety
    ///
    /// As [`Steps::run`].
    unsafe fn drop(ptr: NonNull<()>) {
        // SAFETY: the caller's contract.
        let runnable = unsafe { Runnable::<TaskMeta<T>>::from_raw(ptr) };
        runnable.metadata().core().state.set(Flag::Abandoned, true);
        run_runnable(runnable);
    }

    /// Shows a queued step to `all_tasks`: a pending task not in the registry (one whose first
    /// step is queued) joins the `QueuedTasks` sink. To debug mode, about to run the step, it
    /// gives the task's description as the `StepName`.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `ptr` is the pointer of a queued step (borrowed).
    unsafe fn inspect(ptr: NonNull<()>, sink: &mut dyn Any) {
        // SAFETY: the caller's contract; the `Runnable` is only borrowed (never dropped).
        let runnable = ManuallyDrop::new(unsafe { Runnable::<TaskMeta<T>>::from_raw(ptr) });
        let core = runnable.metadata().core();
        if let Some(name) = sink.downcast_mut::<StepName>() {
            // Debug mode, about to run this step: the name its slow-step warning would give.
            name.0 = Some(core.describe());
            return;
        }
        let Some(sink) = sink.downcast_mut::<QueuedTasks>() else {
            return;
        };
        if !core.state.registered() && !core.done() {
            // SAFETY: a waker of the task whose metadata holds `core`.
            let task = unsafe { Shared::of_task(core, runnable.waker()) };
            sink.0.push(task.node());
        }
    }
}

/// A task's first step, made by [`spawn`] and not queued yet: owned by `create_task` or the
/// task factory, which queues it ([`FirstStep::queue`]), runs it ([`FirstStep::run`]) or drops
/// it (the task then ends cancelled).
pub(crate) struct FirstStep {
    ptr: NonNull<()>,
    vtable: &'static StepVTable,
}

impl FirstStep {
    /// Queues the step in the loop's ready queue (FIFO with callbacks).
    pub(crate) fn queue(self, lp: &EventLoop) -> Result<(), evloop_sched::Error> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `ptr` is a task's `Runnable` (`spawn`), which the vtable's functions take
        // over; the `RawStep` calls exactly one of them once, on the loop's thread, and `this`
        // is never dropped, so the `Runnable` is handed over once.
        let step = unsafe { RawStep::new(this.ptr, this.vtable) };
        lp.call_soon_step(step)
    }

    /// Runs the step now (the eager factory).
    pub(crate) fn run(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: as in `queue`: the `Runnable` is handed to `run`, once.
        unsafe { (this.vtable.run)(this.ptr) }
    }
}

impl Drop for FirstStep {
    fn drop(&mut self) {
        // SAFETY: as in `queue`: the `Runnable` is handed to `drop`, once.
        unsafe { (self.vtable.drop)(self.ptr) }
    }
}

/// Spawns `fut` as a task of `lp`: returns its handle and its first step, not yet queued. The
/// task is not in the loop's registry yet: it joins it if its body returns `Pending` or a
/// factory gets it (see `current`'s ground rules).
pub(crate) fn spawn<F>(lp: &EventLoop, fut: F) -> (Shared<F::Output>, FirstStep)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let meta = TaskMeta {
        core: Some(Core::new(lp.clone(), Some(TaskInfo::new()))),
        remote: lp.remote_ref(),
    };
    let body = move |_: &TaskMeta<F::Output>| Body {
        fut: ManuallyDrop::new(fut),
    };
    // SAFETY: `spawn_unchecked` leaves to us what `spawn` would check. Neither the future nor
    // the metadata is `Send`: the future is polled and dropped only in `Runnable::run`, which
    // runs on the loop's thread (see the ground rules: a `Runnable` woken elsewhere is sent
    // there or leaked), and the metadata is dropped there (`TaskMeta`'s `Drop`). The schedule
    // function, called on any thread, reads only the metadata's `RemoteLoop` (`Send + Sync`,
    // never written) off the loop's thread. Everything borrowed is `'static`.
    let (runnable, task) = unsafe {
        Builder::new()
            .metadata(meta)
            .spawn_unchecked(body, schedule::<F::Output>)
    };
    task.detach();
    // SAFETY: a waker of the task whose metadata holds this core.
    let handle = unsafe { Shared::of_task(runnable.metadata().core(), runnable.waker()) };
    let first = FirstStep {
        ptr: runnable.into_raw(),
        vtable: &Steps::<F::Output>::VTABLE,
    };
    (handle, first)
}

/// The future `async-task` drives: the user's future, and the step logic around it. Its
/// core is the metadata of the `Runnable` that runs it ([`stepping`]).
struct Body<F: Future>
where
    F::Output: 'static,
{
    /// The user's future while the core's `Flag::Gone` is unset (a flag rather than an
    /// `Option`: an async block offers no niche, so the `Option` would cost a word per task).
    /// Pinned: never moved out of the allocation, only dropped in place ([`Body::drop_fut`]).
    fut: ManuallyDrop<F>,
}

impl<F: Future> Body<F>
where
    F::Output: 'static,
{
    /// The user's future, pinned. Only while it is there (the caller checked `Flag::Gone`).
    #[inline]
    fn fut(self: Pin<&mut Self>) -> Pin<&mut F> {
        // SAFETY: a pin projection: `fut` is never moved out of the body, only dropped in place
        // (`drop_fut`), after which this is never called again (callers check `Flag::Gone`).
        unsafe { self.map_unchecked_mut(|body| &mut *body.fut) }
    }

    /// Drops the user's future in place, once; returns the panic of its destructor, if any.
    /// `Flag::Gone` is set first: a re-entrant look finds the future gone, and a panic leaves
    /// it gone.
    #[inline]
    fn drop_fut(self: Pin<&mut Self>, state: &State) -> Result<(), Box<dyn Any + Send>> {
        if state.get(Flag::Gone) {
            return Ok(());
        }
        state.set(Flag::Gone, true);
        catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the future was there (`Gone` was unset); it is dropped where it is
            // pinned, once (`Gone` is now set, and nothing uses it after).
            unsafe { ManuallyDrop::drop(&mut self.get_unchecked_mut().fut) }
        }))
    }
}

impl<F: Future> Future for Body<F>
where
    F::Output: 'static,
{
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        // SAFETY: called from this body's `poll`.
        let Some(core) = (unsafe { stepping::<F::Output>() }) else {
            unreachable!("a body is polled only by `run_runnable`");
        };
        step(core, self, cx)
    }
}

impl<F: Future> Drop for Body<F>
where
    F::Output: 'static,
{
    /// A future still there now was left by a task that ended some other way than by its
    /// steps (`Task::retire`): it is dropped in place. async-task aborts if this panics: a
    /// panic of the user's destructor is caught and reported.
    fn drop(&mut self) {
        // SAFETY: called from this body's `Drop`.
        let Some(core) = (unsafe { stepping::<F::Output>() }) else {
            // Never (a body is dropped only by `run_runnable`); leaked rather than guessed.
            return;
        };
        // SAFETY: `self` is being dropped where it was pinned, and never used again.
        let this = unsafe { Pin::new_unchecked(self) };
        if let Err(payload) = this.drop_fut(&core.state) {
            report_drop_panic(core, payload);
        }
    }
}

/// The task part of a task's core.
#[inline]
fn info_of<T>(core: &Core<T>) -> &TaskInfo {
    // Steps are only made by `spawn`, for task cores (made with `Some(TaskInfo)`).
    core.task
        .as_ref()
        .unwrap_or_else(|| unreachable!("a step always belongs to a task"))
}

fn report_drop_panic<T: 'static>(core: &Core<T>, payload: Box<dyn Any + Send>) {
    core.lp.call_exception_handler(
        Context::new("a task's future panicked while being dropped")
            .with_exception(Exception::from_panic(payload))
            .with("task", core.describe()),
    );
}

/// Drops the user's future in place; a panicking destructor is reported, not spread.
#[inline]
fn drop_body<F: Future>(core: &Core<F::Output>, body: Pin<&mut Body<F>>)
where
    F::Output: 'static,
{
    if let Err(payload) = body.drop_fut(&core.state) {
        report_drop_panic(core, payload);
    }
}

/// What keeps the task alive for a handle made during its step: a clone of `cx`'s waker.
fn keep_of<'a>(cx: &'a TaskContext<'_>) -> impl Fn() -> Keep + 'a {
    || Keep::Waker(cx.waker().clone())
}

/// One step of the task: polls its body once (or drops it, if the task was cancelled or its
/// step abandoned). `Ready` once the body is gone.
fn step<F: Future>(
    core: &Core<F::Output>,
    mut body: Pin<&mut Body<F>>,
    cx: &mut TaskContext<'_>,
) -> Poll<()>
where
    F::Output: 'static,
{
    let info = info_of(core);
    if core.state.get(Flag::Gone) {
        return Poll::Ready(());
    }
    if core.state.get(Flag::Abandoned) {
        abandon(core, body, &keep_of(cx));
        return Poll::Ready(());
    }
    if core.done() {
        // Retired (`Task::retire`): the body goes.
        drop_body(core, body);
        return Poll::Ready(());
    }
    // As asyncio clears `_fut_waiter` at the start of a step.
    let old = info.take_waiter();
    drop(old);
    if core.state.get(Flag::MustCancel) {
        // The body observes its cancel in `Drop`. A panic there is what asyncio's coroutine
        // raising instead of `CancelledError` is: the task ends with it, not cancelled.
        let dropped = body.drop_fut(&core.state);
        current::finish(&core.state, info, &core.lp);
        core.complete(
            &keep_of(cx),
            match dropped {
                Ok(()) => Err(info.cancelled_error()),
                Err(payload) => Err(Error::failed(Exception::from_panic(payload))),
            },
        );
        return Poll::Ready(());
    }

    core.state.set(Flag::Running, true);
    let node: NonNull<dyn Node> = NonNull::from(core);
    // SAFETY: the core lives in the task's allocation, which the running `Runnable` keeps
    // alive, as `cx`'s waker, until the `restore` below.
    let prev = unsafe { current::enter(node, cx.waker()) };
    let outcome = catch_unwind(AssertUnwindSafe(|| body.as_mut().fut().poll(cx)));
    current::restore(prev);
    core.state.set(Flag::Running, false);

    match outcome {
        Ok(Poll::Pending) => {
            // A task suspended is listed by `all_tasks` through the registry from now on.
            if !core.state.registered() {
                // SAFETY: a waker of the task whose metadata holds `core`.
                let task = unsafe { Shared::of_task(core, cx.waker().clone()) };
                current::register_node(&task.node());
            }
            if core.state.get(Flag::MustCancel) {
                // The task cancelled itself during this step: cancel what it awaits now
                // and come back next iteration to drop the body.
                info.cancel_waiter();
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
        Ok(Poll::Ready(value)) => {
            drop_body(core, body);
            current::finish(&core.state, info, &core.lp);
            if core.state.get(Flag::MustCancel) {
                // asyncio: a cancel requested and never delivered wins over the result.
                core.complete(&keep_of(cx), Err(info.cancelled_error()));
            } else {
                core.complete(&keep_of(cx), Ok(value));
            }
            Poll::Ready(())
        }
        Err(payload) => {
            drop_body(core, body);
            current::finish(&core.state, info, &core.lp);
            core.complete(
                &keep_of(cx),
                Err(Error::failed(Exception::from_panic(payload))),
            );
            Poll::Ready(())
        }
    }
}

/// A step dropped unrun (the loop closed with it queued or refused it, or a factory dropped the
/// task unstarted): nobody can finish the task any more, so its body is dropped and it ends
/// cancelled (asyncio leaves it pending; awaiters here would then hang).
fn abandon<F: Future>(core: &Core<F::Output>, body: Pin<&mut Body<F>>, keep: &dyn Fn() -> Keep)
where
    F::Output: 'static,
{
    let info = info_of(core);
    let describe = core.describe();
    drop_body(core, body);
    current::finish(&core.state, info, &core.lp);
    if core.done() {
        return;
    }
    let started = core.state.get(Flag::Started);
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
    core.complete(keep, Err(Error::cancelled(Some(msg))));
}
