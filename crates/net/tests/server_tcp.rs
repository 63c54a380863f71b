//! TCP servers and connections through protocols: conformance cases L70, L71, M72, M73, M77,
//! M78 and M79.

mod proto;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use evloop_net::{ConnectOptions, LoopStreamExt, Protocol, Server, ServerOptions, Transport};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, iterate, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn addr_of(server: &Server) -> io::Result<SocketAddr> {
    server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not inet"))
}

/// An echo server on 127.0.0.1; its protocols log into `log`.
fn echo_server(lp: &EventLoop, log: &Log, opts: ServerOptions) -> io::Result<Server> {
    let l2 = log.clone();
    let fut = lp.create_server(
        move || Recorder {
            echo: true,
            ..Recorder::new(&l2)
        },
        opts.host("127.0.0.1").port(0),
    );
    lp.run_until_complete(fut)?
}

// CPython: test_transports.py TransportTests::test_get_extra_info;
// test_events.py test_create_server_trsock; test_base_events.py test_set_nodelay
#[test]
fn extra_info_names_both_ends_and_tcp_nodelay_is_on() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new())?;
    let addr = addr_of(&server)?;
    let clog = Log::default();
    let c2 = clog.clone();
    let fut = lp.create_connection(
        move || Recorder::new(&c2),
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    );
    let (t, _p) = lp.run_until_complete(fut)??;
    let peer = t
        .peername()
        .and_then(|a| a.as_socket())
        .ok_or("no peername")?;
    assert_eq!(peer, addr);
    let local = t
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or("no sockname")?;
    assert_eq!(local.ip().to_string(), "127.0.0.1");
    assert_eq!(
        t.with_socket(|s| s.tcp_nodelay().ok()).flatten(),
        Some(true)
    );
    assert!(t.get_extra_info("socket").is_some());
    assert!(t.get_extra_info("pipe").is_none());
    assert!(t.get_extra_info("no such key").is_none());
    assert!(run_until(&lp, 20, || server.clients().len() == 1)?);
    let st = &server.clients()[0];
    let server_peer = st.peername().and_then(|a| a.as_socket()).ok_or("peer")?;
    assert_eq!(server_peer, local);
    assert_eq!(
        st.with_socket(|s| s.tcp_nodelay().ok()).flatten(),
        Some(true)
    );
    t.close();
    server.close();
    Ok(())
}

#[test]
fn a_megabyte_round_trips_through_an_echo_server_byte_exact() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new())?;
    let addr = addr_of(&server)?;
    let clog = Log::default();
    let c2 = clog.clone();
    let fut = lp.create_connection(
        move || Recorder::new(&c2),
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    );
    let (t, _p) = lp.run_until_complete(fut)??;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    t.write(&data);
    assert!(run_until(&lp, 400, || Recorder::data(&clog).len() >= data.len())?);
    assert_eq!(Recorder::data(&clog), data);
    t.close();
    server.close();
    Ok(())
}

// CPython: test_streams.py StreamTests::test_drain_raises,
// test_async_writer_api_exception_after_close; sel::SelectorTransportTests::test_fatal_error,
// sel::SelectorSocketTransportTests::test_read_ready_conn_reset (G42): an OS error goes to
// `connection_lost`, never to the exception handler.
#[test]
fn a_peer_that_goes_away_ends_the_writer_with_reset_or_broken_pipe() -> TestResult {
    let lp = EventLoop::new()?;
    let calls = Rc::new(Cell::new(0));
    let c2 = calls.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, _: &Context| {
        c2.set(c2.get() + 1);
    })));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let clog = Log::default();
    let c3 = clog.clone();
    let fut = lp.create_connection(
        move || Recorder::new(&c3),
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    );
    let (t, _p) = lp.run_until_complete(fut)??;
    let (peer, _) = listener.accept()?;
    // Unread data makes the close a reset.
    t.write(b"unread");
    std::thread::sleep(Duration::from_millis(20));
    drop(peer);
    let chunk = vec![0u8; 64 * 1024];
    let lost = run_until(&lp, 200, || {
        if !t.is_closing() {
            t.write(&chunk);
        }
        clog.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    })?;
    assert!(lost, "the transport noticed the peer going away");
    let kinds: Vec<_> = clog
        .borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Lost(k) => Some(*k),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.len(), 1, "connection_lost exactly once");
    assert!(
        matches!(
            kinds[0],
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{kinds:?}"
    );
    assert_eq!(
        calls.get(),
        0,
        "an OS error is the protocol's, not the handler's"
    );
    Ok(())
}

// CPython: test_server.py TestServer2::test_wait_closed_basic, test_wait_closed_race,
// test_close_clients, test_abort_clients
#[test]
fn wait_closed_waits_for_close_and_for_every_client() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new())?;
    let addr = addr_of(&server)?;
    let done = Rc::new(Cell::new(false));
    let (s2, d2) = (server.clone(), done.clone());
    let waiter = lp.create_task(async move {
        s2.wait_closed().await;
        d2.set(true);
    })?;
    iterate(&lp, 3)?;
    assert!(!done.get(), "pending while open without clients");
    let mut c1 = TcpStream::connect(addr)?;
    let mut c2 = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 40, || server.clients().len() == 2)?);
    server.close();
    assert!(!server.is_serving());
    iterate(&lp, 3)?;
    assert!(!done.get(), "pending while clients remain");
    // The clients still work after the server closed.
    c1.write_all(b"ping")?;
    let mut four = [0; 4];
    assert!(run_until(&lp, 40, || Recorder::data(&log).len() >= 4)?);
    c1.read_exact(&mut four)?;
    assert_eq!(&four, b"ping");
    drop(c1);
    assert!(run_until(&lp, 40, || server.clients().len() == 1)?);
    assert!(!done.get());
    server.abort_clients();
    iterate(&lp, 2)?;
    assert!(
        done.get(),
        "done within 2 iterations of the last client going"
    );
    assert!(waiter.done());
    let mut rest = Vec::new();
    c2.set_read_timeout(Some(Duration::from_secs(5)))?;
    let _ = c2.read_to_end(&mut rest);
    // Awaiting again returns at once.
    let s3 = server.clone();
    lp.run_until_complete(async move { s3.wait_closed().await })?;
    Ok(())
}

#[test]
fn close_clients_flushes_then_closes_each_connection() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new())?;
    let addr = addr_of(&server)?;
    let mut c = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 40, || server.clients().len() == 1)?);
    server.clients()[0].write(b"bye");
    server.close();
    server.close_clients();
    assert!(run_until(&lp, 40, || server.clients().is_empty())?);
    let mut all = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.read_to_end(&mut all)?;
    assert_eq!(all, b"bye");
    Ok(())
}

// CPython: test_server.py BaseStartServer::test_start_server_1 (observed on CPython 3.13)
#[test]
fn serving_starts_when_asked_and_serve_forever_ends_with_close() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new().start_serving(false))?;
    assert!(!server.is_serving());
    let s2 = server.clone();
    let forever = lp.create_task(async move { s2.serve_forever().await })?;
    iterate(&lp, 1)?;
    assert!(server.is_serving());
    let s3 = server.clone();
    let second = lp.run_until_complete(async move { s3.serve_forever().await })?;
    let err = second.err().ok_or("a second serve_forever was accepted")?;
    assert!(
        err.to_string()
            .contains("already being awaited on serve_forever()")
    );
    server.close();
    iterate(&lp, 2)?;
    assert!(forever.done());
    assert!(forever.take_result()?.is_ok());
    let s4 = server.clone();
    let closed = lp.run_until_complete(async move { s4.serve_forever().await })?;
    let err = closed.err().ok_or("serve_forever on a closed server")?;
    assert!(err.to_string().contains("server is closed"));
    Ok(())
}

// CPython: test_server.py (cancelling serve_forever closes the server)
#[test]
fn cancelling_serve_forever_closes_the_server() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new().start_serving(false))?;
    let s2 = server.clone();
    let forever = lp.create_task(async move { s2.serve_forever().await })?;
    iterate(&lp, 1)?;
    assert!(server.is_serving());
    forever.cancel(None);
    iterate(&lp, 2)?;
    assert!(forever.cancelled());
    assert!(server.is_closed());
    assert!(server.sockets().is_empty());
    Ok(())
}

// CPython: test_selector_events.py test_accept_connection_multiple
#[test]
fn one_readiness_event_accepts_up_to_backlog_connections() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new().backlog(100))?;
    let addr = addr_of(&server)?;
    let clients: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr))
        .collect::<io::Result<_>>()?;
    // One iteration: the poll sees the listener readable once; its callback accepts all 100.
    lp.run_forever_setup()?;
    lp.run_once_timeout(Duration::from_secs(5))?;
    lp.run_forever_cleanup()?;
    assert_eq!(server.clients().len(), 100);
    drop(clients);
    assert!(run_until(&lp, 100, || server.clients().is_empty())?);
    server.close();
    Ok(())
}

struct Refuses;
impl Protocol for Refuses {}

// CPython: observed on CPython 3.13 (the protocol factory raising for an incoming connection)
#[test]
fn a_panicking_protocol_factory_closes_that_connection_and_the_loop_survives() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let fut = lp.create_server(
        move || {
            n2.set(n2.get() + 1);
            if n2.get() == 1 {
                panic!("factory failed");
            }
            Refuses
        },
        ServerOptions::new().host("127.0.0.1").port(0),
    );
    let server = lp.run_until_complete(fut)??;
    let addr = addr_of(&server)?;
    let mut c = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 40, || n.get() == 1)?);
    let mut all = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.read_to_end(&mut all)?;
    assert!(all.is_empty(), "the client sees EOF");
    assert!(seen.borrow().is_empty(), "reported only in debug mode");
    // The loop and the server survive: the next connection is served.
    let _c2 = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 40, || server.clients().len() == 1)?);
    lp.set_debug(true);
    n.set(0);
    let _c3 = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 40, || !seen.borrow().is_empty())?);
    assert_eq!(
        *seen.borrow(),
        ["Error on transport creation for incoming connection"]
    );
    Ok(())
}

/// Answers b"roger" to the first chunk and closes.
#[derive(Default)]
struct Roger {
    t: Option<Transport>,
    got: Vec<u8>,
    states: Vec<&'static str>,
}

impl Protocol for Roger {
    fn connection_made(&mut self, t: &Transport) {
        self.states.push("CONNECTED");
        self.t = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
        if let Some(t) = &self.t {
            t.write(b"roger");
            t.close();
        }
    }
    fn connection_lost(&mut self, _err: Option<io::Error>) {
        self.states.push("CLOSED");
        self.t = None;
    }
}

// CPython: test_events.py test_connect_accepted_socket
#[test]
fn connect_accepted_socket_wraps_a_socket_accepted_elsewhere() -> TestResult {
    let lp = EventLoop::new()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (conn, _) = listener.accept()?;
    let fut = lp.connect_accepted_socket(Roger::default, socket2::Socket::from(conn));
    let (t, p) = lp.run_until_complete(fut)??;
    assert_eq!(
        t.with_socket(|s| s.nonblocking().ok()).flatten(),
        Some(true)
    );
    client.write_all(b"test data")?;
    assert!(run_until(&lp, 40, || p
        .borrow()
        .states
        .contains(&"CLOSED"))?);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply)?;
    assert_eq!(reply, b"roger");
    assert_eq!(p.borrow().got, b"test data");
    assert_eq!(p.borrow().states, ["CONNECTED", "CLOSED"]);

    let udp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let err = lp
        .run_until_complete(lp.connect_accepted_socket(Roger::default, udp))?
        .err()
        .ok_or("a datagram socket was accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("A Stream Socket was expected"));
    Ok(())
}

#[test]
fn server_debug_lists_sockets_and_state() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = echo_server(&lp, &log, ServerOptions::new())?;
    let shown = format!("{server:?}");
    assert!(shown.contains("serving: true"), "{shown}");
    server.close();
    assert!(format!("{server:?}").contains("serving: false"));
    Ok(())
}
