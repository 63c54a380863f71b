//! The state behind [`LoopFuture`](crate::LoopFuture) and [`Task`](crate::Task), and what the
//! crate knows of a future or a task without knowing its output type ([`Node`]). It uses no
//! other module of the crate but `state` (below it) and `error`.
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
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};

use evloop_sched::{Context, EventLoop, Exception};

use crate::Error;
pub(crate) use crate::state::{Awaited, Flag, State, Status, TaskInfo};

/// The identity of a done callback, returned by `add_done_callback` and given back to
/// `remove_done_callback`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallbackId(u64);

/// Process-wide, so an id from one future never matches a callback of another.
static NEXT_CALLBACK: AtomicU64 = AtomicU64::new(1);

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
