//! The registration table: what the reactor registered for each fd, level-triggered interest
//! and one-shot waits, and the calls that bring the kernel's epoll set in line with it.
//!
//! The kernel's set can drift from the table without telling anyone: a closed fd leaves it
//! silently and its number is reused at once. [`register`] copes with that in both directions,
//! so a stale belief costs one failed `epoll_ctl`, never a missed event.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use polling::{Event, PollMode, Poller};

use crate::interest::Interest;
use crate::reactor::fd_index;

/// What the kernel holds for one fd number, as far as the reactor knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Nothing.
    Absent,
    /// A level-triggered registration.
    Level,
    /// A one-shot registration (armed or already reported).
    Oneshot,
}

/// What is registered for one fd.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The level-triggered interest of [`Reactor::set_interest`](crate::Reactor::set_interest).
    pub(crate) level: Interest,
    /// The one-shot waits of [`Reactor::arm`](crate::Reactor::arm) not yet reported.
    pub(crate) once: Interest,
    /// What the kernel holds. A closed fd leaves it stale (the kernel drops
    /// a closed file by itself); every registration call copes with that.
    pub(crate) kernel: Kernel,
    /// A wait was armed on the open file the kernel holds (see
    /// [`Armed`]).
    pub(crate) seen: bool,
}

impl Entry {
    pub(crate) const EMPTY: Entry = Entry {
        level: Interest::NONE,
        once: Interest::NONE,
        kernel: Kernel::Absent,
        seen: false,
    };
}

/// What [`Reactor::arm`](crate::Reactor::arm) found.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use evloop::raw::{Armed, Interest, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let (a, _b) = UnixStream::pair()?;
/// let fd = a.as_raw_fd();
/// assert_eq!(reactor.arm(fd, Interest::WRITABLE)?, Armed::Fresh);
/// assert_eq!(reactor.arm(fd, Interest::WRITABLE)?, Armed::Kept);
/// drop(a);
/// let (c, _d) = UnixStream::pair()?; // may well reuse the number
/// assert_eq!(reactor.arm(c.as_raw_fd(), Interest::WRITABLE)?, Armed::Fresh);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Armed {
    /// The first wait on this open file (since it was registered, or since
    /// a `disarm` that forgot it).
    Fresh,
    /// A wait was armed on this very open file before: the kernel proved it
    /// by accepting the re-arm.
    Kept,
}

/// Registers `fd` for `events` in `mode`, where `kernel` says what the
/// reactor believes the kernel holds; returns whether the registration is
/// new (an add: a file the kernel did not hold under this number).
///
/// A belief can be stale either way, because a closed fd leaves the kernel's
/// set without telling anyone and its number is reused at once: a modify the
/// kernel answers `ENOENT` becomes an add, an add it answers `EEXIST`
/// becomes a modify (counted as new: nothing is known about that file). A
/// stale belief costs one failed call, never a missed event.
pub(crate) fn register(
    poller: &Poller,
    fd: RawFd,
    kernel: Kernel,
    events: Interest,
    mode: Kernel,
) -> io::Result<bool> {
    let index = fd_index(fd)?;
    let event = Event::new(index, events.readable, events.writable);
    let mode = match mode {
        Kernel::Oneshot => PollMode::Oneshot,
        _ => PollMode::Level,
    };
    if kernel == Kernel::Absent {
        match add(poller, fd, event, mode) {
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                modify(poller, fd, event, mode).map(|()| true)
            }
            other => other.map(|()| true),
        }
    } else {
        match modify(poller, fd, event, mode) {
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                add(poller, fd, event, mode).map(|()| true)
            }
            other => other.map(|()| false),
        }
    }
}

/// Adds `fd` to the poller.
fn add(poller: &Poller, fd: RawFd, event: Event, mode: PollMode) -> io::Result<()> {
    // SAFETY: polling asks that the fd be valid and deleted before it is
    // closed. The fd is only lent to `epoll_ctl(EPOLL_CTL_ADD)`; a closed one
    // makes the kernel answer EBADF, which goes back to the caller. On epoll
    // polling keeps no state of its own per fd, so an fd closed while
    // registered (a one-shot registration kept after its wait, or a caller
    // who broke the contract) is simply dropped by the kernel, and every
    // later call on its number copes with the EBADF/ENOENT that follows.
    unsafe { poller.add_with_mode(fd, event, mode) }
}

/// Changes the interest of a registered `fd`.
fn modify(poller: &Poller, fd: RawFd, event: Event, mode: PollMode) -> io::Result<()> {
    // SAFETY: the fd is only lent to one `epoll_ctl(EPOLL_CTL_MOD)` call and
    // not kept; a closed or reused number makes the kernel answer EBADF or
    // ENOENT on our own epoll set, never touch another owner's file.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    poller.modify_with_mode(borrowed, event, mode)
}

/// Brings the kernel registration of the fds in `pending` (a poll reported a
/// one-shot wait of theirs while others stay armed) back in line with their
/// entries: a one-shot registration disarms as a whole, and a level-triggered
/// one would keep reporting the side that was reported.
pub(crate) fn rearm(poller: &Poller, entries: &mut [Entry], pending: &mut Vec<RawFd>) {
    while let Some(fd) = pending.pop() {
        let Some(entry) = usize::try_from(fd).ok().and_then(|i| entries.get_mut(i)) else {
            continue;
        };
        let outcome = if !entry.level.is_empty() {
            register(
                poller,
                fd,
                entry.kernel,
                entry.level.add(entry.once),
                Kernel::Level,
            )
        } else if !entry.once.is_empty() {
            register(poller, fd, entry.kernel, entry.once, Kernel::Oneshot)
        } else {
            continue;
        };
        if outcome.is_err() {
            // Closed under a pending wait (its owner broke the contract): the
            // kernel holds nothing for it any more.
            entry.kernel = Kernel::Absent;
        }
    }
}
