//! The state behind [`LoopFuture`](crate::LoopFuture) and [`Task`](crate::Task), and what the
//! crate knows of a future or a task without knowing its output type ([`Node`]). The bottom of
//! the crate: it uses no other module of it but `error`.
//!
//! # Ground rules
//!
//! - A [`Core`] lives on its loop's thread. Its state sits in `Cell`s, and no borrow is held
//!   while foreign code runs: completing a future first stores the outcome, then takes the
//!   wakers and the done callbacks out, and only then wakes the wakers and schedules the
//!   callbacks with `call_soon`. Done callbacks never run inline.
//! - A plain future's core is an `Rc`. A task's core is part of the task's `async-task`
//!   allocation (its metadata, see `step`), kept alive by the task's wakers. A handle holds a
//!   pointer to the core and a [`Keep`]: the `Rc`, or a `Waker` of the task. So handles of both
//!   kinds have one type, [`Shared`] (typed) or [`NodeRef`] (type erased).

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::num::NonZeroU64;
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};

use evloop_sched::{Context, EventLoop, Exception, TimerHandle};

use crate::Error;

/// The identity of a done callback, returned by `add_done_callback` and given back to
/// `remove_done_callback`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallbackId(u64);

/// Process-wide, so an id from one future never matches a callback of another.
static NEXT_CALLBACK: AtomicU64 = AtomicU64::new(1);

/// Where a future is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Status {
    Pending = 0,
    Finished = 1,
    Failed = 2,
    Cancelled = 3,
}

/// What keeps a core alive for a handle: the plain future's `Rc`, or a `Waker` of the task
/// (async-task's own reference count keeps the task's allocation, and the core in it).
#[derive(Clone)]
pub(crate) enum Keep {
    Rc(Rc<dyn Any>),
    Waker(Waker),
}

impl Keep {
    /// Wakes the task (nothing for a plain future).
    pub(crate) fn wake_task(&self) {
        if let Keep::Waker(waker) = self {
            waker.wake_by_ref();
        }
    }
}

/// What the crate needs of a future without knowing its `T`: cancel it, ask its state, and
/// break its waker cycles when the loop closes. `keep` is what keeps `self` alive (the
/// handle's), for the methods that make a handle of it (done callbacks, a task's wake).
pub(crate) trait Node {
    /// `Future.cancel(msg)` for a future, `Task.cancel(msg)` for a task.
    fn cancel_node(&self, keep: &Keep, msg: Option<Arc<str>>) -> bool;
    fn status(&self) -> Status;
    fn task_info(&self) -> Option<&TaskInfo>;
    fn state(&self) -> &State;
    fn event_loop(&self) -> &EventLoop;
    /// Drops the wakers registered on this future (they may own the task that awaits it).
    fn clear_wakers(&self);
    fn describe(&self) -> String;
    /// Ready once the future is done; otherwise `cx`'s waker is woken when it is. Takes nothing.
    fn poll_done(&self, cx: &mut TaskContext<'_>) -> Poll<()>;
    /// asyncio's `exception()` (marks the outcome as looked at).
    fn exception_of(&self) -> Result<Option<Error>, Error>;
}

/// A future or a task without its output type: a pointer to its core and what keeps it alive.
#[derive(Clone)]
pub(crate) struct NodeRef {
    node: NonNull<dyn Node>,
    pub(crate) keep: Keep,
}

impl NodeRef {
    /// A handle of the core at `node`.
    ///
    /// # Safety
    ///
    /// `keep` keeps the core at `node` alive (it is the `Rc` holding it, or a waker of the task
    /// whose metadata holds it).
    pub(crate) unsafe fn new(node: NonNull<dyn Node>, keep: Keep) -> NodeRef {
        NodeRef { node, keep }
    }

    /// True if both are the same future or task.
    pub(crate) fn same(&self, other: &NodeRef) -> bool {
        std::ptr::addr_eq(self.node.as_ptr(), other.node.as_ptr())
    }

    pub(crate) fn cancel(&self, msg: Option<Arc<str>>) -> bool {
        self.cancel_node(&self.keep, msg)
    }
}

impl Deref for NodeRef {
    type Target = dyn Node;

    fn deref(&self) -> &Self::Target {
        // SAFETY: `NodeRef::new`'s contract (or `Shared::node`'s, a handle's `keep` cloned with
        // its core): `keep` keeps the core alive, so it outlives this borrow. The core
        // is only used on its loop's thread (a `NodeRef` is `!Send`).
        unsafe { self.node.as_ref() }
    }
}

/// What a suspended task awaits (a loop future, a task, or a sleep's timer), so that cancelling
/// the task cancels it too.
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

impl Awaited for NodeRef {
    fn cancel_awaited(self: Rc<Self>, msg: Option<Arc<str>>) {
        self.cancel(msg);
    }

    fn clear_awaited(self: Rc<Self>) {
        self.clear_wakers();
    }
}

/// A plain future's core, as its `Rc` (see [`Shared::awaited`]).
impl<T: 'static> Awaited for Core<T> {
    fn cancel_awaited(self: Rc<Self>, msg: Option<Arc<str>>) {
        let keep = Keep::Rc(self.clone());
        self.cancel_future(&|| keep.clone(), msg);
    }

    fn clear_awaited(self: Rc<Self>) {
        self.drop_wakers();
    }
}

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
    waiter: Cell<Waiter>,
}

impl TaskInfo {
    #[inline]
    pub(crate) fn new() -> TaskInfo {
        TaskInfo {
            id: next_id(),
            extra: Cell::new(None),
            waiter: Cell::new(None),
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

    pub(crate) fn set_waiter(&self, waiter: Rc<dyn Awaited>) {
        let old = self.waiter.replace(Some(waiter));
        drop(old);
    }

    pub(crate) fn take_waiter(&self) -> Option<Rc<dyn Awaited>> {
        self.waiter.take()
    }

    /// asyncio's `Task.cancel(msg)`: a request; the task ends cancelled at its next step.
    /// Returns (accepted, wake): `wake` asks the caller to wake the task, so that the step
    /// that ends it comes on the next iteration.
    pub(crate) fn cancel(&self, state: &State, msg: Option<Arc<str>>) -> (bool, bool) {
        if state.phase.get().status() != Status::Pending {
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
        state.set(Flag::MustCancel, true);
        if state.get(Flag::Running) {
            // Cancelled by its own step: the step itself takes care (see `step`).
            return (true, false);
        }
        self.cancel_waiter();
        // A task whose first step is queued (or not started by the factory) is already
        // scheduled: the wake is then a no-op, and that step sees `must_cancel`.
        (true, true)
    }

    /// Cancels what the task awaits: the future or task (with the cancel message), or the
    /// sleep's timer, which leaves the wheel now.
    pub(crate) fn cancel_waiter(&self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.cancel_awaited(self.cancel_msg());
        }
    }

    pub(crate) fn cancelled_error(&self) -> Error {
        Error::cancelled_shared(self.cancel_msg())
    }

    fn cancel_msg(&self) -> Option<Arc<str>> {
        self.read_extra(|e| e.cancel_msg.clone())
    }
}

/// A core's flags, bits of [`State`]'s flag byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Flag {
    /// Someone looked at the outcome (or cancelled): a failure is not reported on drop.
    Retrieved = 1,
    /// A task's cancel was requested (see `step`).
    MustCancel = 2,
    /// A step of the task polls its body now.
    Running = 4,
    /// The task's first step was queued or run (a factory may drop a task without starting
    /// it).
    Started = 8,
    /// The task's step was dropped unrun (see `step`): its next poll drops the body and ends
    /// it.
    Abandoned = 16,
    /// The task's future is gone (finished, panicked, dropped): see `step::Body`.
    Gone = 32,
}

/// A core's small state in one 8-byte word: its [`Phase`], its [`Flag`]s, and a task's slot in
/// its loop's registry. One word, not spread over the core and its [`TaskInfo`]: spread, each
/// part pads its few bytes to a word of its own, and a trivial task grows past 144 bytes.
pub(crate) struct State {
    phase: Cell<Phase>,
    flags: Cell<u8>,
    /// `u32::MAX`: not registered.
    slot: Cell<u32>,
}

impl State {
    fn new() -> State {
        State {
            phase: Cell::new(Phase::PENDING),
            flags: Cell::new(0),
            slot: Cell::new(u32::MAX),
        }
    }

    #[inline]
    pub(crate) fn get(&self, flag: Flag) -> bool {
        self.flags.get() & flag as u8 != 0
    }

    #[inline]
    pub(crate) fn set(&self, flag: Flag, on: bool) {
        let flags = self.flags.get();
        self.flags.set(if on {
            flags | flag as u8
        } else {
            flags & !(flag as u8)
        });
    }

    /// Sets a task's registry slot; returns the old one.
    #[inline]
    pub(crate) fn set_slot(&self, slot: u32) -> u32 {
        self.slot.replace(slot)
    }

    /// True once the task is in its loop's registry (see `current`'s ground rules).
    #[inline]
    pub(crate) fn registered(&self) -> bool {
        self.slot.get() != u32::MAX
    }
}

/// Where a core's outcome is, in one byte: its [`Status`] in the low two bits, and whether
/// the outcome slot is filled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Phase(u8);

impl Phase {
    /// Set when the outcome slot holds an outcome.
    const FILLED: u8 = 0b100;
    const PENDING: Phase = Phase(0);

    #[inline]
    fn status(self) -> Status {
        match self.0 & 0b11 {
            0 => Status::Pending,
            1 => Status::Finished,
            2 => Status::Failed,
            _ => Status::Cancelled,
        }
    }

    /// `status`, with the slot as it was.
    #[inline]
    fn with_status(self, status: Status) -> Phase {
        Phase((self.0 & Phase::FILLED) | status as u8)
    }

    #[inline]
    fn filled(self) -> bool {
        self.0 & Phase::FILLED != 0
    }

    #[inline]
    fn with_filled(self, filled: bool) -> Phase {
        if filled {
            Phase(self.0 | Phase::FILLED)
        } else {
            Phase(self.0 & !Phase::FILLED)
        }
    }
}

type DoneCallback<T> = Box<dyn FnOnce(&Shared<T>)>;

/// Who hears of the completion besides the first awaiter: more awaiters (rare: clones awaited
/// twice) and done callbacks, in one list to keep the core small.
enum Listener<T> {
    Waker(Waker),
    Callback(CallbackId, DoneCallback<T>),
}

/// The state of a future or a task.
pub(crate) struct Core<T> {
    pub(crate) lp: EventLoop,
    pub(crate) state: State,
    /// The outcome until someone takes it (`.await`, `take_result`), filled while the phase
    /// says so. Not an `Option` (a word more per task: `Result<(), Error>` leaves no niche for
    /// `None`). Used like a `Cell` (`take_value`, `set_value`): taken out and put back around
    /// each read, never borrowed.
    value: UnsafeCell<MaybeUninit<Result<T, Error>>>,
    /// The first awaiter's waker; `listeners` holds the rest and the done callbacks.
    waker: Cell<Option<Waker>>,
    /// Boxed on first use: most futures have one awaiter and no done callback, and a pending
    /// task's core should stay small (one word here instead of a `Vec`'s three).
    #[allow(clippy::box_collection, reason = "one word per core, not three")]
    listeners: Cell<Option<Box<Vec<Listener<T>>>>>,
    pub(crate) task: Option<TaskInfo>,
}

/// A handle's view of a core: the core and what keeps it alive.
pub(crate) struct Shared<T> {
    core: NonNull<Core<T>>,
    keep: Keep,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            core: self.core,
            keep: self.keep.clone(),
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = Core<T>;

    #[inline]
    fn deref(&self) -> &Core<T> {
        // SAFETY: `keep` keeps the core alive (`Shared::new_future`, `Shared::of_task`), and a
        // core is only used on its loop's thread (a `Shared` is `!Send`).
        unsafe { self.core.as_ref() }
    }
}

impl<T: 'static> Shared<T> {
    /// A plain future's core, in an `Rc`.
    pub(crate) fn new_future(lp: EventLoop) -> Shared<T> {
        let rc = Rc::new(Core::new(lp, None));
        Shared {
            core: NonNull::from(&*rc),
            keep: Keep::Rc(rc),
        }
    }

    /// A handle of the task whose metadata holds `core`.
    ///
    /// # Safety
    ///
    /// `waker` is a waker of the `async-task` task whose metadata holds `core` (so it keeps
    /// `core` alive).
    pub(crate) unsafe fn of_task(core: &Core<T>, waker: Waker) -> Shared<T> {
        Shared {
            core: NonNull::from(core),
            keep: Keep::Waker(waker),
        }
    }

    /// This future or task without its type.
    pub(crate) fn node(&self) -> NodeRef {
        let node: NonNull<dyn Node> = self.core;
        NodeRef {
            node,
            keep: self.keep.clone(),
        }
    }

    /// This future or task as what a task awaits: a plain future's `Rc` as it is, a task's
    /// handle in an `Rc` of its own.
    fn awaited(&self) -> Rc<dyn Awaited> {
        if let Keep::Rc(rc) = &self.keep
            && let Ok(core) = rc.clone().downcast::<Core<T>>()
        {
            return core;
        }
        Rc::new(self.node())
    }

    /// Stores the outcome, wakes the awaiters and schedules the done callbacks. False if the
    /// future was already done (the outcome is dropped).
    pub(crate) fn complete(&self, outcome: Result<T, Error>) -> bool {
        let core: &Core<T> = self;
        core.complete(&|| self.keep.clone(), outcome)
    }

    /// `Future.cancel(msg)` for a future, `Task.cancel(msg)` for a task.
    pub(crate) fn cancel_any(&self, msg: Option<Arc<str>>) -> bool {
        let keep = &self.keep;
        let core: &Core<T> = self;
        core.cancel_with(keep, msg)
    }

    /// asyncio's `Future.cancel(msg)`, also for a task (`Task::retire`).
    pub(crate) fn cancel_future(&self, msg: Option<Arc<str>>) -> bool {
        let core: &Core<T> = self;
        core.cancel_future(&|| self.keep.clone(), msg)
    }

    pub(crate) fn add_callback(&self, cb: DoneCallback<T>) -> CallbackId {
        let id = CallbackId(NEXT_CALLBACK.fetch_add(1, Ordering::Relaxed));
        if self.done() {
            schedule_done(&self.lp, self.clone(), cb);
        } else {
            self.push_listener(Listener::Callback(id, cb));
        }
        id
    }

    /// The `Future::poll` of every awaitable in this crate: hands the outcome out once.
    /// `current` is the task whose step runs now, if any.
    pub(crate) fn poll_result(
        &self,
        current: Option<&dyn Node>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<T, Error>> {
        if let Some(cur) = current {
            if std::ptr::addr_eq(std::ptr::from_ref(cur), self.core.as_ptr()) {
                return Poll::Ready(Err(Error::invalid_state("a task cannot await on itself")));
            }
            if !cur.event_loop().ptr_eq(&self.lp) {
                return Poll::Ready(Err(Error::invalid_state(
                    "the future is attached to a different loop",
                )));
            }
        }
        if self.done() {
            return Poll::Ready(self.take_result());
        }
        self.register_waker(cx);
        if let Some(info) = current.and_then(|cur| cur.task_info()) {
            info.set_waiter(self.awaited());
        }
        Poll::Pending
    }
}

/// Schedules a done callback with the handle it receives.
fn schedule_done<T: 'static>(lp: &EventLoop, me: Shared<T>, cb: DoneCallback<T>) {
    // On a closed loop the callback cannot run any more; `call_soon` drops it.
    let _ = lp.call_soon(move || cb(&me));
}

impl<T: 'static> Core<T> {
    pub(crate) fn new(lp: EventLoop, task: Option<TaskInfo>) -> Core<T> {
        Core {
            lp,
            state: State::new(),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            waker: Cell::new(None),
            listeners: Cell::new(None),
            task,
        }
    }

    /// A handle of this core from `keep` (see [`Node`]).
    fn handle(&self, keep: Keep) -> Shared<T> {
        Shared {
            core: NonNull::from(self),
            keep,
        }
    }

    /// Stores the outcome, wakes the awaiters and schedules the done callbacks, each with a
    /// handle made from what `keep` gives (called only if there is a callback). False if the
    /// future was already done (the outcome is dropped).
    pub(crate) fn complete(&self, keep: &dyn Fn() -> Keep, outcome: Result<T, Error>) -> bool {
        if self.done() {
            return false;
        }
        let status = match &outcome {
            Ok(_) => Status::Finished,
            Err(e) if e.is_cancelled() => Status::Cancelled,
            Err(_) => Status::Failed,
        };
        let phase = self.state.phase.get();
        self.state.phase.set(phase.with_status(status));
        // The slot of a pending core is empty: nothing is dropped here.
        self.set_value(Some(outcome));
        let first = self.waker.take();
        let listeners = self.listeners.take().map(|b| *b).unwrap_or_default();
        if let Some(waker) = first {
            waker.wake();
        }
        let mut me: Option<Shared<T>> = None;
        for listener in listeners {
            match listener {
                Listener::Waker(waker) => waker.wake(),
                Listener::Callback(_, cb) => {
                    let me = me.get_or_insert_with(|| self.handle(keep()));
                    schedule_done(&self.lp, me.clone(), cb);
                }
            }
        }
        true
    }

    /// asyncio's `Future.cancel(msg)` (the done callbacks get handles from `keep`).
    fn cancel_future(&self, keep: &dyn Fn() -> Keep, msg: Option<Arc<str>>) -> bool {
        // Like asyncio, cancel() silences the never-retrieved report even on a done future.
        self.state.set(Flag::Retrieved, true);
        self.complete(keep, Err(Error::cancelled_shared(msg)))
    }

    /// `Future.cancel(msg)` for a future, `Task.cancel(msg)` for a task.
    fn cancel_with(&self, keep: &Keep, msg: Option<Arc<str>>) -> bool {
        let Some(info) = &self.task else {
            return self.cancel_future(&|| keep.clone(), msg);
        };
        let (accepted, wake) = info.cancel(&self.state, msg);
        if wake {
            keep.wake_task();
        }
        accepted
    }

    /// The listener list is taken out of its cell and put back around each change; nothing in
    /// between runs foreign code.
    fn push_listener(&self, listener: Listener<T>) {
        let mut list = self.listeners.take().unwrap_or_default();
        list.push(listener);
        self.listeners.set(Some(list));
    }
}

impl<T> Core<T> {
    #[inline]
    pub(crate) fn status(&self) -> Status {
        self.state.phase.get().status()
    }

    #[inline]
    pub(crate) fn done(&self) -> bool {
        self.status() != Status::Pending
    }

    /// Takes the outcome out of its slot, as `Cell::take` would.
    #[inline]
    fn take_value(&self) -> Option<Result<T, Error>> {
        let phase = self.state.phase.get();
        if !phase.filled() {
            return None;
        }
        self.state.phase.set(phase.with_filled(false));
        // SAFETY: the slot was filled (the phase says so, and only `set_value` says so, after
        // writing the value), and the phase now says empty, so the value is moved out exactly
        // once. No reference into the slot exists (it is never borrowed), and a core stays on
        // its loop's thread.
        Some(unsafe { (*self.value.get()).assume_init_read() })
    }

    /// Puts an outcome in the slot (or empties it), as `Cell::set` would: the old one, if any,
    /// is dropped after the new one is in place.
    #[inline]
    fn set_value(&self, value: Option<Result<T, Error>>) {
        let old = self.take_value();
        if let Some(value) = value {
            // SAFETY: the slot is empty (just taken), so nothing is overwritten; it is not
            // borrowed, and a core stays on its loop's thread.
            unsafe { (*self.value.get()).write(value) };
            self.state
                .phase
                .set(self.state.phase.get().with_filled(true));
        }
        drop(old);
    }
}

impl<T: 'static> Core<T> {
    fn set_listeners(&self, list: Vec<Listener<T>>) {
        self.listeners
            .set((!list.is_empty()).then(|| Box::new(list)));
    }

    pub(crate) fn result_cloned(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.state.set(Flag::Retrieved, true);
        // `T::clone` is foreign code: it runs with the value out of its cell, so a re-entrant
        // read finds it taken instead of aliasing it.
        let value = self.take_value();
        let out = match &value {
            Some(outcome) => outcome.clone(),
            None if self.done() => Err(Error::invalid_state("result was already taken")),
            None => Err(Error::invalid_state("result is not set")),
        };
        self.set_value(value);
        out
    }

    pub(crate) fn take_result(&self) -> Result<T, Error> {
        self.state.set(Flag::Retrieved, true);
        match self.take_value() {
            // Errors are cloned, so every awaiter of a failed or cancelled future sees it.
            Some(Err(err)) => {
                self.set_value(Some(Err(err.clone())));
                Err(err)
            }
            Some(Ok(value)) => Ok(value),
            None if self.done() => Err(Error::invalid_state("result was already taken")),
            None => Err(Error::invalid_state("result is not set")),
        }
    }

    pub(crate) fn exception(&self) -> Result<Option<Error>, Error> {
        self.state.set(Flag::Retrieved, true);
        // Nothing foreign runs between the take and the put-back (an `Error` clone is an `Arc`'s).
        let value = self.take_value();
        let out = match &value {
            Some(Ok(_)) => Ok(None),
            Some(Err(e)) if e.is_cancelled() => Err(e.clone()),
            Some(Err(e)) => Ok(Some(e.clone())),
            None if self.done() => Err(Error::invalid_state("result was already taken")),
            None => Err(Error::invalid_state("exception is not set")),
        };
        self.set_value(value);
        out
    }

    pub(crate) fn remove_callback(&self, id: CallbackId) -> usize {
        let removed: Vec<_> = {
            let listeners = self.listeners.take().map(|b| *b).unwrap_or_default();
            let (gone, kept): (Vec<_>, Vec<_>) = listeners
                .into_iter()
                .partition(|l| matches!(l, Listener::Callback(i, _) if *i == id));
            self.set_listeners(kept);
            gone
        };
        // Dropped outside the borrow: a closure's destructor may use this future.
        removed.len()
    }

    /// Registers `cx`'s waker to be woken at completion, once (a waker already registered that
    /// would wake the same task is kept).
    #[inline]
    fn register_waker(&self, cx: &TaskContext<'_>) {
        match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
            Some(w) => {
                self.waker.set(Some(w));
                let listeners = self.listeners.take();
                let known = listeners
                    .iter()
                    .flat_map(|b| b.iter())
                    .any(|l| matches!(l, Listener::Waker(w) if w.will_wake(cx.waker())));
                self.listeners.set(listeners);
                if !known {
                    self.push_listener(Listener::Waker(cx.waker().clone()));
                }
            }
            None => self.waker.set(Some(cx.waker().clone())),
        }
    }

    /// Drops the registered wakers (see [`Node::clear_wakers`]).
    pub(crate) fn drop_wakers(&self) {
        let first = self.waker.take();
        let wakers: Vec<_> = {
            let listeners = self.listeners.take().map(|b| *b).unwrap_or_default();
            let (wakers, kept): (Vec<_>, Vec<_>) = listeners
                .into_iter()
                .partition(|l| matches!(l, Listener::Waker(_)));
            self.set_listeners(kept);
            wakers
        };
        drop((first, wakers));
    }

    pub(crate) fn describe(&self) -> String {
        let state = match self.status() {
            Status::Pending => "pending",
            Status::Finished => "finished",
            Status::Failed => "finished with an exception",
            Status::Cancelled => "cancelled",
        };
        match &self.task {
            Some(info) => format!("<Task {state} name='{}'>", info.name()),
            None => format!("<LoopFuture {state}>"),
        }
    }
}

impl<T: 'static> Node for Core<T> {
    fn cancel_node(&self, keep: &Keep, msg: Option<Arc<str>>) -> bool {
        self.cancel_with(keep, msg)
    }

    fn status(&self) -> Status {
        Core::status(self)
    }

    fn task_info(&self) -> Option<&TaskInfo> {
        self.task.as_ref()
    }

    fn state(&self) -> &State {
        &self.state
    }

    fn event_loop(&self) -> &EventLoop {
        &self.lp
    }

    fn clear_wakers(&self) {
        self.drop_wakers();
    }

    fn describe(&self) -> String {
        Core::describe(self)
    }

    fn poll_done(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.done() {
            return Poll::Ready(());
        }
        self.register_waker(cx);
        Poll::Pending
    }

    fn exception_of(&self) -> Result<Option<Error>, Error> {
        self.exception()
    }
}

impl<T> Drop for Core<T> {
    fn drop(&mut self) {
        let value = self.take_value();
        if self.status() != Status::Failed || self.state.get(Flag::Retrieved) {
            return;
        }
        let Some(Err(err)) = value else {
            return;
        };
        // asyncio uses the key `future` for tasks too.
        let (message, what) = match &self.task {
            Some(info) => (
                "Task exception was never retrieved",
                format!("<Task finished with an exception name='{}'>", info.name()),
            ),
            None => (
                "Future exception was never retrieved",
                "<LoopFuture finished with an exception>".to_owned(),
            ),
        };
        let exception = err
            .take_exception()
            .unwrap_or_else(|| Exception::from_error(err.clone()));
        self.lp.call_exception_handler(
            Context::new(message)
                .with_exception(exception)
                .with("future", what),
        );
    }
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
