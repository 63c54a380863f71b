//! `LoopCore`: the native half of `evloop.Loop`.
//!
//! `evloop.Loop` (Python, `python/evloop/__init__.py`) is `class Loop(LoopCore,
//! asyncio.BaseEventLoop)`: the methods defined here come first in its MRO and replace
//! BaseEventLoop's (scheduling, the clock, the run, fd watching), and BaseEventLoop's Python code
//! gives the rest (futures, tasks, executors, name resolution, servers) on top of them.
//!
//! # Ground rules
//!
//! - The evloop `EventLoop` lives in an [`OnThread`] cell: the thread that created the Python
//!   loop is the only one that may touch it; every method but `call_soon_threadsafe`, `stop`,
//!   `time` and `is_running` raises `RuntimeError` on another thread. Those four go through the
//!   `RemoteLoop` (`Send + Sync`) or need no loop.
//! - The GIL is held whenever Python code or a Python object is touched; it is released only
//!   inside a poll that may sleep ([`ReleaseGil`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use evloop_sched::{Error, EventLoop, RemoteLoop};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::gil::ReleaseGil;
use crate::handle::{Handle, TimerHandle, fire};
use crate::on_thread::OnThread;
use crate::running;
use crate::sock::{self, Op, SockCall};

/// An evloop error as the Python exception asyncio raises in that situation.
fn to_py(err: Error) -> PyErr {
    if err.is_closed() {
        PyRuntimeError::new_err("Event loop is closed")
    } else if err.is_already_running() {
        PyRuntimeError::new_err("This event loop is already running")
    } else if err.is_other_loop_running() {
        PyRuntimeError::new_err("Cannot run the event loop while another loop is running")
    } else if err.is_invalid_argument() {
        PyValueError::new_err(err.to_string())
    } else {
        PyRuntimeError::new_err(err.to_string())
    }
}

/// The native core of `evloop.Loop` (see the module docs).
#[pyclass(frozen, subclass, module = "evloop._core", name = "LoopCore")]
pub(crate) struct LoopCore {
    lp: OnThread<EventLoop>,
    /// The handle of each fd's reader and writer, as asyncio's selector keeps them: replacing
    /// or removing a watch cancels its handle, so that the clean-up a `sock_*` call left for
    /// its own watch (`_sock_read_done`, which checks `handle.cancelled()`) never removes the
    /// watch of a later call on the same fd.
    handles: OnThread<Rc<RefCell<Watches>>>,
    remote: RemoteLoop,
    /// Callbacks sent from other threads (`call_soon_threadsafe`) not yet run or dropped. While
    /// there are any, `call_soon` on the loop's thread sends its callback the same way, behind
    /// them: asyncio's `call_soon_threadsafe` appends to the one ready queue under the GIL, so
    /// a callback sent from another thread before a `call_soon` runs before it.
    remote_pending: Arc<AtomicUsize>,
    /// `stop()` was called (on any thread) since the current run began, or before it.
    stop_called: Arc<AtomicBool>,
    debug: AtomicBool,
}

/// Counts a callback in `remote_pending` until it runs or is dropped unrun.
struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn new(counter: &Arc<AtomicUsize>) -> Pending {
        counter.fetch_add(1, Ordering::AcqRel);
        Pending(counter.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The handle of each watched fd's reader and writer.
type Watches = HashMap<RawFd, [Option<Py<Handle>>; 2]>;

/// Which side of an fd a watch is for.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Reader = 0,
    Writer = 1,
}

/// Cancels a handle that no longer watches its fd.
fn cancel_handle(py: Python<'_>, handle: Option<Py<Handle>>) {
    if let Some(handle) = handle {
        handle.bind(py).borrow_mut().cancel_watch();
    }
}

impl LoopCore {
    /// The run: asyncio's iterations until `stop()`.
    ///
    /// Each of asyncio's iterations polls I/O; evloop skips the zero-timeout poll of up to 63
    /// iterations in a row while callbacks are ready, and a run stopped by a callback ends
    /// after that callback's iteration without another poll. So a short run
    /// (`run_until_complete` of a future already done, a test's `run_briefly`) could miss I/O
    /// that asyncio's would see. The first iteration of every run therefore polls: it is
    /// `stop(); run_forever()`, which evloop runs as exactly one iteration with a poll; then,
    /// unless `stop()` was called before the run or during that iteration, the rest.
    fn run_iterations(&self, lp: &EventLoop) -> Result<(), Error> {
        let stopped_before = self.stop_called.swap(false, Ordering::AcqRel);
        lp.stop();
        lp.run_forever()?;
        if stopped_before || self.stop_called.load(Ordering::Acquire) || running::is_escaping() {
            return Ok(());
        }
        lp.run_forever()
    }

    /// Queues `handle` through the cross-thread queue, counted in `remote_pending`.
    fn send(core: &LoopCore, handle: Py<Handle>) -> PyResult<()> {
        let pending = Pending::new(&core.remote_pending);
        core.remote
            .call_soon_threadsafe(move || {
                let _pending = pending;
                fire(&handle);
            })
            .map(drop)
            .map_err(to_py)
    }

    fn check_debug(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        method: &str,
    ) -> PyResult<()> {
        if slf.get().debug.load(Ordering::Relaxed) {
            slf.call_method0("_check_thread")?;
            slf.call_method1("_check_callback", (callback, method))?;
        }
        Ok(())
    }

    fn watch(
        slf: &Bound<'_, Self>,
        side: Side,
        fileobj: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Self::watch_fd(slf, side, fileobj_to_fd(fileobj)?, callback, args)
    }

    /// Watches `fd` with a new handle of `callback(*args)`, replacing (and cancelling) the
    /// handle that watched that side of it: asyncio's `_add_reader`/`_add_writer`.
    pub(crate) fn watch_fd(
        slf: &Bound<'_, Self>,
        side: Side,
        fd: RawFd,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let lp = slf.get().lp.get()?;
        if lp.is_closed() {
            return Err(to_py(Error::closed()));
        }
        let handle = Py::new(
            py,
            Handle::new(
                py,
                callback,
                args,
                None,
                slf.clone().into_any().unbind(),
                slf.get().debug.load(Ordering::Relaxed),
            )?,
        )?;
        let h2 = handle.clone_ref(py);
        let watches = Rc::clone(slf.get().handles.get()?);
        let on_ready = move || {
            let cancelled = Python::attach(|py| h2.bind(py).borrow().is_cancelled());
            if cancelled {
                // As asyncio's selector loop: a handle cancelled by its owner stops the watch.
                // Only if it is still this fd's watch: a callback queued by a poll may run after
                // its watch was replaced in the same iteration, and must not remove the new one.
                let current = watches
                    .borrow()
                    .get(&fd)
                    .and_then(|pair| pair[side as usize].as_ref().map(|h| h.is(&h2)))
                    == Some(true);
                if current {
                    watches.borrow_mut().entry(fd).or_default()[side as usize] = None;
                    if let Ok(lp) = evloop_sched::get_running_loop() {
                        match side {
                            Side::Reader => lp.remove_reader(fd),
                            Side::Writer => lp.remove_writer(fd),
                        };
                    }
                }
                return;
            }
            fire(&h2);
        };
        let added = match side {
            Side::Reader => lp.add_reader(fd, on_ready),
            Side::Writer => lp.add_writer(fd, on_ready),
        };
        added.map_err(PyErr::from)?;
        let old = slf.get().handles.get()?.borrow_mut().entry(fd).or_default()[side as usize]
            .replace(handle.clone_ref(py));
        cancel_handle(py, old);
        Ok(handle)
    }

    fn unwatch(slf: &Bound<'_, Self>, side: Side, fileobj: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::unwatch_fd(slf, side, fileobj_to_fd(fileobj)?)
    }

    /// Stops watching `fd` with `handle` if it is still that side's handle (a later watch may
    /// have replaced it: that one stays). On a closed loop there is nothing left to remove.
    pub(crate) fn unwatch_handle(
        slf: &Bound<'_, Self>,
        side: Side,
        fd: RawFd,
        handle: &Py<Handle>,
    ) -> PyResult<()> {
        let current = slf
            .get()
            .handles
            .get()?
            .borrow()
            .get(&fd)
            .and_then(|pair| pair[side as usize].as_ref().map(|h| h.is(handle)))
            == Some(true);
        if current {
            Self::unwatch_fd(slf, side, fd)?;
        }
        Ok(())
    }

    fn unwatch_fd(slf: &Bound<'_, Self>, side: Side, fd: RawFd) -> PyResult<bool> {
        let core = slf.get();
        let lp = core.lp.get()?;
        let old = {
            let mut handles = core.handles.get()?.borrow_mut();
            let old = handles
                .get_mut(&fd)
                .and_then(|pair| pair[side as usize].take());
            if handles
                .get(&fd)
                .is_some_and(|pair| pair.iter().all(Option::is_none))
            {
                handles.remove(&fd);
            }
            old
        };
        cancel_handle(slf.py(), old);
        Ok(match side {
            Side::Reader => lp.remove_reader(fd),
            Side::Writer => lp.remove_writer(fd),
        })
    }

    fn schedule_at(
        slf: &Bound<'_, Self>,
        when: f64,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        method: &str,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let lp = slf.get().lp.get()?;
        if lp.is_closed() {
            return Err(to_py(Error::closed()));
        }
        Self::check_debug(slf, &callback, method)?;
        let base = Handle::new(
            py,
            callback,
            args,
            context,
            slf.clone().into_any().unbind(),
            slf.get().debug.load(Ordering::Relaxed),
        )?;
        let timer = Bound::new(
            py,
            PyClassInitializer::from(base).add_subclass(TimerHandle::new(when)),
        )?;
        let handle: Py<Handle> = timer.as_super().clone().unbind();
        let scheduled = lp.call_at(when, move || fire(&handle)).map_err(to_py)?;
        TimerHandle::set_timer(&timer, scheduled);
        Ok(timer.unbind())
    }
}

/// asyncio's `selectors._fileobj_to_fd`: an int, or an object with `fileno()`.
fn fileobj_to_fd(fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = match fileobj.extract::<i64>() {
        Ok(fd) => fd,
        Err(_) => fileobj
            .call_method0("fileno")
            .and_then(|n| n.extract::<i64>())
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "Invalid file object: {}",
                    fileobj.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?,
    };
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    RawFd::try_from(fd).map_err(|_| PyValueError::new_err(format!("Invalid file descriptor: {fd}")))
}

/// `time.monotonic()`: the clock of evloop's timers (`CLOCK_MONOTONIC`), readable on any thread.
fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let lp = EventLoop::new().map_err(PyOSError::new_err)?;
        lp.set_sleep_hook(Some(Rc::new(ReleaseGil::new())));
        Ok(LoopCore {
            remote: lp.remote(),
            remote_pending: Arc::new(AtomicUsize::new(0)),
            stop_called: Arc::new(AtomicBool::new(false)),
            lp: OnThread::new(lp),
            handles: OnThread::new(Rc::new(RefCell::new(HashMap::new()))),
            debug: AtomicBool::new(false),
        })
    }

    /// asyncio's `call_soon(callback, *args, context=None)`.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let lp = slf.get().lp.get()?;
        if lp.is_closed() {
            return Err(to_py(Error::closed()));
        }
        Self::check_debug(slf, &callback, "call_soon")?;
        let handle = Py::new(
            py,
            Handle::new(
                py,
                callback,
                args,
                context,
                slf.clone().into_any().unbind(),
                slf.get().debug.load(Ordering::Relaxed),
            )?,
        )?;
        let core = slf.get();
        if core.remote_pending.load(Ordering::Acquire) > 0 {
            Self::send(core, handle.clone_ref(py))?;
        } else {
            let h2 = handle.clone_ref(py);
            lp.call_soon(move || fire(&h2)).map_err(to_py)?;
        }
        Ok(handle)
    }

    /// asyncio's `call_soon_threadsafe`: from any thread; wakes the loop.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let core = slf.get();
        if core.remote.is_closed() {
            return Err(to_py(Error::closed()));
        }
        if core.debug.load(Ordering::Relaxed) {
            slf.call_method1("_check_callback", (&callback, "call_soon_threadsafe"))?;
        }
        let handle = Py::new(
            py,
            Handle::new(
                py,
                callback,
                args,
                context,
                slf.clone().into_any().unbind(),
                slf.get().debug.load(Ordering::Relaxed),
            )?,
        )?;
        match core.lp.try_get() {
            // On the loop's thread: the plain FIFO of call_soon.
            Some(lp) if core.remote_pending.load(Ordering::Acquire) == 0 => {
                let h2 = handle.clone_ref(py);
                lp.call_soon(move || fire(&h2)).map_err(to_py)?;
            }
            _ => Self::send(core, handle.clone_ref(py))?,
        }
        Ok(handle)
    }

    /// asyncio's `call_later(delay, callback, *args, context=None)`.
    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: Option<f64>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let delay = delay.ok_or_else(|| PyTypeError::new_err("delay must not be None"))?;
        Self::schedule_at(
            slf,
            monotonic() + delay,
            callback,
            args,
            context,
            "call_later",
        )
    }

    /// asyncio's `call_at(when, callback, *args, context=None)`.
    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(
        slf: &Bound<'_, Self>,
        when: Option<f64>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let when = when.ok_or_else(|| PyTypeError::new_err("when cannot be None"))?;
        Self::schedule_at(slf, when, callback, args, context, "call_at")
    }

    /// The loop's clock: `time.monotonic()`.
    fn time(&self) -> f64 {
        monotonic()
    }

    /// Stops the loop after the current iteration (from another thread: as soon as it wakes).
    fn stop(&self) -> PyResult<()> {
        match self.lp.try_get() {
            Some(lp) => {
                self.stop_called.store(true, Ordering::Release);
                lp.stop();
            }
            None => {
                let stop_called = self.stop_called.clone();
                let _ = self.remote.call_soon_threadsafe(move || {
                    stop_called.store(true, Ordering::Release);
                    if let Ok(lp) = evloop_sched::get_running_loop() {
                        lp.stop();
                    }
                });
            }
        }
        Ok(())
    }

    /// True while the loop runs.
    fn is_running(&self) -> bool {
        self.lp.try_get().is_some_and(EventLoop::is_running)
    }

    /// Runs the evloop loop until `stop()`; `evloop.Loop.run_forever` calls it once the Python
    /// side (running loop, asyncgen hooks) is set up. Raises what a callback let escape.
    fn _core_run(&self) -> PyResult<()> {
        let lp = self.lp.get()?;
        let was_debug = running::debug();
        running::set_debug(self.debug.load(Ordering::Relaxed));
        let outcome = self.run_iterations(lp);
        running::set_debug(was_debug);
        self.stop_called.store(false, Ordering::Release);
        let escaping = running::take_escaping();
        outcome.map_err(to_py)?;
        match escaping {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Closes the evloop loop: pending callbacks and timers are dropped, fd watches removed.
    /// On another thread it does nothing (the loop cannot be touched there).
    fn _core_close(&self) -> PyResult<()> {
        if let Some(lp) = self.lp.try_get() {
            if !lp.is_closed() {
                lp.close().map_err(to_py)?;
            }
        }
        if let Some(handles) = self.handles.try_get() {
            let all = std::mem::take(&mut *handles.borrow_mut());
            drop(all);
        }
        Ok(())
    }

    /// Debug mode on or off for the native part (checks in `call_soon`, slow callbacks).
    fn _core_set_debug(&self, enabled: bool) {
        self.debug.store(enabled, Ordering::Relaxed);
        if self.is_running() {
            running::set_debug(enabled);
        }
    }

    /// Which sides of `fd` are watched by a live handle: 1 (reading) | 2 (writing), as
    /// `selectors.EVENT_READ | EVENT_WRITE`; 0 if none.
    fn _core_watching(&self, py: Python<'_>, fd: RawFd) -> PyResult<u8> {
        let handles = self.handles.get()?.borrow();
        let Some(pair) = handles.get(&fd) else {
            return Ok(0);
        };
        let live = |h: &Option<Py<Handle>>| {
            h.as_ref()
                .is_some_and(|h| !h.bind(py).borrow().is_cancelled())
        };
        Ok(u8::from(live(&pair[0])) | (u8::from(live(&pair[1])) << 1))
    }

    /// asyncio's `add_reader(fd, callback, *args)`.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(
        slf: &Bound<'_, Self>,
        fd: Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        slf.call_method1("_ensure_fd_no_transport", (&fd,))?;
        Self::watch(slf, Side::Reader, &fd, callback, args).map(drop)
    }

    /// asyncio's internal `_add_reader`, which transports use: returns the handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Self::watch(slf, Side::Reader, &fd, callback, args)
    }

    /// asyncio's `add_writer(fd, callback, *args)`.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(
        slf: &Bound<'_, Self>,
        fd: Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        slf.call_method1("_ensure_fd_no_transport", (&fd,))?;
        Self::watch(slf, Side::Writer, &fd, callback, args).map(drop)
    }

    /// asyncio's internal `_add_writer`: returns the handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Self::watch(slf, Side::Writer, &fd, callback, args)
    }

    /// asyncio's `remove_reader(fd)`: True if a reader was removed.
    fn remove_reader(slf: &Bound<'_, Self>, fd: Bound<'_, PyAny>) -> PyResult<bool> {
        slf.call_method1("_ensure_fd_no_transport", (&fd,))?;
        Self::unwatch(slf, Side::Reader, &fd)
    }

    fn _remove_reader(slf: &Bound<'_, Self>, fd: Bound<'_, PyAny>) -> PyResult<bool> {
        Self::unwatch(slf, Side::Reader, &fd)
    }

    /// asyncio's `remove_writer(fd)`: True if a writer was removed.
    fn remove_writer(slf: &Bound<'_, Self>, fd: Bound<'_, PyAny>) -> PyResult<bool> {
        slf.call_method1("_ensure_fd_no_transport", (&fd,))?;
        Self::unwatch(slf, Side::Writer, &fd)
    }

    fn _remove_writer(slf: &Bound<'_, Self>, fd: Bound<'_, PyAny>) -> PyResult<bool> {
        Self::unwatch(slf, Side::Writer, &fd)
    }

    // ----- asyncio's sock_* methods (crate::sock): each returns a native coroutine ----------

    /// asyncio's `sock_recv(sock, n)`: up to `n` bytes received.
    fn sock_recv(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        n: Bound<'_, PyAny>,
    ) -> PyResult<Py<SockCall>> {
        SockCall::start(slf, sock, Op::Recv { n: n.unbind() })
    }

    /// asyncio's `sock_recv_into(sock, buf)`: the number of bytes received into `buf`.
    fn sock_recv_into(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        buf: Bound<'_, PyAny>,
    ) -> PyResult<Py<SockCall>> {
        SockCall::start(slf, sock, Op::RecvInto { buf: buf.unbind() })
    }

    /// asyncio's `sock_recvfrom(sock, bufsize)`: a datagram and its sender's address.
    fn sock_recvfrom(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        bufsize: Bound<'_, PyAny>,
    ) -> PyResult<Py<SockCall>> {
        let bufsize = bufsize.unbind();
        SockCall::start(slf, sock, Op::RecvFrom { bufsize })
    }

    /// asyncio's `sock_recvfrom_into(sock, buf, nbytes=0)`: (bytes received, address).
    #[pyo3(signature = (sock, buf, nbytes = None))]
    fn sock_recvfrom_into(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        buf: Bound<'_, PyAny>,
        nbytes: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<SockCall>> {
        let py = slf.py();
        let nbytes = match nbytes {
            Some(nbytes) => nbytes.unbind(),
            None => 0i64.into_pyobject(py)?.into_any().unbind(),
        };
        let buf = buf.unbind();
        SockCall::start(slf, sock, Op::RecvFromInto { buf, nbytes })
    }

    /// asyncio's `sock_sendall(sock, data)`: sends all of `data`.
    fn sock_sendall(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        data: Bound<'_, PyAny>,
    ) -> PyResult<Py<SockCall>> {
        let data = data.unbind();
        SockCall::start(
            slf,
            sock,
            Op::SendAll {
                data,
                view: None,
                sent: 0,
            },
        )
    }

    /// asyncio's `sock_sendto(sock, data, address)`: the number of bytes sent.
    fn sock_sendto(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        data: Bound<'_, PyAny>,
        address: Bound<'_, PyAny>,
    ) -> PyResult<Py<SockCall>> {
        let (data, address) = (data.unbind(), address.unbind());
        SockCall::start(slf, sock, Op::SendTo { data, address })
    }

    /// asyncio's `sock_connect(sock, address)`. An address to resolve first (not an IP
    /// literal) gets asyncio's own coroutine, which awaits `getaddrinfo`.
    fn sock_connect(
        slf: &Bound<'_, Self>,
        sock: Bound<'_, PyAny>,
        address: Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match sock::resolved_address(&sock, &address) {
            Some(address) => {
                let address = address.unbind();
                let call = SockCall::start(
                    slf,
                    sock,
                    Op::Connect {
                        address,
                        started: false,
                    },
                )?;
                Ok(call.into_any())
            }
            None => Ok(py
                .import("asyncio.selector_events")?
                .getattr("BaseSelectorEventLoop")?
                .getattr("sock_connect")?
                .call1((slf, sock, address))?
                .unbind()),
        }
    }

    /// asyncio's `sock_accept(sock)`: `(conn, address)`, `conn` non-blocking.
    fn sock_accept(slf: &Bound<'_, Self>, sock: Bound<'_, PyAny>) -> PyResult<Py<SockCall>> {
        SockCall::start(slf, sock, Op::Accept)
    }
}

/// Called in the child after `fork()` (`os.register_at_fork`): the loop that was running on
/// the forking thread is not running in the child, whose own loops must be able to run (asyncio
/// forgets its running loop there too).
#[pyfunction]
pub(crate) fn forget_running_loop() {
    if let Ok(lp) = evloop_sched::get_running_loop() {
        let _ = lp.run_forever_cleanup();
    }
}
