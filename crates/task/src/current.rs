//! The running task of this thread, the per-loop task registry, and [`AnyTask`]: a task seen
//! without its output type (`current_task()`, `all_tasks()`, the task factory).
//!
//! # Ground rules
//!
//! A task joins the registry only when it could otherwise not be found: most tasks run to
//! completion in their first step and never touch it (no slot, no lookup). A pending
//! task is, at any time, in one of these places, and `all_tasks` looks in all of them:
//!
//! - in the registry: its body returned `Pending` once (`step::run`), or a task factory got
//!   it (`create_task`), or it was current when an eager task factory got a task;
//! - its first step is in the ready queue (found with `EventLoop::inspect_queued_steps`);
//! - it is the current task, in its first step.
//!
//! Nothing else runs a task's first step while it is neither queued nor current: `create_task`
//! queues it without running foreign code in between, and only a factory (which registers it
//! first) can hold or run it. A task running another's first step inline (an eager factory) is
//! registered before that, since it is no longer current during that step.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::Waker;

use evloop_sched::{EventLoop, get_running_loop};

use crate::Error;
use crate::core::{Keep, Node, NodeRef, State, Status, TaskInfo};

/// The task whose step runs now: its core and the waker its step polls it with.
type Running = (NonNull<dyn Node>, NonNull<Waker>);

thread_local! {
    /// The task whose step runs now on this thread.
    /// Pointers, not a handle: the step that set them holds the task and its waker for as long
    /// as they are set (see [`enter`]), so a step costs no reference count here.
    static CURRENT: Cell<Option<Running>> = const { Cell::new(None) };
}

/// The current task, if any.
pub(crate) fn current_node() -> Option<NodeRef> {
    let (node, waker) = CURRENT.try_with(Cell::get).ok().flatten()?;
    // SAFETY: `enter`'s contract: the task and the waker (one of that task) are alive while
    // they are set; the clone made here keeps the task alive for the handle.
    unsafe {
        let waker = waker.as_ref().clone();
        Some(NodeRef::new(node, Keep::Waker(waker)))
    }
}

/// Runs `f` with the current task, if any, without taking a reference count.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&dyn Node>) -> R) -> R {
    let running = CURRENT.try_with(Cell::get).ok().flatten();
    // SAFETY: as in `current_node`: the task outlives its step, which outlives this call.
    f(running.map(|(node, _)| unsafe { node.as_ref() }))
}

/// Makes the task `node` current; returns the previous one, to restore with [`restore`].
///
/// # Safety
///
/// `node` is the core of a task and `waker` a waker of it, both kept alive by the caller until
/// it calls [`restore`].
#[inline]
pub(crate) unsafe fn enter(node: NonNull<dyn Node>, waker: &Waker) -> Option<Running> {
    CURRENT.with(|c| c.replace(Some((node, NonNull::from(waker)))))
}

/// Makes `prev` (from [`enter`]) current again.
#[inline]
pub(crate) fn restore(prev: Option<Running>) {
    CURRENT.with(|c| c.set(prev));
}

/// The loop's suspended tasks (see the ground rules above for the others): a slab of handles,
/// so registering and finishing a task is O(1). A handle keeps its task alive: a task leaves
/// the registry when it completes, or when the loop closes (`sweep`).
#[derive(Default)]
pub(crate) struct Registry {
    slots: RefCell<Vec<Option<NodeRef>>>,
    free: RefCell<Vec<u32>>,
    /// The close hook that sweeps the registry is registered once per loop.
    hooked: Cell<bool>,
}

impl Registry {
    /// Registers a new task; returns its slot.
    #[inline]
    fn insert(self: &std::rc::Rc<Self>, lp: &EventLoop, node: NodeRef) -> u32 {
        if !self.hooked.get() {
            self.hook(lp);
        }
        let slot = self.free.borrow_mut().pop();
        let mut slots = self.slots.borrow_mut();
        if let Some(entry) = slot.and_then(|i| slots.get_mut(i as usize)) {
            *entry = Some(node);
            return slot.unwrap_or(u32::MAX);
        }
        // More than 2^32 live tasks would not fit in memory: the slot saturates, and such a
        // task is simply not listed by `all_tasks` (never here).
        let i = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        if i != u32::MAX {
            slots.push(Some(node));
        }
        i
    }

    /// On the first insert: registers the close hook.
    #[cold]
    fn hook(self: &std::rc::Rc<Self>, lp: &EventLoop) {
        self.hooked.set(true);
        let weak = std::rc::Rc::downgrade(self);
        lp.on_close(move || {
            if let Some(reg) = weak.upgrade() {
                reg.sweep();
            }
        });
    }

    /// Unregisters the task in `slot`; returns its handle (dropped by the caller, outside the
    /// borrow).
    #[inline]
    fn remove(&self, slot: u32) -> Option<NodeRef> {
        let old = self
            .slots
            .borrow_mut()
            .get_mut(slot as usize)
            .and_then(Option::take);
        if old.is_some() {
            self.free.borrow_mut().push(slot);
        }
        old
    }

    fn live(&self) -> Vec<NodeRef> {
        self.slots.borrow().iter().flatten().cloned().collect()
    }

    /// At `close()`: the tasks still pending can never finish. Each leaves the registry, the
    /// wakers it holds and those held for it are dropped (breaking the cycles through the
    /// futures it awaits), and it is woken: the closed loop refuses the step, and a refused
    /// step ends the task (its body dropped, "Task was destroyed but it is pending!").
    fn sweep(&self) {
        let nodes: Vec<NodeRef> = self.slots.take().into_iter().flatten().collect();
        self.free.take();
        for node in &nodes {
            node.state().set_slot(u32::MAX);
            node.clear_wakers();
            if let Some(waiter) = node.task_info().and_then(TaskInfo::take_waiter) {
                waiter.clear_awaited();
            }
        }
        for node in nodes {
            node.keep.wake_task();
        }
    }
}

/// The sink `all_tasks` hands to `EventLoop::inspect_queued_steps`: the tasks found there
/// that are pending and not in the registry.
pub(crate) struct QueuedTasks(pub(crate) Vec<NodeRef>);

/// Puts `node` (a task) in its loop's registry, unless it is there already.
pub(crate) fn register_node(node: &NodeRef) {
    if node.task_info().is_some() && !node.state().registered() {
        let lp = node.event_loop();
        let slot = lp.local::<Registry>().insert(lp, node.clone());
        node.state().set_slot(slot);
    }
}

/// A task completes (or is dropped pending): it leaves the registry if it joined it, and
/// drops what it awaited.
#[inline]
pub(crate) fn finish(state: &State, info: &TaskInfo, lp: &EventLoop) {
    let slot = state.set_slot(u32::MAX);
    let old = (slot != u32::MAX)
        .then(|| lp.local::<Registry>().remove(slot))
        .flatten();
    let waiter = info.take_waiter();
    drop((old, waiter));
}

/// A task seen without its output type: what [`current_task`], [`all_tasks`] and a task
/// factory hand out. It can be named, asked and cancelled, not awaited.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
/// use evloop::{LoopTaskExt, current_task};
///
/// let lp = EventLoop::new()?;
/// let name = lp.run_until_complete(async { current_task().map(|t| t.name()) })?;
/// assert!(name.is_some_and(|n| n.starts_with("Task-")));
/// assert!(current_task().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AnyTask {
    pub(crate) node: NodeRef,
}

impl AnyTask {
    fn info(&self) -> &TaskInfo {
        // Only task cores are wrapped in an AnyTask (see `current_task`, `all_tasks`, `NewTask`).
        self.node
            .task_info()
            .unwrap_or_else(|| unreachable!("an AnyTask always wraps a task"))
    }

    /// The task's name (`Task-N` unless set).
    pub fn name(&self) -> String {
        self.info().name()
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        self.info().set_name(name.into());
    }

    /// True once the task finished, failed or was cancelled.
    pub fn done(&self) -> bool {
        self.node.status() != Status::Pending
    }

    /// True if the task ended cancelled.
    pub fn cancelled(&self) -> bool {
        self.node.status() == Status::Cancelled
    }

    /// Requests cancellation, as [`Task::cancel`](crate::Task::cancel).
    pub fn cancel(&self, msg: Option<&str>) -> bool {
        self.node.cancel(msg.map(Arc::from))
    }

    /// How many times `cancel` was called on this task while it was pending (asyncio's
    /// `cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.info().cancelling()
    }

    /// The loop the task runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.node.event_loop().clone()
    }

    /// True if `self` and `other` are the same task.
    pub fn ptr_eq(&self, other: &AnyTask) -> bool {
        self.node.same(&other.node)
    }
}

impl fmt::Debug for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.node.describe())
    }
}

/// The task running now on this thread (asyncio's `current_task()`), or `None` outside a task.
///
/// # Examples
///
/// See [`AnyTask`].
pub fn current_task() -> Option<AnyTask> {
    current_node().map(|node| AnyTask { node })
}

/// The pending tasks of the loop running on this thread (asyncio's `all_tasks()`).
///
/// # Errors
///
/// - a loop error with `is_not_running()` outside a running loop.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
/// use evloop::{LoopTaskExt, all_tasks, sleep};
///
/// let lp = EventLoop::new()?;
/// let _sleeper = lp.create_task(async { sleep(10.0).await })?;
/// let n = lp.run_until_complete(async { all_tasks().map(|t| t.len()) })??;
/// assert_eq!(n, 2); // the sleeper and the task run_until_complete made
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn all_tasks() -> Result<Vec<AnyTask>, Error> {
    let lp = get_running_loop()?;
    Ok(all_tasks_of(&lp))
}

/// The pending tasks of `lp`, running or not.
pub fn all_tasks_of(lp: &EventLoop) -> Vec<AnyTask> {
    // The three places of the ground rules: the registry, the ready queue, the current task.
    let mut found = lp.local::<Registry>().live();
    found.retain(|n| n.status() == Status::Pending);
    let mut queued = QueuedTasks(Vec::new());
    lp.inspect_queued_steps(&mut queued);
    if let Some(current) = current_node()
        && current.event_loop().ptr_eq(lp)
        && current.status() == Status::Pending
        && current.task_info().is_some()
        && !current.state().registered()
        && !queued.0.iter().any(|n| n.same(&current))
    {
        queued.0.push(current);
    }
    found.extend(queued.0);
    found.into_iter().map(|node| AnyTask { node }).collect()
}
