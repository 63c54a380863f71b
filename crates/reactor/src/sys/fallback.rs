//! The backend for every other Unix: correct, untuned, untested here.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::Peeked;
use polling::{Event, Poller};

/// One past the highest signal number accepted here: macOS has 31 signals,
/// the BSDs 32 (FreeBSD's real-time signals from 65 on are not offered), and
/// `sigaction` refuses the numbers below this that a system lacks.
pub(crate) const NSIG: usize = 65;

/// Never peeks: without a cheap look at the kernel queue, every zero-timeout
/// poll goes through `Poller::wait`.
#[derive(Debug)]
pub(crate) struct Peeker;

impl Peeker {
    /// A peeker; the capacity is not needed here.
    pub(crate) fn new(_capacity: NonZeroUsize) -> Peeker {
        Peeker
    }

    /// Always "do the full wait" (see the contract in `sys`).
    pub(crate) fn peek(
        &mut self,
        _poller: &Poller,
        _timeout: Option<std::time::Duration>,
    ) -> io::Result<Peeked<std::iter::Empty<Event>>> {
        Ok(Peeked::Unsupported)
    }
}

/// Removes `fd` from `poller` by its number, if it is still open.
///
/// A closed number is already gone from a kqueue or an event port (both drop
/// a source when its fd closes), so it answers `EBADF` without touching
/// polling; an open one (ours, or a reused number polling answers `ENOENT`
/// for) is lent to `Poller::delete` for the one call.
///
/// # Errors
///
/// - `EBADF` for a closed number, or what `Poller::delete` answers.
pub(crate) fn delete(poller: &Poller, fd: RawFd) -> io::Result<()> {
    // SAFETY: `F_GETFD` takes and returns plain integers; the kernel answers
    // EBADF for a closed number.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was open an instant ago and is lent to one call, not kept;
    // the reactor's contract is that its caller keeps a registered fd open
    // until `remove`, so nothing closes it in between on this thread.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    poller.delete(borrowed)
}

/// A non-blocking, close-on-exec pipe. `pipe2` is missing on some of these
/// systems (macOS), so the flags are set one by one; a `fork` + `exec` on
/// another thread in between could inherit the fds, which only leaks them.
pub(crate) fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is an array of two `c_int`, which is what `pipe` fills.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe` succeeded, so both numbers are fresh open fds that
    // nothing else owns; each is wrapped exactly once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        set_flags(fd)?;
    }
    Ok((read, write))
}

/// Sets `FD_CLOEXEC` and `O_NONBLOCK` on one open fd.
fn set_flags(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is open for the whole block (borrowed from `fd`), and
    // these `fcntl` commands take and return plain integers.
    let status = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if status == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let ok = unsafe {
        libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) != -1
            && libc::fcntl(raw, libc::F_SETFL, status | libc::O_NONBLOCK) != -1
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
