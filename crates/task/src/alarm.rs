//! [`Alarm`]: a deadline on the loop's clock that wakes the future racing it (the helpers
//! [`timeout`](crate::timeout()), [`wait`](crate::wait()) and
//! [`as_completed`](crate::as_completed)).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Waker;

use evloop_sched::{Delay, EventLoop, Handle, TimerHandle};

use crate::Error;

/// What the alarm's callback and its owner share.
#[derive(Default)]
struct Bell {
    rung: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Bell {
    fn ring(&self) {
        self.rung.set(true);
        // Taken out first: the wake may reach code that registers again.
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// How the alarm's callback is queued.
enum Armed {
    /// A deadline already passed: asyncio's `Timeout.reschedule` then uses `call_soon`.
    Soon(Handle),
    At(TimerHandle),
}

/// A deadline on the loop's clock; dropping it cancels its callback.
pub(crate) struct Alarm {
    bell: Rc<Bell>,
    armed: Option<Armed>,
    when: Option<f64>,
}

/// The loop time `delay` from now, or `None` for a delay that never ends.
pub(crate) fn deadline_in(lp: &EventLoop, delay: impl Delay) -> Result<Option<f64>, Error> {
    // Nanoseconds to seconds, as the loop's clock counts (a lossy cast only past 2^53 ns).
    #[allow(clippy::cast_precision_loss)]
    Ok(delay.to_nanos()?.map(|ns| lp.time() + ns as f64 / 1e9))
}

impl Alarm {
    /// An alarm for loop time `when` (`None`: never).
    pub(crate) fn at(lp: &EventLoop, when: Option<f64>) -> Result<Alarm, Error> {
        let mut alarm = Alarm {
            bell: Rc::new(Bell::default()),
            armed: None,
            when: None,
        };
        alarm.reschedule(lp, when)?;
        Ok(alarm)
    }

    /// Moves the deadline (`None`: never); a rung alarm rings again only for the new deadline.
    pub(crate) fn reschedule(&mut self, lp: &EventLoop, when: Option<f64>) -> Result<(), Error> {
        if let Some(w) = when
            && w.is_nan()
        {
            return Err(evloop_sched::Error::invalid_argument("when must not be NaN").into());
        }
        self.disarm();
        self.bell.rung.set(false);
        self.when = when;
        let Some(when) = when else {
            return Ok(());
        };
        let bell = self.bell.clone();
        self.armed = Some(if when <= lp.time() {
            Armed::Soon(lp.call_soon(move || bell.ring())?)
        } else {
            Armed::At(lp.call_at(when, move || bell.ring())?)
        });
        Ok(())
    }

    /// The deadline, `None` for never.
    pub(crate) fn when(&self) -> Option<f64> {
        self.when
    }

    /// True once the deadline's callback ran.
    pub(crate) fn rung(&self) -> bool {
        self.bell.rung.get()
    }

    /// Remembers the waker to wake when the alarm rings.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.bell.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// Cancels the callback, if it has not run.
    pub(crate) fn disarm(&mut self) {
        match self.armed.take() {
            Some(Armed::Soon(h)) => h.cancel(),
            Some(Armed::At(h)) => h.cancel(),
            None => {}
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.disarm();
    }
}
