//! asyncio's `shield`: await a task without passing the awaiting task's cancellation on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{EventLoop, get_running_loop};

use crate::current;
use crate::ext::LoopTaskExt;
use crate::{Error, Task};

/// Runs `fut` as a task of the running loop (or, made where no loop runs yet, of the loop that
/// first polls it) and awaits it, shielded from cancellation: asyncio's `shield(aw)`.
///
/// Cancelling the task that awaits the shield (or dropping the shield) does not cancel the
/// inner task: it goes on running, and its outcome is there for whoever holds it
/// ([`Shield::task`]). Cancelling the inner task itself still ends the shield with the
/// cancelled [`Error`], as in asyncio. `fut` is wrapped in a new task, as asyncio's
/// `ensure_future` wraps a coroutine; to shield a task you already have, pass
/// `async move { task.await }` and flatten the nested `Result`.
///
/// # Errors
///
/// The inner task's [`Error`] (cancelled, or failed: a panic); a loop error with
/// `is_not_running()` when polled outside a running loop.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use evloop::{EventLoop, LoopTaskExt, shield, sleep};
///
/// let lp = EventLoop::new()?;
/// let lp2 = lp.clone();
/// let finished = Rc::new(Cell::new(false));
/// let f2 = finished.clone();
/// lp.run_until_complete(async move {
///     let outer = lp2.create_task(shield(async move {
///         sleep(0.01).await?;
///         f2.set(true);
///         Ok::<_, evloop::TaskError>(())
///     }))?;
///     sleep(0.0).await?;
///     outer.cancel(None); // the awaiting task ends; the shielded work goes on
///     sleep(0.05).await
/// })??;
/// assert!(finished.get());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// CPython: Lib/asyncio/tasks.py (shield).
pub fn shield<F>(fut: F) -> Shield<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match get_running_loop() {
        Ok(lp) => Shield {
            inner: lp.create_task(fut),
            deferred: None,
        },
        Err(err) => Shield {
            inner: Err(err.into()),
            deferred: Some(Box::new(move |lp: &EventLoop| lp.create_task(fut))),
        },
    }
}

/// Starts the inner task on a loop: for a shield made where no loop ran yet.
type Deferred<T> = Box<dyn FnOnce(&EventLoop) -> Result<Task<T>, Error>>;

/// The future of [`shield`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Shield<T: 'static> {
    inner: Result<Task<T>, Error>,
    /// Made where no loop ran: the task starts on the first poll.
    deferred: Option<Deferred<T>>,
}

impl<T: 'static> Shield<T> {
    /// The shielded task, if it could be started.
    pub fn task(&self) -> Option<&Task<T>> {
        self.inner.as_ref().ok()
    }
}

impl<T: 'static> Future for Shield<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(start) = this.deferred.take() {
            this.inner = get_running_loop()
                .map_err(Error::from)
                .and_then(|lp| start(&lp));
        }
        let task = match &mut this.inner {
            Ok(task) => task,
            Err(err) => return Poll::Ready(Err(err.clone())),
        };
        let out = Pin::new(task).poll(cx);
        if out.is_pending() {
            // Awaiting registered the inner task as what the current task awaits, so that
            // cancelling one cancels the other; a shield is exactly the opposite.
            current::with_current(|cur| {
                if let Some(info) = cur.and_then(|c| c.task_info()) {
                    drop(info.take_waiter());
                }
            });
        }
        out
    }
}

impl<T: 'static> fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield")
            .field("inner", &self.inner)
            .finish()
    }
}
