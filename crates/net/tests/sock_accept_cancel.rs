//! `sock_accept` and cancelling a pending operation: conformance K55, and the guarantee that a
//! dropped operation consumes nothing and leaves no reader behind.

mod util;

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep};
use util::{TestResult, run, stream_pair, tcp_listener};

// CPython: sock::BaseSockTestsMixin::test_sock_accept (K55).
#[test]
fn accept_returns_a_non_blocking_socket_and_the_client_address() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = tcp_listener()?;
    let listener = Rc::new(listener);
    let l2 = lp.clone();
    let lsock = listener.clone();
    // The accept waits first: the client connects only once the loop watches the listener.
    let accept = lp.create_task(async move { l2.sock_accept(&lsock).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!accept.done());
    let mut client = TcpStream::connect(addr)?;
    let (conn, peer) = lp.run_until_complete(accept)???;
    assert!(conn.nonblocking()?);
    assert_eq!(peer.as_socket(), Some(client.local_addr()?));
    assert!(
        !lp.remove_reader(listener.as_raw_fd()),
        "the reader is gone once the accept completed"
    );
    client.write_all(b"over")?;
    let l3 = lp.clone();
    assert_eq!(
        run(&lp, async move { l3.sock_recv(&conn, 16).await })?,
        b"over"
    );
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_cancel_sock_accept (K55).
#[test]
fn a_timed_out_accept_removes_its_reader() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = tcp_listener()?;
    let fd = listener.as_raw_fd();
    let l2 = lp.clone();
    let accept = lp.create_task(async move { l2.sock_accept(&listener).await.map(|_| ()) })?;
    let start = Instant::now();
    lp.run_until_complete(sleep(0.1))??;
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(!accept.done());
    assert!(accept.cancel(None));
    let err = lp.run_until_complete(accept)?.unwrap_err();
    assert!(err.is_cancelled());
    assert!(!lp.remove_reader(fd), "the cancelled accept left no reader");
    // The task owned the listener and dropped it with its future: the port is closed now.
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

#[test]
fn a_dropped_recv_consumes_nothing_and_leaves_no_reader() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 3).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!recv.done(), "nothing was sent yet");
    assert!(recv.cancel(None));
    assert!(lp.run_until_complete(recv)?.unwrap_err().is_cancelled());
    assert!(!lp.remove_reader(fd));

    (&b).write_all(b"all of it")?;
    let l3 = lp.clone();
    let data = run(&lp, async move { l3.sock_recv(&a, 64).await })?;
    assert_eq!(data, b"all of it");
    Ok(())
}

#[test]
fn a_dropped_sendall_leaves_no_writer() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, _b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    let (l2, a2) = (lp.clone(), a.clone());
    // Far more than a socket buffer holds, and nobody reads: the send must wait.
    let send = lp.create_task(async move {
        let big = vec![7u8; 16 << 20];
        l2.sock_sendall(&a2, &big).await
    })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!send.done());
    assert!(send.cancel(None));
    assert!(lp.run_until_complete(send)?.unwrap_err().is_cancelled());
    assert!(!lp.remove_writer(fd));
    Ok(())
}
