//! The shared state behind [`LoopFuture`](crate::LoopFuture) and [`Task`](crate::Task).
//!
//! # Ground rules
//!
//! A `Core` lives on the loop's thread (it is reached through an `Rc`). Its state sits in
//! `Cell`s and `RefCell`s, and no borrow is held while foreign code runs: completing a future
//! first stores the outcome, then takes the wakers and the done callbacks out, releases every
//! borrow, and only then wakes the wakers and schedules the callbacks with `call_soon`. Done
//! callbacks never run inline.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};

use evloop_sched::{Context, EventLoop, Exception};

use crate::Error;
use crate::current;
use crate::raw::Life;
use crate::step::Awaited;
use crate::task::TaskInfo;

/// The identity of a done callback, returned by `add_done_callback` and given back to
/// `remove_done_callback`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallbackId(u64);

/// Process-wide, so an id from one future never matches a callback of another.
static NEXT_CALLBACK: AtomicU64 = AtomicU64::new(1);

/// Where a future is. Its discriminant is the low two bits of a [`Phase`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Status {
    Pending = 0,
    Finished = 1,
    Failed = 2,
    Cancelled = 3,
}

/// A core's [`Status`] and whether its outcome slot is filled, in one byte.
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

/// Every flag of a core, in one word: its phase, whether its outcome was looked at, and the
/// task's step and waker state (`raw`'s ground rules; unused by a plain future).
///
/// In one struct of exactly eight bytes, not spread over the core and its parts: spread, each
/// part pads its few flag bytes to a word of its own, and a trivial task's allocation grows
/// past a 128-byte allocator chunk. The fields are separate memory locations, so other
/// threads may touch `wakers` (and only it) while the loop's thread uses the rest.
pub(crate) struct Flags {
    phase: Cell<Phase>,
    /// Someone looked at the outcome (or cancelled): a failure is not reported on drop.
    retrieved: Cell<bool>,
    /// A step of the task is in the ready queue (or is the unstarted first step).
    pub(crate) queued: Cell<bool>,
    /// Where the task's future is in its life (see `raw::Body`).
    pub(crate) life: Cell<Life>,
    /// `raw::REMOTE`, plus `raw::WAKER` times the number of the task's live wakers.
    pub(crate) wakers: AtomicU32,
}

impl Flags {
    /// A pending core's flags; `queued`, `life` and `wakers` as a task's spawn sets them (a
    /// plain future: `false`, `Life::Gone`, 0).
    pub(crate) fn new(queued: bool, life: Life, wakers: u32) -> Flags {
        Flags {
            phase: Cell::new(Phase::PENDING),
            retrieved: Cell::new(false),
            queued: Cell::new(queued),
            life: Cell::new(life),
            wakers: AtomicU32::new(wakers),
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

/// The state of a future or a task, and for a task its body: one allocation either way.
///
/// `B`, the tail, is what the kind adds: nothing for a plain future ([`Plain`]), the body and
/// the waker state for a task (`raw::Body`). Handles see every core as [`Shared`], with the
/// tail erased, so `Task<T>` need not name its future's type.
pub(crate) struct Core<T, B: ?Sized + Tail = Plain<T>> {
    pub(crate) lp: EventLoop,
    pub(crate) flags: Flags,
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
    /// Last, so that a core can be seen with its tail erased (`Shared`).
    pub(crate) tail: B,
}

/// A core seen by its handles: the tail erased (a task's body type is not part of `Task<T>`).
pub(crate) type Shared<T> = Rc<Core<T, dyn Tail>>;

/// What a core's tail does for the core: nothing for a plain future, the task's side for a
/// task (waking it, releasing its own waker, dropping a body left pending).
///
/// Each method gets the core's address, since the tail cannot find its core from `&self`.
pub(crate) trait Tail {
    /// Wakes the task: its next step is queued (a no-op for a future).
    ///
    /// # Safety
    ///
    /// `core` is `Rc::as_ptr` of a live `Rc` holding the core whose tail `self` is, and the
    /// caller is on the loop's thread.
    unsafe fn wake_task(&self, core: *const ());

    /// The task completed: it leaves the registry, drops what it awaited, and releases its
    /// own waker.
    ///
    /// # Safety
    ///
    /// As [`Tail::wake_task`].
    unsafe fn finish_task(&self, core: *const ());

    /// Releases the task's own waker (when the loop closes).
    ///
    /// # Safety
    ///
    /// As [`Tail::wake_task`].
    unsafe fn forget_task_waker(&self, core: *const ());

    /// The core as a [`Node`] (one more reference count).
    ///
    /// # Safety
    ///
    /// As [`Tail::wake_task`].
    unsafe fn node(&self, core: *const ()) -> Rc<dyn Node>;

    /// Called first thing when the core is dropped: a task drops a body left pending (on the
    /// loop's thread, where every core is dropped) and reports it.
    ///
    /// # Safety
    ///
    /// `core` is the address of the core whose tail `self` is, being dropped.
    unsafe fn dying(&self, core: *const ());
}

/// The tail of a plain future: nothing.
pub(crate) struct Plain<T>(PhantomData<T>);

impl<T: 'static> Tail for Plain<T> {
    /// # Safety
    ///
    /// As [`Tail::wake_task`].
    unsafe fn wake_task(&self, _core: *const ()) {}

    /// # Safety
    ///
    /// As [`Tail::finish_task`].
    unsafe fn finish_task(&self, _core: *const ()) {}

    /// # Safety
    ///
    /// As [`Tail::forget_task_waker`].
    unsafe fn forget_task_waker(&self, _core: *const ()) {}

    /// # Safety
    ///
    /// As [`Tail::node`].
    unsafe fn node(&self, core: *const ()) -> Rc<dyn Node> {
        let core = core.cast::<Core<T, Plain<T>>>();
        // SAFETY: the caller's contract: `core` is `Rc::as_ptr` of a live `Rc`, and a core with
        // this tail is only ever made as an `Rc<Core<T, Plain<T>>>` (`Core::new_future`).
        unsafe {
            Rc::increment_strong_count(core);
            Rc::from_raw(core)
        }
    }

    /// # Safety
    ///
    /// As [`Tail::dying`].
    unsafe fn dying(&self, _core: *const ()) {}
}

/// What the crate needs of a future without knowing its `T`: cancel it, ask its state, and
/// break its waker cycles when the loop closes.
pub(crate) trait Node: Awaited {
    /// `Future.cancel(msg)` for a future, `Task.cancel(msg)` for a task.
    fn cancel_node(self: Rc<Self>, msg: Option<Arc<str>>) -> bool;
    fn status(&self) -> Status;
    fn task_info(&self) -> Option<&TaskInfo>;
    fn event_loop(&self) -> &EventLoop;
    /// Drops the registered wakers (they may own the task that owns this future), and a task's
    /// own waker.
    fn clear_wakers(self: Rc<Self>);
    fn describe(&self) -> String;
    /// Ready once the future is done; otherwise `cx`'s waker is woken when it is. Takes nothing.
    fn poll_done(&self, cx: &mut TaskContext<'_>) -> Poll<()>;
    /// asyncio's `exception()` (marks the outcome as looked at).
    fn exception_of(&self) -> Result<Option<Error>, Error>;
}

impl<T: 'static> Core<T> {
    /// A plain future's core.
    pub(crate) fn new_future(lp: EventLoop) -> Shared<T> {
        let flags = Flags::new(false, Life::Gone, 0);
        let core: Rc<Core<T>> = Rc::new(Core::with_tail(lp, flags, None, Plain(PhantomData)));
        core
    }
}

impl<T: 'static, B: Tail> Core<T, B> {
    pub(crate) fn with_tail(
        lp: EventLoop,
        flags: Flags,
        task: Option<TaskInfo>,
        tail: B,
    ) -> Core<T, B> {
        Core {
            lp,
            flags,
            value: UnsafeCell::new(MaybeUninit::uninit()),
            waker: Cell::new(None),
            listeners: Cell::new(None),
            task,
            tail,
        }
    }
}

impl<T, B: ?Sized + Tail> Core<T, B> {
    #[inline]
    pub(crate) fn status(&self) -> Status {
        self.flags.phase.get().status()
    }

    #[inline]
    pub(crate) fn done(&self) -> bool {
        self.status() != Status::Pending
    }

    /// Takes the outcome out of its slot, as `Cell::take` would.
    #[inline]
    fn take_value(&self) -> Option<Result<T, Error>> {
        let phase = self.flags.phase.get();
        if !phase.filled() {
            return None;
        }
        self.flags.phase.set(phase.with_filled(false));
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
            self.flags
                .phase
                .set(self.flags.phase.get().with_filled(true));
        }
        drop(old);
    }
}

impl<T: 'static, B: ?Sized + Tail> Core<T, B> {
    /// Stores the outcome, wakes the awaiters and schedules the done callbacks. False if the
    /// future was already done (the outcome is dropped).
    pub(crate) fn complete(self: &Rc<Self>, outcome: Result<T, Error>) -> bool
    where
        Self: AsShared<T>,
    {
        if self.done() {
            return false;
        }
        let status = match &outcome {
            Ok(_) => Status::Finished,
            Err(e) if e.is_cancelled() => Status::Cancelled,
            Err(_) => Status::Failed,
        };
        let phase = self.flags.phase.get();
        self.flags.phase.set(phase.with_status(status));
        // The slot of a pending core is empty: nothing is dropped here.
        self.set_value(Some(outcome));
        if self.task.is_some() {
            // SAFETY: `self` is a live `Rc`, on the loop's thread (a core is `!Send`).
            unsafe { self.tail.finish_task(Rc::as_ptr(self).cast()) };
        }
        let first = self.waker.take();
        let listeners = self.listeners.take().map(|b| *b).unwrap_or_default();
        if let Some(waker) = first {
            waker.wake();
        }
        for listener in listeners {
            match listener {
                Listener::Waker(waker) => waker.wake(),
                Listener::Callback(_, cb) => self.schedule_callback(cb),
            }
        }
        true
    }

    /// The listener list is taken out of its cell and put back around each change; nothing in
    /// between runs foreign code.
    fn push_listener(&self, listener: Listener<T>) {
        let mut list = self.listeners.take().unwrap_or_default();
        list.push(listener);
        self.listeners.set(Some(list));
    }

    fn set_listeners(&self, list: Vec<Listener<T>>) {
        self.listeners
            .set((!list.is_empty()).then(|| Box::new(list)));
    }

    fn schedule_callback(self: &Rc<Self>, cb: DoneCallback<T>)
    where
        Self: AsShared<T>,
    {
        let me = AsShared::shared(self);
        // On a closed loop the callback cannot run any more; `call_soon` drops it.
        let _ = self.lp.call_soon(move || cb(&me));
    }

    /// asyncio's `Future.cancel(msg)` for a plain future.
    pub(crate) fn cancel_future(self: &Rc<Self>, msg: Option<Arc<str>>) -> bool
    where
        Self: AsShared<T>,
    {
        // Like asyncio, cancel() silences the never-retrieved report even on a done future.
        self.flags.retrieved.set(true);
        self.complete(Err(Error::cancelled_shared(msg)))
    }

    pub(crate) fn result_cloned(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.flags.retrieved.set(true);
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
        self.flags.retrieved.set(true);
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
        self.flags.retrieved.set(true);
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

    pub(crate) fn add_callback(self: &Rc<Self>, cb: DoneCallback<T>) -> CallbackId
    where
        Self: AsShared<T>,
    {
        let id = CallbackId(NEXT_CALLBACK.fetch_add(1, Ordering::Relaxed));
        if self.done() {
            self.schedule_callback(cb);
        } else {
            self.push_listener(Listener::Callback(id, cb));
        }
        id
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

    /// The `Future::poll` of every awaitable in this crate: hands the outcome out once.
    pub(crate) fn poll_result(self: &Rc<Self>, cx: &mut TaskContext<'_>) -> Poll<Result<T, Error>>
    where
        Self: AsShared<T>,
    {
        let misuse = current::with_current(|cur| {
            let cur = cur?;
            if std::ptr::addr_eq(ptr::from_ref(cur), Rc::as_ptr(self)) {
                return Some(Error::invalid_state("a task cannot await on itself"));
            }
            if !cur.event_loop().ptr_eq(&self.lp) {
                return Some(Error::invalid_state(
                    "the future is attached to a different loop",
                ));
            }
            None
        });
        if let Some(err) = misuse {
            return Poll::Ready(Err(err));
        }
        if self.done() {
            return Poll::Ready(self.take_result());
        }
        self.register_waker(cx);
        current::with_current(|cur| {
            if let Some(info) = cur.and_then(|cur| cur.task_info()) {
                info.set_waiter_future(self.node());
            }
        });
        Poll::Pending
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

    /// This core as a [`Node`].
    pub(crate) fn node(self: &Rc<Self>) -> Rc<dyn Node> {
        // SAFETY: `self` is a live `Rc`, on the loop's thread (a core is `!Send`).
        unsafe { self.tail.node(Rc::as_ptr(self).cast()) }
    }

    /// `Future.cancel(msg)` for a future, `Task.cancel(msg)` for a task.
    pub(crate) fn cancel_any(self: &Rc<Self>, msg: Option<Arc<str>>) -> bool
    where
        Self: AsShared<T>,
    {
        let Some(info) = &self.task else {
            return self.cancel_future(msg);
        };
        let (accepted, wake) = info.cancel(self.done(), msg);
        if wake {
            // SAFETY: `self` is a live `Rc`, on the loop's thread (a core is `!Send`).
            unsafe { self.tail.wake_task(Rc::as_ptr(self).cast()) };
        }
        accepted
    }

    /// Drops the registered wakers (see [`Node::clear_wakers`]).
    pub(crate) fn drop_wakers(self: &Rc<Self>) {
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
        if self.task.is_some() {
            // SAFETY: `self` is a live `Rc`, on the loop's thread (a core is `!Send`).
            unsafe { self.tail.forget_task_waker(Rc::as_ptr(self).cast()) };
        }
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

/// Seeing a core of any tail as [`Shared`] (done callbacks receive the erased view).
pub(crate) trait AsShared<T> {
    fn shared(this: &Rc<Self>) -> Shared<T>;
}

impl<T: 'static> AsShared<T> for Core<T, dyn Tail> {
    fn shared(this: &Rc<Self>) -> Shared<T> {
        this.clone()
    }
}

impl<T: 'static, B: Tail + 'static> AsShared<T> for Core<T, B> {
    fn shared(this: &Rc<Self>) -> Shared<T> {
        this.clone()
    }
}

impl<T: 'static, B: Tail + 'static> Awaited for Core<T, B> {
    fn cancel_awaited(self: Rc<Self>, msg: Option<Arc<str>>) {
        self.cancel_any(msg);
    }

    fn clear_awaited(self: Rc<Self>) {
        self.drop_wakers();
    }
}

impl<T: 'static, B: Tail + 'static> Node for Core<T, B> {
    fn cancel_node(self: Rc<Self>, msg: Option<Arc<str>>) -> bool {
        self.cancel_any(msg)
    }

    fn status(&self) -> Status {
        Core::status(self)
    }

    fn task_info(&self) -> Option<&TaskInfo> {
        self.task.as_ref()
    }

    fn event_loop(&self) -> &EventLoop {
        &self.lp
    }

    fn clear_wakers(self: Rc<Self>) {
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

impl<T, B: ?Sized + Tail> Drop for Core<T, B> {
    fn drop(&mut self) {
        // SAFETY: `self` is the core whose tail this is, being dropped.
        unsafe { self.tail.dying(ptr::from_ref(self).cast()) };
        let value = self.take_value();
        if self.status() != Status::Failed || self.flags.retrieved.get() {
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
