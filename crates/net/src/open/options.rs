//! The option builders of `create_connection`, `create_server` and `create_unix_server`:
//! asyncio's keyword arguments, as plain values that the opening functions consume.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use socket2::{Domain, Protocol, Socket};

use crate::given::GivenSocket;
use crate::tls::{TlsConfig, TlsSetup, checked_setup};

/// A host and a port, from a [`SocketAddr`](std::net::SocketAddr) or a `(host, port)` pair:
/// what [`ConnectOptions::addr`] and [`ServerOptions::addr`] take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort(pub String, pub u16);

impl From<std::net::SocketAddr> for HostPort {
    fn from(addr: std::net::SocketAddr) -> HostPort {
        HostPort(addr.ip().to_string(), addr.port())
    }
}

impl<H: Into<String>> From<(H, u16)> for HostPort {
    fn from((host, port): (H, u16)) -> HostPort {
        HostPort(host.into(), port)
    }
}

/// asyncio's default `backlog` of `create_server` and `create_unix_server`.
pub(crate) const DEFAULT_BACKLOG: u32 = 100;

/// The options of `create_connection`: where to connect, and how.
///
/// Give either a `host` and/or a `port` (resolved on the executor, every address tried in
/// turn), or a `sock` that is already made; giving both is an error when the connection is
/// opened. Without `happy_eyeballs_delay` the addresses are tried one after the other; with
/// it, the connection races them as RFC 8305 describes: a new attempt starts when the previous
/// one fails or after the delay, the first to connect wins, and the others are closed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::ConnectOptions;
/// use evloop::socket2::Domain;
///
/// let opts = ConnectOptions::new()
///     .host("localhost")
///     .port(8080)
///     .family(Domain::IPV4)
///     .happy_eyeballs_delay(Duration::from_millis(250))
///     .all_errors(true);
/// assert!(format!("{opts:?}").contains("\"localhost\""));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) family: Option<Domain>,
    pub(crate) proto: Option<Protocol>,
    pub(crate) flags: i32,
    pub(crate) local_addr: Option<(String, u16)>,
    pub(crate) happy_eyeballs_delay: Option<Duration>,
    pub(crate) interleave: Option<usize>,
    pub(crate) all_errors: bool,
    pub(crate) sock: Option<GivenSocket>,
    pub(crate) ssl: Option<Arc<ClientConfig>>,
    pub(crate) server_hostname: Option<String>,
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl ConnectOptions {
    /// No address yet: every option at asyncio's default.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// The host to connect to: a name or a numeric address.
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> ConnectOptions {
        self.host = Some(host.into());
        self
    }

    /// The port to connect to.
    #[must_use]
    pub fn port(mut self, port: u16) -> ConnectOptions {
        self.port = Some(port);
        self
    }

    /// The host and port in one: a [`SocketAddr`](std::net::SocketAddr)
    /// (`"127.0.0.1:8080".parse()?`) or a `(host, port)` pair (`("localhost", 8080)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use evloop::ConnectOptions;
    ///
    /// let addr: SocketAddr = "127.0.0.1:8080".parse()?;
    /// let a = ConnectOptions::new().addr(addr);
    /// let b = ConnectOptions::new().addr(("127.0.0.1", 8080));
    /// assert_eq!(format!("{a:?}"), format!("{b:?}"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn addr(self, addr: impl Into<HostPort>) -> ConnectOptions {
        let HostPort(host, port) = addr.into();
        self.host(host).port(port)
    }

    /// Only addresses of this family (`Domain::IPV4` or `Domain::IPV6`); by default any.
    #[must_use]
    pub fn family(mut self, family: Domain) -> ConnectOptions {
        self.family = Some(family);
        self
    }

    /// Only addresses of this protocol (asyncio's `proto`, given to `getaddrinfo` for the
    /// remote and local addresses); by default any stream protocol (TCP).
    #[must_use]
    pub fn proto(mut self, proto: Protocol) -> ConnectOptions {
        self.proto = Some(proto);
        self
    }

    /// `getaddrinfo` flags (`libc::AI_*`) for resolving the remote and local addresses
    /// (asyncio's `flags`); by default none. A bad flag is the resolver's error.
    #[must_use]
    pub fn flags(mut self, flags: i32) -> ConnectOptions {
        self.flags = flags;
        self
    }

    /// Binds each attempt's socket to an address of `host` and `port` (resolved like the
    /// remote address) before connecting; port 0 lets the system choose.
    #[must_use]
    pub fn local_addr(mut self, host: impl Into<String>, port: u16) -> ConnectOptions {
        self.local_addr = Some((host.into(), port));
        self
    }

    /// Races the addresses (RFC 8305 Happy Eyeballs), starting the next attempt after `delay`
    /// if the previous one has neither connected nor failed. RFC 8305 recommends 250 ms.
    #[must_use]
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> ConnectOptions {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Reorders the resolved addresses so that families alternate, `count` addresses of the
    /// first family first (RFC 8305's "First Address Family Count"); 0 keeps the resolver's
    /// order. Defaults to 1 when a Happy Eyeballs delay is given, and to 0 otherwise.
    #[must_use]
    pub fn interleave(mut self, count: usize) -> ConnectOptions {
        self.interleave = Some(count);
        self
    }

    /// When every attempt fails, report all their errors as a
    /// [`ConnectErrors`](crate::ConnectErrors) inside the `io::Error`, instead of one error.
    #[must_use]
    pub fn all_errors(mut self, all: bool) -> ConnectOptions {
        self.all_errors = all;
        self
    }

    /// Uses this stream socket instead of opening one; connected or not is the caller's
    /// affair. It is set non-blocking.
    ///
    /// Clones of these options share the socket: the first call made with any of them takes
    /// it, and a later call with another clone fails with `InvalidInput` (`sock: already used
    /// …`) instead of opening a second transport on one socket.
    #[must_use]
    pub fn sock(mut self, sock: Socket) -> ConnectOptions {
        self.sock = Some(GivenSocket::new(sock));
        self
    }

    /// Speaks TLS over the connection, as this client configuration says (asyncio's `ssl=`).
    /// The server's certificate must match [`server_hostname`](Self::server_hostname), or
    /// else the host; the future completes once the handshake is done.
    #[must_use]
    pub fn ssl(mut self, config: Arc<ClientConfig>) -> ConnectOptions {
        self.ssl = Some(config);
        self
    }

    /// The name the server's certificate must match (and the SNI sent), instead of the host;
    /// required with a `sock`. `InvalidInput` without [`ssl`](Self::ssl), as in asyncio.
    #[must_use]
    pub fn server_hostname(mut self, name: impl Into<String>) -> ConnectOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// How long the TLS handshake may take before the connection is aborted with `TimedOut`;
    /// default 60 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// How long closing a TLS connection (`close_notify`, then the flush) may take before it
    /// is aborted; default 30 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }

    /// Takes the TLS options out, checked.
    pub(crate) fn take_tls(&mut self) -> io::Result<Option<TlsSetup>> {
        checked_setup(
            self.ssl.take().map(TlsConfig::Client),
            self.server_hostname.take(),
            self.host.as_deref(),
            self.ssl_handshake_timeout.take(),
            self.ssl_shutdown_timeout.take(),
        )
    }
}

/// The options of `create_server`: where to listen, and how.
///
/// Give hosts and/or a port (each host resolved with `AI_PASSIVE`; one listening socket per
/// distinct address), or a `sock` that is already bound; giving both is an error when the
/// server is opened. No host, or the empty host, means every address family the resolver
/// offers (`0.0.0.0` and `::`).
///
/// # Examples
///
/// ```
/// use evloop::ServerOptions;
///
/// let opts = ServerOptions::new()
///     .host("127.0.0.1")
///     .host("::1")
///     .port(0)
///     .backlog(512)
///     .reuse_port(true);
/// assert!(format!("{opts:?}").contains("backlog: 512"));
/// ```
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub(crate) hosts: Vec<String>,
    pub(crate) port: Option<u16>,
    pub(crate) family: Option<Domain>,
    pub(crate) backlog: u32,
    pub(crate) reuse_address: bool,
    pub(crate) reuse_port: bool,
    pub(crate) start_serving: bool,
    pub(crate) sock: Option<GivenSocket>,
    pub(crate) ssl: Option<Arc<ServerConfig>>,
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            hosts: Vec::new(),
            port: None,
            family: None,
            backlog: DEFAULT_BACKLOG,
            reuse_address: true,
            reuse_port: false,
            start_serving: true,
            sock: None,
            ssl: None,
            ssl_handshake_timeout: None,
            ssl_shutdown_timeout: None,
        }
    }
}

impl ServerOptions {
    /// No address yet: backlog 100, `SO_REUSEADDR` on, `SO_REUSEPORT` off, serving at once.
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// Adds a host to listen on; call it again to listen on several. The empty host means
    /// every family, as no host does.
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> ServerOptions {
        self.hosts.push(host.into());
        self
    }

    /// The port to listen on; 0 (or none) lets the system choose.
    #[must_use]
    pub fn port(mut self, port: u16) -> ServerOptions {
        self.port = Some(port);
        self
    }

    /// A host to listen on and the port, in one: a [`SocketAddr`](std::net::SocketAddr) or a
    /// `(host, port)` pair; the host is added as [`host`](ServerOptions::host) adds one.
    #[must_use]
    pub fn addr(self, addr: impl Into<HostPort>) -> ServerOptions {
        let HostPort(host, port) = addr.into();
        self.host(host).port(port)
    }

    /// Only addresses of this family (`Domain::IPV4` or `Domain::IPV6`); by default any.
    #[must_use]
    pub fn family(mut self, family: Domain) -> ServerOptions {
        self.family = Some(family);
        self
    }

    /// The length of the queue of connections not yet accepted (`listen(2)`); default 100.
    /// It is also how many connections one readiness event may accept. Any value is valid:
    /// the kernel caps the queue at `net.core.somaxconn`, and 0 still accepts one at a time.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> ServerOptions {
        self.backlog = backlog;
        self
    }

    /// Sets `SO_REUSEADDR`, so a port in `TIME_WAIT` can be bound again; on by default.
    #[must_use]
    pub fn reuse_address(mut self, reuse: bool) -> ServerOptions {
        self.reuse_address = reuse;
        self
    }

    /// Sets `SO_REUSEPORT`, so several sockets (of this process or others) share the port and
    /// the kernel balances connections between them; off by default.
    #[must_use]
    pub fn reuse_port(mut self, reuse: bool) -> ServerOptions {
        self.reuse_port = reuse;
        self
    }

    /// Whether the server listens and accepts connections as soon as it is made (default), or
    /// only after `start_serving` or `serve_forever`. Until then its sockets are bound but do
    /// not listen, as in asyncio: a client connecting early is refused.
    #[must_use]
    pub fn start_serving(mut self, start: bool) -> ServerOptions {
        self.start_serving = start;
        self
    }

    /// Listens on this bound stream socket instead of opening one.
    ///
    /// Clones of these options share the socket: the first call made with any of them takes
    /// it, and a later call with another clone fails with `InvalidInput` (`sock: already used
    /// …`) instead of opening a second transport on one socket.
    #[must_use]
    pub fn sock(mut self, sock: Socket) -> ServerOptions {
        self.sock = Some(GivenSocket::new(sock));
        self
    }

    /// Speaks TLS on every accepted connection, as this server configuration says (asyncio's
    /// `ssl=`). A connection's protocol gets `connection_made` once its handshake is done.
    #[must_use]
    pub fn ssl(mut self, config: Arc<ServerConfig>) -> ServerOptions {
        self.ssl = Some(config);
        self
    }

    /// How long the TLS handshake may take before the connection is aborted with `TimedOut`;
    /// default 60 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> ServerOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// How long closing a TLS connection (`close_notify`, then the flush) may take before it
    /// is aborted; default 30 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> ServerOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }

    /// Takes the TLS options out, checked.
    pub(crate) fn take_tls(&mut self) -> io::Result<Option<TlsSetup>> {
        checked_setup(
            self.ssl.take().map(TlsConfig::Server),
            None,
            None,
            self.ssl_handshake_timeout.take(),
            self.ssl_shutdown_timeout.take(),
        )
    }
}

/// The options of `create_unix_server`, besides its path.
///
/// # Examples
///
/// ```
/// use evloop::UnixServerOptions;
///
/// let opts = UnixServerOptions::new().backlog(16).cleanup_socket(false);
/// assert!(format!("{opts:?}").contains("cleanup_socket: false"));
/// ```
#[derive(Clone, Debug)]
pub struct UnixServerOptions {
    pub(crate) backlog: u32,
    pub(crate) start_serving: bool,
    pub(crate) cleanup_socket: bool,
    pub(crate) sock: Option<GivenSocket>,
    pub(crate) ssl: Option<Arc<ServerConfig>>,
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl Default for UnixServerOptions {
    fn default() -> UnixServerOptions {
        UnixServerOptions {
            backlog: DEFAULT_BACKLOG,
            start_serving: true,
            cleanup_socket: true,
            sock: None,
            ssl: None,
            ssl_handshake_timeout: None,
            ssl_shutdown_timeout: None,
        }
    }
}

impl UnixServerOptions {
    /// Backlog 100, serving at once, the socket file removed when the server closes.
    pub fn new() -> UnixServerOptions {
        UnixServerOptions::default()
    }

    /// The length of the queue of connections not yet accepted (`listen(2)`); default 100.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> UnixServerOptions {
        self.backlog = backlog;
        self
    }

    /// Whether the server listens and accepts connections as soon as it is made (default), or
    /// only after `start_serving` or `serve_forever`. Until then its sockets are bound but do
    /// not listen, as in asyncio: a client connecting early is refused.
    #[must_use]
    pub fn start_serving(mut self, start: bool) -> UnixServerOptions {
        self.start_serving = start;
        self
    }

    /// Whether closing the server removes its socket file (default), provided the file is
    /// still the one the server bound. Abstract names have no file and are never touched.
    #[must_use]
    pub fn cleanup_socket(mut self, cleanup: bool) -> UnixServerOptions {
        self.cleanup_socket = cleanup;
        self
    }

    /// Listens on this bound `AF_UNIX` stream socket instead of binding a path; pass an empty
    /// path to `create_unix_server` with it (asyncio's `path=None`).
    ///
    /// Clones of these options share the socket: the first call made with any of them takes
    /// it, and a later call with another clone fails with `InvalidInput` (`sock: already used
    /// …`) instead of opening a second transport on one socket.
    #[must_use]
    pub fn sock(mut self, sock: Socket) -> UnixServerOptions {
        self.sock = Some(GivenSocket::new(sock));
        self
    }

    /// Speaks TLS on every accepted connection, as this server configuration says (asyncio's
    /// `ssl=`). A connection's protocol gets `connection_made` once its handshake is done.
    #[must_use]
    pub fn ssl(mut self, config: Arc<ServerConfig>) -> UnixServerOptions {
        self.ssl = Some(config);
        self
    }

    /// How long the TLS handshake may take before the connection is aborted with `TimedOut`;
    /// default 60 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> UnixServerOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// How long closing a TLS connection (`close_notify`, then the flush) may take before it
    /// is aborted; default 30 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> UnixServerOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }

    /// Takes the TLS options out, checked.
    pub(crate) fn take_tls(&mut self) -> io::Result<Option<TlsSetup>> {
        checked_setup(
            self.ssl.take().map(TlsConfig::Server),
            None,
            None,
            self.ssl_handshake_timeout.take(),
            self.ssl_shutdown_timeout.take(),
        )
    }
}

/// The options of `create_unix_connection_with`: TLS over a Unix socket.
///
/// asyncio's `create_unix_connection` takes `ssl`, `server_hostname` and the two timeouts;
/// a Unix path is no host name, so `server_hostname` is required with `ssl`, as in asyncio.
///
/// # Examples
///
/// ```
/// use evloop::UnixConnectOptions;
///
/// let opts = UnixConnectOptions::new().server_hostname("localhost");
/// assert!(format!("{opts:?}").contains("localhost"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct UnixConnectOptions {
    pub(crate) ssl: Option<Arc<ClientConfig>>,
    pub(crate) server_hostname: Option<String>,
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl UnixConnectOptions {
    /// No TLS: every option at asyncio's default.
    pub fn new() -> UnixConnectOptions {
        UnixConnectOptions::default()
    }

    /// Speaks TLS over the connection, as this client configuration says (asyncio's `ssl=`).
    /// The server's certificate must match [`server_hostname`](Self::server_hostname); the future completes once the handshake is done.
    #[must_use]
    pub fn ssl(mut self, config: Arc<ClientConfig>) -> UnixConnectOptions {
        self.ssl = Some(config);
        self
    }

    /// The name the server's certificate must match (and the SNI sent), instead of the host;
    /// required with a `sock`. `InvalidInput` without [`ssl`](Self::ssl), as in asyncio.
    #[must_use]
    pub fn server_hostname(mut self, name: impl Into<String>) -> UnixConnectOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// How long the TLS handshake may take before the connection is aborted with `TimedOut`;
    /// default 60 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> UnixConnectOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// How long closing a TLS connection (`close_notify`, then the flush) may take before it
    /// is aborted; default 30 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> UnixConnectOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }

    /// Takes the TLS options out, checked.
    pub(crate) fn take_tls(&mut self) -> io::Result<Option<TlsSetup>> {
        checked_setup(
            self.ssl.take().map(TlsConfig::Client),
            self.server_hostname.take(),
            None,
            self.ssl_handshake_timeout.take(),
            self.ssl_shutdown_timeout.take(),
        )
    }
}

/// The options of `connect_accepted_socket_with`: TLS on a socket accepted outside the loop
/// (asyncio's `connect_accepted_socket(ssl=…)`, always the server side).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::AcceptedOptions;
///
/// let opts = AcceptedOptions::new().ssl_handshake_timeout(Duration::from_secs(5));
/// assert!(format!("{opts:?}").contains("5s"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AcceptedOptions {
    pub(crate) ssl: Option<Arc<ServerConfig>>,
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl AcceptedOptions {
    /// No TLS: every option at asyncio's default.
    pub fn new() -> AcceptedOptions {
        AcceptedOptions::default()
    }

    /// Speaks TLS on every accepted connection, as this server configuration says (asyncio's
    /// `ssl=`). A connection's protocol gets `connection_made` once its handshake is done.
    #[must_use]
    pub fn ssl(mut self, config: Arc<ServerConfig>) -> AcceptedOptions {
        self.ssl = Some(config);
        self
    }

    /// How long the TLS handshake may take before the connection is aborted with `TimedOut`;
    /// default 60 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> AcceptedOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// How long closing a TLS connection (`close_notify`, then the flush) may take before it
    /// is aborted; default 30 s. `InvalidInput` without `ssl`, as in asyncio.
    #[must_use]
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> AcceptedOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }

    /// Takes the TLS options out, checked.
    pub(crate) fn take_tls(&mut self) -> io::Result<Option<TlsSetup>> {
        checked_setup(
            self.ssl.take().map(TlsConfig::Server),
            None,
            None,
            self.ssl_handshake_timeout.take(),
            self.ssl_shutdown_timeout.take(),
        )
    }
}
