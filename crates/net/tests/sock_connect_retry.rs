//! `sock_connect` again on a socket whose first `sock_connect` was cancelled mid-connection
//! (issue 18, item 4).

mod util;

use std::future::Future;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use socket2::{Domain, Socket, Type};
use util::{TestResult, nonblocking, run};

/// Waits (up to 5 s) until `sock` is readable: a listener has a connection queued.
fn wait_readable(sock: &Socket) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd, and the count passed is 1.
    let n = unsafe { libc::poll(&raw mut pfd, 1, 5000) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n == 1)
}

// CPython: test_asyncio/test_sock_lowlevel.py::BaseSockTestsMixin::test_sock_client_connect_racing
// (and selector_events._sock_connect: connect's BlockingIOError, EALREADY among them, waits for
// writability). A listener whose queue is full drops the SYN, so the first `sock_connect` stays
// in progress; it is cancelled, room is made, and a second `sock_connect` on the same socket
// connects once the SYN is retransmitted (about a second later) instead of failing with
// EALREADY.
#[test]
fn sock_connect_after_a_cancelled_one_completes_the_connection() -> TestResult {
    let lp = EventLoop::new()?;
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(0)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or("not an inet address")?;
    // The queue of a backlog-0 listener holds one connection: fill it.
    let filler = TcpStream::connect(addr)?;
    assert!(
        wait_readable(&listener)?,
        "the filler never reached the queue"
    );
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    // A watchdog: a regression must fail, not hang.
    let l3 = lp.clone();
    lp.call_later(Duration::from_secs(20), move || l3.stop())?;
    let l2 = lp.clone();
    let peer = run(&lp, async move {
        {
            let mut first = pin!(l2.sock_connect(&sock, addr));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(
                first.as_mut().poll(&mut cx).is_pending(),
                "the first connect did not stay in progress"
            );
            // Dropped here: the task awaiting it was cancelled.
        }
        // Room for the retried connection.
        let (accepted, _) = listener.accept()?;
        drop((accepted, filler));
        l2.sock_connect(&sock, addr).await?;
        sock.peer_addr()
    })?;
    assert_eq!(peer.as_socket(), Some(addr));
    Ok(())
}

// CPython: test_asyncio/test_sock_lowlevel.py::BaseSockTestsMixin::test_sock_client_connect_racing,
// as written there: the first `sock_connect` is cancelled while the listener is bound but not
// yet listening; after `listen(1)`, retries on the same socket (a refusal may come first, as
// CPython allows) end connected.
#[test]
fn sock_connect_racing_a_listen_ends_connected() -> TestResult {
    let lp = EventLoop::new()?;
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or("not an inet address")?;
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    let l3 = lp.clone();
    lp.call_later(Duration::from_secs(20), move || l3.stop())?;
    let l2 = lp.clone();
    let outcome = run(&lp, async move {
        {
            let mut first = pin!(l2.sock_connect(&sock, addr));
            let mut cx = Context::from_waker(Waker::noop());
            let _ = first.as_mut().poll(&mut cx);
        }
        listener.listen(1)?;
        let mut last = None;
        for _ in 0..128 {
            match l2.sock_connect(&sock, addr).await {
                Ok(()) => return Ok(Ok(sock.peer_addr()?)),
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => last = Some(err),
                Err(err) => return Ok(Err(err)),
            }
        }
        Ok(Err(
            last.unwrap_or_else(|| std::io::Error::other("no attempt"))
        ))
    })?;
    let peer = outcome?;
    assert_eq!(peer.as_socket(), Some(addr));
    Ok(())
}
