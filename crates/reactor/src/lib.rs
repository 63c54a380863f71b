//! evloop-reactor: readiness of file descriptors, a cross-thread wake-up and
//! POSIX signal delivery: the I/O half of evloop's ground floor (floor 1).
//! It depends only on `polling` (epoll), `signal-hook-registry` and `libc`,
//! and never on another evloop crate. It must never know about callbacks,
//! timers, handles or the loop: it answers "which fds are ready?", lets another
//! thread interrupt a wait, and tells which signals arrived. The scheduler
//! (`evloop-sched`, floor 2) turns those answers into callbacks. Programs
//! want the facade crate `evloop` (`evloop::EventLoop::add_reader`,
//! `add_signal_handler`, `call_soon_threadsafe`) instead; use this crate
//! directly only to build a loop of your own.
//!
//! The pieces:
//! - [`Reactor`]: level-triggered [`Interest`] per fd, [`Reactor::poll`]
//!   filling a list of [`Ready`] fds, signals watched with
//!   [`Reactor::watch_signal`] and collected with [`Reactor::take_signals`].
//! - [`Waker`]: wakes a blocked poll from another thread, at most one
//!   system call per sleep (see the wake-up protocol below).
//! - [`validate_signal`]: the checks asyncio makes on a signal number.
//!
//! # The wake-up protocol
//!
//! The loop thread calls [`Reactor::prepare_sleep`], *then* re-checks its
//! cross-thread queue, and polls with a non-zero timeout only if the queue is
//! empty. Another thread pushes onto that queue *first*, then calls
//! [`Waker::wake`]. Both calls contain a `SeqCst` fence, so whatever orderings
//! the queue uses, either the re-check sees the push or the wake sees the
//! sleep and writes one byte to the reactor's wake pipe (watched by the
//! poller); a wake while the loop is busy costs no system call. The full ground rules are at the top of `src/waker.rs`.
//!
//! # Cost of a poll
//!
//! The loop polls with a zero timeout whenever callbacks are ready, so that
//! path decides throughput. `polling::Poller::wait` costs five system calls
//! (`timerfd_settime`, two `epoll_ctl`, an eventfd `read`, the `epoll_wait`).
//! On Linux every poll of the reactor is a single system call straight on
//! polling's epoll fd, ready fds or not: `epoll_wait` for a zero or infinite
//! timeout, `epoll_pwait2` for a nanosecond-precise finite one. It falls back
//! to a full `Poller::wait` only if polling's own notifier or timer ever
//! fired, because only that call re-arms them; the reactor uses neither (it
//! wakes through its own pipe), so that does not happen in practice.
//!
//! Measured with `strace -c -f` on `examples/syscalls.rs` (10 000 rounds
//! minus a 0-round run), before the blocking path went direct: a zero-timeout
//! poll costs 1 system call with nothing ready and 1 with a ready fd (5
//! through `Poller::wait`); a wake-up costs 1 write however many threads call
//! [`Waker::wake`] during one sleep. A blocking wait is now 1 call, plus the
//! `read` that drains the wake pipe after a wake-up.
//!
//! # Portability
//!
//! Unix only. Linux epoll is what this project tests. polling's other Unix
//! backends (kqueue, event ports) compile, but the one-call zero-timeout
//! poll is epoll's: elsewhere every poll is a full `Poller::wait`. The platform choice is
//! made in one place, the `sys` module, whose contract is written at its top.
//! Signals need `sigaction`, so the same holds for them.
//!
//! # Examples
//!
//! ```
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use evloop::raw::{Interest, Reactor, Ready};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut reactor = Reactor::new()?;
//! let (mut a, b) = UnixStream::pair()?;
//! reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
//! a.write_all(b"abc")?;
//!
//! let mut ready = Vec::new();
//! reactor.poll(None, &mut ready)?;
//! assert_eq!(ready, [Ready { fd: b.as_raw_fd(), readable: true, writable: false }]);
//! # Ok(())
//! # }
//! ```

mod disposition;
mod interest;
mod reactor;
mod registration;
mod signal;
pub mod signals;
mod sys;
mod waker;

pub use interest::{Interest, Ready};
pub use reactor::Reactor;
pub use registration::Armed;
pub use signal::validate_signal;
pub use waker::Waker;
