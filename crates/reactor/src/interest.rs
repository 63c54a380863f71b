//! What the loop asks about an fd ([`Interest`]) and what one poll answers
//! ([`Ready`]).

use std::os::fd::RawFd;

/// Level-triggered interest of one fd: which of readability and writability
/// the loop wants to hear about.
///
/// Level-triggered is asyncio's meaning: an fd is reported on every poll for
/// as long as it stays ready, not once per change. [`Interest::NONE`] given
/// to [`Reactor::set_interest`] removes the fd.
///
/// # Examples
///
/// ```
/// use evloop::raw::Interest;
///
/// assert_eq!(Interest::READABLE.add(Interest::WRITABLE), Interest::BOTH);
/// assert!(Interest::NONE.is_empty());
/// assert!(!Interest::WRITABLE.is_empty());
/// ```
///
/// [`Reactor::set_interest`]: crate::Reactor::set_interest
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Interest {
    /// Report the fd when it can be read without blocking (or has hung up).
    pub readable: bool,
    /// Report the fd when it can be written without blocking (or has failed).
    pub writable: bool,
}

impl Interest {
    /// Neither readable nor writable: the fd is not watched.
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };

    /// Readability only (asyncio's `add_reader`).
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };

    /// Writability only (asyncio's `add_writer`).
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };

    /// Both readability and writability.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };

    /// Whether this interest asks for nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::Interest;
    ///
    /// assert!(Interest::default().is_empty());
    /// assert!(!Interest::READABLE.is_empty());
    /// ```
    #[must_use]
    pub const fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }

    /// This interest with everything `other` asks for added.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::Interest;
    ///
    /// assert_eq!(Interest::NONE.add(Interest::READABLE), Interest::READABLE);
    /// ```
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
        }
    }

    /// This interest with everything `other` asks for taken away.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::Interest;
    ///
    /// assert_eq!(Interest::BOTH.remove(Interest::READABLE), Interest::WRITABLE);
    /// assert!(Interest::READABLE.remove(Interest::READABLE).is_empty());
    /// ```
    #[must_use]
    pub const fn remove(self, other: Interest) -> Interest {
        Interest {
            readable: self.readable && !other.readable,
            writable: self.writable && !other.writable,
        }
    }
}

/// One ready fd from one poll.
///
/// Only what was asked for is reported: an fd registered for
/// [`Interest::READABLE`] never comes back with `writable` set, even when the
/// kernel flags a hang-up or an error (those count as readable for a reader,
/// and as writable for a writer, so the callback runs and sees the error).
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use evloop::raw::{Interest, Reactor, Ready};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let (mut a, b) = UnixStream::pair()?;
/// reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
/// a.write_all(b"x")?;
///
/// let mut ready = Vec::new();
/// reactor.poll(Some(Duration::from_secs(1)), &mut ready)?;
/// assert_eq!(ready, [Ready { fd: b.as_raw_fd(), readable: true, writable: false }]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The fd, as given to [`Reactor::set_interest`](crate::Reactor::set_interest).
    pub fd: RawFd,
    /// The fd is readable (and readability was asked for).
    pub readable: bool,
    /// The fd is writable (and writability was asked for).
    pub writable: bool,
}
