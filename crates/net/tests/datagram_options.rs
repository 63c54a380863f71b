//! `create_datagram_endpoint`'s arguments: conformance cases N86 (validation) and N87 (socket
//! options).

use std::cell::RefCell;
use std::error::Error;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop_net::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
use evloop_sched::EventLoop;
use evloop_task::{LoopFuture, LoopTaskExt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

type TestResult = Result<(), Box<dyn Error>>;

/// Keeps the datagrams it receives; completes `wake` on each.
#[derive(Default)]
struct Count(Vec<Vec<u8>>, Option<LoopFuture<()>>);

impl DatagramProtocol for Count {
    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        self.0.push(data.to_vec());
        if let Some(wake) = self.1.take() {
            let _ = wake.set_result(());
        }
    }
}

/// Runs the loop until `proto` has received a datagram; an error after 5 s.
fn wait_for_datagram(lp: &EventLoop, proto: &Rc<RefCell<Count>>) -> io::Result<()> {
    if !proto.borrow().0.is_empty() {
        return Ok(());
    }
    let woken = lp.create_future::<()>();
    proto.borrow_mut().1 = Some(woken.clone());
    let timeout = woken.clone();
    let timer = lp.call_later(Duration::from_secs(5), move || {
        timeout.cancel(None);
    })?;
    let got = lp.run_until_complete(woken)?;
    timer.cancel();
    got.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no datagram within 5 s"))
}

fn create(
    lp: &EventLoop,
    options: DatagramOptions,
) -> io::Result<(DatagramTransport, Rc<RefCell<Count>>)> {
    lp.run_until_complete(lp.create_datagram_endpoint(Count::default, options))?
}

fn invalid_input(lp: &EventLoop, options: DatagramOptions) -> io::Result<String> {
    match create(lp, options) {
        Ok(_) => Err(io::Error::other("the options were accepted")),
        Err(err) if err.kind() == io::ErrorKind::InvalidInput => Ok(err.to_string()),
        Err(err) => Err(io::Error::other(format!("wrong error: {err}"))),
    }
}

/// CPython: `base::…::test_create_datagram_endpoint_noaddr_nofamily`.
#[test]
fn no_address_and_no_family_is_an_unexpected_family() -> TestResult {
    let lp = EventLoop::new()?;
    let msg = invalid_input(&lp, DatagramOptions::new())?;
    assert!(msg.contains("unexpected address family"), "{msg}");
    // And it says what was missing.
    assert!(
        msg.ends_with("give local_addr, remote_addr, family or sock"),
        "{msg}"
    );
    Ok(())
}

/// CPython: `base::…::test_create_datagram_endpoint_wrong_sock`.
#[test]
fn a_stream_socket_is_refused() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, _b) = UnixStream::pair()?;
    let sock = Socket::from(std::os::fd::OwnedFd::from(a));
    let msg = invalid_input(&lp, DatagramOptions::new().sock(sock))?;
    assert!(msg.contains("A datagram socket was expected"), "{msg}");
    assert!(msg.starts_with("sock:"), "{msg}");
    Ok(())
}

/// CPython: `base::…::test_create_datagram_endpoint_sock_sockopts`.
#[test]
fn sock_with_any_other_option_is_refused_and_the_option_named() -> TestResult {
    let lp = EventLoop::new()?;
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    type AddOption = fn(DatagramOptions) -> DatagramOptions;
    let with: [(&str, AddOption); 8] = [
        ("local_addr", |o| o.local_addr("127.0.0.1", 0)),
        ("local_addr", |o| {
            o.local_socket_addr("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()))
        }),
        ("remote_addr", |o| o.remote_addr("127.0.0.1", 9)),
        ("family", |o| o.family(Domain::IPV4)),
        ("proto", |o| o.proto(Protocol::UDP)),
        ("flags", |o| o.flags(libc::AI_NUMERICHOST)),
        ("reuse_port", |o| o.reuse_port(true)),
        ("allow_broadcast", |o| o.allow_broadcast(true)),
    ];
    for (name, add) in with {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        sock.bind(&addr.into())?;
        let msg = invalid_input(&lp, add(DatagramOptions::new().sock(sock)))?;
        assert!(
            msg.contains("can not be used when sock is specified"),
            "{msg}"
        );
        assert!(msg.contains(name), "{name}: {msg}");
    }
    Ok(())
}

/// CPython: `base::…::test_create_datagram_endpoint_no_matching_family`.
#[test]
fn local_and_remote_of_different_families_are_refused() -> TestResult {
    let lp = EventLoop::new()?;
    // Resolved names: the pairing by family finds nothing in common.
    let msg = invalid_input(
        &lp,
        DatagramOptions::new()
            .remote_addr("127.0.0.1", 9)
            .local_addr("::1", 0),
    )?;
    assert!(msg.contains("local_addr, remote_addr"), "{msg}");
    // Resolved addresses are checked before any socket exists.
    let msg = invalid_input(
        &lp,
        DatagramOptions::new()
            .remote_socket_addr("127.0.0.1:9".parse()?)
            .local_socket_addr("[::1]:0".parse()?),
    )?;
    assert!(msg.contains("do not match"), "{msg}");
    let msg = invalid_input(
        &lp,
        DatagramOptions::new()
            .local_socket_addr("127.0.0.1:0".parse()?)
            .family(Domain::IPV6),
    )?;
    assert!(msg.starts_with("local_addr:"), "{msg}");
    let msg = invalid_input(
        &lp,
        DatagramOptions::new()
            .local_path(std::env::temp_dir().join("evloop-never-bound.sock"))
            .remote_socket_addr("127.0.0.1:9".parse()?),
    )?;
    assert!(msg.contains("do not match"), "{msg}");
    let msg = invalid_input(
        &lp,
        DatagramOptions::new()
            .local_addr("127.0.0.1", 0)
            .family(Domain::UNIX),
    )?;
    assert!(msg.starts_with("family:"), "{msg}");
    Ok(())
}

/// CPython: `base::…::test_create_datagram_endpoint_sockopts`.
#[test]
fn default_socket_options_are_off_and_reuse_address_is_never_set() -> TestResult {
    let lp = EventLoop::new()?;
    let (plain, _) = create(&lp, DatagramOptions::new().local_addr("127.0.0.1", 0))?;
    let opts = plain
        .with_socket(|s| Ok::<_, io::Error>((s.broadcast()?, s.reuse_port()?, s.reuse_address()?)))
        .ok_or("socket released")??;
    assert_eq!(opts, (false, false, false));

    let (tuned, _) = create(
        &lp,
        DatagramOptions::new()
            .local_addr("127.0.0.1", 0)
            .reuse_port(true)
            .allow_broadcast(true),
    )?;
    let opts = tuned
        .with_socket(|s| Ok::<_, io::Error>((s.broadcast()?, s.reuse_port()?, s.reuse_address()?)))
        .ok_or("socket released")??;
    assert_eq!(opts, (true, true, false));
    Ok(())
}

#[test]
fn reuse_port_lets_two_endpoints_share_an_address() -> TestResult {
    let lp = EventLoop::new()?;
    let (first, _) = create(
        &lp,
        DatagramOptions::new()
            .local_addr("127.0.0.1", 0)
            .reuse_port(true),
    )?;
    let addr = first
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or("no address")?;
    let (second, _) = create(
        &lp,
        DatagramOptions::new()
            .local_socket_addr(addr)
            .reuse_port(true),
    )?;
    assert_eq!(second.sockname().and_then(|a| a.as_socket()), Some(addr));
    // Without it, the same bind is refused.
    let err = create(&lp, DatagramOptions::new().local_socket_addr(addr))
        .err()
        .ok_or("bound twice")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    Ok(())
}

/// CPython: `base::…::test_create_datagram_endpoint_allow_broadcast`.
#[test]
fn allow_broadcast_with_a_remote_address_does_not_connect() -> TestResult {
    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let stranger = UdpSocket::bind("127.0.0.1:0")?;
    let (t, proto) = create(
        &lp,
        DatagramOptions::new()
            .local_addr("127.0.0.1", 0)
            .remote_socket_addr(peer.local_addr()?)
            .allow_broadcast(true),
    )?;
    assert_eq!(t.peername(), None);
    // The remote address is still the default destination.
    t.sendto(b"default", None)?;
    let mut buf = [0; 16];
    let (n, from) = peer.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"default");
    // Not connected: a datagram from anyone is received.
    let own = t
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or("no address")?;
    assert_eq!(from, own);
    stranger.send_to(b"from a stranger", own)?;
    wait_for_datagram(&lp, &proto)?;
    assert_eq!(proto.borrow().0, [b"from a stranger".to_vec()]);
    Ok(())
}

#[test]
fn a_family_alone_makes_an_unbound_endpoint_that_can_send() -> TestResult {
    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let (t, _) = create(&lp, DatagramOptions::new().family(Domain::IPV4))?;
    assert_eq!(t.peername(), None);
    t.sendto(b"unbound", Some(&peer.local_addr()?.into()))?;
    let mut buf = [0; 16];
    let n = peer.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"unbound");
    Ok(())
}

/// CPython: `Lib/asyncio/base_events.py`, `create_datagram_endpoint`: `proto` and `flags` go to
/// `_ensure_resolved` (`getaddrinfo`), and `proto` to the socket.
#[test]
fn proto_and_flags_reach_the_resolver_and_the_socket() -> TestResult {
    let lp = EventLoop::new()?;
    // AI_NUMERICHOST forbids looking a name up: the resolver refuses "localhost".
    let numeric_only = DatagramOptions::new()
        .local_addr("localhost", 0)
        .family(Domain::IPV4)
        .flags(libc::AI_NUMERICHOST);
    let err = create(&lp, numeric_only)
        .err()
        .ok_or("a host name was resolved under AI_NUMERICHOST")?;
    assert_ne!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    // Without the flag the same name resolves.
    let named = DatagramOptions::new()
        .local_addr("localhost", 0)
        .family(Domain::IPV4);
    create(&lp, named)?.0.close();
    // A stream protocol for a datagram socket: nothing matches (the resolver's error).
    let tcp = DatagramOptions::new()
        .local_addr("localhost", 0)
        .family(Domain::IPV4)
        .proto(Protocol::TCP);
    assert!(
        create(&lp, tcp).is_err(),
        "TCP addresses for a datagram socket"
    );
    // UDP, given explicitly, is the socket's protocol.
    let udp = DatagramOptions::new()
        .local_addr("127.0.0.1", 0)
        .proto(Protocol::UDP);
    let (transport, _) = create(&lp, udp)?;
    let proto = transport.with_socket(|s| s.protocol().ok().flatten());
    assert_eq!(proto, Some(Some(Protocol::UDP)));
    transport.close();
    lp.close()?;
    Ok(())
}

/// CPython: `test_events.py::EventLoopTestsMixin::_test_create_datagram_endpoint` ("extra info
/// is available"), and `selector_events.py::_SelectorTransport.__init__` (`socket`,
/// `sockname`, `peername`).
#[test]
fn get_extra_info_gives_peername_sockname_and_socket() -> TestResult {
    use evloop_net::ExtraInfo;
    use std::os::fd::AsRawFd;

    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let options = DatagramOptions::new().remote_socket_addr(peer.local_addr()?);
    let (transport, _) = create(&lp, options)?;
    let Some(ExtraInfo::Addr(peername)) = transport.get_extra_info("peername") else {
        return Err("no peername on a connected endpoint".into());
    };
    assert_eq!(peername.as_socket(), Some(peer.local_addr()?));
    let Some(ExtraInfo::Addr(sockname)) = transport.get_extra_info("sockname") else {
        return Err("no sockname".into());
    };
    let Some(ExtraInfo::Fd(fd)) = transport.get_extra_info("socket") else {
        return Err("no socket".into());
    };
    // The fd is the endpoint's socket, and its address the sockname.
    assert_eq!(transport.with_socket(|s| s.as_raw_fd()), Some(fd));
    let bound = transport.with_socket(|s| s.local_addr().ok().and_then(|a| a.as_socket()));
    assert_eq!(bound.flatten(), sockname.as_socket());
    assert!(transport.get_extra_info("nonsense").is_none());
    // Unconnected: no peername.
    let (server, _) = create(&lp, DatagramOptions::new().local_addr("127.0.0.1", 0))?;
    assert!(server.get_extra_info("peername").is_none());
    assert!(server.get_extra_info("sockname").is_some());
    // Closed: the socket is gone, the addresses stay (as asyncio's `_extra`).
    transport.close();
    lp.run_until_complete(evloop_task::sleep(Duration::ZERO))??;
    assert!(transport.get_extra_info("socket").is_none());
    assert!(transport.get_extra_info("sockname").is_some());
    server.close();
    lp.close()?;
    Ok(())
}
