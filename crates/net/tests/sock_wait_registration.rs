//! The sock_* operations' waits on the loop (issue #14, item 4): a socket's registration
//! outlives each wait, so consecutive operations on the same socket do not add and delete it
//! around every wait, and its mode is read once per socket. Each hazard of a registration that
//! stays has a test: `remove_reader`/`add_reader` after an operation, a cancelled wait, two
//! waits on one socket, a reader beside a wait, a closed loop. Closed and reused fd numbers are
//! in `sock_wait_fd_reuse.rs`.

mod util;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep, wait_for};
use util::{TestResult, epoll_events, run, stream_pair};

/// The readiness bits of an epoll mask (what is armed), without the mode flags.
const READINESS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLPRI) as u32;

// A receive that waited leaves its socket in the loop's epoll set, disarmed, so the next wait
// re-arms it with one `epoll_ctl` (asyncio's selector loop adds and removes a reader around
// each wait: `selector_events.py`, `sock_recv` / `_sock_read_done`).
#[test]
fn a_receive_that_waited_leaves_its_socket_registered_and_disarmed() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    for round in 0..3u8 {
        let (l2, a2) = (lp.clone(), a.clone());
        let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
        lp.run_until_complete(sleep(0.01))??;
        assert!(!recv.done(), "round {round}: nothing was sent yet");
        (&b).write_all(&[round])?;
        assert_eq!(lp.run_until_complete(recv)???, [round]);
        let events = epoll_events(fd)?.ok_or("the registration did not outlive the wait")?;
        assert_eq!(
            events & READINESS,
            0,
            "round {round}: still armed: {events:#x}"
        );
    }
    // Data that comes while nobody waits wakes nobody and stays for the next receive.
    (&b).write_all(b"later")?;
    lp.run_until_complete(sleep(0.01))??;
    let l3 = lp.clone();
    assert_eq!(
        run(&lp, async move { l3.sock_recv(&a, 16).await })?,
        b"later"
    );
    Ok(())
}

// CPython: selector_events.py, `_sock_read_done` removes the reader the receive added, so
// `remove_reader` after it answers False; a reader added afterwards is the user's alone.
#[test]
fn remove_and_add_reader_after_a_receive_act_on_the_users_reader_only() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    (&b).write_all(b"one")?;
    assert_eq!(lp.run_until_complete(recv)???, b"one");
    assert!(!lp.remove_reader(fd), "the receive left no reader");

    let calls = Rc::new(Cell::new(0));
    let (c2, l3, a3) = (calls.clone(), lp.clone(), a.clone());
    lp.add_reader(fd, move || {
        let mut buf = [0; 16];
        let _ = (&*a3).read(&mut buf);
        c2.set(c2.get() + 1);
        l3.stop();
    })?;
    (&b).write_all(b"two")?;
    lp.run_forever()?;
    assert_eq!(calls.get(), 1, "the user's reader ran");
    assert!(lp.remove_reader(fd), "the reader was the user's");
    assert_eq!(
        epoll_events(fd)?,
        None,
        "nothing left to watch the socket for"
    );

    // And a receive after all that still waits and completes.
    let (l4, a4) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l4.sock_recv(&a4, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    (&b).write_all(b"three")?;
    assert_eq!(lp.run_until_complete(recv)???, b"three");
    Ok(())
}

// CPython: test_sock_lowlevel.py::BaseSockTestsMixin::test_cancel_sock_accept, for a receive:
// a cancelled wait consumes nothing; its armed registration fires once for nobody.
#[test]
fn a_cancelled_receive_consumes_nothing_and_the_next_one_gets_the_data() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    let (l2, a2) = (lp.clone(), a.clone());
    let timed_out = run(&lp, async move {
        Ok(wait_for(l2.sock_recv(&a2, 16), 0.02).await)
    })?;
    assert!(timed_out.is_err(), "nothing was sent: {timed_out:?}");
    (&b).write_all(b"kept")?;
    // The registration armed for the cancelled receive fires, for nobody, and is spent. A
    // sleep may end before the loop polls once (a slow start, e.g. under valgrind, makes its
    // timer due at the first iteration), so the loop turns until the poll has happened.
    let mut events = epoll_events(fd)?.ok_or("the registration went")?;
    for _ in 0..200 {
        if events & READINESS == 0 {
            break;
        }
        lp.run_until_complete(sleep(0.01))??;
        events = epoll_events(fd)?.ok_or("the registration went")?;
    }
    assert_eq!(events & READINESS, 0, "still armed: {events:#x}");
    let l3 = lp.clone();
    assert_eq!(
        run(&lp, async move { l3.sock_recv(&a, 16).await })?,
        b"kept"
    );
    Ok(())
}

// A receive and a send waiting on one socket share one registration: the receive's event
// must not disarm the send's wait (a one-shot registration disarms as a whole).
#[test]
fn a_receive_and_a_send_wait_on_one_socket_and_both_complete() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let (l2, a2) = (lp.clone(), a.clone());
    let send = lp.create_task(async move {
        let big = vec![5u8; 8 << 20];
        l2.sock_sendall(&a2, &big).await
    })?;
    let (l3, a3) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l3.sock_recv(&a3, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!send.done() && !recv.done(), "both wait");

    (&b).write_all(b"ping")?;
    assert_eq!(lp.run_until_complete(recv)???, b"ping");
    assert!(!send.done(), "nobody read yet");

    // Read everything on a thread while the loop sends.
    let reader = std::thread::spawn(move || {
        let mut b = b;
        let mut got = 0usize;
        let mut buf = vec![0; 1 << 16];
        b.set_nonblocking(false)?;
        while got < 8 << 20 {
            let n = b.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok::<usize, io::Error>(got)
    });
    lp.run_until_complete(wait_for(send, 30.0))????;
    let got = reader.join().map_err(|_| "the reader panicked")??;
    assert_eq!(got, 8 << 20);
    Ok(())
}

// A user's writer on the socket (level-triggered) beside a receive's wait (one-shot): each
// gets its own events, and the receive's end leaves the writer as it was.
#[test]
fn a_users_writer_beside_a_receive_keeps_running_after_it() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    let writes = Rc::new(Cell::new(0u32));
    let w2 = writes.clone();
    lp.add_writer(fd, move || w2.set(w2.get() + 1))?;
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    (&b).write_all(b"data")?;
    assert_eq!(lp.run_until_complete(recv)???, b"data");
    let before = writes.get();
    assert!(before > 0, "the writer ran while the receive waited");
    lp.run_until_complete(sleep(0.01))??;
    assert!(
        writes.get() > before,
        "the writer runs on after the receive"
    );
    assert!(lp.remove_writer(fd));
    // No wait armed and no writer: the registration went with the writer's.
    assert_eq!(epoll_events(fd)?, None);
    let (l3, a3) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l3.sock_recv(&a3, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    (&b).write_all(b"again")?;
    assert_eq!(lp.run_until_complete(recv)???, b"again");
    Ok(())
}

// CPython: test_events.py::EventLoopTestsMixin::test_close (a closed loop refuses new work).
// A receive waiting when the loop closes is dropped with the loop's tasks, and a receive made
// afterwards fails with the closed error rather than hanging.
#[test]
fn a_receive_waiting_when_the_loop_closes_ends_and_a_new_one_is_refused() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, _b) = stream_pair()?;
    let a = Rc::new(a);
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!recv.done());
    lp.close()?;
    drop(recv);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut late = std::pin::pin!(lp.sock_recv(&a, 16));
    match late.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(err)) => assert!(err.to_string().contains("closed"), "{err}"),
        other => return Err(format!("a receive on a closed loop: {other:?}").into()),
    }
    Ok(())
}

// A deliberate difference (docs/differences.md): asyncio's receive waits with a reader, so
// `add_reader` or `remove_reader` on its fd while it waits takes the reader away and the
// receive never completes. evloop's wait is its own: the user's reader runs beside it, and
// `remove_reader` touches only the user's.
#[test]
fn a_reader_added_or_removed_while_a_receive_waits_leaves_the_receive_alone() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let fd = a.as_raw_fd();
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!lp.remove_reader(fd), "the receive's wait is no reader");
    let calls = Rc::new(Cell::new(0u32));
    let c2 = calls.clone();
    lp.add_reader(fd, move || c2.set(c2.get() + 1))?;
    (&b).write_all(b"both")?;
    assert_eq!(lp.run_until_complete(wait_for(recv, 10.0))????, b"both");
    assert!(calls.get() >= 1, "the user's reader saw the data too");
    assert!(lp.remove_reader(fd), "the user's reader stayed");
    Ok(())
}
