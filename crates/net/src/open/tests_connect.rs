//! Tests of `open_connection` and `connect_any` on a real loop with loopback sockets.

use std::cell::Cell;
use std::error::Error;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_sched::EventLoop;
use socket2::{Domain, Socket, Type};

use crate::open::connect::{connect_any, open_connection};
use crate::open::errors::ConnectErrors;
use crate::open::options::ConnectOptions;
use crate::open::race::{Attempt, StaggeredRace};
use crate::open::test_util::{listener, refusing, run, tcp_info};

type TestResult = Result<(), Box<dyn Error>>;

fn connect(lp: &EventLoop, opts: ConnectOptions) -> io::Result<Socket> {
    run(lp, open_connection(lp, opts))?
}

fn peer(sock: &Socket) -> io::Result<Option<SocketAddr>> {
    Ok(sock.peer_addr()?.as_socket())
}

// base::BaseEventLoopWithSelectorTests::test_create_connection_no_host_port_sock
#[test]
fn neither_address_nor_sock_is_invalid_input() -> TestResult {
    let lp = EventLoop::new()?;
    let err = connect(&lp, ConnectOptions::new())
        .err()
        .ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "host and port was not specified and no sock specified"
    );
    Ok(())
}

// base::…::test_create_connection_host_port_sock
#[test]
fn sock_with_host_or_port_is_invalid_input() -> TestResult {
    let lp = EventLoop::new()?;
    for opts in [
        ConnectOptions::new().host("127.0.0.1"),
        ConnectOptions::new().port(80),
    ] {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        let err = connect(&lp, opts.sock(sock)).err().ok_or("connected")?;
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("host/port and sock"), "{err}");
    }
    Ok(())
}

// base::…::test_create_connection_wrong_sock
#[test]
fn datagram_sock_is_invalid_input() -> TestResult {
    let lp = EventLoop::new()?;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let err = connect(&lp, ConnectOptions::new().sock(sock))
        .err()
        .ok_or("accepted a datagram socket")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .starts_with("A Stream Socket was expected, got <socket fd="),
        "{err}"
    );
    Ok(())
}

// events::…::test_create_connection_sock
#[test]
fn given_sock_is_returned_non_blocking_with_nodelay() -> TestResult {
    let (_l, addr) = listener()?;
    let lp = EventLoop::new()?;
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.connect(&addr.into())?;
    assert!(!sock.nonblocking()?);
    let sock = connect(&lp, ConnectOptions::new().sock(sock))?;
    assert!(sock.nonblocking()?);
    assert!(sock.tcp_nodelay()?);
    assert_eq!(peer(&sock)?, Some(addr));
    Ok(())
}

// events::…::test_create_connection
#[test]
fn host_and_port_connect_non_blocking_with_nodelay() -> TestResult {
    let (l, addr) = listener()?;
    let lp = EventLoop::new()?;
    let sock = connect(
        &lp,
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    )?;
    assert_eq!(peer(&sock)?, Some(addr));
    assert!(sock.nonblocking()?);
    assert!(sock.tcp_nodelay()?);
    let (_conn, from) = l.accept()?;
    assert_eq!(Some(from), sock.local_addr()?.as_socket());
    Ok(())
}

// base::…::test_create_connection_connect_err
#[test]
fn one_refused_address_is_that_error() -> TestResult {
    let (_reserved, addr) = refusing()?;
    let lp = EventLoop::new()?;
    let err = connect(
        &lp,
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    )
    .err()
    .ok_or("connected to a closed port")?;
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    Ok(())
}

// base::…::test_create_connection_no_getaddrinfo: nothing to try is asyncio's empty-list error.
#[test]
fn no_address_is_the_empty_list_error() -> TestResult {
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let err = run(&lp, async move {
        connect_any(&l2, Vec::new(), None, None, false).await
    })?
    .err()
    .ok_or("connected to nothing")?;
    assert_eq!(err.to_string(), "getaddrinfo() returned empty list");
    Ok(())
}

fn race(
    addrs: &[SocketAddr],
    delay: Option<Duration>,
    all_errors: bool,
) -> io::Result<io::Result<Socket>> {
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let infos = addrs.iter().copied().map(tcp_info).collect();
    run(&lp, async move {
        connect_any(&l2, infos, None, delay, all_errors).await
    })
}

// base::…::test_create_connection_multiple: every address is tried in turn.
#[test]
fn refused_first_address_then_the_second_wins() -> TestResult {
    let (_reserved, closed) = refusing()?;
    let (_l, open) = listener()?;
    let sock = race(&[closed, open], None, false)??;
    assert_eq!(peer(&sock)?, Some(open));
    assert!(sock.tcp_nodelay()?);
    Ok(())
}

// RFC 8305 through asyncio's staggered_race: a failure starts the next attempt at once,
// without waiting for the delay.
#[test]
fn happy_eyeballs_moves_on_at_once_when_an_attempt_fails() -> TestResult {
    let (_reserved, closed) = refusing()?;
    let (_l, open) = listener()?;
    let start = Instant::now();
    let sock = race(&[closed, open], Some(Duration::from_secs(5)), false)??;
    assert_eq!(peer(&sock)?, Some(open));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

// Issue 12, defect 3's audit of caller sizes: the extreme delays are valid. Duration::MAX (a
// timer that never fires) neither panics nor stalls the race when an attempt fails, and zero
// starts every attempt at once.
#[test]
fn extreme_happy_eyeballs_delays_still_connect() -> TestResult {
    for delay in [Duration::MAX, Duration::ZERO] {
        let (_reserved, closed) = refusing()?;
        let (_l, open) = listener()?;
        let sock = race(&[closed, open], Some(delay), false)??;
        assert_eq!(peer(&sock)?, Some(open), "delay {delay:?}");
    }
    Ok(())
}

// base::…::test_create_connection_multiple_errors
#[test]
fn different_errors_combine_into_multiple_exceptions() -> TestResult {
    let (_r1, a) = refusing()?;
    let (_r2, b) = refusing()?;
    let err = race(&[a, b], None, false)?.err().ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let msg = err.to_string();
    assert!(
        msg.starts_with("Multiple exceptions: connect call failed "),
        "{msg}"
    );
    let (pa, pb) = (msg.find(&a.to_string()), msg.find(&b.to_string()));
    assert!(pa.is_some() && pb.is_some() && pa < pb, "{msg}");
    Ok(())
}

// base::…::test_create_connection_multiple_errors (all_errors=True: an ExceptionGroup)
#[test]
fn all_errors_reports_every_attempt_in_order() -> TestResult {
    let (_r1, a) = refusing()?;
    let (_r2, b) = refusing()?;
    let (_r3, c) = refusing()?;
    for delay in [None, Some(Duration::from_millis(20))] {
        let err = race(&[a, b, c], delay, true)?.err().ok_or("connected")?;
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let group = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<ConnectErrors>())
            .ok_or("no ConnectErrors inside")?;
        let addrs: Vec<bool> = group
            .errors()
            .iter()
            .zip([a, b, c])
            .map(|(e, addr)| e.to_string().contains(&addr.to_string()))
            .collect();
        assert_eq!(addrs, [true, true, true], "{group}");
        assert!(
            group
                .errors()
                .iter()
                .all(|e| e.kind() == io::ErrorKind::ConnectionRefused)
        );
    }
    Ok(())
}

/// A loopback listener with backlog 0 whose accept queue is already full: connecting to it
/// stalls (the kernel drops the SYN), which is how a slow address looks.
fn stalling() -> io::Result<(Socket, TcpStream, SocketAddr)> {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    l.bind(
        &"127.0.0.1:0"
            .parse::<SocketAddr>()
            .map_err(io::Error::other)?
            .into(),
    )?;
    l.listen(0)?;
    let addr = l
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not inet"))?;
    let filler = TcpStream::connect(addr)?;
    Ok((l, filler, addr))
}

// RFC 8305 section 5 (asyncio's happy_eyeballs_delay): a slow first address does not hold the
// connection up; the second attempt starts after the delay and wins.
#[test]
fn happy_eyeballs_starts_the_next_attempt_after_the_delay() -> TestResult {
    let (_l0, _filler, slow) = stalling()?;
    let (l1, fast) = listener()?;
    let delay = Duration::from_millis(100);
    let start = Instant::now();
    let sock = race(&[slow, fast], Some(delay), false)??;
    let elapsed = start.elapsed();
    assert_eq!(peer(&sock)?, Some(fast));
    assert!(elapsed >= delay, "won after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "won after {elapsed:?}");
    let (_conn, from) = l1.accept()?;
    assert_eq!(Some(from), sock.local_addr()?.as_socket());
    Ok(())
}

/// Sets its flag when dropped: tells whether a race dropped (cancelled) an attempt.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

// asyncio's staggered_race cancels every other attempt once one wins; here the loser's
// future, and with it its socket, is dropped before the race returns.
#[test]
fn the_winner_drops_every_other_attempt() -> TestResult {
    let lp = EventLoop::new()?;
    let dropped = Rc::new(Cell::new(false));
    let flag = dropped.clone();
    let delay = Duration::from_millis(30);
    let start = Instant::now();
    let won = run(&lp, async move {
        let mut flag = Some(flag);
        let race = StaggeredRace::new(2, Some(delay), move |index| -> Attempt {
            match index {
                0 => {
                    let guard = flag.take().map(DropFlag);
                    Box::pin(async move {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        Err(Vec::new())
                    })
                }
                _ => Box::pin(async {
                    Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| vec![e])
                }),
            }
        });
        race.await.is_ok()
    })?;
    assert!(won);
    assert!(dropped.get(), "the losing attempt is still alive");
    assert!(start.elapsed() >= delay);
    Ok(())
}

// events::…::test_create_connection_local_addr
#[test]
fn local_addr_binds_the_attempt_first() -> TestResult {
    let (l, addr) = listener()?;
    let lp = EventLoop::new()?;
    let opts = ConnectOptions::new()
        .host("127.0.0.1")
        .port(addr.port())
        .local_addr("127.0.0.1", 0);
    let sock = connect(&lp, opts)?;
    let (mut conn, from) = l.accept()?;
    assert_eq!(Some(from), sock.local_addr()?.as_socket());
    drop(sock);
    assert_eq!(conn.read(&mut [0; 8])?, 0);
    Ok(())
}

// events::…::test_create_connection_local_addr_in_use
#[test]
fn local_addr_in_use_is_addr_in_use() -> TestResult {
    let (_l, addr) = listener()?;
    let (_busy, busy) = listener()?;
    let lp = EventLoop::new()?;
    let opts = ConnectOptions::new()
        .host("127.0.0.1")
        .port(addr.port())
        .local_addr("127.0.0.1", busy.port());
    let err = connect(&lp, opts).err().ok_or("bound a port in use")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "error while attempting to bind on address {busy}: "
        )),
        "{msg}"
    );
    Ok(())
}

// base::…::test_create_connection_no_local_addr
#[test]
fn local_addr_of_no_matching_family_is_an_error() -> TestResult {
    let (_l, addr) = listener()?;
    let lp = EventLoop::new()?;
    let opts = ConnectOptions::new()
        .host("127.0.0.1")
        .port(addr.port())
        .local_addr("::1", 0);
    let err = connect(&lp, opts).err().ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    assert_eq!(
        err.to_string(),
        "no matching local address with family=AF_INET found"
    );
    Ok(())
}

// events::…::test_create_connection with happy_eyeballs_delay: one address through the race.
#[test]
fn happy_eyeballs_through_open_connection() -> TestResult {
    let (_l, addr) = listener()?;
    let lp = EventLoop::new()?;
    let opts = ConnectOptions::new()
        .host("127.0.0.1")
        .port(addr.port())
        .happy_eyeballs_delay(Duration::from_millis(250))
        .interleave(2);
    let sock = connect(&lp, opts)?;
    assert_eq!(peer(&sock)?, Some(addr));
    Ok(())
}

// [observed on CPython 3.13] create_connection('127.0.0.1', port, family=AF_INET6) raises the
// resolver's socket.gaierror: the family filters the resolution.
#[test]
fn family_filters_the_resolution() -> TestResult {
    let (_l, addr) = listener()?;
    let lp = EventLoop::new()?;
    let opts = ConnectOptions::new()
        .host("127.0.0.1")
        .port(addr.port())
        .family(Domain::IPV6);
    let err = connect(&lp, opts)
        .err()
        .ok_or("connected across families")?;
    let resolver = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<evloop_exec::ResolveError>())
        .ok_or("not a resolver error")?;
    assert!(resolver.is_resolver(), "{resolver}");
    Ok(())
}
