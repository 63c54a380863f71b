//! A socket's registration outlives its operations' waits (issue #14, item 4), and a closed
//! socket does not tell the loop: its fd number is reused at once by the next socket. These
//! tests make that happen on purpose and check that the new socket's operations neither hang
//! nor see the old socket's events as their own. The tests of this file take one lock, so
//! that the fd numbers they count on are not taken by another test of the binary meanwhile.

mod util;

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Mutex;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep, wait_for};
use socket2::Socket;
use util::{TestResult, run, stream_pair};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A receive on `sock` that must wait, fed by `peer` after 20 ms; bounded by 10 s.
fn receive_after_a_wait(lp: &EventLoop, sock: Socket, peer: Socket) -> io::Result<Vec<u8>> {
    let sock = Rc::new(sock);
    let (l2, s2) = (lp.clone(), sock.clone());
    let recv = lp.create_task(async move { l2.sock_recv(&s2, 16).await })?;
    lp.run_until_complete(sleep(0.02))??;
    assert!(!recv.done(), "nothing was sent yet");
    (&peer).write_all(b"new")?;
    lp.run_until_complete(wait_for(recv, 10.0))???
}

// The plain case: the old socket's registration went with its file, the new socket under the
// same number is registered afresh (the loop's re-arm meets ENOENT and adds it).
#[test]
fn a_socket_closed_after_a_wait_and_its_reused_number_waits_afresh() -> TestResult {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lp = EventLoop::new()?;
    let (old, old_peer) = stream_pair()?;
    let fd = old.as_raw_fd();
    assert_eq!(receive_after_a_wait(&lp, old, old_peer)?, b"new");
    // `old` is closed now; the lowest free number is its own.
    let (new, new_peer) = stream_pair()?;
    assert_eq!(new.as_raw_fd(), fd, "the number was not reused");
    assert_eq!(receive_after_a_wait(&lp, new, new_peer)?, b"new");
    Ok(())
}

// The hard case: the old file outlives its number (a `dup` keeps it open) while its wait is
// still armed, so the kernel keeps its registration, under the same key as the new socket's.
// Its event then wakes the new socket's receive for nothing: the receive finds no data, waits
// again, and completes with the new socket's own data.
#[test]
fn an_old_file_alive_under_a_dup_only_wakes_the_new_socket_for_nothing() -> TestResult {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lp = EventLoop::new()?;
    let (old, old_peer) = stream_pair()?;
    let fd = old.as_raw_fd();
    let old = Rc::new(old);
    let (l2, o2) = (lp.clone(), old.clone());
    // Armed, then cancelled: the registration stays armed in the kernel.
    let timed_out = run(&lp, async move {
        Ok(wait_for(l2.sock_recv(&o2, 16), 0.02).await)
    })?;
    assert!(timed_out.is_err());
    // SAFETY: `dup` makes a new fd for the same open file; it is owned by `alive` alone.
    let alive = unsafe { OwnedFd::from_raw_fd(libc::dup(fd)) };
    drop(old);
    let (new, new_peer) = stream_pair()?;
    assert_eq!(new.as_raw_fd(), fd, "the number was not reused");
    let new = Rc::new(new);
    let (l3, n3) = (lp.clone(), new.clone());
    let recv = lp.create_task(async move { l3.sock_recv(&n3, 16).await })?;
    lp.run_until_complete(sleep(0.02))??;
    // The old file becomes readable: its armed registration fires under the shared number.
    (&old_peer).write_all(b"old")?;
    lp.run_until_complete(sleep(0.02))??;
    assert!(!recv.done(), "the new socket got nothing yet");
    (&new_peer).write_all(b"new")?;
    let got = lp.run_until_complete(wait_for(recv, 10.0))????;
    assert_eq!(got, b"new");
    drop(alive);
    Ok(())
}
