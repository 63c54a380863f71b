//! `sock_sendall` to a closed peer in a process whose SIGPIPE has its default, fatal
//! disposition (a C host program, or Rust's `-Zon-broken-pipe=kill`): `BrokenPipe`, never the
//! signal. Alone in its test binary, since it changes a process-wide disposition.

mod util;

use std::io;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use util::{TestResult, run, stream_pair};

// CPython: sock::BaseSockTestsMixin (Python ignores SIGPIPE at start-up, so a send to a closed
// peer raises BrokenPipeError); evloop sends with MSG_NOSIGNAL, whatever the disposition.
#[test]
fn sendall_to_a_closed_peer_is_broken_pipe_under_the_default_sigpipe() -> TestResult {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE; this binary's only test runs here.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(old, libc::SIG_ERR);
    let lp = EventLoop::new()?;
    let (ours, peer) = stream_pair()?;
    drop(peer);
    let l2 = lp.clone();
    let sent = run(&lp, async move { Ok(l2.sock_sendall(&ours, b"x").await) })?;
    assert_eq!(
        sent.err().map(|e| e.kind()),
        Some(io::ErrorKind::BrokenPipe)
    );
    Ok(())
}
