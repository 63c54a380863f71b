//! The machinery every sock_* future shares: try the syscall, wait for readiness only on
//! `WouldBlock`, and clean up on completion or drop.
//!
//! # Ground rules
//!
//! - An operation owns one side (reader or writer) of its fd while it is pending, from its first
//!   `WouldBlock` until it completes or is dropped. The per-loop [`PendingOps`] set records the
//!   owner, so a second operation on the same side of the same fd fails at its first poll with
//!   `ResourceBusy` instead of silently replacing the first one's reader (asyncio's behaviour).
//! - The reader or writer callback only wakes the stored waker; the syscall always runs in
//!   `poll`, so a dropped (cancelled) operation has consumed nothing.
//! - Dropping a pending operation removes its reader or writer and releases its side.
//! - A blocking socket is refused with `InvalidInput` without ever blocking the loop, at the
//!   cost of one `fcntl(F_GETFL)` only where it cannot be avoided ([`Guard`]): the receives and
//!   sends pass `MSG_DONTWAIT`, so their syscall cannot block whatever the socket's mode, and
//!   the mode is read only when the operation does not complete at its first try (it is about
//!   to wait, which costs two `epoll_ctl` and an `epoll_wait` anyway, or it failed); `accept`
//!   and `connect` have no such flag, so the mode is read before the syscall. There is no cache
//!   of the modes seen: an fd number is reused as soon as it is closed, and nothing short of a
//!   syscall tells a new socket from the old one under the same number.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_sched::EventLoop;
use socket2::Socket;

/// Which readiness an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Readable: receives and accepts.
    Read,
    /// Writable: sends and connects.
    Write,
}

/// When an operation reads its socket's mode to refuse a blocking socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guard {
    /// Before the first syscall only: `connect`, whose later steps (`SO_ERROR`, the peer's
    /// address) cannot block.
    FirstTry,
    /// Before every syscall: `accept`, which has no per-call non-blocking flag.
    EveryTry,
    /// Whenever the syscall did not complete the operation (it would block or failed): the
    /// receives and sends, whose syscall passes `MSG_DONTWAIT` and so never blocks. A blocking
    /// socket is refused the first time an operation on it would have to wait (where it would
    /// otherwise block the loop) or fails; an operation that completes at its first try has
    /// done exactly what it would have done on a non-blocking socket.
    NotAtOnce,
}

/// `InvalidInput` "the socket must be non-blocking" for a blocking socket.
fn refuse_blocking(sock: &Socket) -> io::Result<()> {
    if sock.nonblocking()? {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket must be non-blocking",
        ))
    }
}

/// The fds with a pending sock_* operation on this loop, per side.
#[derive(Default)]
pub(crate) struct PendingOps {
    readers: RefCell<HashSet<RawFd>>,
    writers: RefCell<HashSet<RawFd>>,
}

impl PendingOps {
    fn set(&self, side: Side) -> &RefCell<HashSet<RawFd>> {
        match side {
            Side::Read => &self.readers,
            Side::Write => &self.writers,
        }
    }
}

/// The registration state of one operation on one fd.
pub(crate) struct Readiness {
    lp: EventLoop,
    fd: RawFd,
    side: Side,
    /// The operation's name, for error messages ("sock_recv").
    op: &'static str,
    /// When the socket's mode is read.
    guard: Guard,
    /// Whether the first poll's checks ran.
    started: bool,
    /// The waker the reader/writer callback wakes; `Some` while registered with the loop.
    waker: Option<Rc<Cell<Option<Waker>>>>,
}

impl Readiness {
    pub(crate) fn new(
        lp: &EventLoop,
        sock: &Socket,
        side: Side,
        op: &'static str,
        guard: Guard,
    ) -> Readiness {
        Readiness {
            lp: lp.clone(),
            fd: sock.as_raw_fd(),
            side,
            op,
            guard,
            started: false,
            waker: None,
        }
    }

    /// The first poll's checks: no other operation owns this side of the fd, and, for
    /// [`Guard::FirstTry`], the socket is non-blocking.
    fn start(&mut self, sock: &Socket) -> io::Result<()> {
        if self.guard == Guard::FirstTry {
            refuse_blocking(sock)?;
        }
        let pending = self.lp.local::<PendingOps>();
        if pending.set(self.side).borrow().contains(&self.fd) {
            let what = match self.side {
                Side::Read => "a receive or accept",
                Side::Write => "a send or connect",
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "{}: {what} is already pending on fd {} (one at a time per socket)",
                    self.op, self.fd
                ),
            ));
        }
        self.started = true;
        Ok(())
    }

    /// Runs `op` until it completes: retried on `EINTR`; on `WouldBlock` the fd is watched and
    /// the future waits for the next readiness.
    pub(crate) fn poll_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        sock: &Socket,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        if !self.started {
            if let Err(err) = self.start(sock) {
                return Poll::Ready(Err(err));
            }
        }
        loop {
            if self.guard == Guard::EveryTry {
                if let Err(err) = refuse_blocking(sock) {
                    self.finish();
                    return Poll::Ready(Err(err));
                }
            }
            let err = match op() {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => err,
                done => {
                    self.finish();
                    return Poll::Ready(done);
                }
            };
            if self.guard == Guard::NotAtOnce {
                if let Err(refused) = refuse_blocking(sock) {
                    self.finish();
                    return Poll::Ready(Err(refused));
                }
            }
            if err.kind() != io::ErrorKind::WouldBlock {
                self.finish();
                return Poll::Ready(Err(err));
            }
            return match self.wait(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => {
                    self.finish();
                    Poll::Ready(Err(err))
                }
            };
        }
    }

    /// Stores the waker, registering the reader or writer on the first wait.
    fn wait(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(slot) = &self.waker {
            slot.set(Some(cx.waker().clone()));
            return Ok(());
        }
        let slot = Rc::new(Cell::new(Some(cx.waker().clone())));
        let s2 = slot.clone();
        let wake = move || {
            if let Some(waker) = s2.take() {
                waker.wake();
            }
        };
        match self.side {
            Side::Read => self.lp.add_reader(self.fd, wake)?,
            Side::Write => self.lp.add_writer(self.fd, wake)?,
        }
        self.lp
            .local::<PendingOps>()
            .set(self.side)
            .borrow_mut()
            .insert(self.fd);
        self.waker = Some(slot);
        Ok(())
    }

    /// Removes the reader or writer and releases the side, if this operation held them.
    fn finish(&mut self) {
        if self.waker.take().is_some() {
            match self.side {
                Side::Read => self.lp.remove_reader(self.fd),
                Side::Write => self.lp.remove_writer(self.fd),
            };
            self.lp
                .local::<PendingOps>()
                .set(self.side)
                .borrow_mut()
                .remove(&self.fd);
        }
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("fd", &self.fd)
            .field("side", &self.side)
            .field("waiting", &self.waker.is_some())
            .finish()
    }
}
