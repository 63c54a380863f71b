//! `start_serving(false)`: a server that is made but not serving does not listen (issue 18,
//! item 6), and its life cycle (`is_serving`, `sockets`, `close`) before serving.

mod proto;
mod util;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;

use evloop_net::{LoopStreamExt, Server, ServerOptions, UnixServerOptions};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use util::{TempPath, TestResult};

fn addr_of(server: &Server) -> io::Result<SocketAddr> {
    server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not inet"))
}

fn made(log: &Log) -> usize {
    log.borrow().iter().filter(|e| **e == Ev::Made).count()
}

fn tcp_server(lp: &EventLoop, log: &Log, opts: ServerOptions) -> io::Result<Server> {
    let l2 = log.clone();
    let fut = lp.create_server(move || Recorder::new(&l2), opts.host("127.0.0.1").port(0));
    lp.run_until_complete(fut)?
}

// CPython: Lib/asyncio/base_events.py (create_server binds; Server._start_serving calls
// sock.listen()), test_server.py BaseStartServer::test_start_server_1: a client connecting
// before start_serving() is refused; after it, accepted.
#[test]
fn a_server_not_yet_serving_refuses_connections() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = tcp_server(&lp, &log, ServerOptions::new().start_serving(false))?;
    assert!(!server.is_serving());
    let addr = addr_of(&server)?;
    assert_ne!(addr.port(), 0, "the socket is bound before serving");
    let early = TcpStream::connect(addr)
        .err()
        .ok_or("connected before start_serving")?;
    assert_eq!(early.kind(), io::ErrorKind::ConnectionRefused);

    server.start_serving()?;
    assert!(server.is_serving());
    assert_eq!(addr_of(&server)?, addr, "the same socket serves");
    let _client = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 50, || made(&log) == 1)?, "not accepted");
    server.close();
    Ok(())
}

// The same for a Unix server (asyncio's create_unix_server also leaves listen() to
// Server._start_serving).
#[test]
fn a_unix_server_not_yet_serving_refuses_connections() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let path = TempPath::new("not-serving");
    let l2 = log.clone();
    let fut = lp.create_unix_server(
        move || Recorder::new(&l2),
        &path.0,
        UnixServerOptions::new().start_serving(false),
    );
    let server = lp.run_until_complete(fut)??;
    assert!(!server.is_serving());
    assert_eq!(server.sockets().len(), 1);
    let early = UnixStream::connect(&path.0)
        .err()
        .ok_or("connected before start_serving")?;
    assert_eq!(early.kind(), io::ErrorKind::ConnectionRefused);

    server.start_serving()?;
    let _client = UnixStream::connect(&path.0)?;
    assert!(run_until(&lp, 50, || made(&log) == 1)?, "not accepted");
    server.close();
    Ok(())
}

// CPython: test_server.py (a server closed before it ever served): `close()` releases the
// bound sockets, `sockets()` is empty, `is_serving()` stays false, `wait_closed()` completes,
// and nothing ever listened on the port.
#[test]
fn closing_a_server_that_never_served() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = tcp_server(&lp, &log, ServerOptions::new().start_serving(false))?;
    let addr = addr_of(&server)?;
    server.close();
    assert!(server.is_closed());
    assert!(!server.is_serving());
    assert!(server.sockets().is_empty());
    lp.run_until_complete(server.wait_closed())?;
    let refused = TcpStream::connect(addr)
        .err()
        .ok_or("connected to a closed server")?;
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    // start_serving on a closed server does nothing.
    server.start_serving()?;
    assert!(!server.is_serving());
    assert_eq!(made(&log), 0);
    Ok(())
}

// CPython: test_server.py BaseStartServer::test_start_server_1: serve_forever() starts a server
// made with start_serving=False, which then listens.
#[test]
fn serve_forever_listens_on_a_server_not_yet_serving() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let server = tcp_server(&lp, &log, ServerOptions::new().start_serving(false))?;
    let addr = addr_of(&server)?;
    let s2 = server.clone();
    let forever = lp.create_task(async move { s2.serve_forever().await })?;
    assert!(run_until(&lp, 10, || server.is_serving())?);
    let _client = TcpStream::connect(addr)?;
    assert!(run_until(&lp, 50, || made(&log) == 1)?, "not accepted");
    forever.cancel(None);
    assert!(run_until(&lp, 10, || forever.done())?);
    Ok(())
}

// Issue 12, defect 3's audit: any backlog is valid. u32::MAX is capped by the kernel, and 0
// still listens and accepts.
#[test]
fn extreme_backlogs_listen_and_accept() -> TestResult {
    for backlog in [0, u32::MAX] {
        let lp = EventLoop::new()?;
        let log = Log::default();
        let server = tcp_server(&lp, &log, ServerOptions::new().backlog(backlog))?;
        let _client = TcpStream::connect(addr_of(&server)?)?;
        assert!(
            run_until(&lp, 50, || made(&log) == 1)?,
            "backlog {backlog}: not accepted"
        );
        server.close();
    }
    Ok(())
}
