//! The datagram operations: conformance K57.

mod util;

use std::io;
use std::net::UdpSocket;
use std::rc::Rc;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep};
use socket2::{Domain, SockAddr, Socket, Type};
use util::{TempPath, TestResult, run};

/// A non-blocking UDP socket on 127.0.0.1, and its address.
fn udp() -> io::Result<(Socket, SockAddr)> {
    let sock = Socket::from(UdpSocket::bind("127.0.0.1:0")?);
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?;
    Ok((sock, addr))
}

// CPython: sock::BaseSockTestsMixin::test_recvfrom (K57).
#[test]
fn sendto_then_recvfrom_gives_the_data_and_the_sender() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, server_addr) = udp()?;
    let (client, client_addr) = udp()?;
    let l2 = lp.clone();
    let echo = lp.create_task(async move {
        let (data, peer) = l2.sock_recvfrom(&server, 4096).await?;
        l2.sock_sendto(&server, &data, peer.clone()).await?;
        Ok::<_, io::Error>(peer)
    })?;
    let l3 = lp.clone();
    let to = server_addr.clone();
    let (sent, (data, from)) = run(&lp, async move {
        let sent = l3.sock_sendto(&client, b"hello world", to.clone()).await?;
        Ok((sent, l3.sock_recvfrom(&client, 4096).await?))
    })?;
    assert_eq!(sent, 11);
    assert_eq!(data, b"hello world");
    assert_eq!(from.as_socket(), server_addr.as_socket());
    let seen = lp.run_until_complete(echo)???;
    assert_eq!(seen.as_socket(), client_addr.as_socket());
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_recvfrom_into (K57).
#[test]
fn recvfrom_into_fills_the_buffer_and_truncates_the_datagram() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, server_addr) = udp()?;
    let (client, client_addr) = udp()?;
    let l2 = lp.clone();
    let (n, from, buf, rest) = run(&lp, async move {
        l2.sock_sendto(&client, &[9u8; 5000], server_addr.clone())
            .await?;
        l2.sock_sendto(&client, b"next", server_addr.clone())
            .await?;
        let mut buf = vec![0u8; 4096];
        let (n, from) = l2.sock_recvfrom_into(&server, &mut buf).await?;
        let (rest, _) = l2.sock_recvfrom(&server, 4096).await?;
        Ok((n, from, buf, rest))
    })?;
    assert_eq!(n, 4096);
    assert!(buf.iter().all(|&b| b == 9));
    assert_eq!(from.as_socket(), client_addr.as_socket());
    assert_eq!(rest, b"next", "the truncated tail was discarded, not kept");
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_sendto_blocking (K57). UDP on loopback drops rather
// than blocks, so a Unix datagram socket with a full receive queue makes the send wait.
#[test]
fn a_sendto_that_would_block_completes_once_writable() -> TestResult {
    let lp = EventLoop::new()?;
    let path = TempPath::new("dgram");
    let receiver = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    receiver.bind(&SockAddr::unix(&path.0)?)?;
    receiver.set_nonblocking(true)?;
    let to = SockAddr::unix(&path.0)?;
    let sender = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    sender.set_nonblocking(true)?;
    let mut queued = 0;
    loop {
        match sender.send_to(b"fill", &to) {
            Ok(_) => queued += 1,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err.into()),
        }
    }
    let (sender, to) = (Rc::new(sender), Rc::new(to));
    let (l2, s2, t2) = (lp.clone(), sender.clone(), to.clone());
    let send = lp.create_task(async move { l2.sock_sendto(&s2, b"last", (*t2).clone()).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!send.done(), "the receive queue is full");

    let l3 = lp.clone();
    let drained = run(&lp, async move {
        let mut got = Vec::new();
        for _ in 0..=queued {
            got.push(l3.sock_recvfrom(&receiver, 16).await?.0);
        }
        Ok(got)
    })?;
    assert_eq!(lp.run_until_complete(send)???, 4);
    assert_eq!(drained.len(), queued + 1);
    assert_eq!(drained.last().map(Vec::as_slice), Some(&b"last"[..]));
    Ok(())
}
