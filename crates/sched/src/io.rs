//! Watching file descriptors and POSIX signals: `add_reader`, `add_writer`,
//! `add_signal_handler` and their removal.

use std::io;
use std::os::fd::RawFd;
use std::panic::Location;
use std::rc::Rc;

use evloop_reactor::{Armed, Interest};

use crate::handle::{Callback, Once, Repeating};
use crate::{Error, EventLoop};

fn invalid_fd(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid file descriptor: {fd}"),
    )
}

/// One past the highest signal number (Linux: `SIGRTMAX + 1`).
fn nsig() -> i32 {
    libc::SIGRTMAX() + 1
}

#[derive(Clone, Copy)]
enum Side {
    Reader,
    Writer,
}

/// Who asks to change a watch: anyone (the public methods), or the fd's claim.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Anyone,
    Claim,
}

fn claimed_fd(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!("File descriptor {fd} is used by a transport"),
    )
}

/// Exclusive ownership of an fd's watches, for a transport (asyncio's "File descriptor … is
/// used by transport" check): while a claim lives, `add_reader`/`add_writer` on its fd fail and
/// `remove_reader`/`remove_writer` leave it alone; only the claim's own methods watch it.
/// Dropping the claim removes its reader and writer and releases the fd.
///
/// # Examples
///
/// ```
/// use std::os::{fd::AsRawFd, unix::net::UnixStream};
/// use evloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let (a, _b) = UnixStream::pair()?;
/// let claim = lp.claim_fd(a.as_raw_fd())?;
/// claim.add_writer(|| {})?;
/// let err = lp.add_reader(a.as_raw_fd(), || {}).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
/// assert!(!lp.remove_writer(a.as_raw_fd()), "not the claim's to remove");
/// drop(claim);
/// lp.add_reader(a.as_raw_fd(), || {})?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FdClaim {
    lp: EventLoop,
    fd: RawFd,
}

impl FdClaim {
    /// The claimed fd.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// [`EventLoop::add_reader`] for the claimed fd.
    ///
    /// # Errors
    ///
    /// As [`EventLoop::add_reader`], except that the claim itself is no obstacle.
    #[track_caller]
    pub fn add_reader(&self, f: impl FnMut() + 'static) -> io::Result<()> {
        let cb = Repeating::new_entry(f, Location::caller());
        self.lp.add_watch(self.fd, Side::Reader, cb, By::Claim)
    }

    /// [`EventLoop::add_writer`] for the claimed fd.
    ///
    /// # Errors
    ///
    /// As [`EventLoop::add_writer`], except that the claim itself is no obstacle.
    #[track_caller]
    pub fn add_writer(&self, f: impl FnMut() + 'static) -> io::Result<()> {
        let cb = Repeating::new_entry(f, Location::caller());
        self.lp.add_watch(self.fd, Side::Writer, cb, By::Claim)
    }

    /// [`EventLoop::remove_reader`] for the claimed fd.
    pub fn remove_reader(&self) -> bool {
        self.lp.remove_watch(self.fd, Side::Reader, By::Claim)
    }

    /// [`EventLoop::remove_writer`] for the claimed fd.
    pub fn remove_writer(&self) -> bool {
        self.lp.remove_watch(self.fd, Side::Writer, By::Claim)
    }
}

impl Drop for FdClaim {
    fn drop(&mut self) {
        self.remove_reader();
        self.remove_writer();
        let mut watches = self.lp.inner.watches.borrow_mut();
        if let Some(watch) = watches.get_mut(&self.fd) {
            watch.claimed = false;
            if watch.reader.is_none() && watch.writer.is_none() {
                watches.remove(&self.fd);
            }
        }
    }
}

impl std::fmt::Debug for FdClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdClaim").field("fd", &self.fd).finish()
    }
}

impl EventLoop {
    /// Calls `f` on every iteration while `fd` is readable (level-triggered, as asyncio), until
    /// [`remove_reader`](EventLoop::remove_reader). A second `add_reader` on the same fd replaces
    /// the first callback.
    ///
    /// The loop neither owns nor borrows `fd`: remove the reader before closing it. An fd closed
    /// while watched is dropped from the kernel's set, and a later `remove_reader` still works.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] (as an `io::Error`) if the loop is closed;
    /// - `InvalidInput` "invalid file descriptor: -1" for a negative fd;
    /// - the OS error (`EBADF`) for an fd that is not open.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{io::{Read, Write}, os::fd::AsRawFd, os::unix::net::UnixStream};
    /// use evloop::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let (mut rsock, mut wsock) = UnixStream::pair()?;
    /// let fd = rsock.as_raw_fd();
    /// let l2 = lp.clone();
    /// lp.add_reader(fd, move || {
    ///     let mut buf = [0; 16];
    ///     let n = rsock.read(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], b"abc");
    ///     l2.remove_reader(fd);
    ///     l2.stop();
    /// })?;
    /// wsock.write_all(b"abc")?;
    /// lp.run_forever()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn add_reader(&self, fd: RawFd, f: impl FnMut() + 'static) -> io::Result<()> {
        self.add_watch(
            fd,
            Side::Reader,
            Repeating::new_entry(f, Location::caller()),
            By::Anyone,
        )
    }

    /// Calls `f` on every iteration while `fd` is writable, until
    /// [`remove_writer`](EventLoop::remove_writer). As [`add_reader`](EventLoop::add_reader)
    /// otherwise.
    ///
    /// # Errors
    ///
    /// As [`add_reader`](EventLoop::add_reader).
    #[track_caller]
    pub fn add_writer(&self, fd: RawFd, f: impl FnMut() + 'static) -> io::Result<()> {
        self.add_watch(
            fd,
            Side::Writer,
            Repeating::new_entry(f, Location::caller()),
            By::Anyone,
        )
    }

    /// Stops watching `fd` for reading. Returns true if a reader was registered; false otherwise,
    /// always false on a closed loop, and false for an fd a transport owns (an
    /// [`FdClaim`]), whose reader stays.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_watch(fd, Side::Reader, By::Anyone)
    }

    /// Stops watching `fd` for writing. Returns true if a writer was registered; false otherwise,
    /// always false on a closed loop, and false for an fd a transport owns (an
    /// [`FdClaim`]), whose writer stays.
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_watch(fd, Side::Writer, By::Anyone)
    }

    /// Claims `fd` for a transport: from now on only the returned [`FdClaim`] may watch it.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] (as an `io::Error`) if the loop is closed;
    /// - `InvalidInput` for a negative fd;
    /// - `ResourceBusy` "File descriptor N is used by a transport" if it is claimed already.
    pub fn claim_fd(&self, fd: RawFd) -> io::Result<FdClaim> {
        if self.is_closed() {
            return Err(Error::closed().into());
        }
        if fd < 0 {
            return Err(invalid_fd(fd));
        }
        let mut watches = self.inner.watches.borrow_mut();
        let watch = watches.entry(fd).or_default();
        if watch.claimed {
            return Err(claimed_fd(fd));
        }
        watch.claimed = true;
        Ok(FdClaim {
            lp: self.clone(),
            fd,
        })
    }

    fn add_watch(&self, fd: RawFd, side: Side, cb: Rc<dyn Callback>, by: By) -> io::Result<()> {
        if self.is_closed() {
            return Err(Error::closed().into());
        }
        if fd < 0 {
            return Err(invalid_fd(fd));
        }
        let inner = &*self.inner;
        let old = {
            let mut watches = inner.watches.borrow_mut();
            let watch = watches.entry(fd).or_default();
            if watch.claimed && by == By::Anyone {
                return Err(claimed_fd(fd));
            }
            let interest = match side {
                Side::Reader => Interest {
                    readable: true,
                    writable: watch.writer.is_some(),
                },
                Side::Writer => Interest {
                    readable: watch.reader.is_some(),
                    writable: true,
                },
            };
            let registered = match inner.reactor.borrow_mut().as_mut() {
                Some(reactor) => reactor.set_interest(fd, interest),
                None => Err(Error::closed().into()),
            };
            if let Err(err) = registered {
                if watch.reader.is_none() && watch.writer.is_none() && !watch.claimed {
                    watches.remove(&fd);
                }
                return Err(err);
            }
            match side {
                Side::Reader => watch.reader.replace(cb),
                Side::Writer => watch.writer.replace(cb),
            }
        };
        // The replaced callback is dropped outside every borrow.
        if let Some(old) = old {
            old.cancel();
        }
        Ok(())
    }

    fn remove_watch(&self, fd: RawFd, side: Side, by: By) -> bool {
        let inner = &*self.inner;
        let removed = {
            let mut watches = inner.watches.borrow_mut();
            let Some(watch) = watches.get_mut(&fd) else {
                return false;
            };
            if watch.claimed && by == By::Anyone {
                return false;
            }
            let removed = match side {
                Side::Reader => watch.reader.take(),
                Side::Writer => watch.writer.take(),
            };
            if removed.is_none() {
                return false;
            }
            let interest = Interest {
                readable: watch.reader.is_some(),
                writable: watch.writer.is_some(),
            };
            if interest.is_empty() && !watch.claimed {
                watches.remove(&fd);
            }
            if let Some(reactor) = inner.reactor.borrow_mut().as_mut() {
                let outcome = if interest.is_empty() {
                    reactor.remove(fd)
                } else {
                    reactor.set_interest(fd, interest)
                };
                if outcome.is_err() {
                    // The fd was closed behind our back: the kernel already forgot it.
                    let _ = reactor.remove(fd);
                }
            }
            removed
        };
        if let Some(cb) = removed {
            cb.cancel();
        }
        true
    }

    /// Calls `f` once, on a later iteration, the next time `fd` is readable: a one-shot wait,
    /// what a socket operation that would block waits with (evloop-net's `sock_recv`, where
    /// asyncio's adds a reader and removes it when done).
    ///
    /// Unlike a reader, the wait's kernel registration outlives it: the next wait on the same
    /// socket re-arms it with one `epoll_ctl`, where a reader costs an add and a delete around
    /// every wait. So the fd may be closed once the wait ran or was cancelled, without telling
    /// the loop; a reused number is registered afresh. The answer says whether the open file
    /// behind `fd` was waited on before ([`Armed::Kept`]) or not ([`Armed::Fresh`]), so that
    /// what the caller checked about the file (its mode) can be checked once per file. Keep
    /// `fd` open while the wait is armed.
    ///
    /// A wait is independent of [`add_reader`](EventLoop::add_reader): both may watch one fd,
    /// and `remove_reader` never ends a wait. A second wait on the same fd and side replaces
    /// the first one's callback (which is cancelled).
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] (as an `io::Error`) if the loop is closed;
    /// - `InvalidInput` "invalid file descriptor: -1" for a negative fd;
    /// - `ResourceBusy` "File descriptor N is used by a transport" for a claimed fd
    ///   ([`FdClaim`]);
    /// - the OS error (`EBADF`) for an fd that is not open.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, io::Write, os::fd::AsRawFd, os::unix::net::UnixStream, rc::Rc};
    /// use evloop::{Armed, EventLoop};
    ///
    /// let lp = EventLoop::new()?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let runs = Rc::new(Cell::new(0));
    /// for turn in 0..2 {
    ///     let (r2, l2) = (runs.clone(), lp.clone());
    ///     let armed = lp.wait_readable(a.as_raw_fd(), move || {
    ///         r2.set(r2.get() + 1);
    ///         l2.stop();
    ///     })?;
    ///     assert_eq!(armed, if turn == 0 { Armed::Fresh } else { Armed::Kept });
    ///     b.write_all(b"x")?;
    ///     lp.run_forever()?;
    /// }
    /// assert_eq!(runs.get(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_readable(&self, fd: RawFd, f: impl FnOnce() + 'static) -> io::Result<Armed> {
        let cb: Rc<dyn Callback> = Once::new_rc(f, Location::caller());
        self.arm_wait(fd, Side::Reader, cb)
    }

    /// Calls `f` once, on a later iteration, the next time `fd` is writable. As
    /// [`wait_readable`](EventLoop::wait_readable) otherwise.
    ///
    /// # Errors
    ///
    /// As [`wait_readable`](EventLoop::wait_readable).
    #[track_caller]
    pub fn wait_writable(&self, fd: RawFd, f: impl FnOnce() + 'static) -> io::Result<Armed> {
        let cb: Rc<dyn Callback> = Once::new_rc(f, Location::caller());
        self.arm_wait(fd, Side::Writer, cb)
    }

    /// Ends the wait of [`wait_readable`](EventLoop::wait_readable) on `fd` before it ran (its
    /// callback is cancelled); true if one was armed. Costs no system call: the registration
    /// stays for the next wait, and if it fires first, nothing runs. With `forget`, the next
    /// wait answers [`Armed::Fresh`] (and the registration goes, if nothing else needs it).
    pub fn cancel_wait_readable(&self, fd: RawFd, forget: bool) -> bool {
        self.cancel_wait(fd, Side::Reader, forget)
    }

    /// Ends the wait of [`wait_writable`](EventLoop::wait_writable) on `fd`. As
    /// [`cancel_wait_readable`](EventLoop::cancel_wait_readable) otherwise.
    pub fn cancel_wait_writable(&self, fd: RawFd, forget: bool) -> bool {
        self.cancel_wait(fd, Side::Writer, forget)
    }

    fn arm_wait(&self, fd: RawFd, side: Side, cb: Rc<dyn Callback>) -> io::Result<Armed> {
        if self.is_closed() {
            return Err(Error::closed().into());
        }
        if fd < 0 {
            return Err(invalid_fd(fd));
        }
        let inner = &*self.inner;
        if inner.watches.borrow().get(&fd).is_some_and(|w| w.claimed) {
            return Err(claimed_fd(fd));
        }
        let interest = match side {
            Side::Reader => Interest::READABLE,
            Side::Writer => Interest::WRITABLE,
        };
        let armed = match inner.reactor.borrow_mut().as_mut() {
            Some(reactor) => reactor.arm(fd, interest)?,
            None => return Err(Error::closed().into()),
        };
        let old = {
            let mut waits = inner.waits.borrow_mut();
            let wait = waits.entry(fd).or_default();
            match side {
                Side::Reader => wait.readable.replace(cb),
                Side::Writer => wait.writable.replace(cb),
            }
        };
        // The replaced callback is dropped outside every borrow.
        if let Some(old) = old {
            old.cancel();
        }
        Ok(armed)
    }

    fn cancel_wait(&self, fd: RawFd, side: Side, forget: bool) -> bool {
        let inner = &*self.inner;
        let removed = {
            let mut waits = inner.waits.borrow_mut();
            let Some(wait) = waits.get_mut(&fd) else {
                return self.forget_wait(fd, side, forget);
            };
            let removed = match side {
                Side::Reader => wait.readable.take(),
                Side::Writer => wait.writable.take(),
            };
            if wait.readable.is_none() && wait.writable.is_none() {
                waits.remove(&fd);
            }
            removed
        };
        if removed.is_some() {
            self.forget_wait(fd, side, forget);
        }
        match removed {
            Some(cb) => {
                cb.cancel();
                true
            }
            None => false,
        }
    }

    /// Tells the reactor a wait is over (with `forget`, even one that already ran); false.
    fn forget_wait(&self, fd: RawFd, side: Side, forget: bool) -> bool {
        let interest = match side {
            Side::Reader => Interest::READABLE,
            Side::Writer => Interest::WRITABLE,
        };
        if let Some(reactor) = self.inner.reactor.borrow_mut().as_mut() {
            // Only a negative fd (never armed) can fail: nothing is left to end then.
            let _ = reactor.disarm(fd, interest, forget);
        }
        false
    }

    /// Calls `f` (on the loop's thread, on a later iteration; never inside the signal handler)
    /// each time signal `signum` arrives. A second call for the same signal replaces the first
    /// handler.
    ///
    /// Any thread's loop may install handlers (asyncio allows only the main thread); several loops
    /// watching one signal each get it.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] (as an `io::Error`) if the loop is closed;
    /// - `InvalidInput` "invalid signal number N" outside `1..NSIG`;
    /// - `InvalidInput` "sig 9 cannot be caught" for SIGKILL and SIGSTOP;
    /// - the OS error if the handler cannot be installed.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{EventLoop, signal};
    ///
    /// let lp = EventLoop::new()?;
    /// let l2 = lp.clone();
    /// lp.add_signal_handler(signal::SIGUSR1, move || l2.stop())?;
    /// signal::raise(signal::SIGUSR1)?;
    /// lp.run_forever()?;
    /// assert!(lp.remove_signal_handler(signal::SIGUSR1)?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn add_signal_handler(&self, signum: i32, f: impl FnMut() + 'static) -> io::Result<()> {
        let cb = Repeating::new_entry(f, Location::caller());
        if self.is_closed() {
            return Err(Error::closed().into());
        }
        evloop_reactor::validate_signal(signum)?;
        let inner = &*self.inner;
        match inner.reactor.borrow_mut().as_mut() {
            Some(reactor) => reactor.watch_signal(signum)?,
            None => return Err(Error::closed().into()),
        }
        let old = inner.signal_handlers.borrow_mut().insert(signum, cb);
        if let Some(old) = old {
            old.cancel();
        }
        Ok(())
    }

    /// Removes the handler of `signum` and restores the default disposition. Returns true if a
    /// handler was installed; false otherwise (SIGKILL and SIGSTOP included), and on a closed loop.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` "invalid signal number N" outside `1..NSIG`;
    /// - the OS error if the disposition cannot be restored.
    pub fn remove_signal_handler(&self, signum: i32) -> io::Result<bool> {
        if !(1..nsig()).contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid signal number {signum}"),
            ));
        }
        let inner = &*self.inner;
        let Some(old) = inner.signal_handlers.borrow_mut().remove(&signum) else {
            return Ok(false);
        };
        old.cancel();
        if let Some(reactor) = inner.reactor.borrow_mut().as_mut() {
            reactor.unwatch_signal(signum)?;
        }
        Ok(true)
    }
}
