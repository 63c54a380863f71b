//! Large transfers and end of stream: conformance K56.

mod util;

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, Socket, Type};
use util::{TestResult, nonblocking, run, stream_pair, tcp_listener};

const SIZE: usize = 1 << 20;

/// 1 MiB of a pattern that a reordered or dropped chunk cannot reproduce.
fn content() -> Vec<u8> {
    (0..SIZE).map(|i| (i % 251) as u8).collect()
}

/// A connected pair of non-blocking TCP sockets on loopback.
fn tcp_pair(lp: &EventLoop) -> std::io::Result<(Socket, Socket)> {
    let (listener, addr) = tcp_listener()?;
    let client = nonblocking(Domain::IPV4, Type::STREAM)?;
    let l2 = lp.clone();
    run(lp, async move {
        // Loopback completes the handshake in the backlog: connect first, then accept.
        l2.sock_connect(&client, addr).await?;
        let (conn, _) = l2.sock_accept(&listener).await?;
        Ok((conn, client))
    })
}

// CPython: sock::BaseSockTestsMixin::test_huge_content (K56).
#[test]
fn sendall_of_a_mebibyte_arrives_whole_and_in_order() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, client) = tcp_pair(&lp)?;
    let l2 = lp.clone();
    let reader = lp.create_task(async move {
        let mut got = Vec::new();
        loop {
            let chunk = l2.sock_recv(&server, 65536).await?;
            if chunk.is_empty() {
                return Ok::<_, std::io::Error>(got);
            }
            got.extend_from_slice(&chunk);
        }
    })?;
    let l3 = lp.clone();
    let sent = run(&lp, async move {
        let data = content();
        l3.sock_sendall(&client, &data).await?;
        // Closing our side ends the reader's loop with an empty receive.
        drop(client);
        Ok(())
    });
    sent?;
    let got = lp.run_until_complete(reader)???;
    assert_eq!(got.len(), SIZE);
    assert!(got == content(), "the bytes differ");
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_huge_content_recvinto (K56).
#[test]
fn recv_into_collects_a_mebibyte_whole() -> TestResult {
    let lp = EventLoop::new()?;
    let (server, client) = tcp_pair(&lp)?;
    let l2 = lp.clone();
    let reader = lp.create_task(async move {
        let mut got = vec![0u8; SIZE + 1];
        let mut filled = 0;
        loop {
            let end = (filled + 65536).min(got.len());
            let n = l2.sock_recv_into(&server, &mut got[filled..end]).await?;
            if n == 0 {
                got.truncate(filled);
                return Ok::<_, std::io::Error>(got);
            }
            filled += n;
        }
    })?;
    let l3 = lp.clone();
    run(&lp, async move {
        l3.sock_sendall(&client, &content()).await?;
        drop(client);
        Ok(())
    })?;
    let got = lp.run_until_complete(reader)???;
    assert!(got == content(), "the bytes differ");
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_huge_content, the `sock_sendall(b'')` part (K56).
#[test]
fn sendall_of_nothing_is_ready_at_the_first_poll() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, _b) = stream_pair()?;
    let mut fut = pin!(lp.sock_sendall(&a, b""));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_huge_content, end of stream (K56).
#[test]
fn recv_is_empty_once_the_peer_closed() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(evloop_task::sleep(0.01))??;
    drop(b);
    assert_eq!(lp.run_until_complete(recv)???, b"");
    Ok(())
}
