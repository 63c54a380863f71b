//! The receiving operations: `sock_recv`, `sock_recv_into`, `sock_recvfrom` and
//! `sock_recvfrom_into`.
//!
//! # Ground rules
//!
//! - A caller's `nbytes` is a limit, never an allocation: the buffer is sized at each attempt
//!   to what one `recv` can return ([`recv_capacity`]), so `sock_recv(usize::MAX)` is as safe
//!   as `sock_recv(1024)`. A datagram is never truncated below `nbytes` by this sizing.
//! - Every receive passes `MSG_DONTWAIT` ([`DONTWAIT`]): it cannot block the loop even on a
//!   socket that is (or was made, while the operation waited) blocking; see
//!   [`Guard::NotAtOnce`].

use std::fmt;
use std::future::Future;
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_sched::EventLoop;
use socket2::{SockAddr, Socket};

use crate::readiness::{Guard, Readiness, Side};

/// The flags of every receive: never block, whatever the socket's mode.
const DONTWAIT: libc::c_int = libc::MSG_DONTWAIT;

/// The future of [`sock_recv`](crate::LoopSockExt::sock_recv): up to `nbytes` bytes, empty at
/// end of stream.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockRecv<'a> {
    io: Readiness,
    sock: &'a Socket,
    /// The most bytes to return, as the caller asked.
    nbytes: usize,
    /// Sized by [`recv_capacity`] when the syscall is tried; filled by the kernel without
    /// zeroing first.
    buf: Vec<u8>,
}

impl<'a> SockRecv<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket, nbytes: usize) -> SockRecv<'a> {
        SockRecv {
            io: Readiness::new(lp, sock, Side::Read, "sock_recv", Guard::NotAtOnce),
            sock,
            nbytes,
            buf: Vec::new(),
        }
    }
}

/// Up to this many bytes are allocated for a receive without asking the kernel what waits.
const SMALL_RECV: usize = 64 * 1024;

/// How large a buffer the next `recv` on `sock` needs, for a caller who asked for `nbytes`:
/// `nbytes` itself when it is small; otherwise what the kernel holds for this socket
/// (`FIONREAD`: the bytes queued on a stream, the whole next datagram on a datagram socket),
/// at least [`SMALL_RECV`], at most `nbytes`. One `recv` cannot return more than that, so a
/// huge `nbytes` costs no more memory than the data.
fn recv_capacity(sock: &Socket, nbytes: usize) -> usize {
    if nbytes <= SMALL_RECV {
        return nbytes;
    }
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `c_int` through the pointer, which points to a live local.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &raw mut queued) };
    let queued = if rc == 0 {
        usize::try_from(queued).unwrap_or(0)
    } else {
        0
    };
    queued.max(SMALL_RECV).min(nbytes)
}

/// Makes room for the next `recv` of `nbytes` at most into the empty `buf`.
fn prepare(buf: &mut Vec<u8>, sock: &Socket, nbytes: usize) {
    let want = recv_capacity(sock, nbytes);
    // `buf` is empty (a failed attempt leaves it so), so this makes `want` bytes of room.
    buf.reserve_exact(want);
}

/// The spare capacity of `buf`, limited to `nbytes`: a buffer kept from an earlier, larger
/// attempt must not let the kernel return more than the caller asked for.
fn spare(buf: &mut Vec<u8>, nbytes: usize) -> &mut [MaybeUninit<u8>] {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(nbytes);
    &mut spare[..len]
}

impl Future for SockRecv<'_> {
    type Output = io::Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (sock, buf, nbytes) = (this.sock, &mut this.buf, this.nbytes);
        this.io
            .poll_io(cx, sock, || {
                prepare(buf, sock, nbytes);
                let n = sock.recv_with_flags(spare(buf, nbytes), DONTWAIT)?;
                // SAFETY: `recv` initialised the first `n` bytes of the spare capacity, and
                // `n` is at most its length.
                unsafe { buf.set_len(n) };
                Ok(())
            })
            .map_ok(|()| mem::take(&mut this.buf))
    }
}

impl fmt::Debug for SockRecv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockRecv")
            .field("io", &self.io)
            .field("nbytes", &self.nbytes)
            .finish()
    }
}

/// The future of [`sock_recv_into`](crate::LoopSockExt::sock_recv_into): the number of bytes
/// written at the start of the buffer, 0 at end of stream.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockRecvInto<'a> {
    io: Readiness,
    sock: &'a Socket,
    buf: &'a mut [u8],
}

impl<'a> SockRecvInto<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket, buf: &'a mut [u8]) -> SockRecvInto<'a> {
        SockRecvInto {
            io: Readiness::new(lp, sock, Side::Read, "sock_recv_into", Guard::NotAtOnce),
            sock,
            buf,
        }
    }
}

impl Future for SockRecvInto<'_> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (sock, buf) = (this.sock, &mut *this.buf);
        this.io.poll_io(cx, sock, || {
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `recv` only ever writes
            // initialised bytes into the buffer, so it stays a valid `[u8]`.
            let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            sock.recv_with_flags(uninit, DONTWAIT)
        })
    }
}

impl fmt::Debug for SockRecvInto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockRecvInto")
            .field("io", &self.io)
            .field("len", &self.buf.len())
            .finish()
    }
}

/// The future of [`sock_recvfrom`](crate::LoopSockExt::sock_recvfrom): one datagram of up to
/// `nbytes` bytes (the rest of a longer one is discarded) and its sender.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockRecvfrom<'a> {
    io: Readiness,
    sock: &'a Socket,
    /// The most bytes to return, as the caller asked.
    nbytes: usize,
    /// Sized by [`recv_capacity`] when the syscall is tried.
    buf: Vec<u8>,
}

impl<'a> SockRecvfrom<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket, nbytes: usize) -> SockRecvfrom<'a> {
        SockRecvfrom {
            io: Readiness::new(lp, sock, Side::Read, "sock_recvfrom", Guard::NotAtOnce),
            sock,
            nbytes,
            buf: Vec::new(),
        }
    }
}

impl Future for SockRecvfrom<'_> {
    type Output = io::Result<(Vec<u8>, SockAddr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (sock, buf, nbytes) = (this.sock, &mut this.buf, this.nbytes);
        this.io
            .poll_io(cx, sock, || {
                prepare(buf, sock, nbytes);
                let (n, addr) = sock.recv_from_with_flags(spare(buf, nbytes), DONTWAIT)?;
                // SAFETY: `recv_from` initialised the first `n` bytes of the spare capacity,
                // and `n` is at most its length.
                unsafe { buf.set_len(n) };
                Ok(addr)
            })
            .map_ok(|addr| (mem::take(&mut this.buf), addr))
    }
}

impl fmt::Debug for SockRecvfrom<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockRecvfrom")
            .field("io", &self.io)
            .field("nbytes", &self.nbytes)
            .finish()
    }
}

/// The future of [`sock_recvfrom_into`](crate::LoopSockExt::sock_recvfrom_into): the length of
/// one datagram written at the start of the buffer (truncated to it), and its sender.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockRecvfromInto<'a> {
    io: Readiness,
    sock: &'a Socket,
    buf: &'a mut [u8],
}

impl<'a> SockRecvfromInto<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket, buf: &'a mut [u8]) -> SockRecvfromInto<'a> {
        SockRecvfromInto {
            io: Readiness::new(lp, sock, Side::Read, "sock_recvfrom_into", Guard::NotAtOnce),
            sock,
            buf,
        }
    }
}

impl Future for SockRecvfromInto<'_> {
    type Output = io::Result<(usize, SockAddr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (sock, buf) = (this.sock, &mut *this.buf);
        this.io.poll_io(cx, sock, || {
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `recv_from` only ever
            // writes initialised bytes into the buffer, so it stays a valid `[u8]`.
            let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            sock.recv_from_with_flags(uninit, DONTWAIT)
        })
    }
}

impl fmt::Debug for SockRecvfromInto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockRecvfromInto")
            .field("io", &self.io)
            .field("len", &self.buf.len())
            .finish()
    }
}
