//! asyncio's `timeout`, `timeout_at` and `wait_for`: a future raced against a deadline on the
//! running loop's clock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{Delay, EventLoop, get_running_loop};

use crate::Error;
use crate::alarm::{self, Alarm};
use crate::current;
use crate::state::Awaited;

/// Runs `fut` for at most `delay` (a [`Duration`](std::time::Duration) or `f64` seconds;
/// `f64::INFINITY` for no limit, asyncio's `timeout(None)`): asyncio's `async with
/// timeout(delay)` around `await fut`.
///
/// The deadline is taken on the loop's clock when the future is first polled, as asyncio takes
/// it on entering the block. If `fut` completes first, its output comes back as `Ok`. When the
/// deadline passes first, what the task was awaiting inside `fut` (a [`Task`](crate::Task),
/// a [`LoopFuture`](crate::LoopFuture), a [`sleep`](crate::sleep())) is cancelled as asyncio
/// cancels it, `fut` is dropped, and the result is an [`Error`] with
/// [`is_timed_out`](Error::is_timed_out) (asyncio's `TimeoutError`). A deadline already past
/// still lets `fut` run until it first suspends, as in asyncio, and expires on the next
/// iteration.
///
/// asyncio reports the timeout once the cancelled inner task has finished; evloop reports it at
/// once and the cancelled task finishes on its next step.
///
/// # Errors
///
/// - [`Error::is_timed_out`] when the deadline passed first;
/// - an invalid-argument loop error for a NaN delay; a loop error with `is_not_running()` when
///   polled outside a running loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::{EventLoop, LoopTaskExt, sleep, timeout};
///
/// let lp = EventLoop::new()?;
/// let slow = lp.run_until_complete(timeout(0.01, sleep(10.0)))?;
/// assert!(slow.unwrap_err().is_timed_out());
/// let quick = lp.run_until_complete(timeout(Duration::from_secs(5), async { 7 }))?;
/// assert_eq!(quick?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// CPython: Lib/asyncio/timeouts.py (Timeout, timeout, timeout_at).
pub fn timeout<F: Future>(delay: impl Delay, fut: F) -> Timeout<F> {
    let spec = match delay.to_nanos() {
        Ok(None) => Spec::At(None),
        Ok(Some(ns)) => Spec::In(ns),
        Err(err) => Spec::Invalid(err.into()),
    };
    Timeout::new(spec, fut)
}

/// As [`timeout`], with the deadline given as a time on the loop's clock
/// ([`EventLoop::time`]); `f64::INFINITY` for none: asyncio's `timeout_at(when)`.
///
/// # Errors
///
/// As [`timeout`]; a NaN `when` is an invalid-argument loop error.
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, LoopTaskExt, sleep, timeout_at};
///
/// let lp = EventLoop::new()?;
/// let when = lp.time() + 0.01;
/// let out = lp.run_until_complete(timeout_at(when, sleep(10.0)))?;
/// assert!(out.unwrap_err().is_timed_out());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn timeout_at<F: Future>(when: f64, fut: F) -> Timeout<F> {
    let spec = if when.is_nan() {
        Spec::Invalid(evloop_sched::Error::invalid_argument("when must not be NaN").into())
    } else if when == f64::INFINITY {
        Spec::At(None)
    } else {
        Spec::At(Some(when))
    };
    Timeout::new(spec, fut)
}

/// Awaits `fut` for at most `timeout` seconds: asyncio's `wait_for(fut, timeout)`, which since
/// Python 3.12 is [`timeout`] around the await (`f64::INFINITY` for asyncio's `None`), but for a
/// timeout of zero or less: then `fut` is never polled (asyncio cancels the coroutine before it
/// starts) and the result is timed out. asyncio would still hand back the result of a task
/// passed in already done; a generic Rust future cannot be asked whether it is done without
/// polling it, so check [`Task::done`](crate::Task::done) first.
///
/// # Errors
///
/// As [`timeout`].
///
/// # Examples
///
/// ```
/// use evloop::{EventLoop, LoopTaskExt, sleep, wait_for};
///
/// let lp = EventLoop::new()?;
/// let lp2 = lp.clone();
/// let out = lp.run_until_complete(async move {
///     let task = lp2.create_task(sleep(10.0))?;
///     let err = wait_for(task.clone(), 0.01).await.unwrap_err();
///     sleep(0.0).await?; // the cancelled task finishes on its next step
///     Ok::<_, evloop::TaskError>((err.is_timed_out(), task.cancelled()))
/// })??;
/// assert_eq!(out, (true, true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// CPython: Lib/asyncio/tasks.py (wait_for, 3.12+).
pub fn wait_for<F: Future>(fut: F, timeout: impl Delay) -> Timeout<F> {
    let mut t = self::timeout(timeout, fut);
    t.never_started = matches!(t.spec, Some(Spec::In(ns)) if ns <= 0);
    t
}

/// The deadline as given, resolved on the first poll.
enum Spec {
    /// Nanoseconds from the first poll.
    In(i128),
    /// A loop time, or never.
    At(Option<f64>),
    Invalid(Error),
}

/// The future of [`timeout`], [`timeout_at`] and [`wait_for`]: `fut`'s output, or a timed-out
/// [`Error`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Timeout<F> {
    /// Boxed, so that `Timeout` is `Unpin` and the inner future can be dropped in place at the
    /// deadline.
    fut: Option<Pin<Box<F>>>,
    spec: Option<Spec>,
    armed: Option<(EventLoop, Alarm)>,
    /// What the task awaited inside `fut` when it last suspended; cancelled at the deadline.
    awaited: Option<Rc<dyn Awaited>>,
    /// `wait_for` with a timeout of zero or less: it ends without polling `fut`.
    never_started: bool,
}

impl<F: Future> Timeout<F> {
    fn new(spec: Spec, fut: F) -> Timeout<F> {
        Timeout {
            fut: Some(Box::pin(fut)),
            spec: Some(spec),
            armed: None,
            awaited: None,
            never_started: false,
        }
    }

    /// The deadline on the loop's clock, once the future was first polled (or rescheduled);
    /// `None` before that and for no deadline (asyncio's `Timeout.when()`).
    pub fn when(&self) -> Option<f64> {
        match (&self.armed, &self.spec) {
            (Some((_, alarm)), _) => alarm.when(),
            (None, Some(Spec::At(when))) => *when,
            _ => None,
        }
    }

    /// Moves the deadline to loop time `when`, `None` for none (asyncio's
    /// `Timeout.reschedule`); a deadline already past expires the timeout on the next
    /// iteration.
    ///
    /// # Errors
    ///
    /// An invalid-argument loop error for a NaN `when`; a loop error if the loop is closed.
    pub fn reschedule(&mut self, when: Option<f64>) -> Result<(), Error> {
        if when.is_some_and(f64::is_nan) {
            return Err(evloop_sched::Error::invalid_argument("when must not be NaN").into());
        }
        match &mut self.armed {
            Some((lp, alarm)) => alarm.reschedule(lp, when),
            None => {
                self.spec = Some(Spec::At(when));
                Ok(())
            }
        }
    }

    /// True once the deadline passed before the future completed (asyncio's
    /// `Timeout.expired()`).
    pub fn expired(&self) -> bool {
        self.armed.as_ref().is_some_and(|(_, a)| a.rung())
    }

    /// Arms the alarm on the first poll.
    fn arm(&mut self) -> Result<(), Error> {
        if self.armed.is_some() {
            return Ok(());
        }
        let lp = get_running_loop()?;
        let when = match self.spec.take() {
            Some(Spec::In(ns)) => {
                let d =
                    std::time::Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX));
                alarm::deadline_in(&lp, d)?
            }
            Some(Spec::At(when)) => when,
            Some(Spec::Invalid(err)) => return Err(err),
            None => None,
        };
        let alarm = Alarm::at(&lp, when)?;
        self.armed = Some((lp, alarm));
        Ok(())
    }

    /// Remembers what the current task awaits after `fut` suspended, leaving it in place so
    /// that cancelling the task still cancels it.
    fn note_awaited(&mut self) {
        self.awaited = current::with_current(|cur| {
            let info = cur?.task_info()?;
            let waiter = info.take_waiter()?;
            info.set_waiter(waiter.clone());
            Some(waiter)
        });
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.fut.is_none() {
            return Poll::Ready(Err(Error::invalid_state("timeout polled after completion")));
        }
        if this.never_started {
            // Checked before arming, so that a loop that is not running is still reported.
            if let Err(err) = get_running_loop() {
                this.fut = None;
                return Poll::Ready(Err(err.into()));
            }
            this.fut = None;
            return Poll::Ready(Err(Error::timed_out()));
        }
        if let Err(err) = this.arm() {
            this.fut = None;
            return Poll::Ready(Err(err));
        }
        if this.expired() {
            // asyncio's `Timeout._on_timeout`: the task is cancelled, so what it awaits is.
            if let Some(awaited) = this.awaited.take() {
                awaited.cancel_awaited(None);
            }
            this.fut = None;
            return Poll::Ready(Err(Error::timed_out()));
        }
        let Some(fut) = this.fut.as_mut() else {
            return Poll::Ready(Err(Error::invalid_state("timeout polled after completion")));
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => {
                this.fut = None;
                this.awaited = None;
                if let Some((_, alarm)) = &mut this.armed {
                    alarm.disarm();
                }
                Poll::Ready(Ok(out))
            }
            Poll::Pending => {
                this.note_awaited();
                if let Some((_, alarm)) = &this.armed {
                    alarm.register(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = self.armed.as_ref().and_then(|(_, a)| a.when());
        f.debug_struct("Timeout")
            .field("when", &when)
            .field(
                "expired",
                &self.armed.as_ref().is_some_and(|(_, a)| a.rung()),
            )
            .field("done", &self.fut.is_none())
            .finish()
    }
}
