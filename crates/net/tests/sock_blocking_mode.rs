//! A blocking socket given to the sock_* operations: refused without ever blocking the loop,
//! and the mode read only when an operation cannot complete at once (H46).

mod util;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep};
use util::{TestResult, run, stream_pair};

// CPython: sock::BaseSockTestsMixin::test_sock_client_ops, debug-mode part (H46). asyncio reads
// the mode once, before it starts; a socket made blocking while the operation waits would then
// block the loop in `recv` (and does in asyncio). evloop receives with MSG_DONTWAIT and reads
// the mode again before each wait.
#[test]
fn a_socket_made_blocking_while_a_receive_waits_is_refused_without_blocking_the_loop() -> TestResult
{
    let lp = EventLoop::new()?;
    let (ours, peer) = stream_pair()?;
    // Shares the open file description, and with it the O_NONBLOCK flag.
    let mut twin = ours.try_clone()?;
    let twin_fd = twin.as_raw_fd();
    // Ends the test in bounded time if the loop blocks in `recv`: this is then what it gets.
    // Not joined: once the test passed, nobody reads what it writes.
    let mut late = peer.try_clone()?;
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(2));
        let _ = late.write_all(b"late");
    });
    let l2 = lp.clone();
    let got = run(&lp, async move {
        let l3 = l2.clone();
        // Runs once the receive below waits: the socket turns blocking, one byte comes, and
        // another reader of the same socket takes it before the receive runs again.
        l2.call_soon(move || {
            let armed = twin.set_nonblocking(false).and_then(|()| {
                (&peer).write_all(b"x")?;
                let l4 = l3.clone();
                l3.add_reader(twin_fd, move || {
                    let mut byte = [0; 1];
                    let _ = twin.read(&mut byte);
                    l4.remove_reader(twin_fd);
                })
            });
            assert!(armed.is_ok(), "{armed:?}");
        })?;
        Ok(l2.sock_recv(&ours, 16).await)
    })?;
    let err = got
        .err()
        .ok_or("the receive completed on a blocking socket")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "the socket must be non-blocking");
    Ok(())
}

// A deliberate difference (docs/differences.md, H46): the mode is read only when an operation
// cannot complete at its first try, so one that can (its syscall passes MSG_DONTWAIT and cannot
// block) is served on a blocking socket; the same socket is refused once an operation would wait.
#[test]
fn a_blocking_socket_is_served_at_once_and_refused_once_it_would_wait() -> TestResult {
    let lp = EventLoop::new()?;
    let (ours, mut peer) = std::os::unix::net::UnixStream::pair()?;
    let ours = socket2::Socket::from(std::os::fd::OwnedFd::from(ours));
    peer.write_all(b"ready")?;
    let l2 = lp.clone();
    let (first, sent, second) = run(&lp, async move {
        let first = l2.sock_recv(&ours, 16).await;
        let sent = l2.sock_sendall(&ours, b"back").await;
        let second = l2.sock_recv(&ours, 16).await;
        Ok((first, sent, second))
    })?;
    assert_eq!(first?, b"ready");
    sent?;
    let mut back = [0; 4];
    peer.read_exact(&mut back)?;
    assert_eq!(&back, b"back");
    let err = second.err().ok_or("a blocking socket was waited on")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}

// A deliberate difference (docs/differences.md, H46; issue #14 item 4): the mode is read once
// per socket and loop, when the socket is first waited on (and again when a wait woke to
// nothing), not before every wait. A socket made blocking after that is served as a
// non-blocking one: its receives and sends pass MSG_DONTWAIT, so the loop never blocks.
#[test]
fn a_socket_made_blocking_between_two_waits_is_served_without_blocking_the_loop() -> TestResult {
    let lp = EventLoop::new()?;
    let (ours, peer) = stream_pair()?;
    let ours = std::rc::Rc::new(ours);
    for (round, blocking) in [(0u8, false), (1, true)] {
        ours.set_nonblocking(!blocking)?;
        let (l2, o2) = (lp.clone(), ours.clone());
        let recv = lp.create_task(async move { l2.sock_recv(&o2, 16).await })?;
        lp.run_until_complete(sleep(0.01))??;
        assert!(!recv.done(), "round {round} waits");
        (&peer).write_all(&[round])?;
        assert_eq!(lp.run_until_complete(recv)???, [round]);
    }
    Ok(())
}
