//! [`sleep`]: asyncio's `sleep(delay)`.

use std::future::Future;
use std::pin::Pin;
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
pub fn sleep(delay: impl Delay) -> Sleep {
    Sleep {
        state: State::Init(delay.to_nanos().map_err(Error::from)),
    }
}

/// The future of [`sleep`].
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct Sleep {
    state: State,
}

#[derive(Debug)]
enum State {
    Init(Result<Option<i128>, Error>),
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
            info.set_waiter_timer(timer.clone());
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Init(Err(err)) => Poll::Ready(Err(err)),
            State::Init(Ok(ns)) => {
                let lp = match get_running_loop() {
                    Ok(lp) => lp,
                    Err(err) => return Poll::Ready(Err(err.into())),
                };
                let delay = match ns {
                    Some(ns) if ns <= 0 => {
                        self.state = State::Yielded;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Some(ns) => Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)),
                    // `f64::INFINITY`: a timer that never fires.
                    None => Duration::MAX,
                };
                let timer = if ns.is_none() {
                    lp.call_later(f64::INFINITY, || ()).map_err(Error::from)
                } else {
                    arm(&lp, None, delay, cx.waker())
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

impl Drop for Sleep {
    fn drop(&mut self) {
        if let State::Timer { timer, .. } = &self.state {
            timer.cancel();
        }
    }
}
