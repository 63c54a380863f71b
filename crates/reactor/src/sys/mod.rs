//! The platform choice, made in this one place.
//!
//! # The contract every backend meets
//!
//! - `Peeker::new(capacity)` and `Peeker::peek(&mut self, poller, timeout)`
//!   wait up to `timeout` on the kernel queue, as cheaply as the platform
//!   allows, never returning before the timeout unless something is ready.
//!   `Ok(Peeked::Events(events))` lists every ready user event (polling
//!   [`Event`]s with the keys they were registered under, at most `capacity`
//!   of them, more staying ready for the next look); `Ok(Peeked::Reset)`
//!   tells the caller to do a full zero-timeout [`Poller::wait`], because one
//!   of polling's own sources (its notifier, its timer) fired and only
//!   `Poller::wait` resets them (or the wait was interrupted);
//!   `Ok(Peeked::Unsupported)` means nothing was waited for and the caller
//!   does a full wait with the original timeout. A backend that always
//!   answers `Unsupported` is correct, only slower.
//! - `NSIG` is one past the highest signal number the backend accepts.
//!   Numbers below it that the OS does not have are refused by the OS itself
//!   (`sigaction` answers `EINVAL`), so the bound may be generous, never short.
//! - `delete(poller, fd)` removes a registered fd from `poller` by its number,
//!   without making a `BorrowedFd` for a number that may already be closed;
//!   a closed or never-registered number is an `EBADF` or `ENOENT` error.
//! - `nonblocking_pipe()` returns `(read_end, write_end)` of a fresh pipe, both
//!   ends non-blocking and close-on-exec.
//!
//! Linux and Android run on epoll: a peek is one `epoll_wait` with a zero
//! timeout on polling's epoll fd, one system call whether or not anything is
//! ready, against five for `Poller::wait` (it re-arms its timerfd and
//! notifier around every wait). Everything else takes the fallback backend,
//! which never peeks; polling's kqueue and event-port backends compile and
//! work there, they are simply not tuned or tested by this project.
//!
//! [`Event`]: polling::Event
//! [`Poller::wait`]: polling::Poller::wait

/// What a [`Peeker`] found (see the contract above).
pub(crate) enum Peeked<I> {
    /// The ready user events.
    Events(I),
    /// One of polling's own sources fired, or the wait was interrupted: do a
    /// full zero-timeout `Poller::wait`.
    Reset,
    /// Nothing was waited for: do a full wait with the original timeout.
    #[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
    Unsupported,
}

#[cfg(not(unix))]
compile_error!("evloop-reactor supports Unix only (epoll is what is tested; kqueue compiles)");

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use epoll::{NSIG, Peeker, delete, nonblocking_pipe};

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
mod fallback;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) use fallback::{NSIG, Peeker, delete, nonblocking_pipe};
