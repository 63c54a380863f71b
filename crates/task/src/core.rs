//! The shared state behind [`LoopFuture`](crate::LoopFuture) and [`Task`](crate::Task).
//!
//! # Ground rules
//!
//! A `Core` lives on the loop's thread (it is reached through an `Rc`). Its state sits in
//! `Cell`s and `RefCell`s, and no borrow is held while foreign code runs: completing a future
//! first stores the outcome, then takes the wakers and the done callbacks out, releases every
//! borrow, and only then wakes the wakers and schedules the callbacks with `call_soon`. Done
//! callbacks never run inline.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};

use evloop_sched::{Context, EventLoop, Exception};

use crate::Error;
use crate::current;
use crate::task::TaskInfo;

/// The identity of a done callback, returned by `add_done_callback` and given back to
/// `remove_done_callback`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CallbackId(u64);

/// Process-wide, so an id from one future never matches a callback of another.
static NEXT_CALLBACK: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Status {
    Pending,
    Finished,
    Failed,
    Cancelled,
}

type DoneCallback<T> = Box<dyn FnOnce(&Rc<Core<T>>)>;

/// Who hears of the completion besides the first awaiter: more awaiters (rare: clones awaited
/// twice) and done callbacks, in one list to keep the core small.
enum Listener<T> {
    Waker(Waker),
    Callback(CallbackId, DoneCallback<T>),
}

pub(crate) struct Core<T> {
    pub(crate) lp: EventLoop,
    status: Cell<Status>,
    /// The outcome until someone takes it (`.await`, `take_result`).
    value: RefCell<Option<Result<T, Error>>>,
    /// The first awaiter's waker; `listeners` holds the rest and the done callbacks.
    waker: Cell<Option<Waker>>,
    /// Boxed on first use: most futures have one awaiter and no done callback, and a pending
    /// task's core should stay small (one word here instead of a `Vec`'s three).
    #[allow(clippy::box_collection, reason = "one word per core, not three")]
    listeners: Cell<Option<Box<Vec<Listener<T>>>>>,
    /// Someone looked at the outcome (or cancelled): a failure is not reported on drop.
    retrieved: Cell<bool>,
    pub(crate) task: Option<TaskInfo>,
}

/// What the crate needs of a future without knowing its `T`: cancel it, ask its state, and
/// break its waker cycles when the loop closes.
pub(crate) trait Node {
    /// `Future.cancel(msg)` for a future, `Task.cancel(msg)` for a task.
    fn cancel_node(self: Rc<Self>, msg: Option<Arc<str>>) -> bool;
    fn status(&self) -> Status;
    fn task_info(&self) -> Option<&TaskInfo>;
    fn event_loop(&self) -> &EventLoop;
    /// Drops the registered wakers (they may own the task that owns this future).
    fn clear_wakers(&self);
    fn describe(&self) -> String;
}

impl<T: 'static> Core<T> {
    pub(crate) fn new(lp: EventLoop, task: Option<TaskInfo>) -> Rc<Core<T>> {
        Rc::new(Core {
            lp,
            status: Cell::new(Status::Pending),
            value: RefCell::new(None),
            waker: Cell::new(None),
            listeners: Cell::new(None),
            retrieved: Cell::new(false),
            task,
        })
    }

    pub(crate) fn status(&self) -> Status {
        self.status.get()
    }

    pub(crate) fn done(&self) -> bool {
        self.status.get() != Status::Pending
    }

    /// Stores the outcome, wakes the awaiters and schedules the done callbacks. False if the
    /// future was already done (the outcome is dropped).
    pub(crate) fn complete(self: &Rc<Self>, outcome: Result<T, Error>) -> bool {
        if self.done() {
            return false;
        }
        let status = match &outcome {
            Ok(_) => Status::Finished,
            Err(e) if e.is_cancelled() => Status::Cancelled,
            Err(_) => Status::Failed,
        };
        self.status.set(status);
        *self.value.borrow_mut() = Some(outcome);
        if let Some(task) = &self.task {
            task.finish(&self.lp);
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

    fn schedule_callback(self: &Rc<Self>, cb: DoneCallback<T>) {
        let me = self.clone();
        // On a closed loop the callback cannot run any more; `call_soon` drops it.
        let _ = self.lp.call_soon(move || cb(&me));
    }

    /// asyncio's `Future.cancel(msg)` for a plain future.
    pub(crate) fn cancel_future(self: &Rc<Self>, msg: Option<Arc<str>>) -> bool {
        // Like asyncio, cancel() silences the never-retrieved report even on a done future.
        self.retrieved.set(true);
        self.complete(Err(Error::cancelled_shared(msg)))
    }

    pub(crate) fn result_cloned(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.retrieved.set(true);
        match &*self.value.borrow() {
            Some(outcome) => outcome.clone(),
            None if self.done() => Err(Error::invalid_state("result was already taken")),
            None => Err(Error::invalid_state("result is not set")),
        }
    }

    pub(crate) fn take_result(&self) -> Result<T, Error> {
        self.retrieved.set(true);
        let mut slot = self.value.borrow_mut();
        match &*slot {
            // Errors are cloned, so every awaiter of a failed or cancelled future sees it.
            Some(Err(err)) => Err(err.clone()),
            Some(Ok(_)) => match slot.take() {
                Some(outcome) => outcome,
                None => unreachable!("matched Some just above"),
            },
            None if self.done() => Err(Error::invalid_state("result was already taken")),
            None => Err(Error::invalid_state("result is not set")),
        }
    }

    pub(crate) fn exception(&self) -> Result<Option<Error>, Error> {
        self.retrieved.set(true);
        match &*self.value.borrow() {
            Some(Ok(_)) => Ok(None),
            Some(Err(e)) if e.is_cancelled() => Err(e.clone()),
            Some(Err(e)) => Ok(Some(e.clone())),
            None if self.done() => Err(Error::invalid_state("result was already taken")),
            None => Err(Error::invalid_state("exception is not set")),
        }
    }

    pub(crate) fn add_callback(self: &Rc<Self>, cb: DoneCallback<T>) -> CallbackId {
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
    pub(crate) fn poll_result(self: &Rc<Self>, cx: &mut TaskContext<'_>) -> Poll<Result<T, Error>> {
        let current = current::current_node();
        if let Some(cur) = &current {
            if std::ptr::addr_eq(Rc::as_ptr(cur), Rc::as_ptr(self)) {
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
        if let Some(info) = current.as_ref().and_then(|cur| cur.task_info()) {
            info.set_waiter_future(self.clone());
        }
        Poll::Pending
    }
}

impl<T: 'static> Node for Core<T> {
    fn cancel_node(self: Rc<Self>, msg: Option<Arc<str>>) -> bool {
        match &self.task {
            Some(info) => info.cancel(self.done(), msg),
            None => self.cancel_future(msg),
        }
    }

    fn status(&self) -> Status {
        self.status.get()
    }

    fn task_info(&self) -> Option<&TaskInfo> {
        self.task.as_ref()
    }

    fn event_loop(&self) -> &EventLoop {
        &self.lp
    }

    fn clear_wakers(&self) {
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
        if let Some(info) = &self.task {
            info.forget_waker();
        }
    }

    fn describe(&self) -> String {
        let state = match self.status.get() {
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

impl<T> Drop for Core<T> {
    fn drop(&mut self) {
        if self.status.get() != Status::Failed || self.retrieved.get() {
            return;
        }
        let Some(Err(err)) = self.value.get_mut().take() else {
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
