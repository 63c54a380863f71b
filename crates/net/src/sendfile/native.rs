//! The native path: `sendfile(2)` from a regular file to a stream socket, for `sock_sendfile`
//! (a socket the caller owns, watched through [`Readiness`]) and for a socket transport (whose
//! fd the transport claims, so it is watched through the transport's hook).

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use evloop_sched::EventLoop;
use socket2::Socket;

use super::{Position, not_available};
use crate::readiness::{Guard, Readiness, Side};
use crate::transport::inner::Inner;

/// The most Linux's `sendfile(2)` moves in one call (`MAX_RW_COUNT`, `INT_MAX` rounded down to
/// a page): asking for more is allowed but pointless.
const MAX_CHUNK: u64 = 0x7fff_f000;

/// Whether `file` can be the source of `sendfile(2)`, and its size: a regular file or a block
/// device; anything else (a pipe, a socket, a terminal) is "not available", as asyncio's
/// `_sock_sendfile_native` says of a file without a usable `fileno()`/`fstat()`.
pub(super) fn source_size(file: &File) -> io::Result<u64> {
    let meta = file
        .metadata()
        .map_err(|err| not_available(&format!("not a regular file ({err})")))?;
    let ty = meta.file_type();
    if ty.is_file() || ty.is_block_device() {
        Ok(meta.len())
    } else {
        Err(not_available("not a regular file"))
    }
}

/// Whether `err`, from the first `sendfile(2)` of an operation, means the kernel cannot do it
/// for this pair of fds (rather than that the connection failed): the fallback then applies.
fn unsupported_pair(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

/// SIGPIPE blocked on this thread while it lives, unless it already was.
///
/// `sendfile(2)` has no `MSG_NOSIGNAL`: to a closed peer it raises SIGPIPE, whose default
/// disposition kills the process (a C host, or Rust's `-Zon-broken-pipe=kill`). Blocked, the
/// signal stays pending instead, and [`consume`](SigpipeBlocked::consume) takes it after the
/// `EPIPE`, so the caller sees `BrokenPipe`, as with every other send of evloop. A thread that
/// blocks SIGPIPE itself keeps its own arrangement: nothing is changed or taken then.
struct SigpipeBlocked {
    /// The signal mask to restore, if this guard blocked SIGPIPE.
    restore: Option<libc::sigset_t>,
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; SIGPIPE is a valid signal number.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
    }
    set
}

impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        let set = sigpipe_set();
        // SAFETY: as in `sigpipe_set`.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid sigset_t values for the duration of the call.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        // SAFETY: `old` was filled in by pthread_sigmask (when it succeeded; checked first).
        let was_blocked = ret != 0 || unsafe { libc::sigismember(&old, libc::SIGPIPE) } == 1;
        SigpipeBlocked {
            restore: (!was_blocked).then_some(old),
        }
    }

    /// After an `EPIPE`: takes the SIGPIPE the failed call left pending on this thread.
    fn consume(&self) {
        if self.restore.is_none() {
            return;
        }
        let set = sigpipe_set();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` and `zero` are valid for the call; a null info pointer is allowed.
        // With a zero timeout it never blocks: it takes the pending SIGPIPE or fails (EAGAIN).
        unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        if let Some(old) = self.restore.take() {
            // SAFETY: `old` is the mask pthread_sigmask returned in `new`.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        }
    }
}

/// How far one native send got.
#[derive(Debug)]
pub(super) struct Progress {
    /// The file offset of the next byte to send.
    offset: u64,
    /// Bytes still to send; `None`: up to end of file.
    left: Option<u64>,
    /// Bytes sent so far.
    sent: u64,
}

impl Progress {
    pub(super) fn new(offset: u64, count: Option<u64>) -> Progress {
        Progress {
            offset,
            left: count,
            sent: 0,
        }
    }

    pub(super) fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends from `file` to `out` until the count is reached or the file ends (`Ok`), the
    /// socket is full (`WouldBlock`) or an error. `EINTR` is retried here.
    pub(super) fn pump(&mut self, out: RawFd, file: RawFd) -> io::Result<()> {
        let sigpipe = SigpipeBlocked::new();
        loop {
            let len = match self.left {
                Some(0) => return Ok(()),
                Some(left) => left.min(MAX_CHUNK),
                None => MAX_CHUNK,
            };
            let mut off = libc::off_t::try_from(self.offset)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset is too large"))?;
            // `len` ≤ MAX_CHUNK, which fits in a usize on every 32- and 64-bit target.
            let len = len as usize;
            // SAFETY: `off` is a valid, writable off_t for the call; the fds are only read by
            // the kernel, and a closed fd only makes the call fail.
            let ret = unsafe { libc::sendfile(out, file, &mut off, len) };
            if ret < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EPIPE) => sigpipe.consume(),
                    _ => {}
                }
                return Err(err);
            }
            if ret == 0 {
                return Ok(()); // end of file
            }
            // `ret` is positive here, so the conversion is lossless.
            let n = ret.unsigned_abs() as u64;
            self.offset += n;
            self.sent += n;
            if let Some(left) = &mut self.left {
                *left -= n.min(*left);
            }
        }
    }

    /// The error to return for `err`, which stopped the send: "not available" if it came
    /// before any byte went and means the kernel cannot do it; `err` itself otherwise.
    pub(super) fn classify(&self, err: io::Error) -> io::Error {
        if self.sent == 0 && unsupported_pair(&err) {
            not_available(&format!("sendfile(2) failed: {err}"))
        } else {
            err
        }
    }
}

/// `sock_sendfile`'s native send: `sendfile(2)` whenever the socket is writable.
pub(super) struct NativeSock<'a> {
    io: Readiness,
    sock: &'a Socket,
    file: RawFd,
    progress: Progress,
    /// Moves the file's position past what was sent, however the send ends.
    position: Position<'a>,
}

impl<'a> NativeSock<'a> {
    pub(super) fn new(
        lp: &EventLoop,
        sock: &'a Socket,
        file: &'a File,
        offset: u64,
        count: Option<u64>,
    ) -> NativeSock<'a> {
        NativeSock {
            io: Readiness::new(lp, sock, Side::Write, "sock_sendfile", Guard::EveryTry),
            sock,
            file: file.as_raw_fd(),
            progress: Progress::new(offset, count),
            position: Position::new(file, offset),
        }
    }
}

impl Future for NativeSock<'_> {
    type Output = io::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        let (sock, file, progress) = (this.sock, this.file, &mut this.progress);
        let done = this
            .io
            .poll_io(cx, sock, || progress.pump(sock.as_raw_fd(), file));
        this.position.sent = this.progress.sent();
        match done {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(this.progress.sent())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(this.progress.classify(err))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A native send on a socket transport: from the moment its buffer drained until the end (or
/// a drop), the sendfile owns the socket's writing side; reading is paused meanwhile and
/// resumed after, as asyncio's `_sendfile_native`.
pub(super) struct NativeTransport<'a> {
    inner: Rc<Inner>,
    file: RawFd,
    progress: Progress,
    position: Position<'a>,
    was_reading: bool,
    drained: bool,
}

impl<'a> NativeTransport<'a> {
    /// Takes the transport's writing side.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if another sendfile runs on the transport.
    pub(super) fn start(
        inner: Rc<Inner>,
        file: &'a File,
        offset: u64,
        count: Option<u64>,
    ) -> io::Result<NativeTransport<'a>> {
        inner.begin_sendfile(true)?;
        let was_reading = inner.is_reading();
        inner.pause_reading();
        Ok(NativeTransport {
            inner,
            file: file.as_raw_fd(),
            progress: Progress::new(offset, count),
            position: Position::new(file, offset),
            was_reading,
            drained: false,
        })
    }

    /// One step: the buffer drains first, then `sendfile(2)` runs whenever the socket is
    /// writable. A connection error is the transport's too: it ends it, and the protocol gets
    /// `connection_lost(Some(err))`.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        if !self.drained {
            match self.inner.poll_drained(cx) {
                Poll::Ready(Ok(())) => self.drained = true,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let fd = match self.inner.sendfile_fd() {
            Ok(fd) => fd,
            Err(err) => return Poll::Ready(Err(err)),
        };
        let pumped = self.progress.pump(fd, self.file);
        self.position.sent = self.progress.sent();
        match pumped {
            Ok(()) => Poll::Ready(Ok(self.progress.sent())),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match self.inner.wait_writable(cx) {
                    Ok(()) => Poll::Pending,
                    Err(err) => Poll::Ready(Err(err)),
                }
            }
            Err(err) => {
                let err = self.progress.classify(err);
                if err.kind() != io::ErrorKind::Unsupported {
                    self.inner
                        .fatal_error(copy_error(&err), "Fatal write error on socket transport");
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

impl Future for NativeTransport<'_> {
    type Output = io::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        self.get_mut().poll_send(cx)
    }
}

impl Drop for NativeTransport<'_> {
    fn drop(&mut self) {
        self.inner.end_sendfile();
        if self.was_reading {
            // Does nothing once the transport is closing.
            self.inner.resume_reading();
        }
    }
}

/// A copy of `err` for the protocol (`io::Error` is not `Clone`): the OS error if it is one,
/// else its kind and message.
fn copy_error(err: &io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(err.kind(), err.to_string()),
    }
}
