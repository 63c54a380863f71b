//! [`Task`]: a Rust future driven by the loop, asyncio's `Task`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::EventLoop;

use crate::Error;
use crate::core::{CallbackId, Flag, Shared, Status, TaskInfo};
use crate::current::{self, AnyTask};

/// A future running on the loop: asyncio's `Task`, made by
/// [`LoopTaskExt::create_task`](crate::LoopTaskExt::create_task).
///
/// Each step of the task (one poll of its future) is one entry in the loop's ready queue, FIFO
/// with callbacks; the first step is scheduled, never run inline (unless an eager task factory
/// is set and the loop is running). Awaiting a `Task` gives `Ok(output)` or the [`Error`] (cancelled, or failed: a panic
/// inside the task is caught and becomes the task's failure). Clones share the task; the output
/// is handed out once, as for [`LoopFuture`](crate::LoopFuture).
///
/// A `Task` has no `set_result`/`set_exception` (asyncio raises; here it does not compile):
///
/// ```compile_fail
/// # let lp = evloop::EventLoop::new().unwrap();
/// # use evloop::LoopTaskExt;
/// let t = lp.create_task(async { 1 }).unwrap();
/// t.set_result(2);
/// ```
///
/// # Cancellation
///
/// [`cancel`](Task::cancel) is a request: it returns true at once, `cancelled()` stays false
/// until the task's next step, and that step does not poll the future again: it drops it, on
/// the loop's thread, so every `Drop` in it runs there, and the task ends cancelled. A task
/// cancelled before its first step never runs its body. What the task was awaiting is
/// cancelled at once: a [`LoopFuture`](crate::LoopFuture) or another task (with the same
/// message), or a [`sleep`](crate::sleep()), whose timer leaves the wheel. The first message
/// wins.
///
/// A Rust future cannot catch the cancellation as asyncio code catches `CancelledError`; it is
/// dropped instead. To observe it and clean up asynchronously, asyncio-style, put the clean-up
/// in a guard whose `Drop` spawns it as a new task (it runs on later iterations, and may await
/// anything), or register it with
/// [`LoopTaskExt::add_cleanup`](crate::LoopTaskExt::add_cleanup) to run before the loop closes.
/// A `Drop` that panics while the task is being cancelled ends the task failed with that panic,
/// not cancelled, as asyncio's task ends with whatever its coroutine raised instead of
/// `CancelledError`; the panic reaches the task's awaiters, not the loop.
///
/// # Dropped while pending, never retrieved
///
/// A task whose step is dropped before it finished (the loop closed with the step queued, or
/// the future it awaited was dropped) is reported with `message` "Task was destroyed but it is
/// pending!" and `task`, and ends cancelled. A task that failed and whose failure nobody looked
/// at is reported as "Task exception was never retrieved" with the keys `exception` and
/// `future` (asyncio's key), when its last handle is dropped.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
/// use evloop::{LoopTaskExt, sleep};
///
/// let lp = EventLoop::new()?;
/// let t = lp.create_task(async {
///     sleep(0.01).await?;
///     Ok::<_, evloop::TaskError>("done")
/// })?;
/// assert_eq!(t.name().split('-').next(), Some("Task"));
/// assert_eq!(lp.run_until_complete(t)???, "done");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Task<T> {
    pub(crate) core: Shared<T>,
}

impl<T> Clone for Task<T> {
    fn clone(&self) -> Self {
        Task {
            core: self.core.clone(),
        }
    }
}

impl<T: 'static> Task<T> {
    fn info(&self) -> &TaskInfo {
        // A Task is only ever made around a task core (see `LoopTaskExt::create_task`).
        self.core
            .task
            .as_ref()
            .unwrap_or_else(|| unreachable!("a Task always has task info"))
    }

    /// True once the task finished, failed or was cancelled.
    pub fn done(&self) -> bool {
        self.core.done()
    }

    /// True if the task ended cancelled.
    pub fn cancelled(&self) -> bool {
        self.core.status() == Status::Cancelled
    }

    /// Requests cancellation (see the type's docs): true unless the task is already done.
    pub fn cancel(&self, msg: Option<&str>) -> bool {
        self.core.cancel_any(msg.map(Arc::from))
    }

    /// How many times `cancel` was called on this task while it was pending (asyncio's
    /// `cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.info().cancelling()
    }

    /// The output, cloned (asyncio's `result()`).
    ///
    /// # Errors
    ///
    /// As [`LoopFuture::result`](crate::LoopFuture::result).
    pub fn result(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.core.result_cloned()
    }

    /// Takes the output out (handed out once).
    ///
    /// # Errors
    ///
    /// As [`LoopFuture::take_result`](crate::LoopFuture::take_result).
    pub fn take_result(&self) -> Result<T, Error> {
        self.core.take_result()
    }

    /// The failure, if any (asyncio's `exception()`).
    ///
    /// # Errors
    ///
    /// As [`LoopFuture::exception`](crate::LoopFuture::exception).
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        self.core.exception()
    }

    /// Adds a callback scheduled with `call_soon` when the task is done (at once if it is).
    pub fn add_done_callback(&self, f: impl FnOnce(&Task<T>) + 'static) -> CallbackId {
        self.core.add_callback(Box::new(move |core: &Shared<T>| {
            f(&Task { core: core.clone() });
        }))
    }

    /// Removes a callback not yet scheduled; returns how many were removed (0 or 1).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        self.core.remove_callback(id)
    }

    /// The task's name: `Task-N` from a process-wide counter unless set.
    pub fn name(&self) -> String {
        self.info().name()
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        self.info().set_name(name.into());
    }

    /// The loop the task runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.core.lp.clone()
    }

    /// Ends a pending task cancelled, now, without cancelling what it awaits and without a
    /// report (`run_until_complete`'s wrapper, abandoned when the loop stopped first). Its body
    /// is dropped with the task. Not for a task whose step is running.
    pub(crate) fn retire(&self) {
        if self.done() || self.core.state.get(Flag::Running) {
            return;
        }
        current::finish(&self.core.state, self.info(), &self.core.lp);
        self.core
            .cancel_future(Some(Arc::from("run_until_complete stopped")));
    }

    /// This task without its output type.
    pub fn as_any(&self) -> AnyTask {
        AnyTask {
            node: self.core.node(),
        }
    }
}

impl<T: 'static> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        current::with_current(|cur| self.core.poll_result(cur, cx))
    }
}

impl<T: 'static> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.core.describe())
    }
}
