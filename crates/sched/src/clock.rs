//! The loop's clock and the conversion of delays and deadlines into wheel nanoseconds.
//!
//! The loop's time is the system's `CLOCK_MONOTONIC` in seconds, the same clock as Python's
//! `time.monotonic()`, so `time()` values of two loops (or two processes) can be compared and a
//! time a few seconds "in the past" is still a distinct point. It is read through `Instant`
//! (the same clock) relative to one calibration made on first use. Timer deadlines are whole
//! nanoseconds on that clock, rounded up so that a timer never fires before the time asked for.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Error;

/// The longest the loop sleeps in one poll: one day, as asyncio's `MAXIMUM_SELECT_TIMEOUT`.
/// Longer timers simply take several polls; nothing overflows.
pub(crate) const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The deadline of a timer that never fires (`call_later(f64::INFINITY, ..)`).
pub(crate) const NEVER: u64 = u64::MAX;

/// The calibration: an `Instant` and the `CLOCK_MONOTONIC` reading in nanoseconds at that
/// instant.
fn epoch() -> (Instant, u64) {
    static EPOCH: OnceLock<(Instant, u64)> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let at = Instant::now();
        let mono = if rc == 0 {
            u64::try_from(ts.tv_sec)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
        } else {
            0
        };
        (at, mono)
    })
}

/// Nanoseconds on the loop clock; saturates (after 584 years of uptime).
pub(crate) fn now_ns() -> u64 {
    instant_to_ns(Instant::now())
}

pub(crate) fn instant_to_ns(at: Instant) -> u64 {
    let (epoch, base) = epoch();
    match at.checked_duration_since(epoch) {
        Some(after) => base.saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX)),
        None => base
            .saturating_sub(u64::try_from(epoch.duration_since(at).as_nanos()).unwrap_or(u64::MAX)),
    }
}

pub(crate) fn ns_to_secs(ns: u64) -> f64 {
    if ns == NEVER {
        f64::INFINITY
    } else {
        ns as f64 / 1e9
    }
}

/// Seconds (a delay or a loop time) to nanoseconds, rounded up; `None` means "never".
/// Negative values stay negative (a delay of -5 s is 5 s in the past, as in asyncio).
#[inline]
fn secs_to_ns(secs: f64, what: &str) -> Result<Option<i128>, Error> {
    // `sleep(0.0)` and `call_later(0.0, ..)` are common; `ceil` is a library call on x86-64.
    if secs == 0.0 {
        return Ok(Some(0));
    }
    if secs.is_nan() {
        return Err(nan(what));
    }
    if secs == f64::INFINITY {
        return Ok(None);
    }
    let ns = (secs * 1e9).ceil();
    // Inside ±9e18 the i64 conversion is exact and much cheaper than the i128 one (a library
    // call); beyond it `as i128` saturates, and -inf becomes i128::MIN.
    Ok(Some(if ns.abs() < 9.0e18 {
        i128::from(ns as i64)
    } else {
        ns as i128
    }))
}

/// The error for a NaN delay or time (out of line: `secs_to_ns` is inlined into callers).
#[cold]
fn nan(what: &str) -> Error {
    Error::invalid_argument(format!("invalid {what}: NaN (not a number)"))
}

/// A signed offset from `now` as a deadline on the loop clock, saturating at 0 and just below
/// [`NEVER`].
pub(crate) fn offset_from(now: u64, offset: i128) -> u64 {
    let at = i128::from(now).saturating_add(offset);
    u64::try_from(at.clamp(0, i128::from(NEVER - 1))).unwrap_or(NEVER - 1)
}

/// An absolute loop time in nanoseconds as a deadline, clamped like [`offset_from`].
fn absolute(ns: i128) -> u64 {
    u64::try_from(ns.clamp(0, i128::from(NEVER - 1))).unwrap_or(NEVER - 1)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::time::Duration {}
    impl Sealed for f64 {}
    impl Sealed for std::time::Instant {}
}

/// A delay accepted by [`call_later`](crate::EventLoop::call_later): a [`Duration`] or `f64`
/// seconds.
///
/// For `f64`: negative delays are due at once, `f64::INFINITY` never fires, NaN is an error at
/// the call.
pub trait Delay: sealed::Sealed {
    /// The delay in nanoseconds (rounded up; negative for the past), or `None` for "never".
    ///
    /// # Errors
    ///
    /// An invalid-argument [`Error`] for NaN.
    fn to_nanos(self) -> Result<Option<i128>, Error>;
}

impl Delay for Duration {
    #[inline]
    fn to_nanos(self) -> Result<Option<i128>, Error> {
        Ok(Some(i128::try_from(self.as_nanos()).unwrap_or(i128::MAX)))
    }
}

impl Delay for f64 {
    #[inline]
    fn to_nanos(self) -> Result<Option<i128>, Error> {
        secs_to_ns(self, "delay")
    }
}

/// A point in time accepted by [`call_at`](crate::EventLoop::call_at): `f64` seconds on the
/// clock of [`EventLoop::time`](crate::EventLoop::time), or an [`Instant`].
pub trait Deadline: sealed::Sealed {
    /// Nanoseconds on the loop clock (rounded up), or `None` for "never".
    ///
    /// # Errors
    ///
    /// An invalid-argument [`Error`] for NaN.
    fn to_loop_nanos(self) -> Result<Option<u64>, Error>;
}

impl Deadline for f64 {
    fn to_loop_nanos(self) -> Result<Option<u64>, Error> {
        Ok(secs_to_ns(self, "time")?.map(absolute))
    }
}

impl Deadline for Instant {
    fn to_loop_nanos(self) -> Result<Option<u64>, Error> {
        Ok(Some(instant_to_ns(self).min(NEVER - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_keep_their_sign() {
        assert_eq!(secs_to_ns(1.5, "delay"), Ok(Some(1_500_000_000)));
        assert_eq!(secs_to_ns(1e-10, "delay"), Ok(Some(1)));
        assert_eq!(secs_to_ns(-3.0, "delay"), Ok(Some(-3_000_000_000)));
        assert_eq!(secs_to_ns(f64::INFINITY, "delay"), Ok(None));
        assert!(secs_to_ns(f64::NAN, "delay").is_err_and(|e| e.is_invalid_argument()));
    }

    #[test]
    fn offsets_saturate_at_both_ends() {
        assert_eq!(offset_from(10, -3), 7);
        assert_eq!(offset_from(10, -30), 0);
        assert_eq!(offset_from(10, i128::MIN), 0);
        assert_eq!(offset_from(10, i128::MAX), NEVER - 1);
        assert_eq!(offset_from(10, 5), 15);
        assert_eq!(absolute(-4), 0);
        assert_eq!(absolute(i128::MAX), NEVER - 1);
        let huge = secs_to_ns(1e30, "delay")
            .ok()
            .flatten()
            .map(|ns| offset_from(0, ns));
        assert_eq!(huge, Some(NEVER - 1));
    }

    #[test]
    fn durations_saturate() {
        assert_eq!(
            offset_from(5, Duration::MAX.to_nanos().ok().flatten().unwrap_or(0)),
            NEVER - 1
        );
        assert_eq!(Duration::from_micros(3).to_nanos(), Ok(Some(3_000)));
    }

    #[test]
    fn instants_map_onto_the_monotonic_clock() {
        let now = Instant::now();
        let a = instant_to_ns(now);
        let b = instant_to_ns(now + Duration::from_millis(5));
        assert_eq!(b - a, 5_000_000);
        assert!(instant_to_ns(now) > 0);
    }

    #[test]
    fn never_is_infinite_seconds() {
        assert_eq!(ns_to_secs(NEVER), f64::INFINITY);
        assert_eq!(ns_to_secs(2_500_000_000), 2.5);
    }
}
