//! The machinery every sock_* future shares: try the syscall, wait for readiness only on
//! `WouldBlock`, and clean up on completion or drop.
//!
//! # Ground rules
//!
//! - An operation owns one side (reader or writer) of its fd while it is pending, from its first
//!   `WouldBlock` until it completes or is dropped. The per-loop [`PendingOps`] set records the
//!   owner, so a second operation on the same side of the same fd fails at its first poll with
//!   `ResourceBusy` instead of silently replacing the first one's reader (asyncio's behaviour).
//! - An operation waits with the loop's one-shot waits (`EventLoop::wait_readable`,
//!   `wait_writable`), not with a reader or writer: the callback only wakes the stored waker, and
//!   the syscall always runs in `poll`, so a dropped (cancelled) operation has consumed nothing.
//!   The wait's kernel registration outlives it: the next wait on the same socket re-arms it with
//!   one `epoll_ctl`, where a reader cost an add and a delete around each wait. That re-arm is
//!   also what makes a closed socket's reused fd number safe (the kernel refuses it for a file it
//!   does not hold, and the new one is added), and what tells the same socket from a new one.
//! - The first wait of an operation removes the user's reader or writer on that side, as asyncio's
//!   own `add_reader` for the wait replaces it; a reader added while the operation waits is the
//!   user's, and runs beside the wait.
//! - Dropping a pending operation ends its wait (no syscall) and releases its side.
//! - A blocking socket is refused with `InvalidInput` without ever blocking the loop, at the
//!   cost of one `fcntl(F_GETFL)` only where it cannot be avoided ([`Guard`]): the receives and
//!   sends pass `MSG_DONTWAIT`, so their syscall cannot block whatever the socket's mode, and
//!   the mode is read once per socket and loop, when the socket is first waited on (the loop's
//!   answer, `Armed::Fresh`, says so: its registration proves the open file is the one already
//!   checked), again when a wait woke to nothing, and when an operation fails; `accept` and
//!   `connect` have no such flag, so the mode is read before the syscall. A socket made blocking
//!   after its first wait is served as a non-blocking one (it cannot block the loop).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_sched::{Armed, EventLoop};
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
    /// When the operation must wait on a socket the loop has not waited on before
    /// ([`Armed::Fresh`]) or waits again after a wake-up that found nothing, and when the
    /// syscall failed: the receives and sends, whose syscall passes `MSG_DONTWAIT` and so never
    /// blocks. A blocking socket is refused the first time an operation on it would have to
    /// wait (where it would otherwise block the loop) or fails; an operation that completes at
    /// its first try has done exactly what it would have done on a non-blocking socket.
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
    /// The waker the wait's callback wakes: `Some` from the operation's first wait until it
    /// ends (it holds its side meanwhile); the cell is full while the wait is armed (the
    /// callback empties it when it runs).
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
            if err.kind() != io::ErrorKind::WouldBlock {
                if self.guard == Guard::NotAtOnce {
                    if let Err(refused) = refuse_blocking(sock) {
                        self.finish();
                        return Poll::Ready(Err(refused));
                    }
                }
                self.finish();
                return Poll::Ready(Err(err));
            }
            return match self.wait(cx, sock) {
                Ok(()) => Poll::Pending,
                Err(err) => {
                    self.finish();
                    Poll::Ready(Err(err))
                }
            };
        }
    }

    /// Stores the waker; arms the loop's one-shot wait unless it is still armed, and, for
    /// [`Guard::NotAtOnce`], refuses a blocking socket (see [`Armed`] for when the mode is read).
    fn wait(&mut self, cx: &mut Context<'_>, sock: &Socket) -> io::Result<()> {
        let repeated = match &self.waker {
            Some(slot) => {
                // Still armed (the future was polled again before its fd was ready): keep it.
                if slot.take().is_some() {
                    slot.set(Some(cx.waker().clone()));
                    return Ok(());
                }
                true
            }
            None => false,
        };
        let slot = match &self.waker {
            Some(slot) => slot.clone(),
            None => {
                // asyncio's sock_* operations add a reader or writer for their wait, which
                // replaces the user's own; so does the first wait of ours.
                match self.side {
                    Side::Read => self.lp.remove_reader(self.fd),
                    Side::Write => self.lp.remove_writer(self.fd),
                };
                let slot = Rc::new(Cell::new(None));
                self.lp
                    .local::<PendingOps>()
                    .set(self.side)
                    .borrow_mut()
                    .insert(self.fd);
                self.waker = Some(slot.clone());
                slot
            }
        };
        slot.set(Some(cx.waker().clone()));
        let s2 = slot.clone();
        let wake = move || {
            if let Some(waker) = s2.take() {
                waker.wake();
            }
        };
        let armed = match self.side {
            Side::Read => self.lp.wait_readable(self.fd, wake),
            Side::Write => self.lp.wait_writable(self.fd, wake),
        };
        let armed = match armed {
            Ok(armed) => armed,
            Err(err) => {
                slot.set(None);
                return Err(err);
            }
        };
        // The mode of this open file was read when it was first waited on (or it is read now);
        // a wait that woke to nothing is a sign that something else changed, so it is read again.
        if self.guard == Guard::NotAtOnce && (armed == Armed::Fresh || repeated) {
            if let Err(refused) = refuse_blocking(sock) {
                slot.set(None);
                self.cancel(true);
                return Err(refused);
            }
        }
        Ok(())
    }

    /// Ends the loop's wait if it is armed (with `forget`, also what it learnt of the file).
    fn cancel(&self, forget: bool) {
        match self.side {
            Side::Read => self.lp.cancel_wait_readable(self.fd, forget),
            Side::Write => self.lp.cancel_wait_writable(self.fd, forget),
        };
    }

    /// Ends the wait if it is armed and releases the side, if this operation held it.
    fn finish(&mut self) {
        if let Some(slot) = self.waker.take() {
            if slot.take().is_some() {
                self.cancel(false);
            }
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
