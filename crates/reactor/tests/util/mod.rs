//! Helpers shared by the reactor's integration tests.

#![allow(dead_code)] // Each test file uses its own subset.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Long enough for any readiness that is really there to show up.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);

/// Moves `stream` to the lowest free fd number at or above `floor`; the
/// original number is closed, so the returned fd is the only one referring
/// to the socket.
///
/// Tests in one binary run on several threads and each opens fds; the kernel
/// hands out the lowest free number, so a test that closes an fd and then
/// uses its number takes it from a high range of its own (a distinct `floor`
/// per test, 900 and up, 10 apart) where no other test can reuse it.
pub(crate) fn high_fd(stream: UnixStream, floor: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `stream` is open for the call; F_DUPFD_CLOEXEC returns a new fd
    // or -1 and touches no memory.
    let raw = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    drop(stream);
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
