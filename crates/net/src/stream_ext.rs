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

use crate::open::{
    self, AcceptedOptions, ConnectOptions, ServerOptions, UnixConnectOptions, UnixServerOptions,
};
use crate::protocol::Protocol;
use crate::server::Server;
use crate::tls::{self, StartTlsOptions, TlsConfig, TlsSetup, checked_setup};
use crate::transport::Transport;
use crate::transport::inner::{Role, flag};

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
    /// An empty `path` is asyncio's `path=None`: the server listens on the socket given with
    /// [`UnixServerOptions::sock`] instead.
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

    /// [`create_unix_connection`](LoopStreamExt::create_unix_connection) with options: TLS
    /// over the Unix socket (asyncio's `ssl=` and `server_hostname=`, which is required with
    /// `ssl` since a path is no host name).
    ///
    /// # Errors
    ///
    /// As `create_unix_connection`; `InvalidInput` for TLS options without `ssl` or `ssl`
    /// without `server_hostname`; a failed TLS handshake's error (see
    /// [`create_connection`](LoopStreamExt::create_connection)).
    fn create_unix_connection_with<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: UnixConnectOptions,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;

    /// [`connect_accepted_socket`](LoopStreamExt::connect_accepted_socket) with options: the
    /// server side of TLS on the socket (asyncio's `connect_accepted_socket(ssl=…)`). The
    /// future completes once the handshake is done.
    ///
    /// # Errors
    ///
    /// As `connect_accepted_socket`; `InvalidInput` for timeouts without `ssl`; a failed
    /// handshake's error.
    fn connect_accepted_socket_with<P, F>(
        &self,
        factory: F,
        sock: Socket,
        options: AcceptedOptions,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static;

    /// Upgrades a plain connection to TLS (asyncio's `loop.start_tls`), STARTTLS-style: from
    /// now on the socket's bytes go through a TLS layer that speaks for `protocol`, and the
    /// future completes, once the handshake is done, with the new transport to write through.
    /// `protocol`'s `connection_made` is called with that transport first, as asyncio's
    /// `start_tls` does not (asyncio leaves the protocol to take the returned transport);
    /// `connection_lost` ends it as usual. The side is the configuration's:
    /// [`TlsConfig::Server`] is asyncio's `server_side=True`.
    ///
    /// The old `transport` must not be used afterwards: it is the socket under the TLS layer.
    /// A write through it (`write`, `writelines`, `write_eof`) would corrupt the TLS stream,
    /// so it is dropped and reported to the exception handler (asyncio leaves that to the
    /// caller's care). Reading pauses
    /// during the call and resumes with the TLS layer, even if it was paused before: a server
    /// that answers a STARTTLS request should `pause_reading()` before answering, so that the
    /// client's first TLS bytes cannot reach the old protocol first.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` for a pipe or TLS transport, a closing one, a client configuration
    ///   without [`StartTlsOptions::server_hostname`], or options asyncio refuses;
    /// - the handshake's error, also given to `protocol`'s `connection_lost`.
    fn start_tls<P>(
        &self,
        transport: &Transport,
        protocol: Rc<RefCell<P>>,
        config: TlsConfig,
        options: StartTlsOptions,
    ) -> impl Future<Output = io::Result<Transport>> + 'static
    where
        P: Protocol;
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
    start_and_wait(&lp, transport, protocol).await
}

/// [`establish`] for a socket, with TLS when `tls` says so: the future completes once the
/// handshake is done (and `connection_made` ran), or fails with the handshake's error.
async fn establish_socket<P: Protocol>(
    lp: EventLoop,
    sock: Socket,
    tls: Option<TlsSetup>,
    factory: impl FnOnce() -> P,
) -> io::Result<Connection<P>> {
    let Some(setup) = tls else {
        return establish(lp, OwnedFd::from(sock), Role::Socket, factory).await;
    };
    let protocol = Rc::new(RefCell::new(factory()));
    let transport = Transport::new(&lp, OwnedFd::from(sock), Role::Socket, protocol.clone())?;
    let handshake = LoopFuture::<io::Result<()>>::new(&lp);
    let done = handshake.clone();
    let layer = match tls::wrap(
        &transport.inner,
        &setup,
        protocol.clone(),
        std::any::type_name::<P>(),
        Some(Box::new(move |result| {
            let _ = done.set_result(result);
        })),
    ) {
        Ok(layer) => layer,
        Err(err) => {
            transport.inner.release();
            return Err(err);
        }
    };
    if let Err(err) = transport.inner.start(|| {}) {
        transport.inner.release();
        return Err(err);
    }
    let tls_transport = Transport {
        inner: transport.inner.clone(),
        tls: Some(layer),
    };
    let transport = await_handshake(handshake, tls_transport).await?;
    Ok((transport, protocol))
}

/// Waits for the handshake of `transport`. If the caller gives up first (the future is
/// dropped, its task cancelled), the connection is aborted: it must not outlive the caller's
/// interest, as asyncio closes the transport when `create_connection` is cancelled.
async fn await_handshake(
    handshake: LoopFuture<io::Result<()>>,
    transport: Transport,
) -> io::Result<Transport> {
    /// Aborts the transport when dropped, unless disarmed.
    struct AbortOnDrop(Option<Transport>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            if let Some(t) = self.0.take() {
                t.abort();
            }
        }
    }
    let mut guard = AbortOnDrop(Some(transport));
    let outcome = handshake.await;
    match outcome {
        Ok(Ok(())) => guard
            .0
            .take()
            .ok_or_else(|| io::Error::other("the transport is gone")),
        Ok(Err(err)) => Err(err),
        Err(err) => Err(io::Error::other(err)),
    }
}

/// Starts `transport` and waits until `connection_made` ran.
async fn start_and_wait<P: Protocol>(
    lp: &EventLoop,
    transport: Transport,
    protocol: Rc<RefCell<P>>,
) -> io::Result<Connection<P>> {
    let made = LoopFuture::<()>::new(lp);
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
        let mut options = options;
        let tls = options.take_tls();
        let connect = open::open_connection(self, options);
        async move {
            let tls = tls?;
            let sock = connect.await?;
            establish_socket(lp, sock, tls, factory).await
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
        let mut options = options;
        let tls = options.take_tls();
        let listen = open::open_listeners(self, options);
        async move {
            let tls = tls?;
            let opened = listen.await?;
            let server = Server::new(&lp, opened.sockets, factory, opened.backlog, None, tls);
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
        self.create_unix_connection_with(factory, path, UnixConnectOptions::new())
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
        let mut options = options;
        let tls = options.take_tls();
        let path = path.as_ref();
        let path = (!path.as_os_str().is_empty()).then_some(path);
        let opened = open::open_unix_listener(path, options);
        async move {
            let tls = tls?;
            let opened = opened?;
            let server = Server::new(
                &lp,
                vec![opened.sock],
                factory,
                opened.backlog,
                opened.file,
                tls,
            );
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
        self.connect_accepted_socket_with(factory, sock, AcceptedOptions::new())
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

    fn create_unix_connection_with<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: UnixConnectOptions,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        let mut options = options;
        let tls = options.take_tls();
        let path: PathBuf = path.as_ref().to_path_buf();
        let connect = open::open_unix_connection(self, Some(path), None);
        async move {
            let tls = tls?;
            let sock = connect.await?;
            establish_socket(lp, sock, tls, factory).await
        }
    }

    fn connect_accepted_socket_with<P, F>(
        &self,
        factory: F,
        sock: Socket,
        options: AcceptedOptions,
    ) -> impl Future<Output = io::Result<Connection<P>>> + 'static
    where
        P: Protocol,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        let mut options = options;
        let tls = options.take_tls();
        async move {
            let tls = tls?;
            open::expect_stream(&sock)?;
            sock.set_nonblocking(true)?;
            open::set_nodelay_if_tcp(&sock)?;
            establish_socket(lp, sock, tls, factory).await
        }
    }

    fn start_tls<P>(
        &self,
        transport: &Transport,
        protocol: Rc<RefCell<P>>,
        config: TlsConfig,
        options: StartTlsOptions,
    ) -> impl Future<Output = io::Result<Transport>> + 'static
    where
        P: Protocol,
    {
        let transport = transport.clone();
        let lp = self.clone();
        async move {
            if transport.tls.is_some() || transport.inner.role != Role::Socket {
                return Err(open::invalid(&format!(
                    "transport {transport:?} is not supported by start_tls()"
                )));
            }
            if transport.is_closing() {
                return Err(open::invalid("transport is closing"));
            }
            let StartTlsOptions {
                server_hostname,
                ssl_handshake_timeout,
                ssl_shutdown_timeout,
            } = options;
            if !config.is_server() && server_hostname.is_none() {
                return Err(open::invalid(
                    "You must set server_hostname when using ssl without a host",
                ));
            }
            let setup = checked_setup(
                Some(config),
                server_hostname,
                None,
                ssl_handshake_timeout,
                ssl_shutdown_timeout,
            )?
            .ok_or_else(|| open::invalid("ssl is required"))?;
            let inner = transport.inner.clone();
            // As asyncio: reading stops while the protocols are swapped, and resumes (even
            // if the old protocol had paused it) with the TLS layer's first flight.
            inner.pause_reading();
            let handshake = LoopFuture::<io::Result<()>>::new(&lp);
            let done = handshake.clone();
            let layer = tls::wrap(
                &inner,
                &setup,
                protocol,
                std::any::type_name::<P>(),
                Some(Box::new(move |result| {
                    let _ = done.set_result(result);
                })),
            )?;
            // The plain handles left: their writes would corrupt the TLS stream.
            inner.set(flag::WRAPPED);
            let starter = layer.clone();
            let resumed = inner.clone();
            lp.call_soon(move || {
                starter.begin();
                resumed.resume_reading();
            })?;
            let tls_transport = Transport {
                inner,
                tls: Some(layer),
            };
            await_handshake(handshake, tls_transport).await
        }
    }
}
