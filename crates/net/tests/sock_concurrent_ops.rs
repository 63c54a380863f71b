//! Two operations on one socket at once: conformance K58 [DIVERGE-OK]. asyncio's second
//! `sock_recv` silently replaces the first one's reader, which then never completes; evloop
//! refuses the second one with `ResourceBusy` and the first carries on.

mod util;

use std::io::{self, Write};
use std::rc::Rc;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep};
use util::{TestResult, run, stream_pair};

// CPython: observed on 3.13, no test of its own (K58).
#[test]
fn a_second_concurrent_recv_is_busy_and_the_first_still_completes() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let (l2, a2) = (lp.clone(), a.clone());
    let first = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    assert!(!first.done());

    let (l3, a3) = (lp.clone(), a.clone());
    let err = run(&lp, async move { l3.sock_recv(&a3, 16).await }).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
    assert!(err.to_string().contains("sock_recv"), "{err}");

    (&b).write_all(b"data")?;
    assert_eq!(lp.run_until_complete(first)???, b"data");
    // Once the first is done, the next receive on the socket is fine again.
    (&b).write_all(b"more")?;
    let l4 = lp.clone();
    assert_eq!(
        run(&lp, async move { l4.sock_recv(&a, 16).await })?,
        b"more"
    );
    Ok(())
}

#[test]
fn a_pending_receive_does_not_block_a_send_on_the_same_socket() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = stream_pair()?;
    let a = Rc::new(a);
    let (l2, a2) = (lp.clone(), a.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&a2, 16).await })?;
    lp.run_until_complete(sleep(0.01))??;
    let l3 = lp.clone();
    run(&lp, async move { l3.sock_sendall(&a, b"ping").await })?;
    let mut got = [0; 4];
    io::Read::read_exact(&mut &b, &mut got)?;
    assert_eq!(&got, b"ping");
    (&b).write_all(b"pong")?;
    assert_eq!(lp.run_until_complete(recv)???, b"pong");
    Ok(())
}
