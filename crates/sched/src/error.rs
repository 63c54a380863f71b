//! The loop's opaque error type.

use std::fmt;
use std::io;

/// An error from the event loop that is not an I/O failure: the loop is closed, already running,
/// another loop runs on this thread, or an argument was invalid.
///
/// The kind is deliberately opaque; ask with the `is_*` predicates. `Error` converts into
/// [`io::Error`] (keeping itself as the inner error), so `?` works in functions returning
/// `io::Result`.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// lp.close()?;
/// let err = lp.call_soon(|| ()).unwrap_err();
/// assert!(err.is_closed());
/// assert_eq!(err.to_string(), "event loop is closed");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Closed,
    AlreadyRunning,
    OtherLoopRunning,
    NotRunning,
    CloseWhileRunning,
    InvalidArgument(String),
}

impl Error {
    /// The loop is closed.
    pub fn closed() -> Error {
        Error { kind: Kind::Closed }
    }

    /// The loop is already running (a nested `run_forever`).
    pub fn already_running() -> Error {
        Error {
            kind: Kind::AlreadyRunning,
        }
    }

    /// Another loop is running on this thread.
    pub fn other_loop_running() -> Error {
        Error {
            kind: Kind::OtherLoopRunning,
        }
    }

    /// No loop is running (e.g. `get_running_loop()` outside a loop, or a step API call outside
    /// `run_forever_setup`/`run_forever_cleanup`).
    pub fn not_running() -> Error {
        Error {
            kind: Kind::NotRunning,
        }
    }

    /// `close()` was called on a running loop.
    pub fn close_while_running() -> Error {
        Error {
            kind: Kind::CloseWhileRunning,
        }
    }

    /// An argument was invalid; `what` says which and why, in lowercase (e.g. `"invalid delay: NaN"`).
    pub fn invalid_argument(what: impl Into<String>) -> Error {
        Error {
            kind: Kind::InvalidArgument(what.into()),
        }
    }

    /// True if the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.kind == Kind::Closed
    }

    /// True if the loop was already running.
    pub fn is_already_running(&self) -> bool {
        self.kind == Kind::AlreadyRunning
    }

    /// True if another loop was running on this thread.
    pub fn is_other_loop_running(&self) -> bool {
        self.kind == Kind::OtherLoopRunning
    }

    /// True if no loop was running.
    pub fn is_not_running(&self) -> bool {
        self.kind == Kind::NotRunning
    }

    /// True if `close()` was refused because the loop is running.
    pub fn is_close_while_running(&self) -> bool {
        self.kind == Kind::CloseWhileRunning
    }

    /// True if an argument was invalid.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self.kind, Kind::InvalidArgument(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Closed => f.write_str("event loop is closed"),
            Kind::AlreadyRunning => f.write_str("this event loop is already running"),
            Kind::OtherLoopRunning => f.write_str(
                "cannot run the event loop while another loop is running on this thread",
            ),
            Kind::NotRunning => f.write_str("no running event loop"),
            Kind::CloseWhileRunning => f.write_str("cannot close a running event loop"),
            Kind::InvalidArgument(what) => f.write_str(what),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {})", self.kind, self)
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = if err.is_invalid_argument() {
            io::ErrorKind::InvalidInput
        } else {
            io::ErrorKind::Other
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_into_io_error_and_back() {
        let io: io::Error = Error::closed().into();
        assert_eq!(io.kind(), io::ErrorKind::Other);
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert_eq!(inner, Some(&Error::closed()));

        let io: io::Error = Error::invalid_argument("invalid delay: NaN").into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(io.to_string(), "invalid delay: NaN");
    }
}
