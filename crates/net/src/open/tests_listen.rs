//! Tests of `open_listeners` on a real loop with loopback sockets.

use std::error::Error;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use evloop_sched::EventLoop;
use socket2::{Domain, Socket, Type};

use crate::open::listen::{Listeners, open_listeners};
use crate::open::options::ServerOptions;
use crate::open::test_util::{has_ipv6_loopback, listener, run};

type TestResult = Result<(), Box<dyn Error>>;

fn listen(opts: ServerOptions) -> io::Result<Listeners> {
    let lp = EventLoop::new()?;
    run(&lp, open_listeners(&lp, opts))?
}

fn addr_of(sock: &Socket) -> io::Result<SocketAddr> {
    sock.local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet address"))
}

// base::BaseEventLoopWithSelectorTests::test_create_server_no_host_port_sock
#[test]
fn neither_address_nor_sock_is_invalid_input() -> TestResult {
    let err = listen(ServerOptions::new()).err().ok_or("listened")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "Neither host/port nor sock were specified");
    Ok(())
}

// base::…::test_create_server_host_port_sock
#[test]
fn sock_with_host_or_port_is_invalid_input() -> TestResult {
    for opts in [
        ServerOptions::new().host("127.0.0.1"),
        ServerOptions::new().port(0),
    ] {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        let err = listen(opts.sock(sock)).err().ok_or("listened")?;
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("host/port and sock"), "{err}");
    }
    Ok(())
}

// base::…::test_create_server_wrong_sock
#[test]
fn datagram_sock_is_invalid_input() -> TestResult {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let err = listen(ServerOptions::new().sock(sock))
        .err()
        .ok_or("listened on a datagram socket")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .starts_with("A Stream Socket was expected, got "),
        "{err}"
    );
    Ok(())
}

// events::…::test_create_server_sock: the given socket itself is the listener, non-blocking.
#[test]
fn given_sock_is_the_listener() -> TestResult {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
    let addr = addr_of(&sock)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let opened = listen(ServerOptions::new().sock(sock).backlog(7))?;
    assert_eq!(opened.backlog, 7);
    let [only] = &opened.sockets[..] else {
        panic!("{} sockets", opened.sockets.len());
    };
    assert_eq!(std::os::fd::AsRawFd::as_raw_fd(only), fd);
    assert!(only.nonblocking()?);
    only.listen(7)?;
    let _client = TcpStream::connect(addr)?;
    Ok(())
}

// events::…::test_create_server: one bound, non-blocking socket; the options kept. It does
// not listen yet: base_events.Server._start_serving calls listen(), not create_server.
#[test]
fn one_host_gives_one_bound_socket() -> TestResult {
    let opened = listen(ServerOptions::new().host("127.0.0.1").port(0))?;
    assert_eq!((opened.backlog, opened.start_serving), (100, true));
    let [only] = &opened.sockets[..] else {
        panic!("{} sockets", opened.sockets.len());
    };
    assert!(only.nonblocking()?);
    let refused = TcpStream::connect(addr_of(only)?)
        .err()
        .ok_or("connected before listen")?;
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    only.listen(100)?;
    let _client = TcpStream::connect(addr_of(only)?)?;
    let later = listen(ServerOptions::new().host("127.0.0.1").start_serving(false))?;
    assert!(!later.start_serving);
    Ok(())
}

// events::…::test_create_server_addr_in_use
#[test]
fn port_in_use_is_addr_in_use_naming_the_address() -> TestResult {
    let (_busy, addr) = listener()?;
    let err = listen(ServerOptions::new().host("127.0.0.1").port(addr.port()))
        .err()
        .ok_or("bound a port in use")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "error while attempting to bind on address {addr}: "
        )),
        "{msg}"
    );
    Ok(())
}

// base::…::test_create_server_cant_bind: a bind failure closes the sockets opened before it.
#[test]
fn bind_failure_closes_every_socket_opened_so_far() -> TestResult {
    // 127.0.0.2:port is taken; 127.0.0.1:port is free and bound first by open_listeners.
    let busy = TcpListener::bind("127.0.0.2:0")?;
    let port = busy.local_addr()?.port();
    let err = listen(
        ServerOptions::new()
            .host("127.0.0.1")
            .host("127.0.0.2")
            .port(port),
    )
    .err()
    .ok_or("bound a port in use")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
    // Without SO_REUSEADDR this bind fails if the first listener were still open.
    let again = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    again.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(())
}

// base::…::test_create_server_reuse_port, test_create_server_nosoreuseport
#[test]
fn reuse_address_by_default_reuse_port_on_request() -> TestResult {
    let opened = listen(ServerOptions::new().host("127.0.0.1"))?;
    assert!(opened.sockets[0].reuse_address()?);
    assert!(!opened.sockets[0].reuse_port()?);
    let opened = listen(
        ServerOptions::new()
            .host("127.0.0.1")
            .reuse_address(false)
            .reuse_port(true),
    )?;
    assert!(!opened.sockets[0].reuse_address()?);
    assert!(opened.sockets[0].reuse_port()?);
    Ok(())
}

// events::…::test_create_server_dual_stack, base::…::test_create_server_empty_host: one port,
// both families (which IPV6_V6ONLY makes possible), clients on 127.0.0.1 and ::1.
#[test]
fn no_host_listens_on_every_family() -> TestResult {
    if !has_ipv6_loopback() {
        eprintln!("SKIPPED no_host_listens_on_every_family: no IPv6 loopback on this machine");
        return Ok(());
    }
    for empty_host in [false, true] {
        // As asyncio's test: a port free a moment ago, retried if someone took it meanwhile.
        let mut tries = 0;
        let (opened, port) = loop {
            let port = listener()?.1.port();
            let opts = ServerOptions::new().port(port);
            let opts = if empty_host { opts.host("") } else { opts };
            match listen(opts) {
                Ok(opened) => break (opened, port),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse && tries < 5 => tries += 1,
                Err(err) => return Err(err.into()),
            }
        };
        let mut families = Vec::new();
        for sock in &opened.sockets {
            let domain = sock.domain()?;
            if domain == Domain::IPV6 {
                assert!(sock.only_v6()?, "IPV6_V6ONLY is off");
            }
            assert_eq!(addr_of(sock)?.port(), port);
            families.push(i32::from(domain));
            sock.listen(100)?;
        }
        families.sort_unstable();
        assert_eq!(families, [libc::AF_INET, libc::AF_INET6]);
        let _v4 = TcpStream::connect(("127.0.0.1", port))?;
        let _v6 = TcpStream::connect(("::1", port))?;
    }
    Ok(())
}

// events::…::test_create_server_multiple_hosts_ipv4 [observed on CPython 3.13]: duplicate
// hosts give one socket per distinct address.
#[test]
fn duplicate_hosts_give_one_socket_each() -> TestResult {
    let opened = listen(
        ServerOptions::new()
            .host("127.0.0.1")
            .host("127.0.0.2")
            .host("127.0.0.1")
            .port(0),
    )?;
    let mut ips: Vec<String> = opened
        .sockets
        .iter()
        .map(|s| addr_of(s).map(|a| a.ip().to_string()))
        .collect::<io::Result<_>>()?;
    ips.sort();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.2"]);
    Ok(())
}

// [observed on CPython 3.13] create_server(host=None, family=AF_INET) listens on IPv4 only.
#[test]
fn family_keeps_only_its_addresses() -> TestResult {
    let opened = listen(ServerOptions::new().port(0).family(Domain::IPV4))?;
    let families: Vec<Domain> = opened
        .sockets
        .iter()
        .map(Socket::domain)
        .collect::<io::Result<_>>()?;
    assert_eq!(families, [Domain::IPV4]);
    Ok(())
}
