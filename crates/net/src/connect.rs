//! `sock_connect`: connecting a non-blocking socket, to an address or to a host name resolved
//! with the socket's own family, type and protocol.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_exec::{AddrInfo, AddrInfoHints, LoopExecExt, Resolve};
use evloop_sched::EventLoop;
use socket2::{SockAddr, Socket};

use crate::readiness::{Guard, Readiness, Side};

/// Where the connection goes, and how far the resolution got.
enum Target {
    /// Waiting for `getaddrinfo` on the executor.
    Resolving(Resolve<Vec<AddrInfo>>),
    /// The address to connect to.
    Addr(SockAddr),
    /// Reading the socket's parameters failed before resolving; reported at the first poll.
    Failed(Option<io::Error>),
}

/// The future of [`sock_connect`](crate::LoopSockExt::sock_connect) and
/// [`sock_connect_host`](crate::LoopSockExt::sock_connect_host): done once the socket is
/// connected.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockConnect<'a> {
    io: Readiness,
    sock: &'a Socket,
    target: Target,
    /// Whether `connect(2)` was called; from then on completion is read from `SO_ERROR`.
    called: bool,
}

impl<'a> SockConnect<'a> {
    pub(crate) fn new(lp: &EventLoop, sock: &'a Socket, addr: SockAddr) -> SockConnect<'a> {
        SockConnect {
            io: Readiness::new(lp, sock, Side::Write, "sock_connect", Guard::FirstTry),
            sock,
            target: Target::Addr(addr),
            called: false,
        }
    }

    pub(crate) fn to_host(
        lp: &EventLoop,
        sock: &'a Socket,
        host: &str,
        port: u16,
    ) -> SockConnect<'a> {
        let target = match hints_of(sock) {
            Ok(hints) => {
                Target::Resolving(lp.getaddrinfo(Some(host), Some(&port.to_string()), hints))
            }
            Err(err) => Target::Failed(Some(err)),
        };
        SockConnect {
            io: Readiness::new(lp, sock, Side::Write, "sock_connect", Guard::FirstTry),
            sock,
            target,
            called: false,
        }
    }
}

/// asyncio's `_ensure_resolved(family=sock.family, type=sock.type, proto=sock.proto)`.
fn hints_of(sock: &Socket) -> io::Result<AddrInfoHints> {
    Ok(AddrInfoHints {
        family: sock.domain()?.into(),
        socktype: sock.r#type()?.into(),
        protocol: sock.protocol()?.map_or(0, Into::into),
        flags: 0,
    })
}

/// The outcome of a connect that was in progress, once the socket is writable (or polled
/// spuriously): `SO_ERROR` if set, done if the socket has a peer, otherwise still waiting.
fn connect_outcome(sock: &Socket) -> io::Result<()> {
    if let Some(err) = sock.take_error()? {
        return Err(err);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => {
            Err(io::ErrorKind::WouldBlock.into())
        }
        Err(err) => Err(err),
    }
}

impl Future for SockConnect<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let addr = loop {
            match &mut this.target {
                Target::Addr(addr) => break addr,
                Target::Failed(err) => {
                    return Poll::Ready(Err(err.take().unwrap_or_else(|| {
                        io::Error::other("sock_connect: polled after completion")
                    })));
                }
                Target::Resolving(resolve) => match Pin::new(resolve).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(err)) => {
                        this.target = Target::Failed(None);
                        return Poll::Ready(Err(err.into()));
                    }
                    Poll::Ready(Ok(found)) => {
                        this.target = match found.first() {
                            Some(info) => Target::Addr(SockAddr::from(info.addr)),
                            None => Target::Failed(Some(io::Error::new(
                                io::ErrorKind::NotFound,
                                "sock_connect: the host resolved to no address",
                            ))),
                        };
                    }
                },
            }
        };
        let (sock, called) = (this.sock, &mut this.called);
        this.io.poll_io(cx, sock, || {
            if *called {
                return connect_outcome(sock);
            }
            *called = true;
            match sock.connect(addr) {
                // EALREADY: an earlier connect on this socket (one whose future was dropped)
                // is still in progress. Python counts both as BlockingIOError and waits for
                // writability, so the retry completes with that connection.
                Err(err)
                    if matches!(err.raw_os_error(), Some(libc::EINPROGRESS | libc::EALREADY)) =>
                {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                // A Unix listener whose queue is full: the connect did not start, and the
                // socket is writable at once, so waiting would spin. Say so instead.
                Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("sock_connect: the listener's queue is full, try again later ({err})"),
                )),
                done => done,
            }
        })
    }
}

impl fmt::Debug for SockConnect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Resolving(_) => "resolving".to_owned(),
            Target::Addr(addr) => format!("{addr:?}"),
            Target::Failed(_) => "failed".to_owned(),
        };
        f.debug_struct("SockConnect")
            .field("io", &self.io)
            .field("target", &target)
            .field("called", &self.called)
            .finish()
    }
}
