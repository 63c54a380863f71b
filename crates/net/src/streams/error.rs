//! The two errors of the stream reader that carry data: [`IncompleteReadError`] and
//! [`LimitOverrunError`], asyncio's exceptions of the same names, each inside an `io::Error`.

use std::error::Error;
use std::fmt;
use std::io;

/// End of file came before a read was complete (asyncio's `IncompleteReadError`): what
/// arrived is in [`partial`](IncompleteReadError::partial).
///
/// It reaches the caller inside an `io::Error` of kind `UnexpectedEof`; take it out with
/// `into_inner` and `downcast`, or look at it with `get_ref`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use evloop::IncompleteReadError;
///
/// fn partial_of(err: io::Error) -> Option<Vec<u8>> {
///     let inner = err.into_inner()?.downcast::<IncompleteReadError>().ok()?;
///     Some(inner.into_partial())
/// }
/// # let _ = partial_of;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteReadError {
    partial: Vec<u8>,
    expected: Option<usize>,
}

impl IncompleteReadError {
    pub(crate) fn new_io(partial: Vec<u8>, expected: Option<usize>) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            IncompleteReadError { partial, expected },
        )
    }

    /// The bytes read before end of file (they are no longer in the reader's buffer).
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// How many bytes were asked for: `Some(n)` for `readexactly(n)`, `None` for `readuntil`.
    pub fn expected(&self) -> Option<usize> {
        self.expected
    }

    /// The partial bytes, owned.
    pub fn into_partial(self) -> Vec<u8> {
        self.partial
    }
}

impl fmt::Display for IncompleteReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // asyncio's wording, with `None` spelled as asyncio's repr spells it.
        match self.expected {
            Some(n) => write!(
                f,
                "{} bytes read on a total of {n} expected bytes",
                self.partial.len()
            ),
            None => write!(
                f,
                "{} bytes read on a total of None expected bytes",
                self.partial.len()
            ),
        }
    }
}

impl Error for IncompleteReadError {}

/// `readuntil` (or `readline`) found no separator within the reader's limit (asyncio's
/// `LimitOverrunError`).
///
/// It reaches the caller inside an `io::Error` of kind `InvalidData`. After `readuntil` the
/// buffer is untouched, so the data can still be read (with `read` or `readexactly`);
/// [`consumed`](LimitOverrunError::consumed) says how many bytes may be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverrunError {
    message: &'static str,
    consumed: usize,
}

impl LimitOverrunError {
    /// asyncio's message when no separator is in the first `limit` bytes.
    pub(crate) const NOT_FOUND: &'static str = "Separator is not found, and chunk exceed the limit";
    /// asyncio's message when the separator lies beyond the limit.
    pub(crate) const TOO_LONG: &'static str = "Separator is found, but chunk is longer than limit";

    pub(crate) fn new_io(message: &'static str, consumed: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            LimitOverrunError { message, consumed },
        )
    }

    /// How many bytes at the start of the buffer are known not to begin the separator (when
    /// not found), or where the separator starts (when found beyond the limit).
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl fmt::Display for LimitOverrunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl Error for LimitOverrunError {}

/// A copy of `err` for a second reader of the same failure (`io::Error` is not `Clone`): the
/// same OS error code, or the same kind and message.
pub(crate) fn copy_error(err: &io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(err.kind(), err.to_string()),
    }
}
