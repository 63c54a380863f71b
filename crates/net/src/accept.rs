//! `sock_accept`: the next connection of a listening socket.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_sched::EventLoop;
use socket2::{SockAddr, Socket};

use crate::readiness::{Readiness, Side};

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
            io: Readiness::new(lp, sock, Side::Read, "sock_accept"),
            sock,
        }
    }
}

impl Future for SockAccept<'_> {
    type Output = io::Result<(Socket, SockAddr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = this.sock;
        this.io.poll_io(cx, sock, || {
            // socket2 uses accept4 with SOCK_CLOEXEC where the platform has it.
            let (conn, addr) = sock.accept()?;
            conn.set_nonblocking(true)?;
            Ok((conn, addr))
        })
    }
}

impl fmt::Debug for SockAccept<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockAccept").field("io", &self.io).finish()
    }
}
