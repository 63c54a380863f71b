//! Closing a server: the server stops accepting at once, and the task awaiting
//! `serve_forever` ends only when the last client is gone (issue 18, item 2); `close()` racing
//! with connections being accepted.

mod proto;

use std::io;
use std::net::{SocketAddr, TcpStream};

use evloop_net::{LoopStreamExt, Server, ServerOptions};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, iterate, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn addr_of(server: &Server) -> io::Result<SocketAddr> {
    server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not inet"))
}

fn count(log: &Log, ev: &Ev) -> usize {
    log.borrow().iter().filter(|e| *e == ev).count()
}

// CPython: Lib/asyncio/base_events.py Server.serve_forever: close() cancels
// `_serving_forever_fut`, and serve_forever then awaits wait_closed() before it ends, so the
// task stays pending while a client is connected; close() stops accepting at once.
#[test]
fn serve_forever_ends_when_the_last_client_after_close_is_gone() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let fut = lp.create_server(
        move || Recorder::new(&l2),
        ServerOptions::new()
            .host("127.0.0.1")
            .port(0)
            .start_serving(false),
    );
    let server = lp.run_until_complete(fut)??;
    let addr = addr_of(&server)?;
    let s2 = server.clone();
    let forever = lp.create_task(async move { s2.serve_forever().await })?;
    assert!(run_until(&lp, 10, || server.is_serving())?);
    let client = TcpStream::connect(addr)?;
    assert!(
        run_until(&lp, 50, || count(&log, &Ev::Made) == 1)?,
        "not accepted"
    );

    server.close();
    iterate(&lp, 5)?;
    assert!(
        !forever.done(),
        "serve_forever ended with a client still connected"
    );
    assert!(!server.is_serving());
    let refused = TcpStream::connect(addr)
        .err()
        .ok_or("accepted after close()")?;
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    // As asyncio (close() forgets the serving future): a second serve_forever now says the
    // server is closed, not that one is already awaited.
    let s3 = server.clone();
    let again = lp.run_until_complete(async move { s3.serve_forever().await })?;
    let err = again.err().ok_or("serve_forever on a closed server")?;
    assert!(err.to_string().contains("server is closed"), "{err}");

    drop(client);
    assert!(
        run_until(&lp, 50, || forever.done())?,
        "serve_forever never ended"
    );
    assert_eq!(count(&log, &Ev::Lost(None)), 1);
    assert!(
        forever.take_result()?.is_ok(),
        "serve_forever's documented Ok(())"
    );
    lp.run_until_complete(server.wait_closed())?;
    Ok(())
}

// The same server, closed with its clients: close_clients() after close() lets serve_forever
// end (asyncio's `server.close(); server.close_clients()` idiom of test_server.py).
#[test]
fn serve_forever_ends_after_close_and_close_clients() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let fut = lp.create_server(
        move || Recorder::new(&l2),
        ServerOptions::new().host("127.0.0.1").port(0),
    );
    let server = lp.run_until_complete(fut)??;
    let s2 = server.clone();
    let forever = lp.create_task(async move { s2.serve_forever().await })?;
    let _clients = [
        TcpStream::connect(addr_of(&server)?)?,
        TcpStream::connect(addr_of(&server)?)?,
    ];
    assert!(
        run_until(&lp, 50, || count(&log, &Ev::Made) == 2)?,
        "not accepted"
    );
    server.close();
    iterate(&lp, 3)?;
    assert!(!forever.done());
    server.close_clients();
    assert!(
        run_until(&lp, 50, || forever.done())?,
        "serve_forever never ended"
    );
    assert!(forever.take_result()?.is_ok());
    Ok(())
}

// CPython: test_asyncio/test_server.py::TestServer2::test_close_race: a connection the kernel
// has queued but the server has not accepted yet when close() comes. It is never served (the
// client sees the listener go), wait_closed() completes, and nothing is reported.
#[test]
fn close_with_a_connection_queued_but_not_accepted() -> TestResult {
    let lp = EventLoop::new()?;
    let reported = std::rc::Rc::new(std::cell::Cell::new(0));
    let r2 = reported.clone();
    lp.set_exception_handler(Some(std::rc::Rc::new(
        move |_: &EventLoop, _: &evloop_sched::Context| {
            r2.set(r2.get() + 1);
        },
    )));
    let log = Log::default();
    let l2 = log.clone();
    let fut = lp.create_server(
        move || Recorder::new(&l2),
        ServerOptions::new().host("127.0.0.1").port(0),
    );
    let server = lp.run_until_complete(fut)??;
    let mut client = TcpStream::connect(addr_of(&server)?)?;
    server.close();
    lp.run_until_complete(server.wait_closed())?;
    assert_eq!(count(&log, &Ev::Made), 0, "served after close()");
    client.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut buf = [0; 1];
    match std::io::Read::read(&mut client, &mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
        other => return Err(format!("the queued client was not let go: {other:?}").into()),
    }
    assert_eq!(reported.get(), 0);
    Ok(())
}

// test_close_race's other half: close() as soon as the server has accepted the connection.
// The connection carries on, and wait_closed() completes once the client closes it (the
// server's waiters are woken both by close() and by the last connection_lost, harmlessly).
#[test]
fn close_right_after_a_connection_was_accepted() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let fut = lp.create_server(
        move || Recorder::new(&l2),
        ServerOptions::new().host("127.0.0.1").port(0),
    );
    let server = lp.run_until_complete(fut)??;
    let client = TcpStream::connect(addr_of(&server)?)?;
    assert!(
        run_until(&lp, 50, || server.clients().len() == 1)?,
        "not accepted"
    );
    server.close();
    drop(client);
    let s2 = server.clone();
    let waited = lp.create_task(async move { s2.wait_closed().await })?;
    assert!(
        run_until(&lp, 50, || waited.done())?,
        "wait_closed never completed"
    );
    assert_eq!(count(&log, &Ev::Made), 1);
    assert_eq!(count(&log, &Ev::Lost(None)), 1);
    Ok(())
}
