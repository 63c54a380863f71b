//! The cross-thread wake-up: [`Waker`] and the state it shares with the
//! reactor.
//!
//! # Ground rules
//!
//! One flag, `sleeping`, says whether the loop thread is (about to be)
//! blocked in [`Reactor::poll`]. Wakers write one byte to the reactor's wake
//! pipe (registered in the poller, level-triggered, under [`WAKE_KEY`]) only
//! when they take that flag from `true` to `false`, so a storm of wake-ups
//! costs at most one write per sleep. The poll that sees the pipe readable
//! drains it. (polling's own `Poller::notify` is not used: its notifier is a
//! one-shot entry that only a full `Poller::wait` re-arms, which would cost
//! five extra syscalls per wake-up on the reactor's direct epoll path.)
//!
//! - **The loop thread** calls [`Reactor::prepare_sleep`] (stores `true`,
//!   then a `SeqCst` fence), *then* re-checks its cross-thread queue, and
//!   only if that is empty calls [`Reactor::poll`] with a non-zero timeout.
//!   `poll` stores `false` once the wait has returned, whatever the timeout.
//! - **Another thread** first pushes its work onto the loop's queue, *then*
//!   calls [`Waker::wake`] (a `SeqCst` fence, then a read of the flag, and a
//!   `swap(false)` that writes the wake pipe only if it saw `true`).
//! - Nobody else touches `sleeping`.
//!
//! Why no wake-up is lost: the two fences are ordered one way or the other.
//! If the waker's fence comes first, the loop's re-check (after its own
//! fence) sees the pushed work and does not sleep. If the loop's fence comes
//! first, the waker reads `true` (or a later `false` written by another
//! waker that then wrote the pipe, or by a `poll` that already returned
//! and will be followed by a re-check). The fences make this hold for any
//! queue, whatever orderings its own operations use.
//!
//! A notification can be left over, for example when a waker swaps the flag
//! just as a poll returns for another reason. The pipe then stays readable
//! and the next wait returns at once, with nothing to report: one spurious
//! iteration, never a lost or a duplicated callback.
//!
//! [`Reactor::poll`]: crate::Reactor::poll
//! [`Reactor::prepare_sleep`]: crate::Reactor::prepare_sleep

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use polling::Poller;

/// The poller key of the wake pipe's read end: outside the fd range, below
/// the signal pipe's key and polling's own `usize::MAX`.
pub(crate) const WAKE_KEY: usize = usize::MAX - 2;

/// How much one `read` takes out of the wake pipe while draining it.
const DRAIN_CHUNK: usize = 64;

/// The poller, the `sleeping` flag and the wake pipe, shared by a reactor and
/// its wakers.
#[derive(Debug)]
pub(crate) struct WakeState {
    /// The poller: the reactor waits on it. Declared first so that it is
    /// dropped (and the epoll set closed) before the pipe it watches.
    pub(crate) poller: Poller,
    /// Whether the loop thread is (about to be) blocked in a poll.
    sleeping: AtomicBool,
    /// The wake pipe: the poller watches `read_end`, wakers write `write_end`.
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl WakeState {
    /// Wraps a fresh poller whose set already holds `read_end` under
    /// [`WAKE_KEY`]; the loop starts awake.
    pub(crate) fn new(poller: Poller, (read_end, write_end): (OwnedFd, OwnedFd)) -> WakeState {
        WakeState {
            poller,
            sleeping: AtomicBool::new(false),
            read_end,
            write_end,
        }
    }

    /// Empties the wake pipe (a poll saw it readable).
    pub(crate) fn drain(&self) -> io::Result<()> {
        let mut chunk = [0u8; DRAIN_CHUNK];
        loop {
            // SAFETY: `chunk` is valid for `DRAIN_CHUNK` bytes of writing; the
            // fd is open because `self` owns it.
            let n = unsafe {
                libc::read(
                    self.read_end.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    DRAIN_CHUNK,
                )
            };
            match usize::try_from(n) {
                Ok(DRAIN_CHUNK) => continue,
                Ok(_) => return Ok(()),
                Err(_) => {
                    let err = io::Error::last_os_error();
                    match err.kind() {
                        io::ErrorKind::WouldBlock => return Ok(()),
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(err),
                    }
                }
            }
        }
    }

    /// Writes one wake-up byte.
    fn notify(&self) {
        let byte = 1u8;
        // SAFETY: `byte` is valid for one byte of reading; the fd is open
        // because `self` owns it. A full pipe (EAGAIN) already holds a
        // wake-up, so the result needs no handling.
        let _ = unsafe { libc::write(self.write_end.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }

    /// The loop thread announces that it may sleep (see the ground rules).
    pub(crate) fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        // Orders the store above before the caller's re-check of its queue.
        fence(Ordering::SeqCst);
    }

    /// The loop thread is awake again: wakers stop writing.
    pub(crate) fn awake(&self) {
        // A plain load first keeps the hot path (never slept) free of writes
        // to a cache line that wakers on other cores read.
        if self.sleeping.load(Ordering::Relaxed) {
            self.sleeping.store(false, Ordering::SeqCst);
        }
    }

    /// Whether the loop has announced a sleep that no wake has ended yet.
    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::SeqCst)
    }
}

/// A cloneable handle that wakes a [`Reactor::poll`] blocked on another
/// thread.
///
/// `Waker` is `Send + Sync` and outlives its reactor harmlessly (a wake after
/// the reactor is gone does nothing). It only writes when the reactor has
/// announced a sleep with [`Reactor::prepare_sleep`]; the crate docs'
/// wake-up protocol says why no wake-up is lost that way.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::raw::Reactor;
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let waker = reactor.waker();
///
/// reactor.prepare_sleep();
/// let thread = std::thread::spawn(move || waker.wake());
/// // Blocks until the other thread's wake-up.
/// reactor.poll(None, &mut Vec::new())?;
/// # thread.join().map_err(|_| std::io::Error::other("waker thread panicked"))?;
/// # Ok(())
/// # }
/// ```
///
/// [`Reactor::poll`]: crate::Reactor::poll
/// [`Reactor::prepare_sleep`]: crate::Reactor::prepare_sleep
#[derive(Clone, Debug)]
pub struct Waker {
    /// Shared with the reactor and every clone.
    state: Arc<WakeState>,
}

impl Waker {
    /// Wraps the shared state of a reactor.
    pub(crate) fn new(state: Arc<WakeState>) -> Waker {
        Waker { state }
    }

    /// Wakes the reactor if it sleeps or is about to sleep; otherwise does
    /// nothing (no system call).
    ///
    /// Push the work onto the loop's queue *before* calling this. Of many
    /// calls made during one sleep, only the first writes to the wake pipe.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::raw::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let waker = reactor.waker();
    /// reactor.prepare_sleep();
    /// for _ in 0..1000 {
    ///     waker.wake(); // one write, 999 no-ops
    /// }
    /// assert_eq!(reactor.poll(Some(Duration::from_secs(5)), &mut Vec::new())?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wake(&self) {
        // Orders the caller's push before the read of `sleeping`.
        fence(Ordering::SeqCst);
        if self.state.sleeping.load(Ordering::Relaxed)
            && self.state.sleeping.swap(false, Ordering::SeqCst)
        {
            self.state.notify();
        }
    }
}
