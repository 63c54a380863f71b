//! `sock_accept`: the next connection of a listening socket.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_sched::EventLoop;
use socket2::{SockAddr, Socket};

use crate::readiness::{Guard, Readiness, Side};

/// The future of [`sock_accept`](crate::LoopSockExt::sock_accept): the accepted socket,
/// already non-blocking and close-on-exec, and the peer's address.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockAccept<'a> {
    io: Readiness,
    sock: &'a Socket,
}

impl<'a> SockAccept<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket) -> SockAccept<'a> {
        SockAccept {
            io: Readiness::new(lp, sock, Side::Read, "sock_accept", Guard::EveryTry),
            sock,
        }
    }
}

impl Future for SockAccept<'_> {
    type Output = io::Result<(Socket, SockAddr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = this.sock;
        // Non-blocking and close-on-exec in the one syscall.
        this.io.poll_io(cx, sock, || {
            sock.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        })
    }
}

impl fmt::Debug for SockAccept<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockAccept").field("io", &self.io).finish()
    }
}
