//! Opening the listening sockets of `create_server`: one per distinct address of its hosts.

use std::future::Future;
use std::io;

use evloop_exec::{AddrInfo, LoopExecExt};
use evloop_sched::EventLoop;
use socket2::Socket;

use crate::open::common::{bind_error, expect_stream, invalid, socket_for, stream_hints};
use crate::open::errors::empty_resolution;
use crate::open::options::ServerOptions;

/// What `create_server` needs from the opening: the bound sockets and the two options
/// `Server` keeps.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// Non-blocking sockets, bound but not listening yet: `Server::start_serving` calls
    /// `listen(backlog)`, as asyncio's `Server._start_serving` does, so that no client is
    /// queued before the server serves.
    pub(crate) sockets: Vec<Socket>,
    /// The `listen(2)` backlog, and how many connections one readiness event may accept.
    pub(crate) backlog: u32,
    /// Whether to accept at once.
    pub(crate) start_serving: bool,
}

/// `backlog` as `listen(2)` takes it; the kernel caps it at `somaxconn` anyway.
pub(crate) fn listen_backlog(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}

/// The sockets of `create_server`: one per distinct address its hosts resolve to (with
/// `AI_PASSIVE`; no host or "" means every family), each with `SO_REUSEADDR` unless
/// disabled, `SO_REUSEPORT` when asked, `IPV6_V6ONLY` on IPv6, bound and non-blocking. Or the
/// given `sock`, checked and set non-blocking. None listens yet: `Server::start_serving` does.
///
/// An address whose family the system lacks (`EAFNOSUPPORT` at `socket()`, `EADDRNOTAVAIL`
/// at `bind()`) is skipped, as asyncio does (bpo-30945); other failures are errors.
///
/// # Errors
///
/// - `InvalidInput` for `sock` together with hosts or a port, for a `sock` that is not a
///   stream socket, and when there is neither;
/// - the resolver's error, or `NotFound` "getaddrinfo() returned empty list";
/// - a bind error, with its kind (`AddrInUse`…) and the address in the message; every socket
///   opened so far is closed;
/// - `AddrNotAvailable` "could not bind on any address out of […]" if every address was
///   skipped.
pub(crate) fn open_listeners(
    lp: &EventLoop,
    opts: ServerOptions,
) -> impl Future<Output = io::Result<Listeners>> + 'static {
    let lp = lp.clone();
    async move {
        let ServerOptions {
            hosts,
            port,
            family,
            backlog,
            reuse_address,
            reuse_port,
            start_serving,
            sock,
            .. // the TLS options, taken out by the caller
        } = opts;
        let sockets = match sock {
            Some(given) => {
                if !hosts.is_empty() || port.is_some() {
                    return Err(invalid(
                        "host/port and sock can not be specified at the same time",
                    ));
                }
                let sock = given.take()?;
                expect_stream(&sock)?;
                sock.set_nonblocking(true)?;
                vec![sock]
            }
            None if hosts.is_empty() && port.is_none() => {
                return Err(invalid("Neither host/port nor sock were specified"));
            }
            None => {
                let infos = resolve_hosts(&lp, &hosts, port, family).await?;
                let mut sockets = Vec::with_capacity(infos.len());
                for info in &infos {
                    // On an error `sockets` is dropped: every socket opened so far closes.
                    if let Some(sock) = listener_for(info, reuse_address, reuse_port)? {
                        sockets.push(sock);
                    }
                }
                if sockets.is_empty() {
                    let addrs: Vec<String> = infos.iter().map(|i| i.addr.to_string()).collect();
                    return Err(io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        format!(
                            "could not bind on any address out of [{}]",
                            addrs.join(", ")
                        ),
                    ));
                }
                sockets
            }
        };
        Ok(Listeners {
            sockets,
            backlog,
            start_serving,
        })
    }
}

/// Every distinct stream address of `hosts` (none, or "", is every family), resolved
/// concurrently: each look-up is on the executor as soon as it is asked for.
async fn resolve_hosts(
    lp: &EventLoop,
    hosts: &[String],
    port: Option<u16>,
    family: Option<socket2::Domain>,
) -> io::Result<Vec<AddrInfo>> {
    let hints = stream_hints(family, libc::AI_PASSIVE);
    let any: [Option<&str>; 1] = [None];
    let hosts: Vec<Option<&str>> = if hosts.is_empty() {
        any.to_vec()
    } else {
        hosts
            .iter()
            .map(|h| if h.is_empty() { None } else { Some(h.as_str()) })
            .collect()
    };
    let port = port.map(|p| p.to_string());
    let lookups: Vec<_> = hosts
        .iter()
        .map(|host| lp.getaddrinfo(*host, port.as_deref(), hints))
        .collect();
    let mut unique: Vec<AddrInfo> = Vec::new();
    for lookup in lookups {
        let found = lookup.await?;
        if found.is_empty() {
            return Err(empty_resolution());
        }
        for info in found {
            let seen = unique.iter().any(|u| {
                (u.family, u.socktype, u.protocol, u.addr)
                    == (info.family, info.socktype, info.protocol, info.addr)
            });
            if !seen {
                unique.push(info);
            }
        }
    }
    Ok(unique)
}

/// One bound socket for `info` (not listening yet), or `None` if the system lacks its family.
fn listener_for(
    info: &AddrInfo,
    reuse_address: bool,
    reuse_port: bool,
) -> io::Result<Option<Socket>> {
    let sock = match socket_for(info) {
        Ok(sock) => sock,
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
            ) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    if reuse_address {
        sock.set_reuse_address(true)?;
    }
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    // Linux listens on both families from one IPv6 socket by default, which would collide
    // with the IPv4 socket of the same port.
    if info.family == libc::AF_INET6 {
        sock.set_only_v6(true)?;
    }
    match sock.bind(&info.addr.into()) {
        Ok(()) => {}
        // The family is not enabled here (bpo-30945): skip the address.
        Err(err) if err.raw_os_error() == Some(libc::EADDRNOTAVAIL) => return Ok(None),
        Err(err) => return Err(bind_error(&info.addr, &err)),
    }
    sock.set_nonblocking(true)?;
    Ok(Some(sock))
}
