//! Sizes a caller passes to the sock_* operations, misused: a huge `nbytes` is a limit, never an
//! allocation (no "capacity overflow" panic, no abort), and a limit above 64 KiB still returns
//! a whole datagram.

mod util;

use std::io;
use std::net::UdpSocket;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, SockAddr, Socket, Type};
use util::{TestResult, nonblocking, run, stream_pair, tcp_listener};

/// A pattern that a truncated or reordered copy cannot reproduce.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A connected pair of non-blocking Unix datagram sockets.
fn datagram_pair() -> io::Result<(Socket, Socket)> {
    let (a, b) = UnixDatagram::pair()?;
    let (a, b) = (
        Socket::from(OwnedFd::from(a)),
        Socket::from(OwnedFd::from(b)),
    );
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

// Issue 12, defect 3: `sock_recv(usize::MAX)` panicked with "capacity overflow".
#[test]
fn sock_recv_of_usize_max_returns_what_arrived() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    b.send(b"hello")?;
    let l2 = lp.clone();
    let data = run(&lp, async move { l2.sock_recv(&a, usize::MAX).await })?;
    assert_eq!(data, b"hello");
    // The buffer is sized to what one recv can return, not to the limit.
    assert!(data.capacity() <= 1 << 20, "capacity {}", data.capacity());
    Ok(())
}

// Issue 12, defect 3: `sock_recv(1 << 40)` aborted the process allocating 1 TiB. Over TCP with
// 1 MiB queued: every byte arrives, in receives no larger than what the kernel held.
#[test]
fn sock_recv_of_a_terabyte_reads_a_stream_in_kernel_sized_pieces() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = tcp_listener()?;
    let client = nonblocking(Domain::IPV4, Type::STREAM)?;
    let sent = pattern(1 << 20);
    let expected = sent.clone();
    let l2 = lp.clone();
    let got = run(&lp, async move {
        l2.sock_connect(&client, addr).await?;
        let (server, _) = l2.sock_accept(&listener).await?;
        let sending = async {
            l2.sock_sendall(&client, &sent).await?;
            client.shutdown(std::net::Shutdown::Write)
        };
        let receiving = async {
            let mut got = Vec::new();
            loop {
                let chunk = l2.sock_recv(&server, 1 << 40).await?;
                if chunk.is_empty() {
                    return Ok::<_, io::Error>(got);
                }
                // Never more than the kernel can hold for one socket.
                assert!(
                    chunk.capacity() <= 64 << 20,
                    "capacity {}",
                    chunk.capacity()
                );
                got.extend_from_slice(&chunk);
            }
        };
        let (sent, got) = join(sending, receiving).await;
        sent?;
        got
    })?;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the stream arrived altered");
    Ok(())
}

// A limit above the small-receive size is still a limit: no more than `nbytes` bytes.
#[test]
fn sock_recv_above_64_kib_returns_at_most_nbytes() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = datagram_pair()?;
    b.send(&pattern(150_000))?;
    let l2 = lp.clone();
    let data = run(&lp, async move { l2.sock_recv(&a, 100_000).await })?;
    assert_eq!(data, pattern(100_000));
    Ok(())
}

// A datagram larger than 64 KiB (a Unix datagram can be) is returned whole for a huge limit:
// the buffer is sized to the datagram waiting, not to a fixed cap.
#[test]
fn sock_recvfrom_of_usize_max_returns_a_whole_large_datagram() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = datagram_pair()?;
    b.send(&pattern(150_000))?;
    b.send(b"next")?;
    let l2 = lp.clone();
    let (first, second) = run(&lp, async move {
        let (first, _) = l2.sock_recvfrom(&a, usize::MAX).await?;
        let second = l2.sock_recv(&a, usize::MAX).await?;
        Ok((first, second))
    })?;
    assert_eq!(first.len(), 150_000);
    assert!(first == pattern(150_000), "the datagram arrived altered");
    assert_eq!(second, b"next");
    Ok(())
}

// Issue 12, defect 3 (`SockRecvfrom::new`): a UDP datagram of 60,000 bytes with a 1 TiB limit,
// and one that arrives only after the receive started waiting.
#[test]
fn sock_recvfrom_of_a_terabyte_returns_a_udp_datagram() -> TestResult {
    let lp = EventLoop::new()?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let to = udp.local_addr()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let from = peer.local_addr()?;
    let sock = Socket::from(udp);
    sock.set_nonblocking(true)?;
    peer.send_to(&pattern(60_000), to)?;
    let l2 = lp.clone();
    let (first, second) = run(&lp, async move {
        let first = l2.sock_recvfrom(&sock, 1 << 40).await?;
        let late = l2.call_later(std::time::Duration::from_millis(20), move || {
            let _ = peer.send_to(b"late", to);
        });
        late.map_err(io::Error::from)?;
        let second = l2.sock_recvfrom(&sock, usize::MAX).await?;
        Ok((first, second))
    })?;
    assert_eq!(first.0, pattern(60_000));
    assert_eq!(first.1.as_socket(), Some(from));
    assert_eq!(second.0, b"late");
    Ok(())
}

// A zero limit receives nothing and consumes nothing of a stream.
#[test]
fn sock_recv_of_zero_bytes_is_empty() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    b.send(b"kept")?;
    let l2 = lp.clone();
    let (none, kept) = run(&lp, async move {
        let none = l2.sock_recv(&a, 0).await?;
        let kept = l2.sock_recv(&a, 16).await?;
        Ok((none, kept))
    })?;
    assert!(none.is_empty());
    assert_eq!(kept, b"kept");
    Ok(())
}

// A datagram too large for UDP is the OS error `EMSGSIZE`, not a panic or a silent drop.
// CPython: sock_sendto raises OSError from socket.sendto (selector_events._sock_sendto).
#[test]
fn sock_sendto_of_an_oversized_datagram_is_emsgsize() -> TestResult {
    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let to = SockAddr::from(peer.local_addr()?);
    let sock = nonblocking(Domain::IPV4, Type::DGRAM)?;
    let l2 = lp.clone();
    let data = pattern(70_000);
    let outcome =
        lp.run_until_complete(async move { l2.sock_sendto(&sock, &data, to.clone()).await })?;
    let err = outcome.err().ok_or("an oversized datagram was sent")?;
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
    Ok(())
}

/// Polls both futures until both are done.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => std::task::Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                std::task::Poll::Pending
            }
        }
    })
    .await
}
