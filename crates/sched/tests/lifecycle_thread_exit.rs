//! A loop left open on a thread that ends is closed then (issue 12, defect 6). Alone in its
//! test binary: it counts the process's open fds, which other tests would change meanwhile.

use std::io;
use std::thread;

use evloop_sched::EventLoop;

/// The number of fds open in this process.
fn open_fds() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

// CPython: base_events.BaseEventLoop.__del__ closes a loop the garbage collector finds
// unclosed. Ours: a loop kept alive only by a pending callback holding a clone of it (a cycle
// Rust never collects) is closed when the thread that made it ends, releasing its fds.
#[test]
fn a_thread_that_ends_closes_the_loops_it_left_open() -> io::Result<()> {
    let before = open_fds()?;
    let worker = thread::spawn(|| -> io::Result<usize> {
        for _ in 0..3 {
            let lp = EventLoop::new()?;
            let l2 = lp.clone();
            lp.call_later(3600.0, move || l2.stop())?;
            let l3 = lp.clone();
            lp.call_soon(move || l3.stop())?;
            drop(lp);
        }
        open_fds()
    });
    let during = worker
        .join()
        .map_err(|_| io::Error::other("the worker thread panicked"))??;
    let after = open_fds()?;
    assert!(during > before, "the loops held fds while the thread ran");
    assert_eq!(after, before, "the thread's end closed its loops");
    Ok(())
}
