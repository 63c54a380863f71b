//! [`Reactor`]: the interest set, one poll, and the entry points for
//! wake-ups and signals.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use crate::interest::{Interest, Ready};
use crate::registration::{Armed, Entry, Kernel, rearm, register};
use crate::signal::{SIGNAL_KEY, Signals};
use crate::sys::{self, Peeked, Peeker, nonblocking_pipe};
use crate::waker::{WAKE_KEY, WakeState, Waker};

/// How many kernel events one poll collects at most. More ready fds are not
/// lost: they stay ready (level-triggered) and come with the next poll. 1024
/// is polling's own default, 12 KiB of `epoll_event`s.
const EVENTS_CAPACITY: NonZeroUsize = match NonZeroUsize::new(1024) {
    Some(capacity) => capacity,
    None => panic!("the events capacity is a non-zero constant"),
};

// User fds are their own keys: every non-negative `RawFd` must stay clear of
// the reserved keys (polling's `usize::MAX`, our `SIGNAL_KEY`).
const _: () = assert!((RawFd::MAX as u64) < SIGNAL_KEY as u64);
const _: () = assert!((RawFd::MAX as u64) < WAKE_KEY as u64);

/// Readiness of fds, a cross-thread wake-up, and POSIX signals, for one loop.
///
/// Interest is level-triggered (asyncio's meaning): an fd is reported by
/// every [`poll`](Reactor::poll) for as long as it is ready. The fd number is
/// the key; the caller keeps each registered fd open until it calls
/// [`remove`](Reactor::remove) (or sets [`Interest::NONE`]). One-shot waits
/// ([`arm`](Reactor::arm)) are the exception: their fd may be closed once the
/// wait is reported or disarmed, and the reactor copes with its number's
/// reuse.
///
/// A `Reactor` is `Send` (a loop may be built on one thread and run on
/// another) but is used by one thread at a time; other threads reach it only
/// through a [`Waker`]. Dropping it unwatches all its signals.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use evloop::raw::{Interest, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let (mut a, b) = UnixStream::pair()?;
/// reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
///
/// let mut ready = Vec::new();
/// assert_eq!(reactor.poll(Some(Duration::ZERO), &mut ready)?, 0);
/// a.write_all(b"abc")?;
/// assert_eq!(reactor.poll(Some(Duration::from_secs(1)), &mut ready)?, 1);
/// assert_eq!(ready[0].fd, b.as_raw_fd());
/// reactor.remove(b.as_raw_fd())?;
/// # Ok(())
/// # }
/// ```
pub struct Reactor {
    /// The poller, shared with the wakers together with the `sleeping` flag.
    wake: Arc<WakeState>,
    /// Kernel events of the current full wait, reused across polls.
    events: Events,
    /// The cheap zero-timeout look (one system call on Linux).
    peeker: Peeker,
    /// What is registered for each fd, indexed by fd (fds are small and
    /// dense).
    entries: Vec<Entry>,
    /// How many entries have a level-triggered interest.
    registered: usize,
    /// Fds whose kernel registration a poll must bring back in line with
    /// their entry (a one-shot wait reported, others still armed).
    rearm: Vec<RawFd>,
    /// Watched signals, the self-pipe, and what has arrived.
    signals: Signals,
    /// A poll saw the wake pipe readable. The pipe is drained later, off the
    /// wake-up's latency path, and only while `sleeping` is false: then no
    /// waker writes (wakers write only when they flip `sleeping` from true),
    /// so every byte drained is stale and no wake-up can be lost.
    woken: Cell<bool>,
}

impl Reactor {
    /// Creates a reactor with nothing registered.
    ///
    /// # Errors
    ///
    /// The OS refuses an epoll instance, its eventfd or its timerfd (for
    /// example `EMFILE` when the process is out of fds).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::{Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let reactor = Reactor::new()?;
    /// assert_eq!(reactor.interest(0), Interest::NONE);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            wake: Arc::new(new_wake_state()?),
            events: Events::with_capacity(EVENTS_CAPACITY),
            peeker: Peeker::new(EVENTS_CAPACITY),
            entries: Vec::new(),
            registered: 0,
            rearm: Vec::new(),
            signals: Signals::new(),
            woken: Cell::new(false),
        })
    }

    /// Sets the interest of `fd`: adds it, changes it, or (for
    /// [`Interest::NONE`]) removes it.
    ///
    /// Level-triggered: the fd is reported on every poll while it stays ready.
    /// A non-empty interest always reaches the kernel, even when unchanged, so
    /// an fd number that was closed and reused without a `remove` is
    /// registered afresh rather than silently left out.
    ///
    /// # Errors
    ///
    /// - `fd` is negative: `InvalidInput`, "invalid file descriptor: -1".
    /// - `fd` is not open: the OS error, `EBADF` (as asyncio's `OSError`).
    /// - `fd` cannot be polled (a regular file, a directory): `EPERM`.
    /// - The kernel is out of memory or watches too many fds (`ENOMEM`,
    ///   `ENOSPC`).
    ///
    /// The registered interest is unchanged after an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use evloop::raw::{Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// reactor.set_interest(a.as_raw_fd(), Interest::READABLE)?;
    /// reactor.set_interest(a.as_raw_fd(), Interest::BOTH)?;
    /// assert_eq!(reactor.interest(a.as_raw_fd()), Interest::BOTH);
    /// reactor.set_interest(a.as_raw_fd(), Interest::NONE)?;
    /// assert_eq!(reactor.interest(a.as_raw_fd()), Interest::NONE);
    ///
    /// let err = reactor.set_interest(-1, Interest::READABLE).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid file descriptor: -1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_interest(&mut self, fd: RawFd, interest: Interest) -> io::Result<()> {
        let index = fd_index(fd)?;
        if interest.is_empty() {
            return self.remove(fd);
        }
        let entry = self.entry(index);
        let events = interest.add(entry.once);
        let fresh = register(&self.wake.poller, fd, entry.kernel, events, Kernel::Level)?;
        if entry.level.is_empty() {
            self.registered += 1;
        }
        let entry = self.entry_mut(index);
        entry.level = interest;
        entry.kernel = Kernel::Level;
        if fresh {
            entry.seen = false;
        }
        Ok(())
    }

    /// Forgets `fd`; an fd that was not registered is fine.
    ///
    /// An fd that was closed while registered (the kernel answers `EBADF`,
    /// `ENOENT` or `EPERM`) is dropped silently: closing already took it out
    /// of the epoll set, unless the same open file lives on under a
    /// `dup`licate fd (an epoll rule no user-space bookkeeping can fix).
    ///
    /// # Errors
    ///
    /// - `fd` is negative: `InvalidInput`, "invalid file descriptor: -1".
    /// - Any other kernel refusal (none is known for a delete); the fd then
    ///   stays registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use evloop::raw::{Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let fd = a.as_raw_fd();
    /// reactor.set_interest(fd, Interest::READABLE)?;
    /// drop(a); // closed while registered: the caller broke the contract...
    /// reactor.remove(fd)?; // ...and remove still succeeds.
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        let index = fd_index(fd)?;
        let entry = self.entry(index);
        if entry.level.is_empty() {
            return Ok(());
        }
        if entry.once.is_empty() {
            // By number: the caller may have closed the fd already, and no
            // `BorrowedFd` may be made for a closed one (`sys::delete`).
            match sys::delete(&self.wake.poller, fd) {
                Ok(()) => {}
                Err(err) if is_gone(&err) => {}
                Err(err) => return Err(err),
            }
            *self.entry_mut(index) = Entry::EMPTY;
        } else {
            // A one-shot wait stays armed: only the level interest goes.
            match register(
                &self.wake.poller,
                fd,
                entry.kernel,
                entry.once,
                Kernel::Oneshot,
            ) {
                Ok(_) => self.entry_mut(index).kernel = Kernel::Oneshot,
                Err(err) if is_gone(&err) => *self.entry_mut(index) = Entry::EMPTY,
                Err(err) => return Err(err),
            }
            self.entry_mut(index).level = Interest::NONE;
        }
        self.registered -= 1;
        Ok(())
    }

    /// Arms a one-shot wait: the next [`poll`](Reactor::poll) that finds `fd`
    /// ready for `interest` reports it once, and the wait is over.
    ///
    /// This is what a loop's socket operations wait with (asyncio's
    /// `sock_recv` and the like), where an operation usually completes at
    /// its first try and waits only now and then: the kernel registration
    /// outlives the wait, so the next wait on the same fd costs one
    /// `epoll_ctl(EPOLL_CTL_MOD)` (re-arming it) rather than an add and a
    /// delete, and a wait that is never armed again costs nothing. The
    /// registration goes when the fd is closed (the kernel drops it: unlike
    /// [`set_interest`](Reactor::set_interest), a wait's fd may be closed
    /// without telling the reactor once its wait is over), or with
    /// [`disarm`](Reactor::disarm)'s `forget`. Independent of [`set_interest`](Reactor::set_interest): an fd may have
    /// both, each reported to its own caller. Waiting again while a wait is
    /// armed adds `interest` to it.
    ///
    /// Every arm reaches the kernel, and that is what makes a closed and
    /// reused fd number safe: the kernel answers `ENOENT` for a file it does
    /// not hold under that number, and the new file is added. The answer
    /// tells which: [`Armed::Fresh`] when no wait was armed on this very open
    /// file before (since it was added, or since a `disarm` that forgot it),
    /// [`Armed::Kept`] when one was. A caller may check what it needs to know
    /// about a file (its mode) once per file that way.
    ///
    /// # Errors
    ///
    /// - `fd` is negative: `InvalidInput`, "invalid file descriptor: -1".
    /// - `interest` is empty: `InvalidInput`, "a wait needs an interest".
    /// - As [`set_interest`](Reactor::set_interest) for the kernel's
    ///   refusals (`EBADF`, `EPERM`, `ENOMEM`). Nothing is armed then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use evloop::raw::{Armed, Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let (mut a, b) = UnixStream::pair()?;
    /// let fd = b.as_raw_fd();
    /// assert_eq!(reactor.arm(fd, Interest::READABLE)?, Armed::Fresh);
    /// a.write_all(b"x")?;
    /// let mut ready = Vec::new();
    /// reactor.poll(Some(Duration::from_secs(1)), &mut ready)?;
    /// assert_eq!(ready[0].fd, fd);
    /// // Reported once: the byte is still there, but the wait is over.
    /// ready.clear();
    /// assert_eq!(reactor.poll(Some(Duration::ZERO), &mut ready)?, 0);
    /// // The same socket again: the registration was kept.
    /// assert_eq!(reactor.arm(fd, Interest::READABLE)?, Armed::Kept);
    /// assert_eq!(reactor.poll(Some(Duration::from_secs(1)), &mut ready)?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn arm(&mut self, fd: RawFd, interest: Interest) -> io::Result<Armed> {
        let index = fd_index(fd)?;
        if interest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a wait needs an interest",
            ));
        }
        let entry = self.entry(index);
        let once = entry.once.add(interest);
        let (events, mode) = if entry.level.is_empty() {
            (once, Kernel::Oneshot)
        } else {
            (entry.level.add(once), Kernel::Level)
        };
        let fresh = register(&self.wake.poller, fd, entry.kernel, events, mode)?;
        let entry = self.entry_mut(index);
        let armed = if fresh || !entry.seen {
            Armed::Fresh
        } else {
            Armed::Kept
        };
        entry.once = once;
        entry.kernel = mode;
        entry.seen = true;
        Ok(armed)
    }

    /// Ends a wait armed with [`arm`](Reactor::arm) before it was reported;
    /// a wait that was not armed is fine.
    ///
    /// Costs no system call when `fd` has no level-triggered interest: the
    /// kernel registration stays, and if it fires, once, the poll reports
    /// nothing. With `forget`, the registration goes as well (one
    /// `epoll_ctl(EPOLL_CTL_DEL)` when nothing else is registered for the fd),
    /// and the next [`arm`](Reactor::arm) answers [`Armed::Fresh`]: for a
    /// caller who learnt something about the file that it must learn again.
    ///
    /// # Errors
    ///
    /// - `fd` is negative: `InvalidInput`, "invalid file descriptor: -1".
    /// - The kernel refuses to drop the interest from a level-triggered
    ///   registration (none is known); the wait is over all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use evloop::raw::{Armed, Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// reactor.arm(a.as_raw_fd(), Interest::WRITABLE)?;
    /// reactor.disarm(a.as_raw_fd(), Interest::WRITABLE, false)?;
    /// assert_eq!(reactor.arm(a.as_raw_fd(), Interest::WRITABLE)?, Armed::Kept);
    /// reactor.disarm(a.as_raw_fd(), Interest::WRITABLE, true)?;
    /// assert_eq!(reactor.arm(a.as_raw_fd(), Interest::WRITABLE)?, Armed::Fresh);
    /// # Ok(())
    /// # }
    /// ```
    pub fn disarm(&mut self, fd: RawFd, interest: Interest, forget: bool) -> io::Result<()> {
        let index = fd_index(fd)?;
        let entry = self.entry(index);
        if entry.kernel == Kernel::Absent {
            if index < self.entries.len() {
                self.entries[index].once = entry.once.remove(interest);
            }
            return Ok(());
        }
        let once = entry.once.remove(interest);
        let kept = self.entry_mut(index);
        kept.once = once;
        if forget {
            kept.seen = false;
        }
        if !entry.level.is_empty() {
            if once != entry.once {
                register(
                    &self.wake.poller,
                    fd,
                    entry.kernel,
                    entry.level.add(once),
                    Kernel::Level,
                )?;
            }
            return Ok(());
        }
        if forget && once.is_empty() {
            match sys::delete(&self.wake.poller, fd) {
                Ok(()) => {}
                Err(err) if is_gone(&err) => {}
                Err(err) => return Err(err),
            }
            *self.entry_mut(index) = Entry::EMPTY;
        }
        Ok(())
    }

    /// What is registered for `fd` now ([`Interest::NONE`] if nothing,
    /// including for negative numbers).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::{Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let reactor = Reactor::new()?;
    /// assert_eq!(reactor.interest(-1), Interest::NONE);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn interest(&self, fd: RawFd) -> Interest {
        usize::try_from(fd)
            .ok()
            .and_then(|index| self.entries.get(index))
            .map_or(Interest::NONE, |entry| entry.level)
    }

    /// The entry of fd `index` (empty past the table's end).
    fn entry(&self, index: usize) -> Entry {
        self.entries.get(index).copied().unwrap_or(Entry::EMPTY)
    }

    /// The entry of fd `index`, the table grown to hold it.
    fn entry_mut(&mut self, index: usize) -> &mut Entry {
        if index >= self.entries.len() {
            self.entries.resize(index + 1, Entry::EMPTY);
        }
        &mut self.entries[index]
    }

    /// Waits up to `timeout` for readiness and appends the ready fds to
    /// `out`; returns how many it appended.
    ///
    /// `None` blocks until an fd is ready, a [`Waker`] wakes the reactor (after
    /// [`prepare_sleep`](Reactor::prepare_sleep)) or a watched signal arrives.
    /// A poll may also return 0 early, once, after a wake-up that came while
    /// the reactor was not waiting. `EINTR` is retried inside with the time
    /// that remains, never surfaced. Signals that arrived are collected for
    /// [`take_signals`](Reactor::take_signals).
    ///
    /// On Linux every poll is one system call straight on the epoll fd
    /// (`epoll_wait`, or `epoll_pwait2` for a nanosecond-precise timeout),
    /// ready fds or not (plus one `read` to drain the wake pipe after a
    /// wake-up).
    /// Timeouts are never rounded down (on kernels without `epoll_pwait2` they
    /// are rounded up to whole milliseconds).
    ///
    /// # Errors
    ///
    /// The OS refuses the wait (none is expected on a working epoll
    /// instance), or reading the signal pipe fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use evloop::raw::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let mut ready = Vec::new();
    /// let start = Instant::now();
    /// assert_eq!(reactor.poll(Some(Duration::from_millis(2)), &mut ready)?, 0);
    /// assert!(start.elapsed() >= Duration::from_millis(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll(&mut self, timeout: Option<Duration>, out: &mut Vec<Ready>) -> io::Result<usize> {
        let before = out.len();
        if self.woken.get() && !self.wake.is_sleeping() {
            self.woken.set(false);
            self.wake.drain()?;
        }
        let poller = &self.wake.poller;
        let timeout = match self.peeker.peek(poller, timeout) {
            Ok(Peeked::Events(events)) => {
                self.wake.awake();
                let woken = collect(
                    events,
                    &mut self.entries,
                    &mut self.rearm,
                    &mut self.signals,
                    out,
                );
                rearm(poller, &mut self.entries, &mut self.rearm);
                self.woken.set(woken?);
                return Ok(out.len() - before);
            }
            Ok(Peeked::Reset) => Some(Duration::ZERO),
            Ok(Peeked::Unsupported) => timeout,
            Err(err) => {
                self.wake.awake();
                return Err(err);
            }
        };
        self.events.clear();
        let waited = poller.wait(&mut self.events, timeout);
        self.wake.awake();
        waited?;
        let woken = collect(
            self.events.iter(),
            &mut self.entries,
            &mut self.rearm,
            &mut self.signals,
            out,
        );
        rearm(poller, &mut self.entries, &mut self.rearm);
        self.woken.set(woken?);
        Ok(out.len() - before)
    }

    /// A cloneable, `Send + Sync` handle that wakes a poll blocked on another
    /// thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let reactor = Reactor::new()?;
    /// let waker = reactor.waker();
    /// std::thread::spawn(move || waker.wake()).join().ok();
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn waker(&self) -> Waker {
        Waker::new(Arc::clone(&self.wake))
    }

    /// Announces that the loop thread may sleep: from now until the next poll
    /// returns, [`Waker::wake`] really wakes it (one write, however many
    /// wakes).
    ///
    /// Call it right before re-checking the cross-thread queue; then poll
    /// with a non-zero timeout only if the queue is still empty. The crate
    /// docs' wake-up protocol explains why no wake-up is lost.
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
    /// // ... the queue turns out empty, but a wake came in meanwhile:
    /// waker.wake();
    /// assert_eq!(reactor.poll(None, &mut Vec::new())?, 0); // returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn prepare_sleep(&self) {
        // Before the flag goes up no waker writes, so whatever the pipe holds
        // is stale: drain it now, or the sleep would end at once. A failing
        // read (it cannot fail on our own open pipe) only costs that spurious
        // wake-up, so it is not reported.
        if self.woken.get() && !self.wake.is_sleeping() {
            self.woken.set(false);
            let _ = self.wake.drain();
        }
        self.wake.prepare_sleep();
    }

    /// Starts delivering `signum` to this reactor; idempotent.
    ///
    /// Any thread's reactor may watch signals (asyncio allows only the main
    /// thread), and several reactors may watch the same signal: each is told.
    /// After the first watch, a signal no longer has its default effect
    /// (such as terminating the process) until the last watcher unwatches it.
    ///
    /// # Errors
    ///
    /// - Every error of [`validate_signal`](crate::validate_signal).
    /// - The OS refuses the self-pipe or the handler (`EMFILE`, `EINVAL`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::raw::Reactor;
    /// use evloop::signal::{self, SIGUSR1};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// reactor.watch_signal(SIGUSR1)?;
    /// signal::raise(SIGUSR1)?;
    /// reactor.poll(Some(Duration::ZERO), &mut Vec::new())?;
    /// let mut signals = Vec::new();
    /// reactor.take_signals(&mut signals);
    /// assert_eq!(signals, [SIGUSR1]);
    /// assert!(reactor.unwatch_signal(SIGUSR1)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_signal(&mut self, signum: i32) -> io::Result<()> {
        self.signals.watch(&self.wake.poller, signum)
    }

    /// Stops delivering `signum` to this reactor; `false` if it was not
    /// watched.
    ///
    /// A delivery not yet taken is discarded. When no reactor in the process
    /// watches the signal any more, its disposition becomes `SIG_DFL` (the
    /// default action, as asyncio's `remove_signal_handler` does), not what it
    /// was before the first watch.
    ///
    /// # Errors
    ///
    /// - `signum` is 0, negative or not below the platform's `NSIG`:
    ///   `InvalidInput`, "invalid signal number N". (`SIGKILL` and `SIGSTOP`
    ///   are never watched, so they give `Ok(false)`.)
    /// - The OS refuses to restore `SIG_DFL`; the signal is unwatched anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// assert!(!reactor.unwatch_signal(evloop::signal::SIGHUP)?);
    /// assert!(reactor.unwatch_signal(0).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn unwatch_signal(&mut self, signum: i32) -> io::Result<bool> {
        self.signals.unwatch(signum)
    }

    /// Appends the signals delivered since the last call, ascending, each at
    /// most once however often it arrived. Signals are collected by
    /// [`poll`](Reactor::poll).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::raw::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let mut signals = Vec::new();
    /// reactor.take_signals(&mut signals);
    /// assert!(signals.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_signals(&mut self, out: &mut Vec<i32>) {
        self.signals.take(out);
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("poller", &self.wake.poller)
            .field("registered", &self.registered)
            .field("sleeping", &self.wake.is_sleeping())
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

/// Turns the kernel events of one wait into [`Ready`] entries on `out`
/// (only what was asked for; nothing for an fd asked nothing of), drains the
/// signal pipe if it was among them, and returns whether the wake pipe was
/// (the caller drains that one at its next poll).
fn collect(
    events: impl Iterator<Item = Event>,
    entries: &mut [Entry],
    rearm: &mut Vec<RawFd>,
    signals: &mut Signals,
    out: &mut Vec<Ready>,
) -> io::Result<bool> {
    let mut signalled = false;
    let mut woken = false;
    for event in events {
        if event.key == SIGNAL_KEY {
            signalled = true;
            continue;
        }
        if event.key == WAKE_KEY {
            woken = true;
            continue;
        }
        // Every other key is a registered fd (see `set_interest`); an
        // unknown one is skipped rather than trusted.
        let (Ok(fd), Some(entry)) = (RawFd::try_from(event.key), entries.get_mut(event.key)) else {
            continue;
        };
        let wanted = entry.level.add(entry.once);
        let ready = Ready {
            fd,
            readable: event.readable && wanted.readable,
            writable: event.writable && wanted.writable,
        };
        if !entry.once.is_empty() {
            let reported = Interest {
                readable: ready.readable,
                writable: ready.writable,
            };
            let left = entry.once.remove(reported);
            // A one-shot registration is disarmed now, whatever it held; a
            // level-triggered one still holds what was reported.
            let stale = match entry.kernel {
                Kernel::Oneshot => !left.is_empty(),
                _ => left != entry.once,
            };
            entry.once = left;
            if stale {
                rearm.push(fd);
            }
        }
        if ready.readable || ready.writable {
            out.push(ready);
        }
    }
    if signalled {
        signals.drain()?;
    }
    Ok(woken)
}

/// A poller with the wake pipe registered in it.
fn new_wake_state() -> io::Result<WakeState> {
    let poller = Poller::new()?;
    let pipe = nonblocking_pipe()?;
    // SAFETY: the read end stays open as long as the poller: both live in the
    // same `WakeState` and are dropped together, the poller first (fields
    // drop in declaration order), which closes the epoll set before the fd.
    unsafe {
        poller.add_with_mode(
            pipe.0.as_raw_fd(),
            Event::readable(WAKE_KEY),
            PollMode::Level,
        )?;
    }
    Ok(WakeState::new(poller, pipe))
}

/// The index (and polling key) of `fd`, or the error asyncio gives for it.
pub(crate) fn fd_index(fd: RawFd) -> io::Result<usize> {
    usize::try_from(fd).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file descriptor: {fd}"),
        )
    })
}

/// Whether a delete failed because the fd is already gone from the epoll set:
/// closed (`EBADF`), never there under this number (`ENOENT`), or a kind of
/// file epoll refuses anyway (`EPERM`).
fn is_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADF | libc::ENOENT | libc::EPERM)
    )
}
