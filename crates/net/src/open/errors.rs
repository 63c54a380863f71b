//! [`ConnectErrors`] and how the errors of several connection attempts become one.

use std::error::Error;
use std::fmt;
use std::io;

/// Every error of a failed `create_connection` with `all_errors(true)`, in the order of the
/// addresses tried: asyncio's `ExceptionGroup("create_connection failed", …)`.
///
/// It travels inside an `io::Error` (whose kind is the first error's kind); get it back with
/// `get_ref()` or `into_inner()` and `downcast`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use evloop::ConnectErrors;
///
/// let errs = ConnectErrors(vec![
///     io::Error::from(io::ErrorKind::ConnectionRefused),
///     io::Error::from(io::ErrorKind::TimedOut),
/// ]);
/// let err = io::Error::new(io::ErrorKind::ConnectionRefused, errs);
/// let inner = err.get_ref().and_then(|e| e.downcast_ref::<ConnectErrors>());
/// assert_eq!(inner.map(|e| e.0.len()), Some(2));
/// ```
#[derive(Debug)]
pub struct ConnectErrors(pub Vec<io::Error>);

impl ConnectErrors {
    /// The errors, in the order of the addresses tried.
    pub fn errors(&self) -> &[io::Error] {
        &self.0
    }
}

impl fmt::Display for ConnectErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "create_connection failed ({} errors)", self.0.len())?;
        for (i, err) in self.0.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            write!(f, "{sep}{err}")?;
        }
        Ok(())
    }
}

impl Error for ConnectErrors {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.first().map(|e| e as &(dyn Error + 'static))
    }
}

/// asyncio's error when the resolver found nothing to connect to or bind.
pub(crate) fn empty_resolution() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "getaddrinfo() returned empty list")
}

/// The one error `create_connection` reports once every attempt failed, as asyncio builds it:
/// with `all_errors`, all of them; otherwise one error alone, or the first when every message
/// is the same, or "Multiple exceptions: e1, e2". The kind is always the first error's.
pub(crate) fn combine(mut errors: Vec<io::Error>, all_errors: bool) -> io::Error {
    let Some(first) = errors.first() else {
        return empty_resolution();
    };
    let kind = first.kind();
    if all_errors {
        return io::Error::new(kind, ConnectErrors(errors));
    }
    let model = first.to_string();
    if errors.iter().all(|e| e.to_string() == model) {
        return errors.swap_remove(0);
    }
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    io::Error::new(kind, format!("Multiple exceptions: {}", list.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: io::ErrorKind, msg: &str) -> io::Error {
        io::Error::new(kind, msg)
    }

    // base::BaseEventLoopWithSelectorTests::test_create_connection_multiple_errors
    #[test]
    fn different_messages_are_joined_with_the_first_kind() {
        let e = combine(
            vec![
                err(io::ErrorKind::ConnectionRefused, "err1"),
                err(io::ErrorKind::TimedOut, "err2"),
            ],
            false,
        );
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.to_string(), "Multiple exceptions: err1, err2");
    }

    // base::…::test_create_connection_multiple_errors (every str() equal → the first)
    #[test]
    fn equal_messages_give_the_first_error_itself() {
        let e = combine(
            vec![
                err(io::ErrorKind::ConnectionRefused, "same"),
                err(io::ErrorKind::TimedOut, "same"),
            ],
            false,
        );
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(e.to_string(), "same");
    }

    #[test]
    fn one_error_is_returned_unchanged() {
        let e = combine(
            vec![io::Error::from_raw_os_error(libc::ECONNREFUSED)],
            false,
        );
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
    }

    // base::…::test_create_connection_multiple_errors with all_errors=True (ExceptionGroup)
    #[test]
    fn all_errors_keeps_every_error_in_order() {
        let e = combine(
            vec![
                err(io::ErrorKind::AddrInUse, "a"),
                err(io::ErrorKind::ConnectionRefused, "b"),
            ],
            true,
        );
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let inner = e.into_inner().map(|b| b.downcast::<ConnectErrors>());
        let Some(Ok(group)) = inner else {
            panic!("no ConnectErrors inside");
        };
        let msgs: Vec<String> = group.errors().iter().map(ToString::to_string).collect();
        assert_eq!(msgs, ["a", "b"]);
        assert_eq!(
            group.to_string(),
            "create_connection failed (2 errors): a, b"
        );
    }

    // base::…::test_create_connection_no_getaddrinfo
    #[test]
    fn no_error_at_all_is_the_empty_resolution() {
        let e = combine(Vec::new(), false);
        assert_eq!(e.to_string(), "getaddrinfo() returned empty list");
    }
}
