//! The Linux / Android backend: epoll, peeked at directly.
//!
//! Every wait calls `epoll_wait` (or `epoll_pwait2`, for its nanosecond
//! timeout) on polling's own epoll fd: one system call, where
//! `Poller::wait` makes five. That leans on two
//! facts of polling's epoll backend (3.x), which are checked by this crate's
//! tests (`tests/poll_timeout.rs`, `tests/wake_cross_thread.rs`):
//! - the event data of a source is its key as a `u64`;
//! - polling's notifier and timerfd are registered one-shot under key
//!   `usize::MAX`, and `Poller::wait` re-arms and clears them.
//!
//! So a peek that meets `usize::MAX` (or any key that is no `usize`) has
//! consumed a one-shot event only `Poller::wait` can re-arm: it answers
//! `None`, and the reactor does a full zero-timeout wait, which resets
//! polling's state and reports the level-triggered user events again.
//!
//! [`delete`] removes an fd by number with `epoll_ctl(EPOLL_CTL_DEL)` on the
//! same epoll fd, because the fd may already be closed and `Poller::delete`
//! takes a `BorrowedFd`, which must not be made for a closed number. That is
//! what `Poller::delete` does on epoll (polling keeps no per-source state
//! there), a third fact of polling 3.x the manifest's version range covers.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use polling::{Event, Poller};

use super::Peeked;

/// One past the highest signal number: the kernel's `_NSIG` is 64 on every
/// Linux architecture, and signals are numbered from 1.
pub(crate) const NSIG: usize = 65;

/// polling's key for its own notifier and timerfd, as stored in epoll.
const POLLING_INTERNAL: u64 = usize::MAX as u64;

/// epoll flags that make an fd readable for a reader: data, hang-up, error,
/// priority data (the same set polling uses).
const READ_FLAGS: u32 = (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32;

/// epoll flags that make an fd writable for a writer: room, hang-up, error
/// (the same set polling uses).
const WRITE_FLAGS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// A buffer for zero-timeout `epoll_wait`s on polling's epoll fd.
#[derive(Debug)]
pub(crate) struct Peeker {
    /// Kernel events of the last peek; `len` is what the kernel filled.
    events: Vec<libc::epoll_event>,
    /// Set once the kernel answered ENOSYS to `epoll_pwait2` (Linux < 5.11).
    no_pwait2: bool,
}

impl Peeker {
    /// A peeker that takes up to `capacity` events per look.
    pub(crate) fn new(capacity: NonZeroUsize) -> Peeker {
        Peeker {
            events: Vec::with_capacity(capacity.get()),
            no_pwait2: false,
        }
    }

    /// One wait straight on polling's epoll fd (see the contract in `sys`):
    /// `epoll_wait` for a zero or infinite timeout, `epoll_pwait2` (nanosecond
    /// timeout) otherwise, or `epoll_wait` with the timeout rounded up to whole
    /// milliseconds on kernels older than 5.11, which lack `epoll_pwait2`.
    /// An interrupted wait (`EINTR`) answers `None`: the caller's zero-timeout
    /// full wait then collects whatever the signal left, and the loop
    /// recomputes its timeout.
    pub(crate) fn peek(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
    ) -> io::Result<Peeked<impl Iterator<Item = Event> + '_>> {
        self.events.clear();
        let capacity = libc::c_int::try_from(self.events.capacity()).unwrap_or(libc::c_int::MAX);
        let epfd = poller.as_raw_fd();
        let buf = self.events.as_mut_ptr();
        let n = match timeout {
            Some(t) if t.is_zero() => {
                // SAFETY: the buffer has room for `capacity` events (its capacity,
                // clamped to `c_int`), the kernel writes at most that many, and the
                // epoll fd stays open for the call because `poller` owns it.
                unsafe { libc::epoll_wait(epfd, buf, capacity, 0) }
            }
            // SAFETY: as above; -1 waits without a timeout.
            None => unsafe { libc::epoll_wait(epfd, buf, capacity, -1) },
            Some(t) if !self.no_pwait2 => {
                let ts = libc::timespec {
                    tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
                };
                // SAFETY: as above, plus `ts` is a valid timespec that outlives
                // the call, and a null sigmask leaves the signal mask alone.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        epfd,
                        buf,
                        capacity,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                };
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                    self.no_pwait2 = true;
                    return Ok(Peeked::Reset);
                }
                libc::c_int::try_from(n).unwrap_or(-1)
            }
            Some(t) => {
                // Round up: a timer must never be woken for early.
                let ms = t.as_nanos().div_ceil(1_000_000);
                let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
                // SAFETY: as above.
                unsafe { libc::epoll_wait(epfd, buf, capacity, ms) }
            }
        };
        let filled = match usize::try_from(n) {
            Ok(filled) => filled,
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    return Ok(Peeked::Reset);
                }
                return Err(err);
            }
        };
        // SAFETY: the kernel initialised the first `filled` entries, and
        // `filled` <= `capacity` <= the buffer's capacity.
        unsafe { self.events.set_len(filled) };

        let internal = self.events.iter().any(|event| {
            let data = event.u64;
            data == POLLING_INTERNAL || usize::try_from(data).is_err()
        });
        if internal {
            return Ok(Peeked::Reset);
        }
        Ok(Peeked::Events(self.events.iter().map(|event| {
            let (flags, data) = (event.events, event.u64);
            // Checked above: every key fits a `usize`.
            let key = usize::try_from(data).unwrap_or(usize::MAX);
            Event::new(key, flags & READ_FLAGS != 0, flags & WRITE_FLAGS != 0)
        })))
    }
}

/// Removes `fd` from `poller`'s epoll set by its number (see the module docs).
///
/// # Errors
///
/// - What `epoll_ctl` answers: `EBADF` if the number is closed, `ENOENT` if it
///   names a file that was never registered.
pub(crate) fn delete(poller: &Poller, fd: RawFd) -> io::Result<()> {
    // SAFETY: `epoll_ctl` takes plain integers here (a null event pointer is
    // allowed for `EPOLL_CTL_DEL` since Linux 2.6.9); the kernel looks `fd`
    // up itself and answers EBADF for a closed number, so no `BorrowedFd` is
    // made for an fd that may be gone. The epoll fd stays open for the call
    // because `poller` owns it.
    let rc = unsafe {
        libc::epoll_ctl(
            poller.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A non-blocking, close-on-exec pipe, made atomically with `pipe2`.
pub(crate) fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is an array of two `c_int`, which is what `pipe2` fills.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` succeeded, so both numbers are fresh open fds that
    // nothing else owns; each is wrapped exactly once.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok(ends)
}
