//! The running task of this thread, the per-loop task registry, and [`AnyTask`]: a task seen
//! without its output type (`current_task()`, `all_tasks()`, the task factory).
//!
//! # Ground rules
//!
//! A task joins the registry only when it could otherwise not be found: most tasks run to
//! completion in their first step and never touch it (no slot, no `Weak`, no lookup). A pending
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
use std::rc::{Rc, Weak};
use std::sync::Arc;

use evloop_sched::{EventLoop, get_running_loop};

use crate::Error;
use crate::core::{Node, Status};
use crate::factory::TaskFactory;

thread_local! {
    /// The task whose step runs now on this thread.
    /// A pointer, not an `Rc`: the step that set it holds the task for as long as it is set
    /// (see [`enter`]), so a step costs no reference count here.
    static CURRENT: Cell<Option<NonNull<dyn Node>>> = const { Cell::new(None) };
}

/// The current task, if any.
pub(crate) fn current_node() -> Option<Rc<dyn Node>> {
    let ptr = CURRENT.try_with(Cell::get).ok().flatten()?;
    // SAFETY: `enter`'s contract: the task is alive while its pointer is set, and the pointer
    // is `Rc::as_ptr` of that task's `Rc`; one more count is taken for the `Rc` made here.
    unsafe {
        Rc::increment_strong_count(ptr.as_ptr());
        Some(Rc::from_raw(ptr.as_ptr()))
    }
}

/// Runs `f` with the current task, if any, without taking a reference count.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&dyn Node>) -> R) -> R {
    let ptr = CURRENT.try_with(Cell::get).ok().flatten();
    // SAFETY: as in `current_node`: the task outlives its step, which outlives this call.
    f(ptr.map(|p| unsafe { p.as_ref() }))
}

/// Makes the task `node` current; returns the previous one, to restore with [`restore`].
///
/// # Safety
///
/// `node` is `Rc::as_ptr` of a task's `Rc`, which the caller keeps alive until it calls
/// [`restore`].
#[inline]
pub(crate) unsafe fn enter(node: NonNull<dyn Node>) -> Option<NonNull<dyn Node>> {
    CURRENT.with(|c| c.replace(Some(node)))
}

/// Makes `prev` (from [`enter`]) current again.
#[inline]
pub(crate) fn restore(prev: Option<NonNull<dyn Node>>) {
    CURRENT.with(|c| c.set(prev));
}

pub(crate) fn same_node(a: &Rc<dyn Node>, b: &Rc<dyn Node>) -> bool {
    std::ptr::addr_eq(Rc::as_ptr(a), Rc::as_ptr(b))
}

/// The loop's suspended tasks (see the ground rules above for the others): a slab of weak
/// references, so registering and finishing a task is O(1) and the registry never keeps a
/// task alive. A task finds it through its loop (`EventLoop::local`), when it first suspends
/// and when it finishes.
#[derive(Default)]
pub(crate) struct Registry {
    slots: RefCell<Vec<Option<Weak<dyn Node>>>>,
    free: RefCell<Vec<u32>>,
    /// The close hook that breaks waker cycles is registered once per loop.
    hooked: Cell<bool>,
    /// The loop's task factory (kept here so `create_task` looks up one per-loop value).
    pub(crate) factory: RefCell<Option<TaskFactory>>,
}

impl Registry {
    /// Registers a new task; returns its slot.
    #[inline]
    pub(crate) fn insert(self: &Rc<Self>, lp: &EventLoop, node: Weak<dyn Node>) -> u32 {
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
        // task is simply not listed by `all_tasks` once it is back to `u32::MAX` (never here).
        let i = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        if i != u32::MAX {
            slots.push(Some(node));
        }
        i
    }

    /// On the first insert: registers the close hook.
    #[cold]
    fn hook(self: &Rc<Self>, lp: &EventLoop) {
        self.hooked.set(true);
        let weak = Rc::downgrade(self);
        lp.on_close(move || {
            if let Some(reg) = weak.upgrade() {
                reg.break_cycles();
            }
        });
    }

    /// Unregisters the task in `slot` (`u32::MAX`: none).
    #[inline]
    pub(crate) fn remove(&self, slot: u32) {
        let old = self
            .slots
            .borrow_mut()
            .get_mut(slot as usize)
            .and_then(Option::take);
        if old.is_some() {
            self.free.borrow_mut().push(slot);
        }
        drop(old);
    }

    fn live(&self) -> Vec<Rc<dyn Node>> {
        self.slots
            .borrow()
            .iter()
            .filter_map(|w| w.as_ref().and_then(Weak::upgrade))
            .collect()
    }

    /// At `close()`: a pending task owns its waker (to wake itself on cancel) and the futures it
    /// awaits own it back; dropping those wakers lets the tasks the loop no longer holds be
    /// dropped, and reported as destroyed while pending.
    fn break_cycles(&self) {
        for node in self.live() {
            node.clone().clear_wakers();
            if let Some(waiter) = node.task_info().and_then(|i| i.take_waiter()) {
                waiter.clear_awaited();
            }
        }
    }
}

/// The sink `all_tasks` hands to `EventLoop::inspect_queued_steps`: the tasks found there
/// that are pending and not in the registry.
pub(crate) struct QueuedTasks(pub(crate) Vec<Rc<dyn Node>>);

/// Puts `node` (a task) in its loop's registry, unless it is there already.
pub(crate) fn register_node(node: &Rc<dyn Node>) {
    if let Some(info) = node.task_info()
        && !info.registered()
    {
        let lp = node.event_loop();
        let slot = lp.local::<Registry>().insert(lp, Rc::downgrade(node));
        info.set_slot(slot);
    }
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
    pub(crate) node: Rc<dyn Node>,
}

impl AnyTask {
    fn info(&self) -> &crate::task::TaskInfo {
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
        self.node.clone().cancel_node(msg.map(Arc::from))
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
        same_node(&self.node, &other.node)
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
        && current.task_info().is_some_and(|info| !info.registered())
        && !queued.0.iter().any(|n| same_node(n, &current))
    {
        queued.0.push(current);
    }
    found.extend(queued.0);
    found.into_iter().map(|node| AnyTask { node }).collect()
}
