//! How the loop learns that a child exited, and who reaps it.
//!
//! # Ground rules
//!
//! - A child is reaped exactly once, and only after nothing can signal it any more: while it
//!   is unreaped its pid stays ours, so `kill(pid)` cannot reach a stranger that reused it.
//! - On Linux 5.3 and later the watch is a pidfd, readable once the child exits; the loop's
//!   thread reaps (`waitpid(WNOHANG)`). Where `pidfd_open` is missing (an older kernel, a
//!   seccomp filter), a thread blocks in `waitid(WNOWAIT)`, which waits without reaping, and
//!   makes an eventfd readable; the loop's thread still reaps (asyncio's
//!   `ThreadedChildWatcher`, without its window where a reaped pid could still be signalled).
//! - When the loop will never reap a child (its loop closed, or its transport went away
//!   unreaped), [`Watch::abandon`] hands it to someone who will: a reaper thread blocked in
//!   `waitpid`, or the watcher thread itself. No zombie is left either way.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;

use log::Level;

use super::sys::{self, Pid};

/// The watcher thread still waits for the child.
const WATCHING: u8 = 0;
/// The watcher thread saw the exit and signalled the eventfd: the loop's thread reaps.
const EXITED: u8 = 1;
/// The loop gave the child up before its exit: the watcher thread reaps it.
const ABANDONED: u8 = 2;

/// The stack of a watcher or reaper thread: it only waits, so a small one does.
const THREAD_STACK: usize = 64 * 1024;

#[cfg(test)]
thread_local! {
    /// Tests force the thread watcher on kernels that have pidfds.
    pub(crate) static FORCE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The exit watch of one child.
#[derive(Debug)]
pub(crate) enum Watch {
    /// A pidfd, readable once the child exits.
    Pidfd(OwnedFd),
    /// An eventfd a watcher thread makes readable once the child exits.
    Thread {
        event: Arc<OwnedFd>,
        state: Arc<AtomicU8>,
    },
}

impl Watch {
    /// Starts watching `pid`: a pidfd where the kernel has them, else a watcher thread.
    ///
    /// # Errors
    ///
    /// The OS error of `eventfd` or of starting the thread, where pidfds are missing.
    pub(crate) fn start(pid: Pid) -> io::Result<Watch> {
        #[cfg(test)]
        let forced = FORCE_THREAD.with(|f| f.get());
        #[cfg(not(test))]
        let forced = false;
        if !forced {
            if let Ok(fd) = sys::pidfd_open(pid) {
                return Ok(Watch::Pidfd(fd));
            }
        }
        let event = Arc::new(sys::eventfd()?);
        let state = Arc::new(AtomicU8::new(WATCHING));
        let (event2, state2) = (event.clone(), state.clone());
        thread::Builder::new()
            .name("evloop-child-watcher".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                sys::wait_exited_no_reap(pid);
                let told = state2
                    .compare_exchange(WATCHING, EXITED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if told {
                    sys::eventfd_signal(&event2);
                } else {
                    // Abandoned by the loop: nobody else will reap it.
                    sys::reap_blocking(pid);
                }
            })?;
        Ok(Watch::Thread { event, state })
    }

    /// The fd to watch for reading: readable once the child exited.
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Watch::Pidfd(fd) => fd.as_raw_fd(),
            Watch::Thread { event, .. } => event.as_raw_fd(),
        }
    }

    /// The loop will never reap `pid`: hands it to someone who will, so that it does not stay
    /// a zombie. A child still running is waited for in the background (kill it first if it
    /// must not outlive the loop).
    pub(crate) fn abandon(self, pid: Pid) {
        if let Watch::Thread { state, .. } = &self {
            let handed = state
                .compare_exchange(WATCHING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if !handed {
                // The thread saw the exit and left the reaping to us: it is immediate.
                sys::reap_blocking(pid);
            }
            return;
        }
        if let sys::Reaped::Exited(_) = sys::try_reap(pid) {
            return;
        }
        reap_in_background(pid);
    }
}

/// Reaps `pid` on a thread of its own, blocking until it exits; inline if no thread can start.
pub(crate) fn reap_in_background(pid: Pid) {
    let spawned = thread::Builder::new()
        .name("evloop-reaper".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            sys::reap_blocking(pid);
        });
    if let Err(err) = spawned {
        evloop_sched::log_report(
            Level::Warn,
            &format!("cannot start a reaper thread for pid {pid} ({err}): waiting for it here"),
        );
        sys::reap_blocking(pid);
    }
}
