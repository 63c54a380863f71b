//! `run_until_complete`'s wrapper: the task that drives the caller's future, and what is done
//! with it when the loop stops first.
//!
//! The future is wrapped in a task (asyncio wraps a coroutine; it passes a task or a future
//! through as it is, which Rust's generics cannot tell apart from any other future). The
//! wrapper reads the future from a slot shared with the call, so that a call the loop stopped
//! first can take the future back out and end the wrapper: a wrapper left running would take
//! the output of a task it awaits the moment that task finishes, and a later call with a clone
//! of that task would then find it "already taken".

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{Context, EventLoop, Exception};

use crate::{Error, LoopTaskExt, Task};

/// The caller's future, shared by the call and the wrapper's body. Taken out around each
/// poll (no borrow is held while it runs) and put back if still pending.
type Slot<F> = Rc<Cell<Option<Pin<Box<F>>>>>;

/// The wrapper's body: polls the future in the slot; `None` once the slot was emptied.
struct Until<F> {
    slot: Slot<F>,
}

impl<F: Future> Future for Until<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let Some(mut fut) = self.slot.take() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => {
                self.slot.set(Some(fut));
                Poll::Pending
            }
        }
    }
}

/// `LoopTaskExt::run_until_complete`, after its checks.
pub(crate) fn run<F>(lp: &EventLoop, fut: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let slot: Slot<F> = Rc::new(Cell::new(Some(Box::pin(fut))));
    let task = lp.create_task(Until { slot: slot.clone() })?;
    let l2 = lp.clone();
    let id = task.add_done_callback(move |_| l2.stop());
    let ran = lp.run_forever();
    // Removed whatever happened, so a later call is not stopped by this one's callback.
    task.remove_done_callback(id);
    if !task.done() {
        abandon(lp, &task, &slot);
        ran?;
        return Err(Error::stopped());
    }
    ran?;
    task.take_result()?
        .ok_or_else(|| Error::invalid_state("the future was taken out of run_until_complete"))
}

/// The loop stopped before the future completed: the wrapper ends (cancelled, unreported, and
/// without cancelling what it awaits), and the future is dropped here, on the loop's thread.
/// A task passed in (a clone) thus keeps running and keeps its output for a later call.
fn abandon<F, T>(lp: &EventLoop, task: &Task<T>, slot: &Slot<F>)
where
    T: 'static,
{
    let fut = slot.take();
    task.retire();
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(fut))) {
        lp.call_exception_handler(
            Context::new("the future of a stopped run_until_complete panicked while dropped")
                .with_exception(Exception::from_panic(payload)),
        );
    }
}
