//! Task factories: asyncio's `set_task_factory`, and the eager-start factory of asyncio 3.12.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use evloop_sched::EventLoop;

use crate::Error;
use crate::core::{Flag, State};
use crate::current::AnyTask;
use crate::step::FirstStep;

/// A task factory: called by [`create_task`](crate::LoopTaskExt::create_task) with every new
/// task, which it must start ([`NewTask::start`] or [`NewTask::start_eager`]), and may rename
/// or inspect first. A task it drops without starting ends cancelled and never runs.
///
/// asyncio's factory builds the task object itself; in Rust the task (and its output type) is
/// built by `create_task`, and the factory decides how and whether it starts.
pub type TaskFactory = Rc<dyn Fn(&EventLoop, NewTask) -> Result<(), Error>>;

/// The loop's task factory (`EventLoop::local`).
#[derive(Default)]
pub(crate) struct FactorySlot(pub(crate) RefCell<Option<TaskFactory>>);

/// A task made by `create_task`, not started yet: what a [`TaskFactory`] receives.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use evloop::EventLoop;
/// use evloop::{LoopTaskExt, NewTask, TaskFactory};
///
/// let lp = EventLoop::new()?;
/// let factory: TaskFactory = Rc::new(|_lp: &EventLoop, t: NewTask| {
///     t.task().set_name("worker");
///     t.start()
/// });
/// lp.set_task_factory(Some(factory));
/// let t = lp.create_task(async { 7 })?;
/// assert_eq!(t.name(), "worker");
/// assert_eq!(lp.run_until_complete(t)??, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NewTask {
    pub(crate) first: Option<FirstStep>,
    pub(crate) task: AnyTask,
    pub(crate) lp: EventLoop,
}

impl NewTask {
    /// The task (to name or inspect it).
    pub fn task(&self) -> &AnyTask {
        &self.task
    }

    fn mark_started(&self) {
        self.task.node.state().set(Flag::Started, true);
    }

    /// Starts the task the default way: its first step is scheduled with `call_soon`.
    ///
    /// # Errors
    ///
    /// - a loop error with `is_closed()` if the loop is closed (the task ends cancelled).
    pub fn start(mut self) -> Result<(), Error> {
        let Some(first) = self.first.take() else {
            return Ok(());
        };
        start(&self.lp, self.task.node.state(), first)
    }

    /// Starts the task eagerly (asyncio 3.12's eager tasks) if the loop is running: its first
    /// step runs now, inside this call, with [`current_task`](crate::current_task) set to it,
    /// and a task that finishes in its first step is never scheduled on the loop. If the loop
    /// is not running, the task is started the default way ([`start`](NewTask::start)), as
    /// asyncio's `Task.__init__` does (`eager_start and self._loop.is_running()`): its first
    /// step then runs inside the loop, where `get_running_loop`, `sleep` and `all_tasks` work.
    pub fn start_eager(mut self) {
        if !self.lp.is_running() {
            // A closed loop refuses the step and the task ends cancelled: nothing to report.
            let _ = self.start();
            return;
        }
        if let Some(first) = self.first.take() {
            self.mark_started();
            first.run();
        }
    }
}

/// Queues a task's first step, the default start (`create_task` without a factory, and
/// [`NewTask::start`]).
pub(crate) fn start(lp: &EventLoop, state: &State, first: FirstStep) -> Result<(), Error> {
    state.set(Flag::Started, true);
    let queued = first.queue(lp);
    if queued.is_err() {
        // The closed loop dropped the step: the task ended cancelled, never started.
        state.set(Flag::Started, false);
    }
    Ok(queued?)
}

impl fmt::Debug for NewTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTask").field("task", &self.task).finish()
    }
}

/// The eager task factory (asyncio's `eager_task_factory`): while the loop runs, every task's
/// first step runs inside `create_task`; a task created while the loop is not running is
/// scheduled as usual (see [`NewTask::start_eager`]).
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use evloop::EventLoop;
/// use evloop::{LoopTaskExt, eager_task_factory};
///
/// let lp = EventLoop::new()?;
/// lp.set_task_factory(Some(eager_task_factory()));
/// let l2 = lp.clone();
/// let ran_inside = lp.run_until_complete(async move {
///     let ran = Rc::new(Cell::new(false));
///     let r2 = ran.clone();
///     let t = l2.create_task(async move { r2.set(true) })?;
///     Ok::<_, evloop::TaskError>(ran.get() && t.done()) // ran inside create_task
/// })??;
/// assert!(ran_inside);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn eager_task_factory() -> TaskFactory {
    Rc::new(|_lp: &EventLoop, task: NewTask| {
        task.start_eager();
        Ok(())
    })
}
