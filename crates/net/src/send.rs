//! The sending operations: `sock_sendall` and `sock_sendto`.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_sched::EventLoop;
use socket2::{SockAddr, Socket};

use crate::readiness::{Guard, Readiness, Side};

/// The flags of every send: never block, whatever the socket's mode (see
/// [`Guard::NotAtOnce`]), and a closed peer is `EPIPE`, never `SIGPIPE` (socket2 adds no flag
/// of its own, and a program may have `SIGPIPE` at its default, fatal disposition).
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// The future of [`sock_sendall`](crate::LoopSockExt::sock_sendall): done once every byte was
/// handed to the kernel.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockSendall<'a> {
    io: Readiness,
    sock: &'a Socket,
    data: &'a [u8],
    sent: usize,
}

impl<'a> SockSendall<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket, data: &'a [u8]) -> SockSendall<'a> {
        SockSendall {
            io: Readiness::new(lp, sock, Side::Write, "sock_sendall", Guard::NotAtOnce),
            sock,
            data,
            sent: 0,
        }
    }

    /// How many bytes were handed to the kernel so far (all of them once the future is done;
    /// after an error, what was sent before it).
    pub fn sent(&self) -> usize {
        self.sent
    }
}

impl Future for SockSendall<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (sock, data, sent) = (this.sock, this.data, &mut this.sent);
        this.io.poll_io(cx, sock, || {
            while *sent < data.len() {
                *sent += sock.send_with_flags(&data[*sent..], SEND_FLAGS)?;
            }
            Ok(())
        })
    }
}

impl fmt::Debug for SockSendall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockSendall")
            .field("io", &self.io)
            .field("len", &self.data.len())
            .field("sent", &self.sent)
            .finish()
    }
}

/// The future of [`sock_sendto`](crate::LoopSockExt::sock_sendto): the number of bytes sent as
/// one datagram.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockSendto<'a> {
    io: Readiness,
    sock: &'a Socket,
    data: &'a [u8],
    addr: SockAddr,
}

impl<'a> SockSendto<'a> {
    pub(crate) fn new(
        lp: &EventLoop,
        sock: &'a Socket,
        data: &'a [u8],
        addr: SockAddr,
    ) -> SockSendto<'a> {
        SockSendto {
            io: Readiness::new(lp, sock, Side::Write, "sock_sendto", Guard::NotAtOnce),
            sock,
            data,
            addr,
        }
    }
}

impl Future for SockSendto<'_> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (sock, data, addr) = (this.sock, this.data, &this.addr);
        this.io
            .poll_io(cx, sock, || sock.send_to_with_flags(data, addr, SEND_FLAGS))
    }
}

impl fmt::Debug for SockSendto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockSendto")
            .field("io", &self.io)
            .field("len", &self.data.len())
            .field("addr", &self.addr)
            .finish()
    }
}
