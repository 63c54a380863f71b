//! A bare `epoll(7)` instance, level-triggered: what the echo load client and the `epoll` echo
//! server (the limit every echo subject is measured against) are built on.
//!
//! It holds raw fds by number only; the sockets themselves are owned by the caller, who must
//! [`Epoll::delete`] an fd (or drop the whole instance) before closing it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readable (`EPOLLIN`), as the `u32` the event masks are.
pub(crate) const READ: u32 = libc::EPOLLIN as u32;

/// Writable (`EPOLLOUT`).
pub(crate) const WRITE: u32 = libc::EPOLLOUT as u32;

/// An epoll instance and its event buffer.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new instance (close-on-exec) that reports up to `capacity` events per wait.
    pub(crate) fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory-safety preconditions; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1, is open, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Epoll {
            fd,
            events: vec![empty; capacity.max(1)],
        })
    }

    /// Watches `fd` for `interest` (a mask of [`READ`] and [`WRITE`]), reporting `token`.
    pub(crate) fn add(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    /// Changes the interest (and token) of a watched `fd`.
    pub(crate) fn modify(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    /// Stops watching `fd`.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call (the kernel
        // ignores it for EPOLL_CTL_DEL); an invalid fd is reported as an error, not UB.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits up to `timeout_ms` (-1: forever) and returns how many events fired (read them
    /// with [`Epoll::event`]); an interrupted wait (`EINTR`) returns 0.
    pub(crate) fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        let capacity = libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` holds `capacity` initialised epoll_event slots that the kernel may
        // overwrite; it writes at most `capacity` of them.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                capacity,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The `i`-th event of the last [`Epoll::wait`], as `(token, events)`.
    pub(crate) fn event(&self, i: usize) -> (u64, u32) {
        let e = self.events[i];
        // Copied out of the struct (packed on x86-64) before use.
        (e.u64, e.events)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn reports_readable_with_its_token_then_nothing_after_delete() -> io::Result<()> {
        let (a, mut b) = UnixStream::pair()?;
        let mut ep = Epoll::new(8)?;
        ep.add(a.as_raw_fd(), READ, 42)?;
        assert_eq!(ep.wait(0)?, 0);
        b.write_all(b"x")?;
        assert_eq!(ep.wait(1_000)?, 1);
        let (token, events) = ep.event(0);
        assert_eq!(token, 42);
        assert_ne!(events & READ, 0);
        ep.modify(a.as_raw_fd(), WRITE, 7)?;
        assert_eq!(ep.wait(1_000)?, 1);
        assert_eq!(ep.event(0), (7, WRITE));
        ep.delete(a.as_raw_fd())?;
        assert_eq!(ep.wait(0)?, 0);
        Ok(())
    }
}
