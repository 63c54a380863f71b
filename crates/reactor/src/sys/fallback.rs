//! The backend for every other Unix: correct, untuned, untested here.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
