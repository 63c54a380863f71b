//! The few syscalls a stream transport makes on its fd, for sockets and pipes alike.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// What kind of fd a transport drives: sockets are written with `send(MSG_NOSIGNAL)`, so a
/// closed peer is `EPIPE` and never `SIGPIPE`; pipes with `write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A stream socket (TCP or Unix).
    Socket,
    /// A pipe, FIFO or character device (a pty).
    Pipe,
}

fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        // `ret` is non-negative here, so the conversion is lossless.
        Ok(ret.unsigned_abs())
    }
}

/// Reads into `buf`; `Ok(0)` is end of file.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call; an
    // fd that is not open only makes the call fail with EBADF.
    check(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// Writes from `buf`.
pub(crate) fn write(fd: RawFd, kind: FdKind, buf: &[u8]) -> io::Result<usize> {
    let ret = match kind {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes during the call.
        FdKind::Socket => unsafe {
            libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
        },
        // SAFETY: as above.
        FdKind::Pipe => unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) },
    };
    check(ret)
}

/// Writes from several buffers in one call (at most `IOV_MAX` of them are looked at).
pub(crate) fn write_vectored(fd: RawFd, kind: FdKind, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(1024);
    let ret = match kind {
        FdKind::Socket => {
            // SAFETY: an all-zero msghdr is a valid "no name, no control data" header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix.
            msg.msg_iov = bufs.as_ptr().cast_mut().cast();
            msg.msg_iovlen = n;
            // SAFETY: `msg` points at `n` valid iovecs that outlive the call; sendmsg only
            // reads them.
            unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
        }
        // SAFETY: `bufs` holds at least `n` iovec-compatible slices, valid during the call;
        // `n` ≤ 1024 fits in an i32.
        FdKind::Pipe => unsafe { libc::writev(fd, bufs.as_ptr().cast(), n as libc::c_int) },
    };
    check(ret)
}

/// `shutdown(SHUT_WR)` on a socket.
pub(crate) fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown takes no pointers; a bad fd is an error return.
    if unsafe { libc::shutdown(fd, libc::SHUT_WR) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether readability of a write pipe's `fd` means "the reader went away": true for a socket
/// or a FIFO, false for anything else, a character device (a pty) above all, where readable
/// only means input arrived (asyncio's `_UnixWritePipeTransport.__init__`). False if `fd`
/// cannot be inspected.
pub(crate) fn readable_means_hangup(fd: RawFd) -> bool {
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; a bad fd only makes the call fail.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return false;
    }
    matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
}

/// Closes `fd`, ignoring errors (the fd is gone either way on Linux).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the transport owns `fd` and closes it exactly once (it forgets it right after).
    unsafe { libc::close(fd) };
}

/// Whether an error only means "not now".
pub(crate) fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
