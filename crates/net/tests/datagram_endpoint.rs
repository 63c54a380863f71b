//! UDP endpoints end to end on loopback: conformance cases N81, N82, N84 and the first half of
//! N88, plus IPv6 and name resolution.

use std::cell::RefCell;
use std::error::Error;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
use evloop_sched::EventLoop;
use evloop_task::{LoopFuture, LoopTaskExt};
use socket2::{Domain, SockAddr, Socket, Type};

type TestResult = Result<(), Box<dyn Error>>;

#[derive(Debug, PartialEq)]
enum Ev {
    Made,
    Data(Vec<u8>, Option<SocketAddr>),
    Error(io::ErrorKind),
    Lost(bool),
}

/// Records what the transport tells it; optionally answers each datagram with `prefix + data`.
#[derive(Default)]
struct Rec {
    events: Vec<Ev>,
    transport: Option<DatagramTransport>,
    reply_prefix: Option<&'static [u8]>,
    wake: Option<LoopFuture<()>>,
}

impl Rec {
    fn echo(prefix: &'static [u8]) -> Rec {
        Rec {
            reply_prefix: Some(prefix),
            ..Rec::default()
        }
    }

    fn push(&mut self, ev: Ev) {
        self.events.push(ev);
        if let Some(wake) = self.wake.take() {
            let _ = wake.set_result(());
        }
    }

    fn data(&self) -> Vec<&[u8]> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d, _) => Some(&d[..]),
                _ => None,
            })
            .collect()
    }
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
        self.push(Ev::Made);
    }
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        if let (Some(prefix), Some(t)) = (self.reply_prefix, &self.transport) {
            let reply = [prefix, data].concat();
            t.sendto(&reply, Some(addr))
                .unwrap_or_else(|e| panic!("reply failed: {e}"));
        }
        self.push(Ev::Data(data.to_vec(), addr.as_socket()));
    }
    fn error_received(&mut self, err: io::Error) {
        self.push(Ev::Error(err.kind()));
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.push(Ev::Lost(err.is_some()));
    }
}

/// Runs the loop until `done` holds for the recorded events; an error after 5 s.
fn wait_for(lp: &EventLoop, rec: &Rc<RefCell<Rec>>, done: impl Fn(&Rec) -> bool) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if done(&rec.borrow()) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out; events so far: {:?}", rec.borrow().events),
            ));
        }
        let woken = lp.create_future::<()>();
        rec.borrow_mut().wake = Some(woken.clone());
        let timeout = woken.clone();
        let timer = lp.call_later(deadline - now, move || {
            timeout.cancel(None);
        })?;
        let _ = lp.run_until_complete(woken)?;
        timer.cancel();
    }
}

fn endpoint(
    lp: &EventLoop,
    rec: Rec,
    options: DatagramOptions,
) -> io::Result<(DatagramTransport, Rc<RefCell<Rec>>)> {
    lp.run_until_complete(lp.create_datagram_endpoint(move || rec, options))?
}

fn inet(addr: Option<evloop_net::Address>) -> io::Result<SocketAddr> {
    addr.and_then(|a| a.as_socket())
        .ok_or_else(|| io::Error::other("no inet address"))
}

/// CPython: `events::…::test_create_datagram_endpoint`.
#[test]
fn server_and_client_exchange_datagrams_then_close() -> TestResult {
    let lp = EventLoop::new()?;
    let server_opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (server, srv) = endpoint(&lp, Rec::echo(b"resp:"), server_opts)?;
    assert_eq!(server.peername(), None);
    let server_addr = inet(server.sockname())?;
    assert_eq!(server_addr.ip(), std::net::Ipv4Addr::LOCALHOST);

    let client_opts = DatagramOptions::new().remote_socket_addr(server_addr);
    let (client, cli) = endpoint(&lp, Rec::default(), client_opts)?;
    assert_eq!(
        client.peername().and_then(|a| a.as_socket()),
        Some(server_addr)
    );
    let client_addr = inet(client.sockname())?;

    client.sendto(b"xxx", None)?;
    wait_for(&lp, &cli, |r| !r.data().is_empty())?;
    assert_eq!(
        srv.borrow().events,
        [Ev::Made, Ev::Data(b"xxx".to_vec(), Some(client_addr))]
    );
    assert_eq!(
        cli.borrow().events,
        [Ev::Made, Ev::Data(b"resp:xxx".to_vec(), Some(server_addr))]
    );

    client.close();
    server.close();
    assert!(client.is_closing() && server.is_closing());
    wait_for(&lp, &cli, |r| r.events.contains(&Ev::Lost(false)))?;
    wait_for(&lp, &srv, |r| r.events.contains(&Ev::Lost(false)))?;
    // After connection_lost the transport let go of its protocol and its socket: the protocol
    // held a transport clone, and that cycle is broken.
    assert_eq!(client.with_socket(|_| ()), None);
    srv.borrow_mut().transport = None;
    cli.borrow_mut().transport = None;
    assert_eq!(Rc::strong_count(&srv), 1);
    assert_eq!(Rc::strong_count(&cli), 1);
    Ok(())
}

/// CPython: `sel::SelectorDatagramTransportTests::test_sendto_no_data`.
#[test]
fn an_empty_datagram_is_delivered() -> TestResult {
    let lp = EventLoop::new()?;
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (server, srv) = endpoint(&lp, Rec::default(), opts)?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    sender.send_to(b"", inet(server.sockname())?)?;
    wait_for(&lp, &srv, |r| !r.data().is_empty())?;
    assert_eq!(srv.borrow().data(), [b""]);
    Ok(())
}

/// CPython: `sel::…::test_sendto_connected_addr`.
#[test]
fn a_connected_endpoint_refuses_another_address() -> TestResult {
    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let peer_addr = peer.local_addr()?;
    let other = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let opts = DatagramOptions::new().remote_socket_addr(peer_addr);
    let (client, cli) = endpoint(&lp, Rec::default(), opts)?;

    let err = client
        .sendto(b"x", Some(&other.into()))
        .expect_err("another address must be refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        format!("sendto: invalid address: must be None or {peer_addr}")
    );
    client.sendto(b"same", Some(&peer_addr.into()))?;
    client.sendto(b"none", None)?;
    let mut buf = [0; 16];
    let n = peer.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"same");
    let n = peer.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"none");
    assert!(!client.is_closing());
    assert_eq!(cli.borrow().events, [Ev::Made]);
    Ok(())
}

/// CPython: `sel::…::test_sendto_exception` [DIVERGE-OK]. CPython's socket call raises
/// TypeError, which kills the endpoint; evloop returns `InvalidInput` and the endpoint stays
/// open and usable.
#[test]
fn sendto_without_an_address_on_an_unconnected_endpoint_is_an_error_and_the_endpoint_lives()
-> TestResult {
    let lp = EventLoop::new()?;
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (server, srv) = endpoint(&lp, Rec::default(), opts)?;
    let err = server.sendto(b"x", None).expect_err("no destination");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("no address given"), "{err}");
    assert!(!server.is_closing());

    let peer = UdpSocket::bind("127.0.0.1:0")?;
    server.sendto(b"still open", Some(&peer.local_addr()?.into()))?;
    let mut buf = [0; 16];
    let n = peer.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"still open");
    // Nothing was reported to the protocol: the error went to the caller.
    assert_eq!(srv.borrow().events, [Ev::Made]);
    Ok(())
}

fn bound_udp() -> io::Result<(Socket, SocketAddr)> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let addr = inet(Some(sock.local_addr()?.into()))?;
    Ok((sock, addr))
}

/// CPython: `events::…::test_datagram_send_to_non_listening_address`.
#[test]
fn sending_to_a_closed_port_does_not_stop_receiving() -> TestResult {
    let lp = EventLoop::new()?;
    let (s1, addr1) = bound_udp()?;
    let (s2, addr2) = bound_udp()?;
    let (s3, addr3) = bound_udp()?;
    let (t1, p1) = endpoint(&lp, Rec::default(), DatagramOptions::new().sock(s1))?;
    let (t2, p2) = endpoint(&lp, Rec::default(), DatagramOptions::new().sock(s2))?;
    let (t3, p3) = endpoint(&lp, Rec::default(), DatagramOptions::new().sock(s3))?;
    t3.abort();
    wait_for(&lp, &p3, |r| r.events.contains(&Ev::Lost(false)))?;

    t1.sendto(b"a", Some(&addr2.into()))?;
    wait_for(&lp, &p2, |r| r.data().len() == 1)?;
    t2.sendto(b"b", Some(&addr1.into()))?;
    wait_for(&lp, &p1, |r| r.data().len() == 1)?;
    t1.sendto(b"c", Some(&addr3.into()))?;
    t2.sendto(b"d", Some(&addr1.into()))?;
    wait_for(&lp, &p1, |r| r.data().len() == 2)?;
    t2.sendto(b"e", Some(&addr1.into()))?;
    wait_for(&lp, &p1, |r| r.data().len() == 3)?;

    assert_eq!(p1.borrow().data(), [b"b", b"d", b"e"]);
    assert_eq!(p2.borrow().data(), [b"a"]);
    assert!(!t1.is_closing());
    Ok(())
}

#[test]
fn ipv6_loopback_endpoints_talk() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, srv) = endpoint(
        &lp,
        Rec::echo(b"6:"),
        DatagramOptions::new().local_addr("::1", 0),
    )?;
    let server_addr = inet(server.sockname())?;
    assert!(server_addr.is_ipv6());
    let (client, cli) = endpoint(
        &lp,
        Rec::default(),
        DatagramOptions::new().remote_addr("::1", server_addr.port()),
    )?;
    client.sendto(b"hi", None)?;
    wait_for(&lp, &cli, |r| !r.data().is_empty())?;
    assert_eq!(cli.borrow().data(), [b"6:hi"]);
    assert_eq!(srv.borrow().data(), [b"hi"]);
    Ok(())
}

#[test]
fn host_names_are_resolved_off_the_loop() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, _srv) = endpoint(
        &lp,
        Rec::default(),
        DatagramOptions::new().local_addr("localhost", 0),
    )?;
    assert!(inet(server.sockname())?.ip().is_loopback());
    Ok(())
}

#[test]
fn the_endpoint_is_returned_after_connection_made_ran_with_the_same_transport() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, srv) = endpoint(
        &lp,
        Rec::default(),
        DatagramOptions::new().local_addr("127.0.0.1", 0),
    )?;
    assert_eq!(srv.borrow().events, [Ev::Made]);
    let seen = srv.borrow().transport.as_ref().and_then(|t| t.sockname());
    assert_eq!(seen, server.sockname());
    assert!(server.get_loop().ptr_eq(&lp));
    Ok(())
}

#[test]
fn a_cancelled_create_future_closes_the_endpoint() -> TestResult {
    let lp = EventLoop::new()?;
    let made = Rc::new(RefCell::new(Rec::default()));
    let rec = made.clone();
    struct Shared(Rc<RefCell<Rec>>);
    impl DatagramProtocol for Shared {
        fn connection_made(&mut self, t: &DatagramTransport) {
            self.0.borrow_mut().connection_made(t);
        }
        fn connection_lost(&mut self, err: Option<io::Error>) {
            self.0.borrow_mut().connection_lost(err);
        }
    }
    let fut = lp.create_datagram_endpoint(
        move || Shared(rec),
        DatagramOptions::new().local_addr("127.0.0.1", 0),
    );
    // One poll opens the socket (a numeric address needs no thread hop) and schedules
    // connection_made; then the future is dropped, as a cancelled task drops it.
    let mut fut = Box::pin(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(
        made.borrow().events.is_empty(),
        "connection_made is never inline"
    );
    drop(fut);
    wait_for(&lp, &made, |r| r.events.contains(&Ev::Lost(false)))?;
    // asyncio: connection_made, then the close the cancelled waiter caused.
    assert_eq!(made.borrow().events, [Ev::Made, Ev::Lost(false)]);
    Ok(())
}

#[test]
fn closing_the_loop_releases_open_endpoints_and_their_protocols() -> TestResult {
    let lp = EventLoop::new()?;
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (server, srv) = endpoint(&lp, Rec::default(), opts)?;
    let addr = inet(server.sockname())?;
    // The protocol keeps its transport: a cycle only the release breaks.
    assert!(srv.borrow().transport.is_some());
    drop(server);
    lp.close()?;
    assert_eq!(
        Rc::strong_count(&srv),
        1,
        "the endpoint let go of its protocol"
    );
    srv.borrow_mut().transport = None;
    // The socket is closed: its address can be bound again.
    UdpSocket::bind(addr)?;
    Ok(())
}
