//! What a loop group reports when a loop failed: which loop, its error, and whether it was a
//! panic.

use std::any::Any;
use std::fmt;
use std::io;

/// One loop of a [`LoopGroup`](super::LoopGroup) that failed: its setup or its run returned an
/// error, or panicked.
#[derive(Debug)]
pub struct LoopFailure {
    index: usize,
    error: io::Error,
    panicked: bool,
}

impl LoopFailure {
    pub(super) fn error(index: usize, error: io::Error) -> LoopFailure {
        LoopFailure {
            index,
            error,
            panicked: false,
        }
    }

    /// A panic's payload, kept as its message (a `&str` or `String` payload) in an
    /// `io::Error` of kind `Other`.
    pub(super) fn panic(index: usize, payload: &(dyn Any + Send)) -> LoopFailure {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        LoopFailure {
            index,
            error: io::Error::other(format!("panicked: {message}")),
            panicked: true,
        }
    }

    /// The failed loop's index in its group (0 is the first loop).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the loop's thread panicked (in the setup, or out of the run) rather than
    /// returned an error. The panic's message is in [`io_error`](LoopFailure::io_error).
    pub fn is_panic(&self) -> bool {
        self.panicked
    }

    /// The error the loop's setup or run returned, or the panic's message.
    pub fn io_error(&self) -> &io::Error {
        &self.error
    }

    /// The error, by value.
    pub fn into_io_error(self) -> io::Error {
        self.error
    }
}

impl fmt::Display for LoopFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loop {}: {}", self.index, self.error)
    }
}

impl std::error::Error for LoopFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Every loop of a [`LoopGroup`](super::LoopGroup) that failed, in the order of their indices:
/// none is lost.
///
/// Converts into an `io::Error` of the first failure's kind that wraps it (its message names
/// them all; `get_ref` and `downcast_ref::<GroupError>()` give it back).
///
/// # Examples
///
/// ```
/// use std::io;
/// use evloop::{GroupError, LoopGroup, LoopGroupOptions};
///
/// let started = LoopGroup::spawn(LoopGroupOptions::new().loops(3), |_lp, seat| {
///     if seat.index() == 2 {
///         return Err(io::Error::new(io::ErrorKind::AddrInUse, "port taken"));
///     }
///     Ok(())
/// });
/// let err = started.err().ok_or("the group started")?;
/// assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
/// let group = err.get_ref().and_then(|e| e.downcast_ref::<GroupError>()).ok_or("no GroupError")?;
/// let failure = &group.failures()[0];
/// assert_eq!((failure.index(), failure.is_panic()), (2, false));
/// assert_eq!(err.to_string(), "loop 2: port taken");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct GroupError {
    failures: Vec<LoopFailure>,
}

impl GroupError {
    /// `failures`, sorted by loop index; never empty.
    pub(super) fn new(mut failures: Vec<LoopFailure>) -> GroupError {
        failures.sort_by_key(LoopFailure::index);
        GroupError { failures }
    }

    /// The failed loops, by increasing index (at least one).
    pub fn failures(&self) -> &[LoopFailure] {
        &self.failures
    }

    /// The failed loops, by value.
    pub fn into_failures(self) -> Vec<LoopFailure> {
        self.failures
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|f| f as &(dyn std::error::Error + 'static))
    }
}

impl From<GroupError> for io::Error {
    fn from(err: GroupError) -> io::Error {
        let kind = err
            .failures
            .first()
            .map_or(io::ErrorKind::Other, |f| f.error.kind());
        io::Error::new(kind, err)
    }
}
