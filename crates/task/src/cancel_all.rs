//! [`CancelAllTasks`]: asyncio's `runners._cancel_all_tasks`, what `evloop::run` does with the
//! tasks its main future left behind.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{Context, EventLoop, Exception};

use crate::current::{AnyTask, all_tasks_of};

/// The future of [`LoopTaskExt::cancel_all_tasks`](crate::LoopTaskExt::cancel_all_tasks):
/// completes when every task it cancelled is done. Then each one that ended failed rather than
/// cancelled (its future finished or panicked instead) is reported to the exception handler
/// with `message` "unhandled exception during evloop::run() shutdown", `exception` and `task`.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct CancelAllTasks {
    lp: EventLoop,
    tasks: Vec<AnyTask>,
}

impl CancelAllTasks {
    /// Cancels the pending tasks of `lp` now; the future waits for them.
    pub(crate) fn new(lp: &EventLoop) -> CancelAllTasks {
        let tasks = all_tasks_of(lp);
        for task in &tasks {
            task.cancel(None);
        }
        CancelAllTasks {
            lp: lp.clone(),
            tasks,
        }
    }
}

impl Future for CancelAllTasks {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        // Every pending task registers the waker, so one poll per completion is enough.
        let mut pending = false;
        for task in &self.tasks {
            pending |= task.node.poll_done(cx).is_pending();
        }
        if pending {
            return Poll::Pending;
        }
        for task in std::mem::take(&mut self.tasks) {
            if task.cancelled() {
                continue;
            }
            if let Ok(Some(err)) = task.node.exception_of() {
                let exception = err
                    .take_exception()
                    .unwrap_or_else(|| Exception::from_error(err.clone()));
                self.lp.call_exception_handler(
                    Context::new("unhandled exception during evloop::run() shutdown")
                        .with_exception(exception)
                        .with("task", task.node.describe()),
                );
            }
        }
        Poll::Ready(())
    }
}

impl fmt::Debug for CancelAllTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelAllTasks")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}
