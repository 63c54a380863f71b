//! `create_datagram_endpoint`: opening the socket a [`DatagramOptions`] describes, then
//! starting the transport on it.

use std::any::type_name;
use std::cell::RefCell;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::rc::Rc;

use evloop_exec::{AddrInfoHints, LoopExecExt};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, SockAddr, Socket, Type};

use super::options::{Plan, Setup, Where, invalid};
use super::{DatagramOptions, DatagramProtocol, DatagramTransport};
use crate::LoopSockExt;
use evloop_sched::log_report;
use log::Level;

/// The whole of `create_datagram_endpoint`: validate, open, make the protocol, schedule
/// `connection_made`, and return once it ran.
pub(super) async fn create_endpoint<P: DatagramProtocol>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    options: DatagramOptions,
) -> io::Result<(DatagramTransport, Rc<RefCell<P>>)> {
    let (sock, remote) = open(&lp, options.into_plan()?).await?;
    let protocol = Rc::new(RefCell::new(factory()));
    let transport = DatagramTransport::new(&lp, sock, remote, protocol.clone(), type_name::<P>())?;
    // If this future is dropped before `connection_made` ran, the endpoint is closed rather
    // than left reading for nobody (asyncio closes it when the waiter is cancelled).
    let guard = CloseOnDrop(Some(transport.clone()));
    let started = lp.create_future::<bool>();
    let done = started.clone();
    transport.start(move |open| {
        let _ = done.set_result(open);
    })?;
    let open = started.await.map_err(io::Error::from)?;
    guard.disarm();
    if !open {
        return Err(io::Error::other(
            "create_datagram_endpoint: the endpoint failed during connection_made",
        ));
    }
    Ok((transport, protocol))
}

struct CloseOnDrop(Option<DatagramTransport>);

impl CloseOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(transport) = self.0.take() {
            transport.close();
        }
    }
}

/// The non-blocking socket the plan describes, and the remote address to remember.
async fn open(lp: &EventLoop, plan: Plan) -> io::Result<(Socket, Option<SockAddr>)> {
    match plan {
        Plan::Sock(sock) => {
            sock.set_nonblocking(true)?;
            Ok((sock, None))
        }
        Plan::Unbound(family, setup) => Ok((new_socket(family, setup)?, None)),
        Plan::Unix {
            local,
            remote,
            setup,
        } => {
            let sock = new_socket(Domain::UNIX, setup)?;
            if let Some(path) = &local {
                remove_stale_socket(path);
                sock.bind(&SockAddr::unix(path)?)?;
            }
            let remote = remote.as_deref().map(SockAddr::unix).transpose()?;
            if let Some(addr) = &remote {
                if !setup.allow_broadcast {
                    lp.sock_connect(&sock, addr.clone()).await?;
                }
            }
            Ok((sock, remote))
        }
        Plan::Inet {
            local,
            remote,
            family,
            flags,
            setup,
        } => {
            let hints = AddrInfoHints {
                family: family.map_or(0, Into::into),
                socktype: libc::SOCK_DGRAM,
                protocol: setup.proto.map_or(0, Into::into),
                flags,
            };
            let local = match &local {
                Some(w) => Some(resolve(lp, w, hints).await?),
                None => None,
            };
            let remote = match &remote {
                Some(w) => Some(resolve(lp, w, hints).await?),
                None => None,
            };
            let mut first_err = None;
            for (local, remote) in pairs(local.as_deref(), remote.as_deref())? {
                match open_inet(lp, local, remote, setup).await {
                    Ok(sock) => return Ok((sock, remote.map(SockAddr::from))),
                    Err(err) => {
                        first_err.get_or_insert(err);
                    }
                }
            }
            // `pairs` never returns an empty list, so an error was recorded.
            Err(first_err.unwrap_or_else(|| io::Error::other("no address to try")))
        }
    }
}

/// A fresh non-blocking datagram socket of `family`, with the requested options.
fn new_socket(family: Domain, setup: Setup) -> io::Result<Socket> {
    let sock = Socket::new(family, Type::DGRAM, setup.proto)?;
    if setup.reuse_port {
        sock.set_reuse_port(true)?;
    }
    if setup.allow_broadcast {
        sock.set_broadcast(true)?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

async fn open_inet(
    lp: &EventLoop,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    setup: Setup,
) -> io::Result<Socket> {
    let family = match local.or(remote) {
        Some(addr) => Domain::for_address(addr),
        None => {
            // asyncio's words first (`ValueError('unexpected address family')`), then what
            // would have given the endpoint its family.
            return Err(invalid(
                "family: unexpected address family: give local_addr, remote_addr, family or \
                 sock",
            ));
        }
    };
    let sock = new_socket(family, setup)?;
    if let Some(addr) = local {
        sock.bind(&addr.into())?;
    }
    if let Some(addr) = remote {
        if !setup.allow_broadcast {
            lp.sock_connect(&sock, addr).await?;
        }
    }
    Ok(sock)
}

/// The addresses `w` stands for, in the resolver's order; a host name is resolved with
/// `hints` (asyncio's `family`, `SOCK_DGRAM`, `proto` and `flags`).
async fn resolve(lp: &EventLoop, w: &Where, hints: AddrInfoHints) -> io::Result<Vec<SocketAddr>> {
    match w {
        Where::Inet(addr) => Ok(vec![*addr]),
        Where::Host(host, port) => {
            let found = lp
                .getaddrinfo(Some(host), Some(&port.to_string()), hints)
                .await?;
            if found.is_empty() {
                return Err(io::Error::other("getaddrinfo() returned empty list"));
            }
            Ok(found.into_iter().map(|info| info.addr).collect())
        }
        // The plan sends paths elsewhere.
        Where::Path(path) => Err(invalid(format!(
            "{} is an AF_UNIX path, not an IP address",
            path.display()
        ))),
    }
}

type Pair = (Option<SocketAddr>, Option<SocketAddr>);

/// asyncio's pairing of resolved addresses by family: per family (in the order first seen),
/// the first local and the first remote address; a family is a candidate only if it has every
/// address that was asked for.
fn pairs(local: Option<&[SocketAddr]>, remote: Option<&[SocketAddr]>) -> io::Result<Vec<Pair>> {
    let mut by_family: Vec<(bool, Pair)> = Vec::new();
    let sides = [(0, local), (1, remote)];
    for (side, addrs) in sides {
        for addr in addrs.unwrap_or_default() {
            let pos = match by_family.iter().position(|(v4, _)| *v4 == addr.is_ipv4()) {
                Some(pos) => pos,
                None => {
                    by_family.push((addr.is_ipv4(), (None, None)));
                    by_family.len() - 1
                }
            };
            let slot = if side == 0 {
                &mut by_family[pos].1.0
            } else {
                &mut by_family[pos].1.1
            };
            slot.get_or_insert(*addr);
        }
    }
    let found: Vec<Pair> = by_family
        .into_iter()
        .map(|(_, pair)| pair)
        .filter(|(l, r)| (local.is_none() || l.is_some()) && (remote.is_none() || r.is_some()))
        .collect();
    if found.is_empty() {
        return Err(invalid(
            "local_addr, remote_addr: can not get address information (no address family in common)",
        ));
    }
    Ok(found)
}

/// Removes a socket file an earlier endpoint left at `path`, as asyncio does; anything else
/// (a regular file, a missing path, an abstract name) is left for `bind` to judge.
fn remove_stale_socket(path: &Path) {
    if path.as_os_str().as_bytes().first().is_none_or(|b| *b == 0) {
        return;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if let Err(err) = fs::remove_file(path) {
                log_report(
                    Level::Error,
                    &format!(
                        "Unable to remove stale UNIX socket {}: {err}",
                        path.display()
                    ),
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn pairs_group_by_family_in_order_and_need_both_sides() -> io::Result<()> {
        let local = [sa("[::1]:1"), sa("127.0.0.1:1"), sa("127.0.0.2:1")];
        let remote = [sa("127.0.0.1:2")];
        assert_eq!(
            pairs(Some(&local), Some(&remote))?,
            [(Some(sa("127.0.0.1:1")), Some(sa("127.0.0.1:2")))]
        );
        assert_eq!(
            pairs(Some(&local), None)?,
            [(Some(sa("[::1]:1")), None), (Some(sa("127.0.0.1:1")), None)]
        );
        Ok(())
    }

    #[test]
    fn pairs_without_a_common_family_are_an_argument_error() {
        let err = pairs(Some(&[sa("[::1]:1")]), Some(&[sa("127.0.0.1:2")])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("can not get address information"));
    }
}
