//! asyncio's `wait` and `as_completed`: tasks watched through their done callbacks, with an
//! optional deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use evloop_sched::{Delay, EventLoop, get_running_loop};

use crate::alarm::{self, Alarm};
use crate::ext::LoopTaskExt;
use crate::gather::News;
use crate::{CallbackId, Error, Task};

/// When [`wait`] returns (asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any task is done.
    FirstCompleted,
    /// As soon as any task fails (not cancelled: failed); all done otherwise.
    FirstException,
    /// When every task is done.
    #[default]
    AllCompleted,
}

/// Waits until `tasks` are done as `return_when` says, or until `timeout` (a
/// [`Duration`] or `f64` seconds; `f64::INFINITY` for none), and gives
/// back `(done, pending)`, each in the order given: asyncio's `wait(aws, timeout,
/// return_when)`.
///
/// Nothing is cancelled, not even at the timeout: the pending tasks go on running. Read the
/// done tasks' outcomes with [`Task::take_result`] (or await them: they are ready). As in
/// asyncio, the check happens in done callbacks, so even tasks already done are reported on
/// the next iteration.
///
/// # Errors
///
/// - an invalid-argument loop error for no tasks ("the set of tasks is empty", asyncio's
///   `ValueError`) or a NaN timeout;
/// - a loop error with `is_not_running()` outside a running loop.
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, LoopTaskExt, ReturnWhen, sleep, wait};
///
/// let lp = EventLoop::new()?;
/// let lp2 = lp.clone();
/// let (done, pending) = lp.run_until_complete(async move {
///     let quick = lp2.create_task(sleep(0.01))?;
///     let slow = lp2.create_task(sleep(10.0))?;
///     wait([quick, slow], f64::INFINITY, ReturnWhen::FirstCompleted).await
/// })??;
/// assert_eq!((done.len(), pending.len()), (1, 1));
/// pending[0].cancel(None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// CPython: Lib/asyncio/tasks.py (wait, _wait).
pub fn wait<T: 'static>(
    tasks: impl IntoIterator<Item = Task<T>>,
    timeout: impl Delay,
    return_when: ReturnWhen,
) -> Wait<T> {
    let tasks: Vec<Task<T>> = tasks.into_iter().collect();
    let news = Rc::new(News::default());
    let started = start(&tasks, timeout);
    let callbacks = match &started {
        Ok(_) => tasks
            .iter()
            .enumerate()
            .map(|(i, t)| Some(t.add_done_callback(news.callback(i))))
            .collect(),
        Err(_) => Vec::new(),
    };
    Wait {
        tasks,
        callbacks,
        news,
        alarm: started.map(|(_, alarm)| alarm),
        return_when,
        done_count: 0,
        failed: false,
    }
}

/// The loop and the alarm for `timeout`, or why there are none.
fn start<T: 'static>(tasks: &[Task<T>], timeout: impl Delay) -> Result<(EventLoop, Alarm), Error> {
    if tasks.is_empty() {
        return Err(evloop_sched::Error::invalid_argument("the set of tasks is empty").into());
    }
    let lp = get_running_loop()?;
    let when = alarm::deadline_in(&lp, timeout)?;
    let alarm = Alarm::at(&lp, when)?;
    Ok((lp, alarm))
}

/// The future of [`wait`]: `(done, pending)`.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Wait<T: 'static> {
    tasks: Vec<Task<T>>,
    /// Each task's done callback, `None` once it ran.
    callbacks: Vec<Option<CallbackId>>,
    news: Rc<News>,
    alarm: Result<Alarm, Error>,
    return_when: ReturnWhen,
    done_count: usize,
    failed: bool,
}

impl<T: 'static> Wait<T> {
    /// Removes the callbacks that did not run and splits the tasks.
    fn finish(&mut self) -> (Vec<Task<T>>, Vec<Task<T>>) {
        for (t, id) in self.tasks.iter().zip(self.callbacks.drain(..)) {
            if let Some(id) = id {
                t.remove_done_callback(id);
            }
        }
        if let Ok(alarm) = &mut self.alarm {
            alarm.disarm();
        }
        std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(Task::done)
    }
}

impl<T: 'static> Future for Wait<T> {
    type Output = Result<(Vec<Task<T>>, Vec<Task<T>>), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let alarm = match &this.alarm {
            Ok(alarm) => alarm,
            Err(err) => return Poll::Ready(Err(err.clone())),
        };
        if this.tasks.is_empty() {
            return Poll::Ready(Err(Error::invalid_state("wait polled after completion")));
        }
        // Reading a task's state runs no user code, so the queue stays borrowed.
        for i in this.news.done.borrow_mut().drain(..) {
            this.callbacks[i] = None;
            this.done_count += 1;
            let t = &this.tasks[i];
            if !t.cancelled() && t.exception().is_ok_and(|e| e.is_some()) {
                this.failed = true;
            }
        }
        let complete = this.done_count == this.tasks.len()
            || match this.return_when {
                ReturnWhen::FirstCompleted => this.done_count > 0,
                ReturnWhen::FirstException => this.failed,
                ReturnWhen::AllCompleted => false,
            };
        if complete || alarm.rung() {
            return Poll::Ready(Ok(this.finish()));
        }
        this.news.register(cx.waker());
        alarm.register(cx.waker());
        Poll::Pending
    }
}

impl<T: 'static> fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("tasks", &self.tasks.len())
            .field("done", &self.done_count)
            .field("return_when", &self.return_when)
            .finish()
    }
}

/// Runs every future of `futs` as a task of the running loop, now (or on the first poll, if no
/// loop runs yet), and hands back their outcomes in the order they finish: asyncio's
/// `as_completed(aws, timeout)`.
///
/// Call [`AsCompleted::next`] until it gives `None`. Once `timeout` (a
/// [`Duration`] or `f64` seconds; `f64::INFINITY` for none) has passed,
/// each remaining call gives a timed-out [`Error`] instead, one per task not yet handed out,
/// and the tasks go on running, as in asyncio. Dropping the `AsCompleted` leaves them running
/// too.
///
/// # Errors
///
/// Each item is the task's outcome; the first item is a loop error if there was no running
/// loop, the loop refused a task, or `timeout` was NaN.
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, LoopTaskExt, as_completed, sleep};
///
/// let lp = EventLoop::new()?;
/// let order = lp.run_until_complete(async {
///     let mut it = as_completed(
///         [3, 1, 2].map(|i| async move { sleep(0.01 * f64::from(i)).await.map(|()| i) }),
///         f64::INFINITY,
///     );
///     let mut order = Vec::new();
///     while let Some(outcome) = it.next().await {
///         order.push(outcome??);
///     }
///     Ok::<_, evloop::TaskError>(order)
/// })??;
/// assert_eq!(order, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// CPython: Lib/asyncio/tasks.py (as_completed).
pub fn as_completed<I>(futs: I, timeout: impl Delay) -> AsCompleted<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future + 'static,
    <I::Item as Future>::Output: 'static,
{
    let mut it = AsCompleted {
        tasks: Vec::new(),
        news: Rc::new(News::default()),
        alarm: Err(None),
        left: 0,
        deferred: None,
    };
    let timeout = timeout.to_nanos();
    match get_running_loop() {
        Ok(lp) => it.start(&lp, futs, timeout),
        Err(_) => {
            let futs: Vec<I::Item> = futs.into_iter().collect();
            it.deferred = Some(Box::new(move |it: &mut AsCompleted<_>, lp: &EventLoop| {
                it.start(lp, futs, timeout);
            }));
        }
    }
    it
}

/// Starts the tasks on a loop: for an `AsCompleted` made where no loop ran yet.
type Deferred<T> = Box<dyn FnOnce(&mut AsCompleted<T>, &EventLoop)>;

/// The tasks of [`as_completed`], handed out as they finish.
pub struct AsCompleted<T: 'static> {
    tasks: Vec<Option<Task<T>>>,
    news: Rc<News>,
    /// The deadline, or the error to hand out first (`None` once handed out).
    alarm: Result<Alarm, Option<Error>>,
    /// Outcomes not handed out yet.
    left: usize,
    /// Made where no loop ran: the tasks start on the first poll.
    deferred: Option<Deferred<T>>,
}

impl<T: 'static> AsCompleted<T> {
    fn start<I>(
        &mut self,
        lp: &EventLoop,
        futs: I,
        timeout: Result<Option<i128>, evloop_sched::Error>,
    ) where
        I: IntoIterator,
        I::Item: Future<Output = T> + 'static,
    {
        for fut in futs {
            match lp.create_task(fut) {
                Ok(task) => {
                    task.add_done_callback(self.news.callback(self.tasks.len()));
                    self.tasks.push(Some(task));
                }
                Err(err) => {
                    self.alarm = Err(Some(err));
                    return;
                }
            }
        }
        self.left = self.tasks.len();
        self.alarm = timeout
            .map_err(Error::from)
            .and_then(|ns| {
                let when = match ns {
                    None => None,
                    Some(ns) => alarm::deadline_in(
                        lp,
                        Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX)),
                    )?,
                };
                Alarm::at(lp, when)
            })
            .map_err(Some);
    }

    /// The next outcome to finish: `Some(Ok(output))` or `Some(Err(error))` of a task (a timed
    /// out error once the deadline passed), `None` when every task was handed out.
    // An async `next`, as streams have: `Iterator::next` cannot wait.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<'_, T> {
        Next { it: self }
    }

    /// How many outcomes are still to come.
    pub fn len(&self) -> usize {
        self.left
    }

    /// True when every outcome was handed out.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<T, Error>>> {
        if let Some(start) = self.deferred.take() {
            match get_running_loop() {
                Ok(lp) => start(self, &lp),
                Err(err) => self.alarm = Err(Some(err.into())),
            }
        }
        let alarm = match &mut self.alarm {
            Ok(alarm) => alarm,
            Err(first) => return Poll::Ready(first.take().map(Err)),
        };
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let next = self.news.done.borrow_mut().pop_front();
        if let Some(i) = next
            && let Some(task) = self.tasks[i].take()
        {
            self.left -= 1;
            return Poll::Ready(Some(task.take_result()));
        }
        if alarm.rung() {
            self.left -= 1;
            return Poll::Ready(Some(Err(Error::timed_out())));
        }
        self.news.register(cx.waker());
        alarm.register(cx.waker());
        Poll::Pending
    }
}

impl<T: 'static> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .finish()
    }
}

/// The future of [`AsCompleted::next`].
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct Next<'a, T: 'static> {
    it: &'a mut AsCompleted<T>,
}

impl<T: 'static> Future for Next<'_, T> {
    type Output = Option<Result<T, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.get_mut().it.poll_next(cx)
    }
}
