//! POSIX signals delivered into one reactor: validation, the per-reactor
//! inbox the signal handler writes to, and the set of watched signals.
//!
//! # Ground rules
//!
//! - **The signal handler** (any thread, any moment) touches only the
//!   reactor's [`Inbox`]: it stores `true` in the signal's pending flag, then
//!   writes one byte to the non-blocking self-pipe. Both are async-signal-safe;
//!   a full pipe (`EAGAIN`) is fine, since it is already readable.
//! - **The loop thread**, when a poll reports the pipe's read end, reads the
//!   pipe empty *first* and swaps the pending flags *second*. A signal that
//!   lands between the two is either seen by the swap or leaves a fresh byte
//!   behind that makes the next poll look again, so none is lost; a byte
//!   whose flag was already taken only costs a look.
//! - Each reactor has its own pipe and flags, so reactors on different threads
//!   can watch signals, and several can watch the same one (each is told).
//! - The inbox is shared (`Arc`) with the handler closures registered in
//!   signal-hook-registry, so the pipe's write end stays open until the last
//!   closure is unregistered and dropped: a handler never writes to a closed
//!   (or reused) fd.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use polling::{Event, PollMode, Poller};
use signal_hook_registry::SigId;

use crate::disposition;
use crate::sys::{self, NSIG};

/// The polling key of the signal pipe's read end. Keys of user fds are the
/// fds themselves (below `i32::MAX`), and polling keeps `usize::MAX` for its
/// own notifier, so the slot just below it is free for us.
pub(crate) const SIGNAL_KEY: usize = usize::MAX - 1;

/// How many pipe bytes one `read` drains. Any size is correct (the pipe is
/// read until empty); 64 covers one byte per signal number in one call.
const DRAIN_CHUNK: usize = 64;

/// Checks that `signum` can be watched by a reactor.
///
/// The messages are asyncio's, so the scheduler can pass these errors on.
///
/// # Errors
///
/// `InvalidInput` with:
/// - `"invalid signal number N"` for 0, a negative number, a number not below
///   the platform's `NSIG`, or one the OS does not have (glibc reserves 32
///   and 33);
/// - `"sig N cannot be caught"` for `SIGKILL` and `SIGSTOP`;
/// - `"sig N cannot be watched: it reports a fault"` for `SIGILL`, `SIGFPE`
///   and `SIGSEGV`: their handler must not return to the faulting code, so a
///   flag-and-pipe handler would fault forever.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use evloop::raw::validate_signal;
/// use evloop::signal::{SIGINT, SIGKILL};
///
/// assert!(validate_signal(SIGINT).is_ok());
/// let err = validate_signal(SIGKILL).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert_eq!(err.to_string(), "sig 9 cannot be caught");
/// assert_eq!(validate_signal(0).unwrap_err().to_string(), "invalid signal number 0");
/// ```
pub fn validate_signal(signum: i32) -> io::Result<()> {
    check_range(signum)?;
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(invalid(format!("sig {signum} cannot be caught")));
    }
    if signal_hook_registry::FORBIDDEN.contains(&signum) {
        return Err(invalid(format!(
            "sig {signum} cannot be watched: it reports a fault"
        )));
    }
    // The OS knows which numbers inside the range really exist.
    disposition::current_action(signum)
        .map(drop)
        .map_err(|_| invalid_number(signum))
}

/// Checks only that `signum` lies in `1..NSIG`.
fn check_range(signum: i32) -> io::Result<usize> {
    usize::try_from(signum)
        .ok()
        .filter(|&index| index > 0 && index < NSIG)
        .ok_or_else(|| invalid_number(signum))
}

/// The error for a number that is no signal.
fn invalid_number(signum: i32) -> io::Error {
    invalid(format!("invalid signal number {signum}"))
}

/// An `InvalidInput` error with `message`.
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// What the signal handler writes to, shared with the handler closures.
struct Inbox {
    /// One flag per signal number: delivered since the loop last looked.
    pending: [AtomicBool; NSIG],
    /// The write end of the self-pipe (non-blocking, close-on-exec).
    write_end: OwnedFd,
}

impl Inbox {
    /// The whole signal handler. Async-signal-safe: an atomic store and a
    /// `write` to an fd this inbox keeps open; no allocation, lock or panic.
    fn deliver(&self, index: usize) {
        if let Some(flag) = self.pending.get(index) {
            flag.store(true, Ordering::Release);
        }
        let byte = 1u8;
        // SAFETY: the buffer is one valid byte; the fd is open because this
        // inbox owns it and is alive for the call. The result is ignored on
        // purpose: `EAGAIN` means the pipe is full, hence already readable.
        unsafe { libc::write(self.write_end.as_raw_fd(), (&raw const byte).cast(), 1) };
    }
}

/// The signals one reactor watches, its self-pipe, and what has arrived.
pub(crate) struct Signals {
    /// Created on the first watch: many loops never use signals.
    pipe: Option<Pipe>,
    /// Each watched signal with the registration that feeds it.
    watched: Vec<(i32, SigId)>,
    /// Bit `n` set: signal `n` arrived and was not taken yet.
    delivered: u128,
}

/// The self-pipe of one reactor.
struct Pipe {
    /// Shared with the registered handler closures.
    inbox: Arc<Inbox>,
    /// Registered in the poller under [`SIGNAL_KEY`]. It is closed only when
    /// the reactor drops, and closing removes it from the epoll set.
    read_end: OwnedFd,
}

// The delivered set is a `u128` bit set.
const _: () = assert!(NSIG <= 128);

impl Signals {
    /// No signal watched, no pipe yet.
    pub(crate) fn new() -> Signals {
        Signals {
            pipe: None,
            watched: Vec::new(),
            delivered: 0,
        }
    }

    /// Starts delivering `signum` to this reactor; idempotent.
    pub(crate) fn watch(&mut self, poller: &Poller, signum: i32) -> io::Result<()> {
        validate_signal(signum)?;
        if self.is_watched(signum) {
            return Ok(());
        }
        let index = check_range(signum)?;
        let inbox = self.inbox(poller)?;
        // SAFETY: the action is `Inbox::deliver`, which is async-signal-safe
        // (see there); the closure owns its `Arc` and never drops it while
        // running.
        let id = unsafe { disposition::watch(signum, move || inbox.deliver(index)) }?;
        self.watched.push((signum, id));
        Ok(())
    }

    /// Stops delivering `signum`; `false` if it was not watched.
    pub(crate) fn unwatch(&mut self, signum: i32) -> io::Result<bool> {
        let index = check_range(signum)?;
        let Some(position) = self.watched.iter().position(|&(s, _)| s == signum) else {
            return Ok(false);
        };
        let (_, id) = self.watched.swap_remove(position);
        // Unregister first, so no delivery can slip in after the clean-up.
        let unwatched = disposition::unwatch(signum, id);
        // A signal that arrived but was not taken is forgotten: the loop has
        // no handler for it any more.
        if let Some(flag) = self.pipe.as_ref().and_then(|p| p.inbox.pending.get(index)) {
            flag.store(false, Ordering::Relaxed);
        }
        self.delivered &= !(1u128 << index);
        unwatched?;
        Ok(true)
    }

    /// Whether `signum` is watched by this reactor.
    pub(crate) fn is_watched(&self, signum: i32) -> bool {
        self.watched.iter().any(|&(s, _)| s == signum)
    }

    /// Empties the pipe and records which signals arrived (loop thread, when
    /// the poll reported [`SIGNAL_KEY`]).
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        let Some(pipe) = &self.pipe else {
            return Ok(());
        };
        let mut chunk = [0u8; DRAIN_CHUNK];
        loop {
            // SAFETY: `chunk` is valid for `DRAIN_CHUNK` bytes of writing; the
            // fd is open because `pipe` owns it.
            let n = unsafe {
                libc::read(
                    pipe.read_end.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    DRAIN_CHUNK,
                )
            };
            if n > 0 {
                continue;
            }
            if n == 0 {
                break; // No writer left: nothing more can come.
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => break,
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
        for (index, flag) in pipe.inbox.pending.iter().enumerate() {
            if flag.swap(false, Ordering::Acquire) {
                self.delivered |= 1u128 << index;
            }
        }
        Ok(())
    }

    /// Appends the signals that arrived since the last call, ascending, each
    /// once.
    pub(crate) fn take(&mut self, out: &mut Vec<i32>) {
        let mut rest = self.delivered;
        self.delivered = 0;
        while rest != 0 {
            let index = rest.trailing_zeros();
            rest &= rest - 1;
            // `index` < NSIG <= 128, so it fits an `i32` (checked at compile
            // time above); the fallback is unreachable.
            out.push(i32::try_from(index).unwrap_or(i32::MAX));
        }
    }

    /// Unwatches everything; errors are dropped because there is nobody to
    /// hand them to (used on drop).
    pub(crate) fn unwatch_all(&mut self) {
        for (signum, id) in std::mem::take(&mut self.watched) {
            let _ = disposition::unwatch(signum, id);
        }
        self.delivered = 0;
    }

    /// The inbox of the self-pipe, which is made and registered on first use.
    fn inbox(&mut self, poller: &Poller) -> io::Result<Arc<Inbox>> {
        let pipe = match self.pipe.take() {
            Some(pipe) => pipe,
            None => Pipe::open(poller)?,
        };
        Ok(Arc::clone(&self.pipe.insert(pipe).inbox))
    }
}

impl Pipe {
    /// Makes a self-pipe and registers its read end in `poller`.
    fn open(poller: &Poller) -> io::Result<Pipe> {
        let (read_end, write_end) = sys::nonblocking_pipe()?;
        // SAFETY: `read_end` is open and moves into the `Pipe` returned below,
        // which the caller stores in the same `Reactor` as `poller`; it is
        // closed only when the reactor drops, and a closed fd leaves the epoll
        // set by itself. On error it is closed here, never having been added.
        unsafe {
            poller.add_with_mode(
                read_end.as_raw_fd(),
                Event::readable(SIGNAL_KEY),
                PollMode::Level,
            )
        }?;
        let inbox = Arc::new(Inbox {
            pending: [const { AtomicBool::new(false) }; NSIG],
            write_end,
        });
        Ok(Pipe { inbox, read_end })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.unwatch_all();
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watched: Vec<i32> = self.watched.iter().map(|&(s, _)| s).collect();
        f.debug_struct("Signals")
            .field("watched", &watched)
            .field("pipe", &self.pipe.as_ref().map(|p| p.read_end.as_raw_fd()))
            .finish()
    }
}
