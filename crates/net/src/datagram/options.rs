//! [`DatagramOptions`]: the arguments of `create_datagram_endpoint`, and their validation.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::io;

use socket2::{Domain, Protocol, Socket, Type};

use crate::given::GivenSocket;

/// An address as given to [`DatagramOptions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Where {
    /// A host name or numeric address, resolved with `getaddrinfo`, and a port.
    Host(String, u16),
    /// A resolved IP address.
    Inet(SocketAddr),
    /// An `AF_UNIX` path.
    Path(PathBuf),
}

impl Where {
    fn is_path(&self) -> bool {
        matches!(self, Where::Path(_))
    }
}

/// The arguments of [`create_datagram_endpoint`](crate::LoopDatagramExt::create_datagram_endpoint),
/// asyncio's keyword arguments as a builder.
///
/// - `local_*` binds the socket (asyncio's `local_addr`); `remote_*` connects it
///   (`remote_addr`), so that `sendto(data, None)` goes there and only datagrams from there
///   are received. Host names are resolved with `getaddrinfo` on the executor (numeric
///   addresses need no thread hop); every address family found is tried in order, and the
///   first one whose socket can be bound and connected wins.
/// - `local_path` / `remote_path` make an `AF_UNIX` datagram endpoint. A socket file left at
///   the local path by an earlier endpoint is removed before binding.
/// - [`family`](DatagramOptions::family) restricts resolution to one family; alone, it makes
///   an unbound endpoint of that family.
/// - [`proto`](DatagramOptions::proto) and [`flags`](DatagramOptions::flags) go to
///   `getaddrinfo` with the family (and `proto` to the socket), as asyncio passes them.
/// - [`reuse_port`](DatagramOptions::reuse_port) sets `SO_REUSEPORT`;
///   [`allow_broadcast`](DatagramOptions::allow_broadcast) sets `SO_BROADCAST`, and then the
///   remote address is only the default destination: the socket is not connected (as in
///   asyncio). `SO_REUSEADDR` is never set: on UDP it would let another process steal the
///   port's datagrams.
/// - [`sock`](DatagramOptions::sock) uses an existing datagram socket as it is, and excludes
///   every other option.
///
/// Argument errors are reported by `create_datagram_endpoint` as `InvalidInput` naming the
/// argument.
///
/// # Examples
///
/// ```
/// use evloop::DatagramOptions;
///
/// let server = DatagramOptions::new().local_addr("127.0.0.1", 0).reuse_port(true);
/// let client = DatagramOptions::new().remote_addr("localhost", 9999);
/// # let _ = (server, client);
/// ```
///
/// An `AF_UNIX` pair of endpoints, each bound to its own path so that answers can find it:
///
/// ```
/// use evloop::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// struct Quiet;
/// impl DatagramProtocol for Quiet {}
///
/// let dir = std::env::temp_dir().join(format!("evloop-doc-dgram-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let (a, b) = (dir.join("a.sock"), dir.join("b.sock"));
/// let lp = EventLoop::new()?;
/// let server = DatagramOptions::new().local_path(&a);
/// let (server, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, server))??;
/// let client = DatagramOptions::new().local_path(&b).remote_path(&a);
/// let (client, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, client))??;
/// assert_eq!(client.peername().and_then(|p| p.as_pathname().map(|p| p.to_owned())), Some(a));
/// client.close();
/// server.close();
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "options do nothing until passed to create_datagram_endpoint"]
pub struct DatagramOptions {
    pub(super) local: Option<Where>,
    pub(super) remote: Option<Where>,
    pub(super) family: Option<Domain>,
    pub(super) proto: Option<Protocol>,
    pub(super) flags: i32,
    pub(super) reuse_port: bool,
    pub(super) allow_broadcast: bool,
    pub(super) sock: Option<GivenSocket>,
}

impl DatagramOptions {
    /// No options: as `DatagramOptions::default()`. At least an address, a family or a socket
    /// must be added before use.
    pub fn new() -> DatagramOptions {
        DatagramOptions::default()
    }

    /// Binds to `host` (a name or a numeric address) and `port` (0: the kernel picks one).
    pub fn local_addr(mut self, host: impl Into<String>, port: u16) -> DatagramOptions {
        self.local = Some(Where::Host(host.into(), port));
        self
    }

    /// Binds to `addr`.
    pub fn local_socket_addr(mut self, addr: SocketAddr) -> DatagramOptions {
        self.local = Some(Where::Inet(addr));
        self
    }

    /// Connects to `host` (a name or a numeric address) and `port`.
    pub fn remote_addr(mut self, host: impl Into<String>, port: u16) -> DatagramOptions {
        self.remote = Some(Where::Host(host.into(), port));
        self
    }

    /// Connects to `addr`.
    pub fn remote_socket_addr(mut self, addr: SocketAddr) -> DatagramOptions {
        self.remote = Some(Where::Inet(addr));
        self
    }

    /// Binds an `AF_UNIX` datagram socket to `path`.
    pub fn local_path(mut self, path: impl Into<PathBuf>) -> DatagramOptions {
        self.local = Some(Where::Path(path.into()));
        self
    }

    /// Connects an `AF_UNIX` datagram socket to `path`.
    pub fn remote_path(mut self, path: impl Into<PathBuf>) -> DatagramOptions {
        self.remote = Some(Where::Path(path.into()));
        self
    }

    /// The address family (`Domain::IPV4`, `Domain::IPV6`, `Domain::UNIX`).
    pub fn family(mut self, family: Domain) -> DatagramOptions {
        self.family = Some(family);
        self
    }

    /// The protocol of the socket, and of the addresses asked of the resolver (asyncio's
    /// `proto`); by default the family's datagram protocol (UDP).
    pub fn proto(mut self, proto: Protocol) -> DatagramOptions {
        self.proto = Some(proto);
        self
    }

    /// `getaddrinfo` flags (`libc::AI_*`) for resolving `local_addr` and `remote_addr`
    /// (asyncio's `flags`); by default none. A bad flag is the resolver's error.
    pub fn flags(mut self, flags: i32) -> DatagramOptions {
        self.flags = flags;
        self
    }

    /// Sets `SO_REUSEPORT`, so that several sockets can bind the same address.
    pub fn reuse_port(mut self, enable: bool) -> DatagramOptions {
        self.reuse_port = enable;
        self
    }

    /// Sets `SO_BROADCAST`; a remote address is then not connected to.
    pub fn allow_broadcast(mut self, enable: bool) -> DatagramOptions {
        self.allow_broadcast = enable;
        self
    }

    /// Uses `sock`, an existing datagram socket (bound, connected or neither); it is made
    /// non-blocking.
    ///
    /// Clones of these options share the socket: the first call made with any of them takes
    /// it, and a later call with another clone fails with `InvalidInput` (`sock: already used
    /// …`) instead of opening a second transport on one socket.
    pub fn sock(mut self, sock: Socket) -> DatagramOptions {
        self.sock = Some(GivenSocket::new(sock));
        self
    }

    /// Checks the arguments and says how to open the socket.
    pub(super) fn into_plan(self) -> io::Result<Plan> {
        if let Some(given) = self.sock {
            return sock_plan(
                given.take()?,
                &[
                    ("local_addr", self.local.is_some()),
                    ("remote_addr", self.remote.is_some()),
                    ("family", self.family.is_some()),
                    ("proto", self.proto.is_some()),
                    ("flags", self.flags != 0),
                    ("reuse_port", self.reuse_port),
                    ("allow_broadcast", self.allow_broadcast),
                ],
            );
        }
        let setup = Setup {
            proto: self.proto,
            reuse_port: self.reuse_port,
            allow_broadcast: self.allow_broadcast,
        };
        let (local, remote) = (self.local, self.remote);
        let any_path = local.as_ref().is_some_and(Where::is_path)
            || remote.as_ref().is_some_and(Where::is_path);
        let any_inet = local.as_ref().is_some_and(|w| !w.is_path())
            || remote.as_ref().is_some_and(|w| !w.is_path());
        if any_path && any_inet {
            return Err(invalid(
                "local_addr, remote_addr: address families do not match (an AF_UNIX path and an IP address)",
            ));
        }
        if !any_path && !any_inet {
            return match self.family {
                Some(family) => Ok(Plan::Unbound(family, setup)),
                None => Err(invalid(
                    "family: unexpected address family: give local_addr, remote_addr, family or \
                     sock",
                )),
            };
        }
        if any_path {
            if let Some(family) = self.family.filter(|f| *f != Domain::UNIX) {
                return Err(invalid(format!(
                    "family: {} does not match an AF_UNIX path",
                    family_name(family)
                )));
            }
            let path = |w: Option<Where>| match w {
                Some(Where::Path(p)) => Some(p),
                _ => None,
            };
            return Ok(Plan::Unix {
                local: path(local),
                remote: path(remote),
                setup,
            });
        }
        if self.family == Some(Domain::UNIX) {
            return Err(invalid(
                "family: AF_UNIX does not match an IP address (use local_path / remote_path)",
            ));
        }
        for (name, w) in [("local_addr", &local), ("remote_addr", &remote)] {
            if let (Some(Where::Inet(addr)), Some(family)) = (w, self.family) {
                if Domain::for_address(*addr) != family {
                    return Err(invalid(format!(
                        "{name}: {addr} does not match family {}",
                        family_name(family)
                    )));
                }
            }
        }
        if let (Some(Where::Inet(l)), Some(Where::Inet(r))) = (&local, &remote) {
            if l.is_ipv4() != r.is_ipv4() {
                return Err(invalid(format!(
                    "local_addr, remote_addr: address families do not match ({l} and {r})"
                )));
            }
        }
        Ok(Plan::Inet {
            local,
            remote,
            family: self.family,
            flags: self.flags,
            setup,
        })
    }
}

impl fmt::Debug for DatagramOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramOptions")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("family", &self.family.map(family_name))
            .field("proto", &self.proto)
            .field("flags", &self.flags)
            .field("reuse_port", &self.reuse_port)
            .field("allow_broadcast", &self.allow_broadcast)
            .field("sock", &self.sock)
            .finish()
    }
}

/// The socket options to set on a socket the endpoint creates.
#[derive(Clone, Copy, Debug)]
pub(super) struct Setup {
    /// The socket's protocol; `None` is the family's default.
    pub(super) proto: Option<Protocol>,
    pub(super) reuse_port: bool,
    pub(super) allow_broadcast: bool,
}

/// How to get the endpoint's socket, once the arguments are known to make sense.
pub(super) enum Plan {
    /// The caller's socket, as it is.
    Sock(Socket),
    /// A socket of this family, neither bound nor connected.
    Unbound(Domain, Setup),
    /// An `AF_UNIX` datagram socket.
    Unix {
        local: Option<PathBuf>,
        remote: Option<PathBuf>,
        setup: Setup,
    },
    /// A UDP socket; addresses resolved per family.
    Inet {
        local: Option<Where>,
        remote: Option<Where>,
        family: Option<Domain>,
        /// `getaddrinfo` flags for the host names.
        flags: i32,
        setup: Setup,
    },
}

fn sock_plan(sock: Socket, others: &[(&str, bool)]) -> io::Result<Plan> {
    let ty = sock.r#type()?;
    if ty != Type::DGRAM {
        return Err(invalid(format!(
            "sock: A datagram socket was expected, got {}",
            if ty == Type::STREAM {
                "a stream socket"
            } else {
                "another socket type"
            }
        )));
    }
    let problems: Vec<&str> = others
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
    if !problems.is_empty() {
        return Err(invalid(format!(
            "sock: socket modifier options can not be used when sock is specified ({})",
            problems.join(", ")
        )));
    }
    Ok(Plan::Sock(sock))
}

/// asyncio's spelling of a family, for messages.
pub(super) fn family_name(family: Domain) -> &'static str {
    if family == Domain::IPV4 {
        "AF_INET"
    } else if family == Domain::IPV6 {
        "AF_INET6"
    } else if family == Domain::UNIX {
        "AF_UNIX"
    } else {
        "an unsupported family"
    }
}

pub(super) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}
