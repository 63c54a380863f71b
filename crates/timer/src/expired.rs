//! [`Expired`]: the draining iterator over due timers.

use crate::wheel::TimerWheel;
use std::fmt;
use std::iter::FusedIterator;

/// Iterator over the timers due at a given time, earliest first, made by
/// [`TimerWheel::drain_expired`]. Each item is `(deadline, payload)`.
///
/// Each step is one [`TimerWheel::pop_expired`] call with the same `now`;
/// timers not reached when the iterator is dropped stay pending. Once it has
/// returned `None` it keeps returning `None`: the wheel cannot change while
/// the iterator borrows it.
///
/// # Examples
///
/// ```
/// use evloop::raw::TimerWheel;
///
/// let mut wheel = TimerWheel::new();
/// wheel.insert(3, 'c');
/// wheel.insert(1, 'a');
/// wheel.insert(2, 'b');
/// let mut due = wheel.drain_expired(2);
/// assert_eq!(due.next(), Some((1, 'a')));
/// assert_eq!(due.next(), Some((2, 'b')));
/// assert_eq!(due.next(), None);
/// ```
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Expired<'a, T> {
    wheel: &'a mut TimerWheel<T>,
    now: u64,
}

impl<'a, T> Expired<'a, T> {
    pub(crate) fn new(wheel: &'a mut TimerWheel<T>, now: u64) -> Self {
        Self { wheel, now }
    }
}

impl<T> Iterator for Expired<'_, T> {
    type Item = (u64, T);

    fn next(&mut self) -> Option<Self::Item> {
        self.wheel.pop_expired(self.now)
    }
}

impl<T> FusedIterator for Expired<'_, T> {}

impl<T> fmt::Debug for Expired<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expired")
            .field("now", &self.now)
            .field("wheel", &self.wheel)
            .finish()
    }
}
