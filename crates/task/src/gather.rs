//! asyncio's `gather`: run futures as tasks at once and collect their outputs in order.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use evloop_sched::{EventLoop, get_running_loop};

use crate::ext::LoopTaskExt;
use crate::{CallbackId, Error, Task};

/// Runs every future of `futs` as a task of the running loop, now, and completes with their
/// outputs in the order given: asyncio's `gather(*aws)`. Called where no loop runs yet (to hand
/// to `run_until_complete`), it starts them when first polled.
///
/// Each future is wrapped with [`create_task`](LoopTaskExt::create_task) (so a task factory
/// applies), as asyncio's `ensure_future` wraps a coroutine; the children start even if the
/// returned future is never polled. The first child to fail or be cancelled makes the result
/// that [`Error`] at once; as in asyncio, the other children are not cancelled and go on
/// running. Dropping the future before it completed (the awaiting task was cancelled) cancels
/// every child still running, as cancelling asyncio's gather does. No futures: `Ok` of an empty
/// `Vec`.
///
/// A child's output is its future's output as it is: a future returning `Result` gives its
/// `Err` as a value, not as a failure (Rust has no exception to raise).
/// [`gather_return_exceptions`] keeps every child's outcome.
///
/// # Errors
///
/// The first child's [`Error`] (cancelled, or failed: a panic); a loop error with
/// `is_not_running()` when polled outside a running loop, or the loop's error if it refused a
/// task.
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, LoopTaskExt, gather, sleep};
///
/// let lp = EventLoop::new()?;
/// // The last one finishes first; the outputs keep the order given.
/// let children = (1..=3).map(|i| async move { sleep(0.01 * f64::from(4 - i)).await.map(|()| i) });
/// let out = lp.run_until_complete(gather(children))??;
/// let values: Result<Vec<i32>, _> = out.into_iter().collect();
/// assert_eq!(values?, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// CPython: Lib/asyncio/tasks.py (gather, _GatheringFuture).
pub fn gather<I>(futs: I) -> Gather<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future + 'static,
    <I::Item as Future>::Output: 'static,
{
    Gather {
        children: Children::spawn(futs),
    }
}

/// As [`gather`] with asyncio's `return_exceptions=True`: waits for every child and gives each
/// one's outcome, `Ok(output)` or its [`Error`], in the order given. Dropping it before it
/// completed cancels the children still running.
///
/// # Errors
///
/// A loop error when polled outside a running loop, or if the loop refused a task.
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, LoopTaskExt, gather_return_exceptions};
///
/// let lp = EventLoop::new()?;
/// let out = lp.run_until_complete(gather_return_exceptions([
///     Box::pin(async { 1 }) as std::pin::Pin<Box<dyn Future<Output = i32>>>,
///     Box::pin(async { panic!("boom") }),
/// ]))??;
/// assert_eq!(*out[0].as_ref().unwrap(), 1);
/// assert!(out[1].as_ref().unwrap_err().is_panic());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gather_return_exceptions<I>(futs: I) -> GatherAll<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future + 'static,
    <I::Item as Future>::Output: 'static,
{
    GatherAll {
        children: Children::spawn(futs),
    }
}

/// The children of a gather and what has become of them.
struct Children<T: 'static> {
    tasks: Vec<Task<T>>,
    outcomes: Vec<Option<Result<T, Error>>>,
    /// Indices of children whose done callback ran, in completion order.
    news: Rc<News>,
    left: usize,
    /// The gather completed: dropping it no longer cancels the children.
    finished: bool,
    /// Why the children could not be started.
    refused: Option<Error>,
    /// Made where no loop ran: the children start on the first poll.
    deferred: Option<Deferred<T>>,
}

/// What the children's done callbacks hand the gather.
#[derive(Default)]
pub(crate) struct News {
    /// A queue, drained in place, so that its buffer is reused from wake to wake.
    pub(crate) done: RefCell<VecDeque<usize>>,
    pub(crate) waker: RefCell<Option<Waker>>,
}

impl News {
    /// Records that child `i` is done and wakes the waiting future.
    pub(crate) fn post(&self, i: usize) {
        self.done.borrow_mut().push_back(i);
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Remembers the waker to wake on the next news.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// A done callback that posts `i`.
    pub(crate) fn callback<T>(self: &Rc<Self>, i: usize) -> impl FnOnce(&Task<T>) + 'static {
        let news = self.clone();
        move |_| news.post(i)
    }
}

/// Starts the children on a loop: for a gather made where no loop ran yet.
type Deferred<T> = Box<dyn FnOnce(&mut Children<T>, &EventLoop)>;

impl<T: 'static> Children<T> {
    fn spawn<I>(futs: I) -> Children<T>
    where
        I: IntoIterator,
        I::Item: Future<Output = T> + 'static,
    {
        let mut children = Children {
            tasks: Vec::new(),
            outcomes: Vec::new(),
            news: Rc::new(News::default()),
            left: 0,
            finished: false,
            refused: None,
            deferred: None,
        };
        match get_running_loop() {
            Ok(lp) => children.start(&lp, futs),
            Err(_) => {
                let futs: Vec<I::Item> = futs.into_iter().collect();
                children.deferred = Some(Box::new(move |c: &mut Children<T>, lp: &EventLoop| {
                    c.start(lp, futs);
                }));
            }
        }
        children
    }

    fn start<I>(&mut self, lp: &EventLoop, futs: I)
    where
        I: IntoIterator,
        I::Item: Future<Output = T> + 'static,
    {
        for fut in futs {
            match lp.create_task(fut) {
                Ok(task) => {
                    let _: CallbackId =
                        task.add_done_callback(self.news.callback(self.tasks.len()));
                    self.tasks.push(task);
                    self.outcomes.push(None);
                }
                Err(err) => {
                    self.refused = Some(err);
                    break;
                }
            }
        }
        self.left = self.tasks.len();
        if self.refused.is_some() {
            self.cancel_running();
        }
    }

    /// Takes in the outcomes of the children whose callbacks ran; the first failure, if
    /// `stop_at_failure`.
    fn collect(&mut self, stop_at_failure: bool) -> Option<Error> {
        // Taking an outcome runs no user code, so the queue stays borrowed.
        let mut done = self.news.done.borrow_mut();
        for i in done.drain(..) {
            let outcome = self.tasks[i].take_result();
            self.left -= 1;
            if stop_at_failure && let Err(err) = &outcome {
                return Some(err.clone());
            }
            self.outcomes[i] = Some(outcome);
        }
        None
    }

    fn cancel_running(&self) {
        for t in &self.tasks {
            if !t.done() {
                t.cancel(None);
            }
        }
    }

    /// Polls for the outcome; `Some` once complete.
    fn poll_outcomes(
        &mut self,
        cx: &mut TaskContext<'_>,
        stop_at_failure: bool,
    ) -> Poll<Result<Vec<Result<T, Error>>, Error>> {
        if self.finished {
            return Poll::Ready(Err(Error::invalid_state("gather polled after completion")));
        }
        if let Some(start) = self.deferred.take() {
            match get_running_loop() {
                Ok(lp) => start(self, &lp),
                Err(err) => self.refused = Some(err.into()),
            }
        }
        if let Some(err) = self.refused.take() {
            self.finished = true;
            return Poll::Ready(Err(err));
        }
        if let Some(err) = self.collect(stop_at_failure) {
            self.finished = true;
            return Poll::Ready(Err(err));
        }
        if self.left > 0 {
            self.news.register(cx.waker());
            return Poll::Pending;
        }
        self.finished = true;
        let outcomes = std::mem::take(&mut self.outcomes);
        Poll::Ready(Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::invalid_state("result is not set"))))
            .collect()))
    }
}

// The outputs are moved, never pinned: a gather is `Unpin` whatever `T` is.
impl<T: 'static> Unpin for Children<T> {}

impl<T: 'static> Drop for Children<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel_running();
        }
    }
}

/// The future of [`gather`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Gather<T: 'static> {
    children: Children<T>,
}

impl<T: 'static> Future for Gather<T> {
    type Output = Result<Vec<T>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.children
            .poll_outcomes(cx, true)
            .map(|all| all?.into_iter().collect())
    }
}

/// The future of [`gather_return_exceptions`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct GatherAll<T: 'static> {
    children: Children<T>,
}

impl<T: 'static> Future for GatherAll<T> {
    type Output = Result<Vec<Result<T, Error>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.get_mut().children.poll_outcomes(cx, false)
    }
}

impl<T: 'static> fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("children", &self.children.tasks.len())
            .field("left", &self.children.left)
            .finish()
    }
}

impl<T: 'static> fmt::Debug for GatherAll<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherAll")
            .field("children", &self.children.tasks.len())
            .field("left", &self.children.left)
            .finish()
    }
}
