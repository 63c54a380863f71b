//! [`sleep`]: asyncio's `sleep(delay)`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, RawWakerVTable, Waker};
use std::time::Duration;

use evloop_sched::{Delay, EventLoop, TimerHandle, get_running_loop};

use crate::Error;
use crate::current;

/// Waits `delay` (a [`Duration`] or `f64` seconds) on the running loop: asyncio's `sleep`.
///
/// `sleep(0)` (or any delay ≤ 0) yields exactly one iteration: the task is queued behind what
/// is ready now, so a callback scheduled before the sleep has run when it returns. A longer
/// sleep is a timer on the loop's wheel; dropping the sleep (or cancelling the task that awaits
/// it) cancels the timer at once, so it leaves the wheel.
///
/// # Errors
///
/// - an invalid-argument loop error for a NaN delay;
/// - a loop error with `is_not_running()` when polled outside a running loop;
/// - a loop error with `is_closed()` on a closed loop.
///
/// # Precision
///
/// As [`EventLoop::call_later`]: never early; late by the loop's wake-up latency.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use evloop::EventLoop;
/// use evloop::{LoopTaskExt, sleep};
///
/// let lp = EventLoop::new()?;
/// let start = Instant::now();
/// lp.run_until_complete(sleep(Duration::from_millis(20)))??;
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline]
pub fn sleep(delay: impl Delay) -> Sleep {
    let init = match delay.to_nanos() {
        Err(err) => Init::Invalid(err.into()),
        Ok(Some(ns)) if ns <= 0 => Init::Yield,
        Ok(Some(ns)) => Init::After(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))),
        // `f64::INFINITY`: a timer that never fires.
        Ok(None) => Init::Never,
    };
    Sleep {
        state: State::Init(init),
    }
}

/// The future of [`sleep`].
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct Sleep {
    state: State,
}

/// What `sleep` was asked for, converted once (small, so that polling moves little).
#[derive(Debug)]
enum Init {
    /// A delay ≤ 0: yield one iteration.
    Yield,
    After(Duration),
    Never,
    Invalid(Error),
}

#[derive(Debug)]
enum State {
    Init(Init),
    Yielded,
    Timer {
        lp: EventLoop,
        timer: TimerHandle,
        /// Which waker the timer wakes, by identity only: owning a clone here would make the
        /// task own itself (the task owns this future), so a task dropped by `close()` would
        /// never be freed.
        waker: WakerId,
    },
    Done,
}

/// A waker's identity, as `Waker::will_wake` compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WakerId(*const (), *const RawWakerVTable);

impl WakerId {
    fn of(waker: &Waker) -> WakerId {
        WakerId(waker.data(), waker.vtable())
    }
}

fn arm(
    lp: &EventLoop,
    when: Option<f64>,
    delay: Duration,
    waker: &Waker,
) -> Result<TimerHandle, Error> {
    let w = waker.clone();
    let timer = match when {
        Some(when) => lp.call_at(when, move || w.wake())?,
        None => lp.call_later(delay, move || w.wake())?,
    };
    Ok(timer)
}

fn register(timer: &TimerHandle) {
    if let Some(node) = current::current_node() {
        if let Some(info) = node.task_info() {
            info.set_waiter(Rc::new(timer.clone()));
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // The common case, `sleep(0)`, first, and without touching the rest of the state.
        match &self.state {
            State::Init(Init::Yield) => {
                if let Err(err) = check_running() {
                    self.state = State::Done;
                    return Poll::Ready(Err(err));
                }
                self.state = State::Yielded;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            State::Yielded | State::Done => {
                self.state = State::Done;
                return Poll::Ready(Ok(()));
            }
            State::Init(_) | State::Timer { .. } => {}
        }
        self.poll_timer(cx)
    }
}

impl Sleep {
    /// `poll` for everything but `sleep(0)`: kept out of line, so that the yield path inlines
    /// into the awaiting future.
    #[inline(never)]
    fn poll_timer(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Init(Init::Invalid(err)) => Poll::Ready(Err(err)),
            State::Init(init) => {
                let lp = match get_running_loop() {
                    Ok(lp) => lp,
                    Err(err) => return Poll::Ready(Err(err.into())),
                };
                let timer = match init {
                    Init::Never => lp.call_later(f64::INFINITY, || ()).map_err(Error::from),
                    Init::After(delay) => arm(&lp, None, delay, cx.waker()),
                    Init::Yield | Init::Invalid(_) => unreachable!("handled above"),
                };
                match timer {
                    Ok(timer) => {
                        register(&timer);
                        self.state = State::Timer {
                            lp,
                            timer,
                            waker: WakerId::of(cx.waker()),
                        };
                        Poll::Pending
                    }
                    Err(err) => Poll::Ready(Err(err)),
                }
            }
            State::Yielded | State::Done => Poll::Ready(Ok(())),
            State::Timer { lp, timer, waker } => {
                if lp.time() >= timer.when() {
                    timer.cancel();
                    return Poll::Ready(Ok(()));
                }
                let (timer, waker) = if waker == WakerId::of(cx.waker()) {
                    (timer, waker)
                } else {
                    // Polled by someone else now: re-arm the same deadline with their waker.
                    timer.cancel();
                    match arm(&lp, Some(timer.when()), Duration::ZERO, cx.waker()) {
                        Ok(t) => (t, WakerId::of(cx.waker())),
                        Err(err) => return Poll::Ready(Err(err)),
                    }
                };
                register(&timer);
                self.state = State::Timer { lp, timer, waker };
                Poll::Pending
            }
        }
    }
}

/// `Ok` if a loop runs on this thread, as `get_running_loop` says, but without a reference
/// count in the common case: the current task's own loop is running.
#[inline]
fn check_running() -> Result<(), Error> {
    if current::with_current(|cur| cur.is_some_and(|task| task.event_loop().is_running())) {
        return Ok(());
    }
    get_running_loop().map(drop).map_err(Error::from)
}

impl Drop for Sleep {
    #[inline]
    fn drop(&mut self) {
        if let State::Timer { timer, .. } = &self.state {
            timer.cancel();
        }
    }
}
