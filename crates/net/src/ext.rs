//! [`LoopSockExt`]: the low-level socket operations as loop methods, on
//! `evloop_sched::EventLoop`.

use socket2::{SockAddr, Socket};

use evloop_sched::EventLoop;

use crate::accept::SockAccept;
use crate::connect::SockConnect;
use crate::recv::{SockRecv, SockRecvInto, SockRecvfrom, SockRecvfromInto};
use crate::send::{SockSendall, SockSendto};

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// asyncio's low-level socket operations (`loop.sock_recv` and friends) on [`EventLoop`].
///
/// Each method borrows a non-blocking [`socket2::Socket`] and returns a named future. The
/// future tries the syscall at its first poll, so a ready socket costs no registration; only on
/// `WouldBlock` does it watch the fd (`add_reader` or `add_writer`), and it stops watching when
/// it completes or is dropped. Dropping a pending future cancels the operation: it has consumed
/// no data and leaves no reader or writer behind. `EINTR` is retried, never surfaced.
///
/// # Errors
///
/// Every future fails with:
/// - `InvalidInput` "the socket must be non-blocking" for a blocking socket, which never
///   blocks the loop. asyncio checks this only in debug mode (and a blocking socket blocks
///   its loop otherwise); evloop always does, and reads the socket's mode only where it must:
///   `sock_accept` before each `accept`, `sock_connect` before it starts; the receives and
///   sends pass `MSG_DONTWAIT`, so they cannot block whatever the mode, and read it only when
///   they cannot complete at the first try (before each wait, and on failure). So a blocking
///   socket is refused the first time such an operation would have to wait, and an operation
///   that completes at once has done what it would have done on a non-blocking socket;
/// - `ResourceBusy` if another operation on the same side of the same socket (a receive or
///   accept; a send or connect) is pending on this loop. asyncio silently replaces the first
///   operation's reader, which then never completes; evloop refuses the second one instead.
///   An operation awaited by a task that was just cancelled is still pending until the task
///   runs again and drops it (the next loop iteration), so an operation started at once on
///   the same side is refused too, where asyncio lets it replace the cancelled one;
/// - the loop's closed error (as an `io::Error`) if it has to wait on a closed loop;
/// - the OS error of the syscall (`ConnectionRefused`, `ConnectionReset`, `BrokenPipe`…).
pub trait LoopSockExt: sealed::Sealed {
    /// asyncio's `sock_recv(sock, nbytes)`: up to `nbytes` bytes; empty once the peer has
    /// closed its side.
    ///
    /// `nbytes` is a limit, not an allocation: the buffer is sized to what one `recv` can
    /// return (what the kernel holds for the socket, at least 64 KiB, at most `nbytes`), so any
    /// `nbytes`, up to `usize::MAX`, is safe. asyncio allocates `nbytes` up front and raises
    /// `MemoryError` for a size it cannot allocate; evloop returns the data instead.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use evloop::socket2::Socket;
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// # let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # let (a, mut b) = (Socket::from(std::os::fd::OwnedFd::from(a)), b);
    /// a.set_nonblocking(true)?;
    /// b.write_all(b"hello")?;
    /// let l2 = lp.clone();
    /// let data = lp.run_until_complete(async move { l2.sock_recv(&a, 1024).await })??;
    /// assert_eq!(data, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_recv<'a>(&self, sock: &'a Socket, nbytes: usize) -> SockRecv<'a>;

    /// asyncio's `sock_recv_into(sock, buf)`: receives into `buf` and returns how many bytes
    /// were written at its start; 0 once the peer has closed its side.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use evloop::socket2::Socket;
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// # let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # let (a, mut b) = (Socket::from(std::os::fd::OwnedFd::from(a)), b);
    /// a.set_nonblocking(true)?;
    /// b.write_all(b"hi")?;
    /// let l2 = lp.clone();
    /// let (n, buf) = lp.run_until_complete(async move {
    ///     let mut buf = [0; 8];
    ///     let n = l2.sock_recv_into(&a, &mut buf[2..]).await?;
    ///     Ok::<_, std::io::Error>((n, buf))
    /// })??;
    /// assert_eq!((n, &buf[2..4]), (2, &b"hi"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_recv_into<'a>(&self, sock: &'a Socket, buf: &'a mut [u8]) -> SockRecvInto<'a>;

    /// asyncio's `sock_sendall(sock, data)`: sends every byte of `data`, waiting for
    /// writability as often as needed. An empty `data` completes at once. After an error,
    /// [`SockSendall::sent`] tells how much went out.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`]; a closed peer is `BrokenPipe` (never `SIGPIPE`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use evloop::socket2::Socket;
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// # let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # let (a, mut b) = (Socket::from(std::os::fd::OwnedFd::from(a)), b);
    /// a.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// lp.run_until_complete(async move { l2.sock_sendall(&a, b"ping").await })??;
    /// let mut got = [0; 4];
    /// b.read_exact(&mut got)?;
    /// assert_eq!(&got, b"ping");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_sendall<'a>(&self, sock: &'a Socket, data: &'a [u8]) -> SockSendall<'a>;

    /// asyncio's `sock_connect(sock, address)` with an address: connects, waiting for the
    /// connection to be established (`EINPROGRESS`, then writability and `SO_ERROR`).
    ///
    /// A socket whose earlier `sock_connect` was cancelled (its future dropped) while the
    /// connection was in progress can be given to `sock_connect` again: the kernel's `EALREADY`
    /// is waited out like `EINPROGRESS`, as asyncio does, and the retry completes when that
    /// connection does.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`]; a closed port is `ConnectionRefused`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{SocketAddr, TcpListener};
    /// use evloop::socket2::{Domain, Socket, Type};
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    /// sock.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// let sock = lp.run_until_complete(async move {
    ///     l2.sock_connect(&sock, addr).await.map(|()| sock)
    /// })??;
    /// assert_eq!(sock.peer_addr()?.as_socket(), Some(addr));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_connect<'a>(&self, sock: &'a Socket, addr: impl Into<SockAddr>) -> SockConnect<'a>;

    /// asyncio's `sock_connect(sock, (host, port))`: resolves `host` with the socket's own
    /// family, type and protocol (on the executor unless it is numeric), then connects to the
    /// first address found, as [`sock_connect`](LoopSockExt::sock_connect).
    ///
    /// # Errors
    ///
    /// As [`sock_connect`](LoopSockExt::sock_connect), plus the resolver's failure (an
    /// `io::Error` wrapping `evloop_exec::ResolveError`), e.g. for an IPv4 literal given to an
    /// IPv6 socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use evloop::socket2::{Domain, Socket, Type};
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    /// sock.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// lp.run_until_complete(async move { l2.sock_connect_host(&sock, "127.0.0.1", port).await })??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_connect_host<'a>(&self, sock: &'a Socket, host: &str, port: u16) -> SockConnect<'a>;

    /// asyncio's `sock_accept(sock)`: the next connection of a listening socket, as a socket
    /// set non-blocking (and close-on-exec), with the peer's address.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{SocketAddr, TcpStream};
    /// use evloop::socket2::{Domain, Socket, Type};
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    /// listener.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
    /// listener.listen(100)?;
    /// listener.set_nonblocking(true)?;
    /// let client = TcpStream::connect(listener.local_addr()?.as_socket().unwrap())?;
    /// let l2 = lp.clone();
    /// let (conn, peer) = lp.run_until_complete(async move { l2.sock_accept(&listener).await })??;
    /// assert!(conn.nonblocking()?);
    /// assert_eq!(peer.as_socket(), Some(client.local_addr()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_accept<'a>(&self, sock: &'a Socket) -> SockAccept<'a>;

    /// asyncio's `sock_sendto(sock, data, address)`: sends `data` as one datagram and returns
    /// the number of bytes sent; waits for writability if the send would block. `addr` is a
    /// `std::net::SocketAddr` or a `SockAddr` (a Unix path: `SockAddr::unix(path)?`), as
    /// [`sock_connect`](LoopSockExt::sock_connect) takes.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use evloop::socket2::{Domain, Socket, Type};
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let peer = UdpSocket::bind("127.0.0.1:0")?;
    /// let to = peer.local_addr()?; // a std::net::SocketAddr
    /// let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    /// sock.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// let n = lp.run_until_complete(async move { l2.sock_sendto(&sock, b"data", to).await })??;
    /// assert_eq!(n, 4);
    /// let mut buf = [0; 8];
    /// assert_eq!(peer.recv(&mut buf)?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_sendto<'a>(
        &self,
        sock: &'a Socket,
        data: &'a [u8],
        addr: impl Into<SockAddr>,
    ) -> SockSendto<'a>;

    /// asyncio's `sock_recvfrom(sock, bufsize)`: one datagram of up to `nbytes` bytes (the
    /// rest of a longer datagram is discarded) and the sender's address.
    ///
    /// As with [`sock_recv`](LoopSockExt::sock_recv), `nbytes` is a limit, not an allocation:
    /// the buffer is sized to the datagram waiting (never truncating it below `nbytes`), so
    /// any `nbytes`, up to `usize::MAX`, is safe.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use evloop::socket2::Socket;
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let udp = UdpSocket::bind("127.0.0.1:0")?;
    /// let peer = UdpSocket::bind("127.0.0.1:0")?;
    /// peer.send_to(b"datagram", udp.local_addr()?)?;
    /// let sock = Socket::from(udp);
    /// sock.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// let (data, from) = lp.run_until_complete(async move { l2.sock_recvfrom(&sock, 4096).await })??;
    /// assert_eq!(data, b"datagram");
    /// assert_eq!(from.as_socket(), Some(peer.local_addr()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_recvfrom<'a>(&self, sock: &'a Socket, nbytes: usize) -> SockRecvfrom<'a>;

    /// asyncio's `sock_recvfrom_into(sock, buf)`: one datagram written at the start of `buf`
    /// (truncated to its length), its length, and the sender's address.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSockExt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use evloop::socket2::Socket;
    /// use evloop::LoopSockExt;
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let udp = UdpSocket::bind("127.0.0.1:0")?;
    /// let peer = UdpSocket::bind("127.0.0.1:0")?;
    /// peer.send_to(b"abc", udp.local_addr()?)?;
    /// let sock = Socket::from(udp);
    /// sock.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// let (n, _from) = lp.run_until_complete(async move {
    ///     let mut buf = [0; 16];
    ///     l2.sock_recvfrom_into(&sock, &mut buf).await
    /// })??;
    /// assert_eq!(n, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_recvfrom_into<'a>(&self, sock: &'a Socket, buf: &'a mut [u8]) -> SockRecvfromInto<'a>;
}

impl LoopSockExt for EventLoop {
    fn sock_recv<'a>(&self, sock: &'a Socket, nbytes: usize) -> SockRecv<'a> {
        SockRecv::new(self, sock, nbytes)
    }

    fn sock_recv_into<'a>(&self, sock: &'a Socket, buf: &'a mut [u8]) -> SockRecvInto<'a> {
        SockRecvInto::new(self, sock, buf)
    }

    fn sock_sendall<'a>(&self, sock: &'a Socket, data: &'a [u8]) -> SockSendall<'a> {
        SockSendall::new(self, sock, data)
    }

    fn sock_connect<'a>(&self, sock: &'a Socket, addr: impl Into<SockAddr>) -> SockConnect<'a> {
        SockConnect::new(self, sock, addr.into())
    }

    fn sock_connect_host<'a>(&self, sock: &'a Socket, host: &str, port: u16) -> SockConnect<'a> {
        SockConnect::to_host(self, sock, host, port)
    }

    fn sock_accept<'a>(&self, sock: &'a Socket) -> SockAccept<'a> {
        SockAccept::new(self, sock)
    }

    fn sock_sendto<'a>(
        &self,
        sock: &'a Socket,
        data: &'a [u8],
        addr: impl Into<SockAddr>,
    ) -> SockSendto<'a> {
        SockSendto::new(self, sock, data, addr.into())
    }

    fn sock_recvfrom<'a>(&self, sock: &'a Socket, nbytes: usize) -> SockRecvfrom<'a> {
        SockRecvfrom::new(self, sock, nbytes)
    }

    fn sock_recvfrom_into<'a>(&self, sock: &'a Socket, buf: &'a mut [u8]) -> SockRecvfromInto<'a> {
        SockRecvfromInto::new(self, sock, buf)
    }
}
