//! `sock_sendfile` to a closed peer in a process whose SIGPIPE has its default, fatal
//! disposition (a C host program, or Rust's `-Zon-broken-pipe=kill`): an error, never the
//! signal. `sendfile(2)` has no `MSG_NOSIGNAL`. Alone in its test binary, since it changes a
//! process-wide disposition.

mod util;

use std::io;

use evloop_net::LoopSendfileExt;
use evloop_sched::EventLoop;
use util::sendfile::pattern_file;
use util::{TestResult, run, stream_pair};

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile_close_peer_in_the_middle_of_receiving
// (Python ignores SIGPIPE at start-up, so the send raises an error; evloop blocks SIGPIPE
// around sendfile(2) and takes the pending signal, whatever the disposition).
#[test]
fn sendfile_to_a_closed_peer_is_an_error_under_the_default_sigpipe() -> TestResult {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE; this binary's only test runs here.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(old, libc::SIG_ERR);
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(64 * 1024)?;
    let (ours, peer) = stream_pair()?;
    drop(peer);
    let l2 = lp.clone();
    let sent = run(&lp, async move {
        Ok(l2.sock_sendfile(&ours, &file, 0, None, false).await)
    })?;
    assert_eq!(
        sent.err().map(|e| e.kind()),
        Some(io::ErrorKind::BrokenPipe)
    );
    // No SIGPIPE is left pending on the thread either, to strike when it is unblocked.
    // SAFETY: an all-zero sigset_t is valid storage for sigpending to fill.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pending` is a valid, writable sigset_t.
    assert_eq!(unsafe { libc::sigpending(&mut pending) }, 0);
    // SAFETY: `pending` was filled in by sigpending.
    assert_eq!(unsafe { libc::sigismember(&pending, libc::SIGPIPE) }, 0);
    Ok(())
}
