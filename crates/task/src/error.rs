//! The error type of future outcomes: cancelled, invalid state, failed, or a loop error.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use evloop_sched::Exception;

/// Why a [`LoopFuture`](crate::LoopFuture) or [`Task`](crate::Task) has no value: it was
/// cancelled, it failed (asyncio's `set_exception`, or a panic inside a task), the operation
/// does not fit the future's state, or the loop refused (closed, already running, stopped).
///
/// The kind is opaque; ask with the `is_*` predicates. `Error` is cheap to clone (a failure's
/// exception is shared), `Send + Sync`, and converts into [`io::Error`].
///
/// # Examples
///
/// ```
/// use evloop::TaskError;
///
/// let err = TaskError::cancelled(Some("bye"));
/// assert!(err.is_cancelled());
/// assert_eq!(err.cancel_message(), Some("bye"));
/// assert_eq!(err.to_string(), "cancelled: bye");
/// ```
#[derive(Clone)]
pub struct Error {
    /// One pointer wide, so that a future's outcome slot stays small (a million pending tasks
    /// each carry one).
    kind: Arc<Kind>,
}

enum Kind {
    Cancelled(Option<Arc<str>>),
    InvalidState(&'static str),
    Failed(Failure),
    Loop(evloop_sched::Error),
    Stopped,
    TimedOut,
}

/// A failure's exception, shared by every clone of the error. The message is computed once so
/// that `Display` never takes the lock.
struct Failure {
    message: String,
    panic: bool,
    exception: Mutex<Option<Exception>>,
}

impl Failure {
    /// The one place the lock is taken; a poisoned lock only means a panic while the `Option`
    /// was being replaced, which leaves it consistent.
    fn slot(&self) -> MutexGuard<'_, Option<Exception>> {
        self.exception
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Error {
    /// The future was cancelled, with an optional message (asyncio's `CancelledError(msg)`).
    pub fn cancelled(msg: Option<&str>) -> Error {
        Error {
            kind: Arc::new(Kind::Cancelled(msg.map(Arc::from))),
        }
    }

    pub(crate) fn cancelled_shared(msg: Option<Arc<str>>) -> Error {
        Error {
            kind: Arc::new(Kind::Cancelled(msg)),
        }
    }

    /// The operation does not fit the future's state (asyncio's `InvalidStateError`); `what`
    /// says why, e.g. `"result is not set"`.
    pub fn invalid_state(what: &'static str) -> Error {
        Error {
            kind: Arc::new(Kind::InvalidState(what)),
        }
    }

    /// The future failed with `exception` (asyncio's `set_exception`); a panic inside a task is
    /// a failure whose exception is the panic payload.
    pub fn failed(exception: Exception) -> Error {
        Error {
            kind: Arc::new(Kind::Failed(Failure {
                message: exception.to_string(),
                panic: exception.is_panic(),
                exception: Mutex::new(Some(exception)),
            })),
        }
    }

    /// The loop stopped before the future completed (`run_until_complete`).
    pub fn stopped() -> Error {
        Error {
            kind: Arc::new(Kind::Stopped),
        }
    }

    /// The deadline of a [`timeout`](crate::timeout()) or [`wait_for`](crate::wait_for) passed
    /// first (asyncio's `TimeoutError`).
    pub fn timed_out() -> Error {
        Error {
            kind: Arc::new(Kind::TimedOut),
        }
    }

    /// True if a deadline passed first ([`timeout`](crate::timeout()),
    /// [`wait_for`](crate::wait_for), [`as_completed`](crate::as_completed)).
    pub fn is_timed_out(&self) -> bool {
        matches!(*self.kind, Kind::TimedOut)
    }

    /// True if the future was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.kind, Kind::Cancelled(_))
    }

    /// The message the future was cancelled with (the first one, if `cancel` was called twice).
    pub fn cancel_message(&self) -> Option<&str> {
        match &*self.kind {
            Kind::Cancelled(msg) => msg.as_deref(),
            _ => None,
        }
    }

    /// True if the operation did not fit the future's state.
    pub fn is_invalid_state(&self) -> bool {
        matches!(*self.kind, Kind::InvalidState(_))
    }

    /// True if the future failed (an exception was set, or a task panicked).
    pub fn is_failed(&self) -> bool {
        matches!(*self.kind, Kind::Failed(_))
    }

    /// True if the future failed because a task (or an executor job) panicked.
    pub fn is_panic(&self) -> bool {
        matches!(&*self.kind, Kind::Failed(f) if f.panic)
    }

    /// True if the loop stopped before the future completed.
    pub fn is_stopped(&self) -> bool {
        matches!(*self.kind, Kind::Stopped)
    }

    /// True if the loop was closed.
    pub fn is_closed(&self) -> bool {
        matches!(&*self.kind, Kind::Loop(e) if e.is_closed())
    }

    /// The loop's own error, if the loop refused (closed, already running, another loop runs).
    pub fn loop_error(&self) -> Option<&evloop_sched::Error> {
        match &*self.kind {
            Kind::Loop(e) => Some(e),
            _ => None,
        }
    }

    /// Takes the failure's exception out (a panic payload to resume, or an error value to
    /// downcast). Clones share it, so only the first call gets it; later calls, and errors that
    /// are not failures, give `None`.
    pub fn take_exception(&self) -> Option<Exception> {
        match &*self.kind {
            Kind::Failed(f) => f.slot().take(),
            _ => None,
        }
    }

    /// Calls `f` with the failure's exception, if this is a failure whose exception was not
    /// taken out.
    pub fn with_exception<R>(&self, f: impl FnOnce(&Exception) -> R) -> Option<R> {
        match &*self.kind {
            Kind::Failed(failure) => failure.slot().as_ref().map(f),
            _ => None,
        }
    }
}

impl From<evloop_sched::Error> for Error {
    fn from(err: evloop_sched::Error) -> Error {
        Error {
            kind: Arc::new(Kind::Loop(err)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            Kind::Cancelled(None) => f.write_str("cancelled"),
            Kind::Cancelled(Some(msg)) => write!(f, "cancelled: {msg}"),
            Kind::InvalidState(what) => f.write_str(what),
            Kind::Failed(failure) => f.write_str(&failure.message),
            Kind::Loop(err) => fmt::Display::fmt(err, f),
            Kind::Stopped => f.write_str("event loop stopped before future completed"),
            Kind::TimedOut => f.write_str("timed out"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &*self.kind {
            Kind::Cancelled(_) => "Cancelled",
            Kind::InvalidState(_) => "InvalidState",
            Kind::Failed(_) => "Failed",
            Kind::Loop(_) => "Loop",
            Kind::Stopped => "Stopped",
            Kind::TimedOut => "TimedOut",
        };
        write!(f, "Error({kind}: {self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            Kind::Loop(err) => Some(err),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match &*err.kind {
            Kind::Loop(inner) => inner.clone().into(),
            Kind::TimedOut => io::Error::new(io::ErrorKind::TimedOut, err),
            _ => io::Error::other(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_shared_by_clones_and_taken_once() {
        let err = Error::failed(Exception::from_error("boom"));
        let twin = err.clone();
        assert!(err.is_failed() && !err.is_panic());
        assert_eq!(twin.to_string(), "boom");
        assert_eq!(
            twin.with_exception(|e| e.message()),
            Some("boom".to_owned())
        );
        assert!(err.take_exception().is_some());
        assert!(twin.take_exception().is_none());
        assert_eq!(twin.to_string(), "boom");
    }

    #[test]
    fn loop_errors_keep_their_io_kind() {
        let io: io::Error = Error::from(evloop_sched::Error::closed()).into();
        assert_eq!(io.to_string(), "event loop is closed");
        let io: io::Error = Error::cancelled(None).into();
        assert_eq!(io.kind(), io::ErrorKind::Other);
        assert_eq!(io.to_string(), "cancelled");
    }
}
