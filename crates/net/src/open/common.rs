//! What opening a connection and opening a server share: argument errors, socket checks,
//! stream-socket resolution and the wording of bind errors.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use evloop_exec::{AddrInfo, AddrInfoHints, LoopExecExt};
use evloop_sched::EventLoop;
use socket2::{Domain, Socket, Type};

use crate::open::errors::empty_resolution;

/// A misuse of the API: `InvalidInput` with asyncio's message.
pub(crate) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A socket as asyncio's messages show it: its fd, family and type.
pub(crate) fn describe(sock: &Socket) -> String {
    let fd = sock.as_raw_fd();
    match (sock.domain(), sock.r#type()) {
        (Ok(domain), Ok(ty)) => format!("<socket fd={fd}, family={domain:?}, type={ty:?}>"),
        _ => format!("<fd={fd}, not a socket>"),
    }
}

/// Checks that `sock` is a stream socket (of any family).
pub(crate) fn expect_stream(sock: &Socket) -> io::Result<()> {
    if sock.r#type().ok() == Some(Type::STREAM) {
        return Ok(());
    }
    Err(invalid(&format!(
        "A Stream Socket was expected, got {}",
        describe(sock)
    )))
}

/// Checks that `sock` is an `AF_UNIX` stream socket.
pub(crate) fn expect_unix_stream(sock: &Socket) -> io::Result<()> {
    if sock.domain().ok() == Some(Domain::UNIX) && sock.r#type().ok() == Some(Type::STREAM) {
        return Ok(());
    }
    Err(invalid(&format!(
        "A UNIX Domain Stream Socket was expected, got {}",
        describe(sock)
    )))
}

/// Sets `TCP_NODELAY` on an internet stream socket (evloop's default, as asyncio's
/// transports); other sockets are left alone.
pub(crate) fn set_nodelay_if_tcp(sock: &Socket) -> io::Result<()> {
    match sock.domain()? {
        Domain::IPV4 | Domain::IPV6 => sock.set_tcp_nodelay(true),
        _ => Ok(()),
    }
}

/// asyncio's bind error: the OS error's kind, with the address in the message.
pub(crate) fn bind_error(addr: &SocketAddr, err: &io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        format!(
            "error while attempting to bind on address {addr}: {}",
            err.to_string().to_lowercase()
        ),
    )
}

/// The hints of every resolution here: stream sockets of `family` (any if `None`).
pub(crate) fn stream_hints(family: Option<Domain>, flags: i32) -> AddrInfoHints {
    AddrInfoHints {
        family: family.map_or(libc::AF_UNSPEC, i32::from),
        socktype: libc::SOCK_STREAM,
        protocol: 0,
        flags,
    }
}

/// Resolves `host` and `port` on the executor (at once for numeric ones); an empty answer is
/// asyncio's "getaddrinfo() returned empty list".
pub(crate) async fn resolve(
    lp: &EventLoop,
    host: Option<&str>,
    port: Option<u16>,
    hints: AddrInfoHints,
) -> io::Result<Vec<AddrInfo>> {
    let port = port.map(|p| p.to_string());
    let found = lp.getaddrinfo(host, port.as_deref(), hints).await?;
    if found.is_empty() {
        return Err(empty_resolution());
    }
    Ok(found)
}

/// A new socket for one resolved address.
pub(crate) fn socket_for(info: &AddrInfo) -> io::Result<Socket> {
    Socket::new(
        Domain::from(info.family),
        Type::from(info.socktype),
        Some(info.protocol.into()),
    )
}
