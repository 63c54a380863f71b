//! The option types are `Clone`, so one configured value opens many connections, servers or
//! endpoints. A socket handed to options is shared by the clones: the first call takes it and a
//! later call with a clone fails with `InvalidInput` rather than open a second transport on it
//! (asyncio passes the same `sock=` object along and lets two transports fight over it; a Rust
//! value that is `Clone` must not make that possible).

mod util;

use std::error::Error as StdError;
use std::io;

use evloop_net::{
    ConnectOptions, DatagramOptions, DatagramProtocol, LoopDatagramExt, LoopStreamExt, Protocol,
    ServerOptions, UnixServerOptions,
};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, Type};

type TestResult = Result<(), Box<dyn StdError>>;

#[derive(Default)]
struct Quiet;
impl Protocol for Quiet {}

#[derive(Default)]
struct QuietDatagrams;
impl DatagramProtocol for QuietDatagrams {}

fn expect_taken(outcome: io::Result<impl Sized>) -> TestResult {
    let err = outcome
        .err()
        .ok_or("a clone used the socket a second time")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().starts_with("sock: already used"), "{err}");
    Ok(())
}

#[test]
fn one_connect_options_value_opens_two_connections() -> TestResult {
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(
        lp.create_server(|| Quiet, ServerOptions::new().addr(("127.0.0.1", 0))),
    )??;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or("inet")?
        .port();
    let opts = ConnectOptions::new().addr(("127.0.0.1", port));
    let (a, _) = lp.run_until_complete(lp.create_connection(|| Quiet, opts.clone()))??;
    let (b, _) = lp.run_until_complete(lp.create_connection(|| Quiet, opts))??;
    assert_eq!(a.peername(), b.peername());
    assert_ne!(a.sockname(), b.sockname());
    a.abort();
    b.abort();
    server.close();
    Ok(())
}

#[test]
fn a_cloned_connect_sock_is_used_once() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = util::tcp_listener()?;
    let sock = util::nonblocking(Domain::IPV4, Type::STREAM)?;
    let _ = sock.connect(&addr.into());
    let opts = ConnectOptions::new().sock(sock);
    let twin = opts.clone();
    let (t, _) = lp.run_until_complete(lp.create_connection(|| Quiet, opts))??;
    expect_taken(lp.run_until_complete(lp.create_connection(|| Quiet, twin))?)?;
    // The first transport still owns its socket: the error closed nothing.
    assert!(!t.is_closing());
    t.abort();
    drop(listener);
    Ok(())
}

#[test]
fn a_cloned_server_sock_is_used_once() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, _) = util::tcp_listener()?;
    let opts = ServerOptions::new().sock(listener);
    let twin = opts.clone();
    let server = lp.run_until_complete(lp.create_server(|| Quiet, opts))??;
    expect_taken(lp.run_until_complete(lp.create_server(|| Quiet, twin))?)?;
    assert_eq!(server.sockets().len(), 1);
    server.close();
    Ok(())
}

#[test]
fn a_cloned_unix_server_sock_is_used_once() -> TestResult {
    let lp = EventLoop::new()?;
    let dir = util::TempPath::new("options-clone");
    let sock = util::nonblocking(Domain::UNIX, Type::STREAM)?;
    sock.bind(&socket2::SockAddr::unix(&dir.0)?)?;
    let opts = UnixServerOptions::new().sock(sock);
    let twin = opts.clone();
    let server = lp.run_until_complete(lp.create_unix_server(|| Quiet, "", opts))??;
    expect_taken(lp.run_until_complete(lp.create_unix_server(|| Quiet, "", twin))?)?;
    server.close();
    Ok(())
}

#[test]
fn datagram_options_clone_and_share_their_sock() -> TestResult {
    let lp = EventLoop::new()?;
    // Without a socket, a clone opens an endpoint of its own.
    let opts = DatagramOptions::new().local_socket_addr("127.0.0.1:0".parse()?);
    let (a, _) =
        lp.run_until_complete(lp.create_datagram_endpoint(QuietDatagrams::default, opts.clone()))??;
    let (b, _) =
        lp.run_until_complete(lp.create_datagram_endpoint(QuietDatagrams::default, opts))??;
    assert_ne!(a.sockname(), b.sockname());
    a.close();
    b.close();
    // With one, the first call takes it.
    let sock = util::nonblocking(Domain::IPV4, Type::DGRAM)?;
    let opts = DatagramOptions::new().sock(sock);
    let twin = opts.clone();
    let (c, _) =
        lp.run_until_complete(lp.create_datagram_endpoint(QuietDatagrams::default, opts))??;
    expect_taken(
        lp.run_until_complete(lp.create_datagram_endpoint(QuietDatagrams::default, twin))?,
    )?;
    c.close();
    Ok(())
}

// CPython: unix_events.py `create_unix_server(path=None, sock=sock)` serves on the given socket
// (before this, every path clashed with the socket, so it could not be reached), and
// test_unix_events.py::SelectorEventLoopUnixSocketTests::test_create_unix_server_nopath_nosock.
#[test]
fn a_unix_server_listens_on_a_given_socket_with_an_empty_path() -> TestResult {
    let lp = EventLoop::new()?;
    let dir = util::TempPath::new("given-unix");
    let sock = util::nonblocking(Domain::UNIX, Type::STREAM)?;
    sock.bind(&socket2::SockAddr::unix(&dir.0)?)?;
    let server = lp.run_until_complete(lp.create_unix_server(
        || Quiet,
        "",
        UnixServerOptions::new().sock(sock),
    ))??;
    let (t, _) = lp.run_until_complete(lp.create_unix_connection(|| Quiet, &dir.0))??;
    assert_eq!(
        t.peername().ok_or("no peername")?.as_pathname(),
        Some(dir.0.as_path())
    );
    t.abort();
    server.close();
    // Neither a path nor a socket: asyncio's message.
    let err = lp
        .run_until_complete(lp.create_unix_server(|| Quiet, "", UnixServerOptions::new()))?
        .err()
        .ok_or("served nothing")?;
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "path was not specified, and no sock specified"
    );
    Ok(())
}
