//! [`LoopStreamExt`]: connections, servers and pipes as loop methods (asyncio's
//! `create_connection`, `create_server`, `create_unix_*`, `connect_accepted_socket`,
//! `connect_read_pipe`, `connect_write_pipe`).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use evloop_sched::EventLoop;
use evloop_task::LoopFuture;
use socket2::Socket;

use crate::open::{self, ConnectOptions, ServerOptions, UnixServerOptions};
use crate::protocol::Protocol;
use crate::server::Server;
use crate::transport::Transport;
use crate::transport::inner::Role;

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// What the connection methods return: the transport and the protocol it drives.
pub type Connection<P> = (Transport, Rc<RefCell<P>>);

/// asyncio's stream connections and servers on [`EventLoop`].
///
/// Each method returns a `'static` future to await in a task (or to hand to
/// `run_until_complete`). A connection future completes once the protocol's
/// `connection_made` has run (it is scheduled, never called inside the method), with the
/// transport and the protocol, which the caller and the transport share.
///
/// # Errors
///
/// Argument errors are `InvalidInput` naming the argument; resolution failures are the
/// resolver's errors; connect and bind failures are the OS errors (see each method).
pub trait LoopStreamExt: sealed::Sealed {
    /// Opens a TCP connection (asyncio's `create_connection`): `options` names a host and port
    /// (resolved on the executor; every address tried, raced by Happy Eyeballs when
    /// `happy_eyeballs_delay` is set) or a `sock` to use. `TCP_NODELAY` is on.
    ///
    /// # Errors
    ///
    /// See [`ConnectOptions`]: argument errors, the resolver's error, and when every address
    /// failed, the one error, or "Multiple exceptions: …", or with `all_errors` a
    /// [`ConnectErrors`](crate::ConnectErrors) inside the `io::Error`.
    ///
    /// # Examples
    ///
    /// See [`Transport`].
    fn create_connection<P, F>(
        &self,
        factory: F,
        options: ConnectOptions,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;

    /// Opens a listening TCP server (asyncio's `create_server`): one socket per address the
    /// host(s) resolve to (no host: every family), `SO_REUSEADDR` on, backlog 100; serving at
    /// once unless `start_serving(false)`. `factory` makes a protocol per connection.
    ///
    /// # Errors
    ///
    /// See [`ServerOptions`]: argument errors, the resolver's error, and bind errors
    /// (`AddrInUse`) naming the address; on a bind error every socket opened is closed.
    ///
    /// # Examples
    ///
    /// See [`Transport`].
    fn create_server<P, F>(
        &self,
        factory: F,
        options: ServerOptions,
    ) -> impl Future<Output = io::Result<Server>> + 'static
    where
        P: Protocol,
        F: FnMut() -> P + 'static;

    /// Connects to the Unix stream socket at `path` (asyncio's `create_unix_connection`).
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing path, `ConnectionRefused` when nobody listens; other OS errors.
    fn create_unix_connection<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;

    /// Listens on the Unix stream socket `path` (asyncio's `create_unix_server`). A stale
    /// socket file there is removed first; a regular file is `AddrInUse`. On close, the
    /// socket file is removed if it is still the one the server made.
    ///
    /// # Errors
    ///
    /// See [`UnixServerOptions`]; OS errors of bind and listen.
    fn create_unix_server<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: UnixServerOptions,
    ) -> impl Future<Output = io::Result<Server>> + 'static
    where
        P: Protocol,
        F: FnMut() -> P + 'static;

    /// Wraps a connected stream socket, made or accepted outside the loop (asyncio's
    /// `connect_accepted_socket`; also what `create_unix_connection(sock=…)` does). It is made
    /// non-blocking; TCP sockets get `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` "A Stream Socket was expected" for a non-stream socket.
    fn connect_accepted_socket<P, F>(
        &self,
        factory: F,
        sock: Socket,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;

    /// Reads a pipe (or FIFO, socket, pty) through `protocol` (asyncio's `connect_read_pipe`).
    /// The fd is made non-blocking and owned by the transport. At end of file,
    /// `eof_received` (its answer ignored) and `connection_lost(None)` follow, each from a
    /// callback of its own. A read error goes to `connection_lost(Some(err))` and to the
    /// exception handler ("Fatal read error on pipe transport"), except EIO (a pty whose other
    /// side hung up), which only goes to `connection_lost`, as in asyncio.
    ///
    /// # Errors
    ///
    /// `InvalidInput` "Pipe transport is for pipes/sockets only." for a regular file or
    /// directory.
    fn connect_read_pipe<P, F>(
        &self,
        factory: F,
        pipe: OwnedFd,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;

    /// Writes a pipe (or FIFO, socket, pty) through a transport (asyncio's
    /// `connect_write_pipe`). `write_eof` is closing; if the reading end of a pipe, FIFO or
    /// socket goes away, the transport closes (with `BrokenPipe` if data was still buffered).
    /// Write errors go to `connection_lost(Some(err))` only, never to the exception handler,
    /// as in asyncio.
    /// A character device (a pty) is not watched for that, as in asyncio: there, readable
    /// means input arrived, so one pty can be written here and read by a read pipe at once.
    ///
    /// # Errors
    ///
    /// As [`connect_read_pipe`](LoopStreamExt::connect_read_pipe).
    fn connect_write_pipe<P, F>(
        &self,
        factory: F,
        pipe: OwnedFd,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;
}

/// Makes the transport, starts it, and waits until `connection_made` ran.
async fn establish<P: Protocol>(
    lp: EventLoop,
    fd: OwnedFd,
    role: Role,
    factory: impl FnOnce() -> P,
) -> io::Result<Connection<P>> {
    let protocol = Rc::new(RefCell::new(factory()));
    let transport = Transport::new(&lp, fd, role, protocol.clone())?;
    let made = LoopFuture::<()>::new(&lp);
    let done = made.clone();
    if let Err(err) = transport.inner.start(move || {
        let _ = done.set_result(());
    }) {
        transport.inner.release();
        return Err(err);
    }
    if let Err(err) = made.await {
        // Cancelled while waiting: the transport must not outlive the caller's interest.
        transport.abort();
        return Err(io::Error::other(err));
    }
    Ok((transport, protocol))
}

/// Checks that `fd` is a pipe, FIFO, socket or character device, and makes it non-blocking.
fn prepare_pipe(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open (we own it) and `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let kind = st.st_mode & libc::S_IFMT;
    if !matches!(kind, libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "Pipe transport is for pipes/sockets only.",
        ));
    }
    socket2::SockRef::from(fd).set_nonblocking(true)
}

impl LoopStreamExt for EventLoop {
    fn create_connection<P, F>(
        &self,
        factory: F,
        options: ConnectOptions,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        let connect = open::open_connection(self, options);
        async move {
            let sock = connect.await?;
            establish(lp, OwnedFd::from(sock), Role::Socket, factory).await
        }
    }

    fn create_server<P, F>(
        &self,
        factory: F,
        options: ServerOptions,
    ) -> impl Future<Output = io::Result<Server>> + 'static
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        let lp = self.clone();
        let listen = open::open_listeners(self, options);
        async move {
            let opened = listen.await?;
            let server = Server::new(&lp, opened.sockets, factory, opened.backlog, None);
            if opened.start_serving {
                server.start_serving()?;
            }
            Ok(server)
        }
    }

    fn create_unix_connection<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        let path: PathBuf = path.as_ref().to_path_buf();
        let connect = open::open_unix_connection(self, Some(path), None);
        async move {
            let sock = connect.await?;
            establish(lp, OwnedFd::from(sock), Role::Socket, factory).await
        }
    }

    fn create_unix_server<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: UnixServerOptions,
    ) -> impl Future<Output = io::Result<Server>> + 'static
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        let lp = self.clone();
        let opened = open::open_unix_listener(Some(path.as_ref()), options);
        async move {
            let opened = opened?;
            let server = Server::new(&lp, vec![opened.sock], factory, opened.backlog, opened.file);
            if opened.start_serving {
                server.start_serving()?;
            }
            Ok(server)
        }
    }

    fn connect_accepted_socket<P, F>(
        &self,
        factory: F,
        sock: Socket,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        async move {
            open::expect_stream(&sock)?;
            sock.set_nonblocking(true)?;
            open::set_nodelay_if_tcp(&sock)?;
            establish(lp, OwnedFd::from(sock), Role::Socket, factory).await
        }
    }

    fn connect_read_pipe<P, F>(
        &self,
        factory: F,
        pipe: OwnedFd,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        async move {
            prepare_pipe(&pipe)?;
            establish(lp, pipe, Role::ReadPipe, factory).await
        }
    }

    fn connect_write_pipe<P, F>(
        &self,
        factory: F,
        pipe: OwnedFd,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        async move {
            prepare_pipe(&pipe)?;
            establish(lp, pipe, Role::WritePipe, factory).await
        }
    }
}
