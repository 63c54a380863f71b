//! The handle to one inserted timer.

/// Names one timer inserted into a [`TimerWheel`](crate::TimerWheel), for
/// [`cancel`](crate::TimerWheel::cancel) and the look-ups.
///
/// A key is 8 bytes and generation-checked: it carries the index of the
/// timer's storage and that storage's generation, which changes each time
/// the storage is freed, so a key whose timer has expired or was cancelled
/// matches nothing, even after its storage was reused by a later timer.
/// (Storage whose generation wraps around is retired, never reused.)
///
/// # Examples
///
/// ```
/// use evloop::raw::TimerWheel;
///
/// let mut wheel = TimerWheel::new();
/// let key = wheel.insert(5, "first");
/// assert_eq!(wheel.cancel(key), Some("first"));
///
/// // Later timers reuse freed storage, but an old key never matches them.
/// let again = wheel.insert(5, "second");
/// assert_ne!(key, again);
/// assert_eq!(wheel.cancel(key), None);
/// assert_eq!(wheel.len(), 1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}
