//! `EventLoop`: the loop's state and its public face (lifecycle, scheduling, settings).
//!
//! # Ground rules
//!
//! The loop lives on one thread: `EventLoop` is an `Rc` and is `!Send`, so the compiler rejects
//! use from another thread (asyncio detects that only in debug mode, at run time). Its state sits
//! in `Cell`s and `RefCell`s, and no borrow is ever held while user code runs (a callback, a
//! closure's destructor, the exception handler): the code collects what it needs, releases the
//! borrow, then calls out. Other threads reach the loop only through [`RemoteLoop`].

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop_reactor::{Reactor, Ready};
use evloop_timer::{TimerKey, TimerWheel};

use crate::clock::{self, Deadline, Delay, NEVER};
use crate::exception::{Context, default_exception_handler};
use crate::handle::{Callback, Handle, Once, TimerHandle};
use crate::job::Job;
use crate::remote::{RemoteLoop, Shared};
use crate::sleep::SleepHook;
use crate::step::RawStep;
use crate::{Error, owned, running};

/// The environment variable that turns debug mode on for new loops when set to `1`
/// (asyncio's `PYTHONASYNCIODEBUG`).
pub const DEBUG_ENV: &str = "EVLOOP_DEBUG";

/// The default [`slow_callback_duration`](EventLoop::slow_callback_duration): 100 ms, as asyncio.
pub const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);

/// An exception handler: called with the loop and the context of the failure.
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &Context)>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Idle,
    Running,
    Closed,
}

/// The fd callbacks of one watched fd.
#[derive(Default)]
pub(crate) struct Watch {
    pub(crate) reader: Option<Rc<dyn Callback>>,
    pub(crate) writer: Option<Rc<dyn Callback>>,
    /// An [`FdClaim`](crate::FdClaim) owns the fd (a transport): only it may watch it.
    pub(crate) claimed: bool,
}

/// The one-shot waits armed on one fd, each run once by the next poll that finds the fd ready.
#[derive(Default)]
pub(crate) struct Waits {
    pub(crate) readable: Option<Rc<dyn Callback>>,
    pub(crate) writable: Option<Rc<dyn Callback>>,
}

pub(crate) struct Inner {
    pub(crate) state: Cell<State>,
    pub(crate) stopping: Cell<bool>,
    /// Callbacks and steps to run on the next iteration, FIFO.
    pub(crate) ready: RefCell<VecDeque<Job>>,
    /// Timer callbacks, kept as the [`Job`]s they become when they expire (two words, like the
    /// `Entry` they stand for, and moved to the ready queue as they are).
    pub(crate) timers: RefCell<TimerWheel<Job>>,
    /// `None` once the loop is closed.
    pub(crate) reactor: RefCell<Option<Reactor>>,
    pub(crate) events: RefCell<Vec<Ready>>,
    pub(crate) watches: RefCell<HashMap<RawFd, Watch>>,
    /// The one-shot waits of [`EventLoop::wait_readable`] and [`EventLoop::wait_writable`].
    pub(crate) waits: RefCell<HashMap<RawFd, Waits>>,
    pub(crate) signal_handlers: RefCell<HashMap<i32, Rc<dyn Callback>>>,
    pub(crate) signals: RefCell<Vec<i32>>,
    /// The loop's cross-thread face ([`EventLoop::remote_ref`]); never written after `new`.
    pub(crate) remote: RemoteLoop,
    pub(crate) skipped_polls: Cell<u32>,
    pub(crate) debug: Cell<bool>,
    pub(crate) slow_callback: Cell<Duration>,
    pub(crate) handler: RefCell<Option<ExceptionHandler>>,
    /// Per-loop state of the crates above, one value per type (see `EventLoop::local`).
    pub(crate) locals: RefCell<Vec<(TypeId, Rc<dyn Any>)>>,
    /// Run by `close()` after everything pending was dropped (see `EventLoop::on_close`).
    pub(crate) close_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Called around a poll that may sleep (see `crate::sleep`).
    pub(crate) sleep_hook: RefCell<Option<Rc<dyn SleepHook>>>,
}

impl Inner {
    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        // Dropped after the borrow ends; the closure was already dropped by `Handle::cancel`.
        let job = self.timers.borrow_mut().cancel(key);
        drop(job);
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.state.get() == State::Closed
    }

    /// Debug mode's report of a loop dropped, or left at its thread's end, without `close()`
    /// (asyncio's `ResourceWarning: unclosed event loop`, from `BaseEventLoop.__del__`).
    pub(crate) fn warn_unclosed(&self) {
        let cap = |b: bool| if b { "True" } else { "False" };
        crate::log_report(
            log::Level::Warn,
            &format!(
                "unclosed event loop <EventLoop running={} closed=False debug={}>",
                cap(self.state.get() == State::Running),
                cap(self.debug.get())
            ),
        );
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.state.get() != State::Closed && self.debug.get() {
            self.warn_unclosed();
        }
        // A loop dropped without close(): refuse further remote submissions and release the
        // ones already queued (their closures are dropped; their handles read cancelled).
        self.remote.shared.queue.close();
        while let Ok(cb) = self.remote.shared.queue.pop() {
            // A destructor that panics must not stop the others (nor unwind out of a drop).
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb.cancel())) {
                default_exception_handler(
                    &Context::new("Exception in the destructor of a callback of a dropped loop")
                        .with_exception(crate::Exception::from_panic(payload)),
                );
            }
        }
    }
}

/// An event loop: asyncio's `BaseEventLoop` without futures and networking (those come from the
/// crates above, through the facade `evloop`).
///
/// `EventLoop` is a cheap, cloneable reference to one loop (clones share it); it is `!Send`.
/// Using it from another thread is therefore a compile error, not asyncio's debug-mode
/// `RuntimeError` (conformance H44) nor its unwoken `call_soon` (I48); another thread schedules
/// work through [`RemoteLoop`], which wakes the loop.
///
/// ```compile_fail
/// let lp = evloop::EventLoop::new().unwrap();
/// std::thread::spawn(move || lp.stop()); // error: `Rc<..>` cannot be sent between threads
/// ```
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let l2 = lp.clone();
/// lp.call_soon(move || {
///     println!("Hello World");
///     l2.stop();
/// })?;
/// lp.run_forever()?;
/// lp.close()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct EventLoop {
    pub(crate) inner: Rc<Inner>,
}

impl EventLoop {
    /// Creates a loop: a reactor (epoll), a timer wheel and an empty ready queue. Debug mode is on
    /// if the environment has `EVLOOP_DEBUG=1`.
    ///
    /// **Close the loop when you are done with it** ([`close`](EventLoop::close)); dropping the
    /// handles is not enough. A pending callback or a transport holding a clone of the loop
    /// keeps it, its fds and its buffers alive, and Rust has no garbage collector to find that
    /// cycle as asyncio's does. `evloop::run(fut)` makes a loop, runs `fut`, and closes it for
    /// you. As a safety net, a thread that ends closes the loops it made and left open, and
    /// debug mode reports a loop dropped or left open without `close()` ("unclosed event
    /// loop", asyncio's `ResourceWarning`).
    ///
    /// # Errors
    ///
    /// The OS error if the reactor cannot be created (e.g. out of file descriptors).
    pub fn new() -> io::Result<EventLoop> {
        let reactor = Reactor::new()?;
        let shared = Arc::new(Shared::new(reactor.waker()));
        let debug = std::env::var_os(DEBUG_ENV).is_some_and(|v| v == "1");
        let lp = EventLoop {
            inner: Rc::new(Inner {
                state: Cell::new(State::Idle),
                stopping: Cell::new(false),
                ready: RefCell::new(VecDeque::new()),
                timers: RefCell::new(TimerWheel::new()),
                reactor: RefCell::new(Some(reactor)),
                events: RefCell::new(Vec::new()),
                watches: RefCell::new(HashMap::new()),
                waits: RefCell::new(HashMap::new()),
                signal_handlers: RefCell::new(HashMap::new()),
                signals: RefCell::new(Vec::new()),
                remote: RemoteLoop { shared },
                skipped_polls: Cell::new(0),
                debug: Cell::new(debug),
                slow_callback: Cell::new(DEFAULT_SLOW_CALLBACK),
                handler: RefCell::new(None),
                locals: RefCell::new(Vec::new()),
                close_hooks: RefCell::new(Vec::new()),
                sleep_hook: RefCell::new(None),
            }),
        };
        owned::register(&lp.inner);
        Ok(lp)
    }

    /// True if `self` and `other` are the same loop.
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.inner.is_closed() {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    // ----- running and stopping -------------------------------------------------------------

    /// Runs until [`stop`](EventLoop::stop) is called.
    ///
    /// If `stop()` was called before, this polls I/O once with a zero timeout, runs the callbacks
    /// that were ready plus those the poll and the timers made ready, and returns. If `stop()`
    /// is called while running, the current batch finishes and the call returns; callbacks the
    /// batch scheduled run at the next `run_forever()`.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] on a closed loop;
    /// - [`Error::already_running`] if this loop is running (a nested call);
    /// - [`Error::other_loop_running`] if another loop runs on this thread.
    pub fn run_forever(&self) -> Result<(), Error> {
        self.run_forever_setup()?;
        // Clean up even if the exception handler's fallback unwinds out of an iteration.
        struct Cleanup<'a>(&'a EventLoop);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                self.0.run_forever_cleanup_inner();
            }
        }
        let _cleanup = Cleanup(self);
        loop {
            self.tick(None);
            if self.inner.stopping.get() {
                break;
            }
        }
        Ok(())
    }

    /// Step API, first step: makes the loop running on this thread, as `run_forever` does before
    /// its first iteration. Then call [`run_once`](EventLoop::run_once) as often as you like, and
    /// finally [`run_forever_cleanup`](EventLoop::run_forever_cleanup). This lets another
    /// program's loop drive evloop.
    ///
    /// # Errors
    ///
    /// As [`run_forever`](EventLoop::run_forever).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{EventLoop, get_running_loop};
    ///
    /// let lp = EventLoop::new()?;
    /// lp.call_soon(|| println!("ran"))?;
    /// lp.run_forever_setup()?;
    /// for _ in 0..3 {
    ///     lp.run_once_timeout(Duration::ZERO)?; // never blocks
    ///     assert!(lp.is_running() && get_running_loop().is_ok());
    /// }
    /// lp.run_forever_cleanup()?;
    /// assert!(!lp.is_running());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_forever_setup(&self) -> Result<(), Error> {
        self.check_open()?;
        if self.inner.state.get() == State::Running {
            return Err(Error::already_running());
        }
        running::enter(self)?;
        self.inner.state.set(State::Running);
        Ok(())
    }

    /// Step API: runs one iteration (asyncio's `_run_once`): poll I/O (with a zero timeout if
    /// callbacks are ready; otherwise until the next timer, at most a day, or until woken), queue
    /// the I/O callbacks and the expired timers, then run the callbacks that were ready when the
    /// run began.
    ///
    /// Like asyncio's, this iteration blocks when nothing is ready and no timer is pending; an
    /// embedding program that must not block uses
    /// [`run_once_timeout`](EventLoop::run_once_timeout).
    ///
    /// # Errors
    ///
    /// - [`Error::not_running`] outside `run_forever_setup` / `run_forever_cleanup`.
    pub fn run_once(&self) -> Result<(), Error> {
        self.check_stepping()?;
        self.tick(None);
        Ok(())
    }

    /// Step API: one iteration whose I/O poll waits at most `max_wait` (`Duration::ZERO`: never
    /// blocks). Otherwise as [`run_once`](EventLoop::run_once).
    ///
    /// # Errors
    ///
    /// - [`Error::not_running`] outside `run_forever_setup` / `run_forever_cleanup`.
    pub fn run_once_timeout(&self, max_wait: Duration) -> Result<(), Error> {
        self.check_stepping()?;
        self.tick(Some(max_wait));
        Ok(())
    }

    fn check_stepping(&self) -> Result<(), Error> {
        let current = running::with_current(|cur| cur.is_some_and(|cur| cur.ptr_eq(self)));
        if self.inner.state.get() != State::Running || !current {
            return Err(Error::not_running());
        }
        Ok(())
    }

    /// Step API, last step: the loop stops running on this thread, and a pending `stop()` is
    /// forgotten.
    ///
    /// # Errors
    ///
    /// - [`Error::not_running`] if the loop is not running.
    pub fn run_forever_cleanup(&self) -> Result<(), Error> {
        if self.inner.state.get() != State::Running {
            return Err(Error::not_running());
        }
        self.run_forever_cleanup_inner();
        Ok(())
    }

    fn run_forever_cleanup_inner(&self) {
        self.inner.stopping.set(false);
        if self.inner.state.get() == State::Running {
            self.inner.state.set(State::Idle);
        }
        running::leave(self);
    }

    /// Stops the loop: `run_forever` returns after the current batch of callbacks. Called while
    /// the loop is not running, the next `run_forever` runs one iteration and returns.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// True while the loop runs (`run_forever`, or between the step API's set-up and clean-up).
    #[inline]
    pub fn is_running(&self) -> bool {
        self.inner.state.get() == State::Running
    }

    /// True once [`close`](EventLoop::close) succeeded.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Per-loop state of a crate built on this one (the task registry, the default executor…):
    /// the one `T` of this loop, created with `T::default()` on first use.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use evloop::EventLoop;
    ///
    /// #[derive(Default)]
    /// struct Counter(Cell<u32>);
    ///
    /// let lp = EventLoop::new()?;
    /// lp.local::<Counter>().0.set(7);
    /// assert_eq!(lp.local::<Counter>().0.get(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local<T: Default + 'static>(&self) -> Rc<T> {
        let id = TypeId::of::<T>();
        let found = self
            .inner
            .locals
            .borrow()
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v.clone());
        let any = match found {
            Some(any) => any,
            None => {
                // Created outside the borrow: `T::default()` may itself use the loop.
                let fresh: Rc<dyn Any> = Rc::new(T::default());
                self.inner.locals.borrow_mut().push((id, fresh.clone()));
                fresh
            }
        };
        // The entry under TypeId::of::<T>() was created as an Rc<T>, so the downcast holds.
        any.downcast::<T>()
            .unwrap_or_else(|_| unreachable!("locals are keyed by their TypeId"))
    }

    /// Registers `f` to run when the loop is closed, after pending callbacks, timers, fd watches
    /// and signal handlers were dropped (the default executor's shutdown uses this). On a closed
    /// loop `f` runs at once.
    pub fn on_close(&self, f: impl FnOnce() + 'static) {
        if self.is_closed() {
            f();
        } else {
            self.inner.close_hooks.borrow_mut().push(Box::new(f));
        }
    }

    // ----- scheduling -----------------------------------------------------------------------

    /// Schedules `f` to run on a later iteration of the loop, after the callbacks already
    /// scheduled (FIFO): asyncio's `call_soon`.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use evloop::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let seen = seen.clone();
    ///     lp.call_soon(move || seen.borrow_mut().push(i))?;
    /// }
    /// let l2 = lp.clone();
    /// lp.call_soon(move || l2.stop())?;
    /// lp.run_forever()?;
    /// assert_eq!(*seen.borrow(), [0, 1, 2]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Result<Handle, Error> {
        self.check_open()?;
        let rc = Once::new_rc(f, Location::caller());
        // The job is made from the concrete `Rc<Once<_>>`: no virtual call to erase it.
        let job = Job::callback(rc.clone());
        self.inner.ready.borrow_mut().push_back(job);
        Ok(Handle { entry: rc })
    }

    /// Queues `step` to run on a later iteration, in the same FIFO as
    /// [`call_soon`](EventLoop::call_soon), without allocating: how the crates above queue a
    /// task's step. There is no handle; `step` is dropped (unrun) if the loop is closed first.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed; `step` is dropped.
    ///
    /// # Examples
    ///
    /// See [`RawStep`].
    #[inline]
    pub fn call_soon_step(&self, step: RawStep) -> Result<(), Error> {
        if self.inner.is_closed() {
            drop(step);
            return Err(Error::closed());
        }
        self.inner.ready.borrow_mut().push_back(Job::step(step));
        Ok(())
    }

    /// Shows each queued [`RawStep`] whose vtable has an `inspect` function to
    /// that function, with `sink`, in queue order: how the owner of a kind of step finds the
    /// work it has queued (evloop-task lists the tasks whose first step is still queued).
    /// Steps of other kinds are expected to ignore a sink whose type they do not know.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{any::Any, ptr::NonNull};
    /// use evloop::EventLoop;
    /// use evloop::raw::{RawStep, StepVTable};
    ///
    /// unsafe fn nothing(_: NonNull<()>) {}
    /// /// Counts the steps of this kind into a `usize` sink.
    /// unsafe fn count(_: NonNull<()>, sink: &mut dyn Any) {
    ///     if let Some(n) = sink.downcast_mut::<usize>() {
    ///         *n += 1;
    ///     }
    /// }
    /// static MINE: StepVTable = StepVTable { run: nothing, drop: nothing, inspect: Some(count) };
    ///
    /// let lp = EventLoop::new()?;
    /// for _ in 0..3 {
    ///     // SAFETY: the pointer is never dereferenced by these functions.
    ///     lp.call_soon_step(unsafe { RawStep::new(NonNull::dangling(), &MINE) })?;
    /// }
    /// lp.call_soon(|| {})?;
    /// let mut n = 0_usize;
    /// lp.inspect_queued_steps(&mut n);
    /// assert_eq!(n, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn inspect_queued_steps(&self, sink: &mut dyn Any) {
        for job in self.inner.ready.borrow().iter() {
            job.inspect_step(sink);
        }
    }

    /// asyncio's `call_soon_threadsafe`, called on the loop's own thread: the same as
    /// [`call_soon`](EventLoop::call_soon), in the same FIFO. From other threads use
    /// [`remote`](EventLoop::remote).
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed.
    #[track_caller]
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<Handle, Error> {
        self.call_soon(f)
    }

    /// A `Send + Sync` handle through which other threads schedule callbacks on this loop.
    pub fn remote(&self) -> RemoteLoop {
        self.inner.remote.clone()
    }

    /// The loop's [`RemoteLoop`], borrowed: no reference count is taken.
    ///
    /// It reads nothing but a field set when the loop was made and never written again; the
    /// crates above rely on that (a task's waker, woken on another thread, reaches its loop
    /// this way without touching anything else of it), so keep it so.
    #[inline]
    pub fn remote_ref(&self) -> &RemoteLoop {
        &self.inner.remote
    }

    /// Schedules `f` to run after `delay` (a [`Duration`] or `f64` seconds): asyncio's
    /// `call_later`. Timers with equal deadlines run in the order they were scheduled (asyncio
    /// does not promise that; evloop does).
    ///
    /// Negative delays are due at once (as a deadline that far in the past, so they run before
    /// timers due later); `f64::INFINITY` never fires; delays longer than a day work (the loop
    /// wakes at least once a day and re-checks). Deadlines saturate at 2^64 − 2 ns of the
    /// monotonic clock (about 584 years of uptime).
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed;
    /// - an invalid-argument [`Error`] for a NaN delay.
    ///
    /// # Precision
    ///
    /// The callback never runs before its deadline; it runs on the first iteration after it
    /// (epoll's timeout is nanosecond-precise through a timerfd, so the lateness is the
    /// scheduler's wake-up latency plus whatever callbacks run first).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use evloop::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let start = Instant::now();
    /// let l2 = lp.clone();
    /// lp.call_later(Duration::from_millis(20), move || l2.stop())?;
    /// lp.run_forever()?;
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn call_later(
        &self,
        delay: impl Delay,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, Error> {
        let location = Location::caller();
        self.check_open()?;
        let deadline = match delay.to_nanos()? {
            Some(ns) => clock::offset_from(clock::now_ns(), ns),
            None => NEVER,
        };
        Ok(self.schedule_at(deadline, f, location))
    }

    /// Schedules `f` to run at `when`: `f64` seconds on the clock of
    /// [`time`](EventLoop::time), or an [`Instant`](std::time::Instant). asyncio's `call_at`.
    ///
    /// # Errors
    ///
    /// - [`Error::closed`] if the loop is closed;
    /// - an invalid-argument [`Error`] for a NaN time.
    #[track_caller]
    pub fn call_at(
        &self,
        when: impl Deadline,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, Error> {
        let location = Location::caller();
        self.check_open()?;
        let deadline = when.to_loop_nanos()?.unwrap_or(NEVER);
        Ok(self.schedule_at(deadline, f, location))
    }

    fn schedule_at(
        &self,
        deadline: u64,
        f: impl FnOnce() + 'static,
        location: &'static Location<'static>,
    ) -> TimerHandle {
        let rc = Once::new_rc(f, location);
        let key = self
            .inner
            .timers
            .borrow_mut()
            .insert(deadline, Job::callback(rc.clone()));
        TimerHandle {
            handle: Handle { entry: rc },
            deadline,
            key,
            owner: Rc::downgrade(&self.inner),
        }
    }

    /// The loop's clock: the system's monotonic clock in seconds (`CLOCK_MONOTONIC`, as Python's
    /// `time.monotonic()`). Timers are scheduled on it.
    pub fn time(&self) -> f64 {
        clock::ns_to_secs(clock::now_ns())
    }

    // ----- exception handler and debug mode -------------------------------------------------

    /// Sets the exception handler (`None` restores the default, which logs, or writes to stderr
    /// when the program installed no logger: see [`log_report`](crate::log_report)).
    pub fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        let old = self.inner.handler.replace(handler);
        drop(old);
    }

    /// The custom exception handler, or `None` if the default one is in use.
    pub fn get_exception_handler(&self) -> Option<ExceptionHandler> {
        self.inner.handler.borrow().clone()
    }

    /// The default handler: logs the context through `log` at error level, or writes it to
    /// stderr when the program installed no logger (see [`log_report`](crate::log_report)).
    pub fn default_exception_handler(&self, ctx: &Context) {
        default_exception_handler(ctx);
    }

    /// Passes `ctx` to the exception handler. A custom handler that panics is contained: the
    /// default handler then gets "Unhandled error in exception handler" with the panic as
    /// `exception` and the original context under `context`.
    pub fn call_exception_handler(&self, ctx: Context) {
        let handler = self.inner.handler.borrow().clone();
        let Some(handler) = handler else {
            default_exception_handler(&ctx);
            return;
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler(self, &ctx);
        }));
        if let Err(payload) = outcome {
            let ctx = Context::new("Unhandled error in exception handler")
                .with_exception(crate::Exception::from_panic(payload))
                .with("context", ctx);
            default_exception_handler(&ctx);
        }
    }

    /// True if debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// Turns debug mode on or off: in debug mode, callbacks slower than
    /// [`slow_callback_duration`](EventLoop::slow_callback_duration) are logged at warn level
    /// with the place they were scheduled from, and slow steps by the name they give (a task's
    /// step: `Executing <Task pending name='Task-3'> took 0.120 seconds`; see
    /// [`StepName`](crate::StepName)).
    pub fn set_debug(&self, enabled: bool) {
        self.inner.debug.set(enabled);
    }

    /// The threshold above which debug mode reports a callback as slow (default 100 ms).
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback.get()
    }

    /// Sets the slow-callback threshold of debug mode.
    pub fn set_slow_callback_duration(&self, threshold: Duration) {
        self.inner.slow_callback.set(threshold);
    }
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("state", &self.inner.state.get())
            .field("debug", &self.inner.debug.get())
            .field(
                "ready",
                &self.inner.ready.try_borrow().map(|r| r.len()).ok(),
            )
            .field(
                "timers",
                &self.inner.timers.try_borrow().map(|t| t.len()).ok(),
            )
            .finish_non_exhaustive()
    }
}
