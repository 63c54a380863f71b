//! A task's single allocation: the [`Core`] (state, outcome, awaiters, and in its [`Flags`] the
//! step and waker state), its [`TaskInfo`], and as the core's tail the [`Body`] (the future
//! itself), in one `Rc`. This file owns the task's `Waker` and its ready-queue entry
//! ([`RawStep`]), both of which are a pointer to that allocation and a static table of
//! functions.
//!
//! # Ground rules
//!
//! - Reference counts: the `Rc`'s own count, touched only on the loop's thread, is held by the
//!   handles (`Task`, `AnyTask`, `Rc<dyn Node>`), by each queued step, and by the task's wakers
//!   *as a group*. Wakers are `Send + Sync`, so they count themselves in the atomic
//!   [`Flags::wakers`]; the group's one `Rc` count is taken when the task is spawned and given
//!   back when the last waker goes. Where that happens on another thread, the release is sent
//!   to the loop with `call_soon_threadsafe` (a closed loop leaks it: better than touching the
//!   `Rc` off its thread). A task still pending then can never be woken again: it is
//!   abandoned (its body dropped on the loop's thread, and it ends cancelled).
//! - The task holds one waker of its own while it is pending (`TaskInfo::own_waker`), released
//!   when it completes or when the loop closes (to break the cycle through the futures it
//!   awaits). So a waker count never climbs back from zero: only an existing waker is cloned,
//!   and the waker a step lends to the body (`borrowed_waker`) is backed by the task's own.
//! - The body is pinned where it lives and dropped there (`drop_body`), never moved.
//! - At most one step is queued at a time: `Flags::queued`, set by the wake that queues a step
//!   and cleared when that step starts. A wake on the loop's thread queues the step directly,
//!   with no allocation and no atomic operation. A wake on another thread sets the `REMOTE`
//!   bit of `wakers` (so that a burst of them sends one message) and sends a waker clone
//!   through `call_soon_threadsafe`; on the loop, the message clears the bit and wakes the
//!   task there.
//! - Other threads touch only `wakers` and, through the core's `lp`, the loop's `RemoteLoop`
//!   (`EventLoop::remote_ref`: both written before the first waker exists, never again); the
//!   body, the rest of the core, `queued` and the `Rc`'s count are touched on the loop's
//!   thread only, and the body is dropped there.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::task::{Context as TaskContext, Poll, RawWaker, RawWakerVTable, Waker};
use std::thread::{self, ThreadId};

use evloop_sched::{EventLoop, RawStep, RemoteLoop, StepName, StepVTable};

use crate::core::{Core, Flags, Node, Shared, Tail};
use crate::current::QueuedTasks;
use crate::step::{self, TaskInfo};

/// A task's core, with its body as the tail.
pub(crate) type TaskCore<F> = Core<<F as Future>::Output, Body<F>>;

/// Bit 0 of [`Flags::wakers`]: a wake from another thread is on its way to the loop.
const REMOTE: u32 = 1;
/// One waker in [`Flags::wakers`]: the count sits above the `REMOTE` bit.
const WAKER: u32 = 2;
/// Wakers beyond this many (about a billion) mean a leak of `Waker`s; abort rather than
/// overflow, as `Arc` does. 32 bits, not a word: a trivial task stays within 120 bytes.
const MAX_WAKERS: u32 = i32::MAX as u32;

/// The task side of a task's core: its future. Its flags (whether a step is queued, where the
/// future is in its life, the waker count) are in the core's [`Flags`], which has room for
/// them (here they would cost a padded word per task).
pub(crate) struct Body<F> {
    /// The future while the core's `flags.life` is `Live` (a flag rather than an `Option<F>`:
    /// an async block offers no niche, so the `Option` would cost a whole word per task).
    /// Pinned: it is never moved out of the allocation, only dropped in place (by `drop_body`,
    /// at the latest when the core is dropped: `Tail::dying`).
    fut: UnsafeCell<ManuallyDrop<F>>,
}

/// Where a task's future is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Life {
    /// In `fut`, to be polled.
    Live,
    /// Its destructor is running: a re-entrant look at the body finds it gone.
    Dropping,
    /// Finished, panicked or dropped by a cancellation: `fut` holds nothing.
    Gone,
}

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

/// Spawns `fut` as a task of `lp`: returns its core (as handles see it) and its first step,
/// not yet queued. The task is not in the loop's registry yet: it joins it if its body
/// returns `Pending` (`step::run`) or a factory gets it (see `current`'s ground rules).
pub(crate) fn spawn<F>(lp: &EventLoop, fut: F) -> (Shared<F::Output>, FirstStep)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let body = Body {
        fut: UnsafeCell::new(ManuallyDrop::new(fut)),
    };
    // The task's own waker, and its first step, which counts as a wake.
    let flags = Flags::new(true, Life::Live, WAKER);
    let info = Some(TaskInfo::new());
    let core: Rc<TaskCore<F>> = Rc::new(Core::with_tail(lp.clone(), flags, info, body));
    // One count for the wakers as a group (the task's own waker is its first member), given
    // back by the last waker (`drop_waker`), and one for the first step.
    std::mem::forget(core.clone());
    let first = FirstStep {
        ptr: nonnull(Rc::into_raw(core.clone())),
        vtable: &Body::<F>::STEP_VTABLE,
    };
    (core, first)
}

fn nonnull<T>(ptr: *const T) -> NonNull<()> {
    // `Rc::into_raw` and `Rc::as_ptr` never return null.
    NonNull::new(ptr.cast_mut().cast::<()>()).unwrap_or_else(|| unreachable!("an Rc is never null"))
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
        // SAFETY: `ptr` owns one count of a task core of this thread, which the vtable's
        // functions give back; the `RawStep` calls exactly one of them once, here on the
        // loop's thread, and `this` is never dropped, so the count is handed over once.
        let step = unsafe { RawStep::new(this.ptr, this.vtable) };
        lp.call_soon_step(step)
    }

    /// Runs the step now (the eager factory).
    pub(crate) fn run(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: as in `queue`: the count `ptr` owns is handed to `run`, once.
        unsafe { (this.vtable.run)(this.ptr) }
    }
}

impl Drop for FirstStep {
    fn drop(&mut self) {
        // SAFETY: as in `queue`: the count `ptr` owns is handed to `drop`, once.
        unsafe { (self.vtable.drop)(self.ptr) }
    }
}

/// The task is done (or dropped pending): it leaves the registry and drops what it awaited.
pub(crate) fn finish<F>(core: &TaskCore<F>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    if let Some(info) = &core.task {
        info.finish(&core.lp);
    }
}

/// Forgets the queued step (it was dropped unrun while the task ran), so that the next wake
/// queues one again.
pub(crate) fn unqueue<F>(core: &TaskCore<F>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    core.flags.queued.set(false);
}

/// True while the task's body is there (not finished, not dropped).
#[inline]
pub(crate) fn has_body<F>(core: &TaskCore<F>) -> bool
where
    F: Future + 'static,
    F::Output: 'static,
{
    core.flags.life.get() == Life::Live
}

/// True while the task holds its own waker.
#[inline]
pub(crate) fn has_own_waker<F>(core: &TaskCore<F>) -> bool
where
    F: Future + 'static,
    F::Output: 'static,
{
    core.task.as_ref().is_some_and(|info| info.own_waker.get())
}

/// Polls the body once. The caller makes sure it is there and that no other step runs it.
#[inline]
pub(crate) fn poll_body<F>(core: &TaskCore<F>, cx: &mut TaskContext<'_>) -> Poll<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if core.flags.life.get() != Life::Live {
        unreachable!("the caller checked that the body is there");
    }
    // SAFETY: the future is live (above), lives in the `Rc`'s allocation, which never moves,
    // and is only ever dropped in place, so pinning it is sound. The exclusive reference is
    // the only one: a task's steps run one at a time on the loop's thread (`run` marks the
    // task running, and `abandon` leaves a running body alone), and `has_body`/`drop_body`
    // are not called by the body itself.
    let body: &mut F = unsafe { &mut *core.tail.fut.get() };
    // SAFETY: see above: pinned in place.
    unsafe { Pin::new_unchecked(body) }.poll(cx)
}

/// Marks a body gone once its destructor returned, or unwound.
struct MarkGone<'a>(&'a Cell<Life>);

impl Drop for MarkGone<'_> {
    fn drop(&mut self) {
        self.0.set(Life::Gone);
    }
}

/// Drops the body in place, as `Pin` requires: never moved first (its destructor may panic:
/// the caller catches it). A re-entrant call during that destructor does nothing.
#[inline]
pub(crate) fn drop_body<F>(core: &TaskCore<F>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    if !has_body(core) {
        return;
    }
    core.flags.life.set(Life::Dropping);
    let _gone = MarkGone(&core.flags.life);
    // SAFETY: as in `poll_body`: not called while the body is being polled, and during the
    // destructor `Dropping` keeps every other path away from the slot. The future was live,
    // is dropped where it is pinned, and `MarkGone` then records that it is gone, also if
    // its destructor panics, so it is never dropped twice.
    unsafe { ManuallyDrop::drop(&mut *core.tail.fut.get()) }
}

/// The waker a step lends to the body: no count of its own, backed by the task's own waker.
#[inline]
pub(crate) fn borrowed_waker<F>(core: &Rc<TaskCore<F>>) -> ManuallyDrop<Waker>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let raw = RawWaker::new(Rc::as_ptr(core).cast(), &Body::<F>::WAKER_VTABLE);
    // SAFETY: the vtable's contract holds for this pointer as long as a waker count backs it:
    // the task's own, held while the task is pending (`step::run` checks it), and the
    // `ManuallyDrop` keeps this borrowed waker from giving back a count it does not own.
    ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
}

/// A pointer sent to the loop to give back the wakers' `Rc` count there.
struct ReleaseOnLoop<F>(*const TaskCore<F>)
where
    F: Future + 'static,
    F::Output: 'static;

// SAFETY: the pointer is only dereferenced by `release`, on the loop's thread (it is sent as a
// `call_soon_threadsafe` callback); dropped unrun elsewhere (a closed loop), it leaks the task.
unsafe impl<F> Send for ReleaseOnLoop<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
}

impl<F> ReleaseOnLoop<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn release(self) {
        // SAFETY: the count the wakers held, given back once, on the loop's thread.
        unsafe { Body::<F>::release_group(self.0) }
    }
}

impl<F> Body<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    const WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::clone_waker,
        Self::wake,
        Self::wake_by_ref,
        Self::drop_waker,
    );

    const STEP_VTABLE: StepVTable = StepVTable {
        run: Self::run_step,
        drop: Self::drop_step,
        inspect: Some(Self::inspect_step),
    };

    /// The waker state of the task at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to a live task core of this `F` (any thread may call this).
    unsafe fn state<'a>(ptr: *const ()) -> &'a AtomicU32 {
        // SAFETY: the caller's contract; only the atomic is borrowed.
        unsafe { &(*ptr.cast::<TaskCore<F>>()).flags.wakers }
    }

    /// The flag of the task's own waker, for the task at `ptr`.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `ptr` points to a live task core of this `F`.
    unsafe fn own_waker<'a>(ptr: *const ()) -> &'a Cell<bool> {
        // SAFETY: the caller's contract; a task core always has its task info (`spawn`).
        match unsafe { &(*ptr.cast::<TaskCore<F>>()).task } {
            Some(info) => &info.own_waker,
            None => unreachable!("a task core has task info"),
        }
    }

    /// The loop's cross-thread face, for the task at `ptr`.
    ///
    /// # Safety
    ///
    /// As [`Flags::wakers`]. The reference is good while the caller keeps the task alive (the
    /// task holds its loop).
    unsafe fn remote<'a>(ptr: *const ()) -> &'a RemoteLoop {
        // SAFETY: the caller's contract keeps the core alive, and with it the loop its `lp`
        // holds. Two words are read, both written before any waker existed and never again:
        // the pointer in `lp`, and the loop's `RemoteLoop` (`EventLoop::remote_ref` reads
        // nothing else). So reading them from any thread races with no write, and no
        // reference count of the loop is touched.
        unsafe { (*ptr.cast::<TaskCore<F>>()).lp.remote_ref() }
    }

    /// # Safety
    ///
    /// `ptr` is the data of a waker of this vtable (it holds a count).
    unsafe fn clone_waker(ptr: *const ()) -> RawWaker {
        // SAFETY: the caller's contract: a live waker keeps the core alive.
        let state = unsafe { Self::state(ptr) };
        // Relaxed, as `Arc::clone`: the new waker is made from one that already counts.
        let old = state.fetch_add(WAKER, Ordering::Relaxed);
        if old > MAX_WAKERS {
            std::process::abort();
        }
        RawWaker::new(ptr, &Self::WAKER_VTABLE)
    }

    /// # Safety
    ///
    /// As [`Body::clone_waker`]; the waker's count is consumed.
    unsafe fn wake(ptr: *const ()) {
        // SAFETY: the caller's contract, passed on: the waker's count is still held during
        // `wake_by_ref` and given back by `drop_waker`.
        unsafe {
            Self::wake_by_ref(ptr);
            Self::drop_waker(ptr);
        }
    }

    /// # Safety
    ///
    /// As [`Body::clone_waker`].
    unsafe fn wake_by_ref(ptr: *const ()) {
        // SAFETY: the caller's contract: a live waker keeps the core alive.
        let remote = unsafe { Self::remote(ptr) };
        if on_thread(remote.thread_id()) {
            // SAFETY: on the loop's thread, with the core kept alive by the caller's waker.
            unsafe { Self::wake_here(ptr) };
            return;
        }
        // SAFETY: as above.
        let state = unsafe { Self::state(ptr) };
        if state.fetch_or(REMOTE, Ordering::AcqRel) & REMOTE != 0 {
            // A wake is on its way already; the step it queues will poll the body.
            return;
        }
        // A waker clone travels to the loop, which wakes the task there. A closed loop drops
        // it here instead: a waker of a closed loop does nothing.
        // SAFETY: the caller's waker backs the clone.
        let waker = unsafe { Waker::from_raw(Self::clone_waker(ptr)) };
        let _ = remote.call_soon_threadsafe(move || {
            // SAFETY: this callback runs on the loop's thread; `waker` keeps the core alive.
            unsafe {
                Self::state(waker.data()).fetch_and(!REMOTE, Ordering::AcqRel);
                Self::wake_here(waker.data());
            }
            drop(waker);
        });
    }

    /// Queues a step of the task at `ptr`, unless one is queued already.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `ptr` is `Rc::as_ptr` of a live task core of this `F`.
    unsafe fn wake_here(ptr: *const ()) {
        let core = ptr.cast::<TaskCore<F>>();
        // SAFETY: the caller's contract: on the loop's thread, the `Rc` is alive; the step
        // owns the count taken here, which `run_step` or `drop_step` gives back once.
        unsafe {
            if (*core).flags.queued.replace(true) {
                // A step is queued already; it will poll the body.
                return;
            }
            Rc::increment_strong_count(core);
            let step = RawStep::new(nonnull(core), &Self::STEP_VTABLE);
            // A closed loop drops the step, here on its own thread: the task ends cancelled.
            let _ = (*core).lp.call_soon_step(step);
        }
    }

    /// # Safety
    ///
    /// As [`Body::clone_waker`]; the waker's count is consumed.
    unsafe fn drop_waker(ptr: *const ()) {
        // SAFETY: the caller's contract: the core is alive until the group's count goes.
        let state = unsafe { Self::state(ptr) };
        // Release, then Acquire on the last one, as `Arc::drop`.
        if state.fetch_sub(WAKER, Ordering::Release) & !REMOTE != WAKER {
            return;
        }
        fence(Ordering::Acquire);
        // The last waker: give back the group's `Rc` count, on the loop's thread.
        // SAFETY: the group's count still keeps the core alive.
        let remote = unsafe { Self::remote(ptr) };
        let core = ptr.cast::<TaskCore<F>>();
        if on_thread(remote.thread_id()) {
            // SAFETY: the group's count, given back once, on the loop's thread.
            unsafe { Self::release_group(core) };
        } else {
            let remote = remote.clone();
            let release = ReleaseOnLoop(core);
            let _ = remote.call_soon_threadsafe(move || release.release());
        }
    }

    /// Gives back the wakers' `Rc` count. A task still pending then can never be woken again
    /// (the loop closed, or whatever would have woken it was dropped): it is abandoned, so its
    /// body is dropped now, on the loop's thread, and it ends cancelled.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `core` owns the group's count, handed over here.
    unsafe fn release_group(core: *const TaskCore<F>) {
        // SAFETY: the caller's contract: the count is taken over here.
        let core = unsafe { Rc::from_raw(core) };
        step::abandon(&core);
    }

    /// Runs a queued step.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `ptr` owns one `Rc` count of a task core of this `F`.
    unsafe fn run_step(ptr: NonNull<()>) {
        // SAFETY: the caller's contract: the count is taken over here.
        let core = unsafe { Rc::from_raw(ptr.as_ptr().cast_const().cast::<TaskCore<F>>()) };
        // Cleared before the poll: a wake during it queues the next step.
        core.flags.queued.set(false);
        step::run(&core);
    }

    /// Shows a queued step to `all_tasks`: a pending task not in the registry (one whose first
    /// step is queued) joins the `QueuedTasks` sink. To debug mode, about to run the step, it
    /// gives the task's description as the `StepName`.
    ///
    /// # Safety
    ///
    /// On the loop's thread; `ptr` is the pointer of a queued step (it owns a count).
    unsafe fn inspect_step(ptr: NonNull<()>, sink: &mut dyn Any) {
        let core = ptr.as_ptr().cast_const().cast::<TaskCore<F>>();
        // SAFETY: the caller's contract: the step's count keeps the core alive; on its thread.
        let task = unsafe { &*core };
        if let Some(name) = sink.downcast_mut::<StepName>() {
            // Debug mode, about to run this step: the name its slow-step warning would give.
            name.0 = Some(task.describe());
            return;
        }
        let Some(sink) = sink.downcast_mut::<QueuedTasks>() else {
            return;
        };
        let unlisted = task.task.as_ref().is_some_and(|info| !info.registered()) && !task.done();
        if unlisted {
            // SAFETY: as above; the new `Rc` owns a count of its own.
            let node: Rc<dyn Node> = unsafe {
                Rc::increment_strong_count(core);
                Rc::from_raw(core)
            };
            sink.0.push(node);
        }
    }

    /// Drops a queued step unrun: the task ends cancelled.
    ///
    /// # Safety
    ///
    /// As [`Body::run_step`].
    unsafe fn drop_step(ptr: NonNull<()>) {
        // SAFETY: the caller's contract: the count is taken over here.
        let core = unsafe { Rc::from_raw(ptr.as_ptr().cast_const().cast::<TaskCore<F>>()) };
        step::abandon(&core);
    }
}

impl<F> Tail for Body<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    /// # Safety
    ///
    /// As [`Tail::wake_task`].
    unsafe fn wake_task(&self, core: *const ()) {
        // SAFETY: the caller's contract.
        if unsafe { Self::own_waker(core) }.get() {
            // SAFETY: the task's own waker counts; the caller's contract covers the rest.
            unsafe { Self::wake_by_ref(core) };
        }
    }

    /// # Safety
    ///
    /// As [`Tail::finish_task`].
    unsafe fn finish_task(&self, core: *const ()) {
        // SAFETY: the caller's contract.
        finish(unsafe { &*core.cast::<TaskCore<F>>() });
        // SAFETY: the caller's contract.
        unsafe { self.forget_task_waker(core) };
    }

    /// # Safety
    ///
    /// As [`Tail::forget_task_waker`].
    unsafe fn forget_task_waker(&self, core: *const ()) {
        // SAFETY: the caller's contract.
        if !unsafe { Self::own_waker(core) }.replace(false) {
            return;
        }
        // SAFETY: the caller's contract: the core is alive.
        let state = unsafe { Self::state(core) };
        // The usual case: the task's own waker is the only one (no clone lives, none is on
        // its way here). Nothing else can add one then (only an existing waker is cloned), so
        // a plain store replaces the atomic read-modify-write. Acquire: ordered after the
        // `Release` decrements of the wakers dropped before.
        if state.load(Ordering::Acquire) == WAKER {
            state.store(0, Ordering::Relaxed);
            // SAFETY: the group's count, given back once, on the loop's thread (the caller's
            // contract): its last waker, the task's own, is gone.
            unsafe { Self::release_group(core.cast::<TaskCore<F>>()) };
        } else {
            // SAFETY: the task's own waker's count, given back once (the flag is now false).
            unsafe { Self::drop_waker(core) };
        }
    }

    /// # Safety
    ///
    /// As [`Tail::node`].
    unsafe fn node(&self, core: *const ()) -> Rc<dyn Node> {
        let core = core.cast::<TaskCore<F>>();
        // SAFETY: the caller's contract: `core` is `Rc::as_ptr` of a live `Rc`, and a core with
        // this tail is only ever made as an `Rc<TaskCore<F>>` (`spawn`).
        unsafe {
            Rc::increment_strong_count(core);
            Rc::from_raw(core)
        }
    }

    /// # Safety
    ///
    /// As [`Tail::dying`].
    unsafe fn dying(&self, core: *const ()) {
        // SAFETY: the caller's contract: the core being dropped, of this type.
        let core = unsafe { &*core.cast::<TaskCore<F>>() };
        step::dying(core);
        // A body still there now (a core completed some other way than by its steps) is
        // dropped with the core, in place.
        drop_body(core);
    }
}
