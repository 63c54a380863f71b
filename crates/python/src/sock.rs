//! asyncio's `sock_*` methods, native: `sock_recv`, `sock_recv_into`, `sock_recvfrom`,
//! `sock_recvfrom_into`, `sock_sendall`, `sock_sendto`, `sock_connect`, `sock_accept`.
//!
//! Each call returns a [`SockCall`], a native coroutine: `asyncio.iscoroutine` accepts it
//! (it has `send`, `throw`, `close` and `__await__`), so it can be awaited, wrapped in a task or
//! given to `run_until_complete` like the coroutine asyncio's selector loop returns. It follows
//! `asyncio/selector_events.py` (CPython 3.11 to 3.13, which agree) step for step:
//!
//! 1. On its first step: `base_events._check_ssl_socket(sock)` (an `ssl.SSLSocket` is refused
//!    with `TypeError`), and in debug mode a socket that is not non-blocking is refused with
//!    `ValueError("the socket must be non-blocking")`.
//! 2. The operation is tried at once. Done, the coroutine returns its result without a future.
//! 3. Would it block (`BlockingIOError`, `InterruptedError`), the fd must not belong to a
//!    transport (`_ensure_fd_no_transport`), a future is made (`loop.create_future()`) and the
//!    fd watched (a reader, or a writer for `sock_sendall`, `sock_sendto`, `sock_connect`)
//!    with a handle whose callback is the `SockCall` itself: each time the fd is ready it tries
//!    again, and once done it removes its watch and completes the future; the coroutine yields
//!    the future and returns its result when the task resumes it.
//! 4. Cancelled (the task cancels the future, then throws into the coroutine) or closed, it
//!    removes its watch. Its watch is removed only while it is still the fd's: a later
//!    `add_reader` on the same fd replaces it (and cancels its handle), as in asyncio, where the
//!    replaced call then waits forever.
//!
//! `sock_connect` resolves an address that is not an IP literal with `getaddrinfo` first
//! (`_ensure_resolved`); that case returns asyncio's own Python coroutine, which awaits the
//! resolution.
//!
//! The hot path calls libc: `sock_recv` and `sock_sendall` of `bytes` on a plain
//! `socket.socket` do `recv(2)`/`send(2)` with `MSG_DONTWAIT` on its fd, so a call that would
//! block costs no Python exception, and never blocks the loop even on a blocking socket (where
//! asyncio's would block in non-debug mode). Everything else, and any subclass of
//! `socket.socket`, calls the socket's own Python methods as asyncio does.

use std::os::fd::RawFd;

use pyo3::exceptions::{
    PyBlockingIOError, PyInterruptedError, PyKeyboardInterrupt, PyOSError, PyRuntimeError,
    PyStopIteration, PySystemExit, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit, ffi, intern};

use crate::core::{LoopCore, Side};
use crate::handle::Handle;

/// What a `SockCall` does, with its arguments as the caller gave them.
pub(crate) enum Op {
    Recv {
        n: Py<PyAny>,
    },
    RecvInto {
        buf: Py<PyAny>,
    },
    RecvFrom {
        bufsize: Py<PyAny>,
    },
    RecvFromInto {
        buf: Py<PyAny>,
        nbytes: Py<PyAny>,
    },
    /// `view` is the `memoryview(data)` asyncio slices once a first send was partial (not
    /// needed for `bytes` on a plain socket, sent from its own memory); `sent` is how much of
    /// `data` went out.
    SendAll {
        data: Py<PyAny>,
        view: Option<Py<PyAny>>,
        sent: usize,
    },
    SendTo {
        data: Py<PyAny>,
        address: Py<PyAny>,
    },
    /// `started`: `connect()` was called and returned `EINPROGRESS`; the writable socket's
    /// `SO_ERROR` then says how it ended.
    Connect {
        address: Py<PyAny>,
        started: bool,
    },
    Accept,
    /// Stands in while the operation is out of its `SockCall` for a try: the socket's Python
    /// methods run with no borrow of the call held (a re-entrant `close()` must work).
    Running,
}

impl Op {
    /// asyncio's method name, for `__name__` and messages.
    fn name(&self) -> &'static str {
        match self {
            Op::Recv { .. } => "sock_recv",
            Op::RecvInto { .. } => "sock_recv_into",
            Op::RecvFrom { .. } => "sock_recvfrom",
            Op::RecvFromInto { .. } => "sock_recvfrom_into",
            Op::SendAll { .. } => "sock_sendall",
            Op::SendTo { .. } => "sock_sendto",
            Op::Connect { .. } => "sock_connect",
            Op::Accept => "sock_accept",
            Op::Running => "sock_call",
        }
    }

    /// The side of the fd a call that would block waits on.
    fn side(&self) -> Side {
        match self {
            Op::SendAll { .. } | Op::SendTo { .. } | Op::Connect { .. } => Side::Writer,
            _ => Side::Reader,
        }
    }

    fn objects(&self) -> [Option<&Py<PyAny>>; 2] {
        match self {
            Op::Recv { n } => [Some(n), None],
            Op::RecvInto { buf } => [Some(buf), None],
            Op::RecvFrom { bufsize } => [Some(bufsize), None],
            Op::RecvFromInto { buf, nbytes } => [Some(buf), Some(nbytes)],
            Op::SendAll { data, view, .. } => [Some(data), view.as_ref()],
            Op::SendTo { data, address } => [Some(data), Some(address)],
            Op::Connect { address, .. } => [Some(address), None],
            Op::Accept | Op::Running => [None, None],
        }
    }
}

/// Where a `SockCall` is.
enum State {
    /// Made, not stepped yet.
    Start,
    /// Waiting for `fd` with `handle` (its watch) to complete `fut`.
    Waiting {
        fut: Py<PyAny>,
        handle: Py<Handle>,
        fd: RawFd,
    },
    /// Returned, raised, or closed.
    Done,
}

/// One try of the operation.
enum Attempt {
    Done(Py<PyAny>),
    WouldBlock,
    Failed(PyErr),
}

impl From<PyResult<Option<Py<PyAny>>>> for Attempt {
    fn from(outcome: PyResult<Option<Py<PyAny>>>) -> Attempt {
        match outcome {
            Ok(Some(value)) => Attempt::Done(value),
            Ok(None) => Attempt::WouldBlock,
            Err(err) => Attempt::Failed(err),
        }
    }
}

/// A `sock_*` call of `evloop.Loop` in progress: a native coroutine (see the module docs).
#[pyclass(module = "evloop._core", name = "SockCall")]
pub(crate) struct SockCall {
    event_loop: Py<LoopCore>,
    sock: Py<PyAny>,
    op: Op,
    /// The method's name (`Op::name`), kept while `op` is out for a try.
    name: &'static str,
    /// The side of the fd it waits on (`Op::side`).
    side: Side,
    state: State,
}

static SOCKET_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SSL_SOCKET_TYPE: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

/// Whether `sock` is a plain `socket.socket`, whose `recv`/`send` the hot path may bypass.
fn is_plain_socket(sock: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = sock.py();
    let socket_type = SOCKET_TYPE.import(py, "socket", "socket")?;
    Ok(sock.get_type().is(socket_type))
}

/// asyncio's `base_events._check_ssl_socket`.
fn check_ssl_socket(sock: &Bound<'_, PyAny>) -> PyResult<()> {
    if is_plain_socket(sock)? {
        return Ok(());
    }
    let py = sock.py();
    let ssl_socket = SSL_SOCKET_TYPE.get_or_init(py, || {
        py.import("ssl")
            .and_then(|ssl| ssl.getattr("SSLSocket"))
            .ok()
            .map(Bound::unbind)
    });
    if let Some(ssl_socket) = ssl_socket {
        if sock.is_instance(ssl_socket.bind(py))? {
            return Err(PyTypeError::new_err("Socket cannot be of type SSLSocket"));
        }
    }
    Ok(())
}

/// Whether a socket call failed only because it would block (or was interrupted): asyncio's
/// `except (BlockingIOError, InterruptedError)`.
fn would_block(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyBlockingIOError>(py) || err.is_instance_of::<PyInterruptedError>(py)
}

/// A Python socket call: its result, or `None` if it would block.
fn would_block_is_none(
    py: Python<'_>,
    outcome: PyResult<Bound<'_, PyAny>>,
) -> PyResult<Option<Py<PyAny>>> {
    match outcome {
        Ok(value) => Ok(Some(value.unbind())),
        Err(err) if would_block(py, &err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// A libc call's failure as Python's socket methods raise it: `None` if it would block or was
/// interrupted, else `OSError(errno, strerror)` (the subclass CPython picks for the errno).
fn os_error() -> PyResult<Option<Py<PyAny>>> {
    let err = std::io::Error::last_os_error();
    let code = err.raw_os_error().unwrap_or(0);
    if code == libc::EAGAIN || code == libc::EWOULDBLOCK || code == libc::EINTR {
        return Ok(None);
    }
    let text = err.to_string();
    let message = text.split(" (os error").next().unwrap_or(&text).to_string();
    Err(PyOSError::new_err((code, message)))
}

/// The socket's fd, as its `fileno()` says (-1 once closed: the call then fails with `EBADF`).
fn fileno(sock: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    sock.call_method0(intern!(sock.py(), "fileno"))?.extract()
}

/// `sock.recv(n)` on a plain socket: `recv(2)` into a new `bytes`.
fn recv_bytes(sock: &Bound<'_, PyAny>, n: usize) -> PyResult<Option<Py<PyAny>>> {
    let py = sock.py();
    let fd = fileno(sock)?;
    let size = ffi::Py_ssize_t::try_from(n).map_err(|_| PyValueError::new_err("n is too large"))?;
    // SAFETY: GIL held; the writer is null with an exception set on failure, else owned here
    // until finished or discarded below.
    let writer = unsafe { ffi::compat::PyBytesWriter_Create(size) };
    if writer.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `writer` is a live writer of `n` bytes; its data pointer is valid for `n` bytes
    // of writes until it is finished or discarded.
    let got = unsafe {
        let data = ffi::compat::PyBytesWriter_GetData(writer);
        libc::recv(fd, data, n, libc::MSG_DONTWAIT)
    };
    if got < 0 {
        let failed = os_error();
        // SAFETY: `writer` is live and discarded exactly once.
        unsafe { ffi::compat::PyBytesWriter_Discard(writer) };
        return failed;
    }
    // SAFETY: `writer` is live; `got` (≤ n) bytes of it were written by recv(2). Finishing it
    // consumes it, and gives a new `bytes` or null with an exception set.
    let bytes = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::compat::PyBytesWriter_FinishWithSize(writer, got as ffi::Py_ssize_t),
        )
    }?;
    Ok(Some(bytes.unbind()))
}

/// `send(2)` of `data[sent..]` on a plain socket: how much went out, `None` if none could.
fn send_bytes(
    sock: &Bound<'_, PyAny>,
    data: &Bound<'_, PyBytes>,
    sent: usize,
) -> PyResult<Option<usize>> {
    let fd = fileno(sock)?;
    let rest = &data.as_bytes()[sent..];
    // SAFETY: `rest` is valid for reads of its length (the bytes object is immutable and held).
    let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return os_error().map(|_| None);
    }
    Ok(Some(n as usize))
}

impl SockCall {
    /// A call of `op` on `sock`, not started.
    pub(crate) fn start(
        event_loop: &Bound<'_, LoopCore>,
        sock: Bound<'_, PyAny>,
        op: Op,
    ) -> PyResult<Py<SockCall>> {
        Py::new(
            event_loop.py(),
            SockCall {
                event_loop: event_loop.clone().unbind(),
                sock: sock.unbind(),
                name: op.name(),
                side: op.side(),
                op,
                state: State::Start,
            },
        )
    }

    /// Tries the operation once, with the operation taken out of the call meanwhile (see
    /// `Op::Running`). `first`: the try made by the coroutine's first step.
    fn try_op(slf: &Bound<'_, Self>, sock: &Bound<'_, PyAny>, first: bool) -> Attempt {
        let mut op = std::mem::replace(&mut slf.borrow_mut().op, Op::Running);
        let outcome = attempt(sock, &mut op, first);
        slf.borrow_mut().op = op;
        outcome
    }
}

/// Tries `op` on `sock` once.
fn attempt(sock: &Bound<'_, PyAny>, op: &mut Op, first: bool) -> Attempt {
    let py = sock.py();
    match op {
        Op::Recv { n } => {
            let n = n.bind(py);
            match (is_plain_socket(sock), n.extract::<isize>()) {
                (Ok(true), Ok(size)) if size >= 0 => recv_bytes(sock, size as usize).into(),
                _ => would_block_is_none(py, sock.call_method1(intern!(py, "recv"), (n,))).into(),
            }
        }
        Op::RecvInto { buf } => would_block_is_none(
            py,
            sock.call_method1(intern!(py, "recv_into"), (buf.bind(py),)),
        )
        .into(),
        Op::RecvFrom { bufsize } => would_block_is_none(
            py,
            sock.call_method1(intern!(py, "recvfrom"), (bufsize.bind(py),)),
        )
        .into(),
        Op::RecvFromInto { buf, nbytes } => {
            let buf = buf.bind(py);
            // asyncio: `if not nbytes: nbytes = len(buf)`.
            let nbytes = match nbytes.bind(py).is_truthy() {
                Ok(true) => Ok(nbytes.bind(py).clone()),
                Ok(false) => buf
                    .len()
                    .and_then(|len| Ok(len.into_pyobject(py)?.into_any())),
                Err(err) => Err(err),
            };
            match nbytes {
                Ok(nbytes) => would_block_is_none(
                    py,
                    sock.call_method1(intern!(py, "recvfrom_into"), (buf, nbytes)),
                )
                .into(),
                Err(err) => Attempt::Failed(err),
            }
        }
        Op::SendAll { data, view, sent } => match send_some(sock, data.bind(py), view, *sent) {
            Ok((n, total)) => {
                *sent += n;
                if *sent >= total {
                    Attempt::Done(py.None())
                } else {
                    Attempt::WouldBlock
                }
            }
            Err(err) => Attempt::Failed(err),
        },
        Op::SendTo { data, address } => {
            let outcome = if first {
                sock.call_method1(intern!(py, "sendto"), (data.bind(py), address.bind(py)))
            } else {
                sock.call_method1(intern!(py, "sendto"), (data.bind(py), 0, address.bind(py)))
            };
            would_block_is_none(py, outcome).into()
        }
        Op::Connect { address, started } => {
            let address = address.bind(py);
            if !*started {
                match sock.call_method1(intern!(py, "connect"), (address,)) {
                    Ok(_) => Attempt::Done(py.None()),
                    Err(err) if would_block(py, &err) => {
                        *started = true;
                        Attempt::WouldBlock
                    }
                    Err(err) => Attempt::Failed(err),
                }
            } else {
                connect_outcome(sock, address).into()
            }
        }
        Op::Accept => match sock.call_method0(intern!(py, "accept")) {
            Ok(pair) => {
                let accepted = pair
                    .get_item(0)
                    .and_then(|conn| conn.call_method1(intern!(py, "setblocking"), (false,)));
                match accepted {
                    Ok(_) => Attempt::Done(pair.unbind()),
                    Err(err) => Attempt::Failed(err),
                }
            }
            Err(err) if would_block(py, &err) => Attempt::WouldBlock,
            Err(err) => Attempt::Failed(err),
        },
        Op::Running => Attempt::Failed(PyRuntimeError::new_err(
            "a sock_* call was re-entered while it was trying its operation",
        )),
    }
}

impl SockCall {
    /// Removes this call's watch if it is still its fd's, and cancels its future.
    fn stop_waiting(&mut self, py: Python<'_>) -> PyResult<()> {
        if let State::Waiting { fut, handle, fd } = std::mem::replace(&mut self.state, State::Done)
        {
            LoopCore::unwatch_handle(self.event_loop.bind(py), self.side, fd, &handle)?;
            fut.bind(py).call_method0(intern!(py, "cancel"))?;
        }
        Ok(())
    }

    /// One step of the coroutine: `Ok(future)` to wait for, or `Err(StopIteration(result))`.
    /// No borrow of the call is held while Python code runs.
    fn step(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let state = std::mem::replace(&mut slf.borrow_mut().state, State::Done);
        let (event_loop, sock, side) = {
            let this = slf.borrow();
            (
                this.event_loop.clone_ref(py).into_bound(py),
                this.sock.clone_ref(py).into_bound(py),
                this.side,
            )
        };
        match state {
            State::Done => Err(PyRuntimeError::new_err(
                "cannot reuse already awaited coroutine",
            )),
            State::Waiting { fut, handle, fd } => {
                let fut = fut.into_bound(py);
                if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                    let fut = fut.unbind();
                    slf.borrow_mut().state = State::Waiting { fut, handle, fd };
                    return Err(PyRuntimeError::new_err("await wasn't used with future"));
                }
                LoopCore::unwatch_handle(&event_loop, side, fd, &handle)?;
                let result = fut.call_method0(intern!(py, "result"))?;
                Err(PyStopIteration::new_err((result.unbind(),)))
            }
            State::Start => {
                check_ssl_socket(&sock)?;
                // asyncio reads `self._debug`, which PYTHONASYNCIODEBUG sets without
                // `set_debug()`.
                if event_loop.getattr(intern!(py, "_debug"))?.is_truthy()?
                    && !sock.call_method0(intern!(py, "gettimeout"))?.eq(0)?
                {
                    return Err(PyValueError::new_err("the socket must be non-blocking"));
                }
                match Self::try_op(slf, &sock, true) {
                    Attempt::Done(value) => Err(PyStopIteration::new_err((value,))),
                    Attempt::Failed(err) => Err(err),
                    Attempt::WouldBlock => Self::wait(slf, &event_loop, &sock, side),
                }
            }
        }
    }

    /// Step 3 of the module docs: watches the fd and yields a new future.
    fn wait(
        slf: &Bound<'_, Self>,
        event_loop: &Bound<'_, LoopCore>,
        sock: &Bound<'_, PyAny>,
        side: Side,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let fd = fileno(sock)?;
        ensure_fd_no_transport(event_loop, fd)?;
        let fut = event_loop.call_method0(intern!(py, "create_future"))?;
        let handle = LoopCore::watch_fd(
            event_loop,
            side,
            fd,
            slf.clone().into_any(),
            PyTuple::empty(py),
        )?;
        fut.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
        slf.borrow_mut().state = State::Waiting {
            fut: fut.clone().unbind(),
            handle,
            fd,
        };
        Ok(fut.unbind())
    }
}

/// asyncio's `_ensure_fd_no_transport(fd)`: `RuntimeError` if a transport that is not closing
/// uses `fd`. The loop's `_transports` is a `WeakValueDictionary`, whose `get` raises and
/// catches a `KeyError` for every fd it does not hold: its `data` dict (fd to weak reference)
/// is read instead; anything else calls the loop's own method.
fn ensure_fd_no_transport(event_loop: &Bound<'_, LoopCore>, fd: RawFd) -> PyResult<()> {
    let py = event_loop.py();
    let data = event_loop
        .getattr(intern!(py, "_transports"))
        .and_then(|transports| transports.getattr(intern!(py, "data")))
        .ok();
    let Some(data) = data.as_ref().and_then(|data| data.cast::<PyDict>().ok()) else {
        event_loop.call_method1(intern!(py, "_ensure_fd_no_transport"), (fd,))?;
        return Ok(());
    };
    let Some(weak) = data.get_item(fd)? else {
        return Ok(());
    };
    let transport = weak.call0()?;
    if !transport.is_none()
        && !transport
            .call_method0(intern!(py, "is_closing"))?
            .is_truthy()?
    {
        return Err(PyRuntimeError::new_err(format!(
            "File descriptor {fd} is used by transport {}",
            transport.repr()?
        )));
    }
    Ok(())
}

/// `sock_sendall`'s send of what is left: (bytes sent now, total length).
fn send_some(
    sock: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    view: &mut Option<Py<PyAny>>,
    sent: usize,
) -> PyResult<(usize, usize)> {
    let py = sock.py();
    if let Ok(bytes) = data.cast::<PyBytes>() {
        if is_plain_socket(sock)? {
            let total = bytes.as_bytes().len();
            return Ok((send_bytes(sock, bytes, sent)?.unwrap_or(0), total));
        }
    }
    let sent_now = |outcome| -> PyResult<usize> {
        let n = would_block_is_none(py, outcome)?;
        Ok(n.map(|n| n.extract::<usize>(py)).transpose()?.unwrap_or(0))
    };
    match view {
        // The first send, of `data` itself (asyncio: `sock.send(data)`, then `len(data)`).
        None if sent == 0 => {
            let n = sent_now(sock.call_method1(intern!(py, "send"), (data,)))?;
            let total = data.len()?;
            if n < total {
                *view = Some(
                    py.import("builtins")?
                        .getattr("memoryview")?
                        .call1((data,))?
                        .unbind(),
                );
            }
            Ok((n, total))
        }
        _ => {
            let view = match view {
                Some(view) => view.bind(py).clone(),
                None => {
                    let made = py
                        .import("builtins")?
                        .getattr("memoryview")?
                        .call1((data,))?;
                    *view = Some(made.clone().unbind());
                    made
                }
            };
            let rest =
                view.get_item(pyo3::types::PySlice::new(py, sent as isize, isize::MAX, 1))?;
            let n = sent_now(sock.call_method1(intern!(py, "send"), (rest,)))?;
            Ok((n, view.len()?))
        }
    }
}

/// `_sock_connect_cb`: the socket's `SO_ERROR` once writable.
fn connect_outcome(
    sock: &Bound<'_, PyAny>,
    address: &Bound<'_, PyAny>,
) -> PyResult<Option<Py<PyAny>>> {
    let py = sock.py();
    let err = would_block_is_none(
        py,
        sock.call_method1(
            intern!(py, "getsockopt"),
            (libc::SOL_SOCKET, libc::SO_ERROR),
        ),
    )?;
    let Some(err) = err else {
        return Ok(None);
    };
    let code: i64 = err.extract(py)?;
    if code != 0 {
        return Err(PyOSError::new_err((
            code,
            format!("Connect call failed {}", address.str()?),
        )));
    }
    Ok(Some(py.None()))
}

#[pymethods]
impl SockCall {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::step(slf)
    }

    /// The coroutine's `send`: a task sends `None`.
    fn send(slf: &Bound<'_, Self>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::step(slf)
    }

    /// The coroutine's `throw`: a waiting call stops (its watch removed, its future
    /// cancelled) and the exception is raised.
    #[pyo3(signature = (typ, val = None, _tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.borrow_mut().stop_waiting(py)?;
        let exc = match val {
            Some(val)
                if !val.is_none() && val.is_instance_of::<pyo3::exceptions::PyBaseException>() =>
            {
                val.clone()
            }
            Some(val) if !val.is_none() => typ.call1((val,))?,
            _ if typ.is_instance_of::<PyType>() => typ.call0()?,
            _ => typ.clone(),
        };
        Err(PyErr::from_value(exc))
    }

    /// The coroutine's `close`: a waiting call stops, as for `throw`.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.borrow_mut().stop_waiting(slf.py())
    }

    /// The fd is ready (the callback of this call's watch): tries again; once done, removes
    /// the watch and completes the future.
    fn __call__(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (fut, handle, fd, sock, event_loop, side) = {
            let this = slf.borrow();
            let State::Waiting { fut, handle, fd } = &this.state else {
                return Ok(());
            };
            (
                fut.clone_ref(py).into_bound(py),
                handle.clone_ref(py),
                *fd,
                this.sock.clone_ref(py).into_bound(py),
                this.event_loop.clone_ref(py),
                this.side,
            )
        };
        if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
            return Ok(());
        }
        let outcome = Self::try_op(slf, &sock, false);
        match outcome {
            Attempt::WouldBlock => Ok(()),
            Attempt::Done(value) => {
                LoopCore::unwatch_handle(event_loop.bind(py), side, fd, &handle)?;
                fut.call_method1(intern!(py, "set_result"), (value,))?;
                Ok(())
            }
            Attempt::Failed(err)
                if err.is_instance_of::<PySystemExit>(py)
                    || err.is_instance_of::<PyKeyboardInterrupt>(py) =>
            {
                Err(err)
            }
            Attempt::Failed(err) => {
                LoopCore::unwatch_handle(event_loop.bind(py), side, fd, &handle)?;
                fut.call_method1(intern!(py, "set_exception"), (err.value(py),))?;
                Ok(())
            }
        }
    }

    /// The method's name, as a coroutine's (`repr` of the task running it).
    #[getter]
    fn __name__(&self) -> &'static str {
        self.name
    }

    #[getter]
    fn __qualname__(&self) -> String {
        format!("Loop.{}", self.name)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.sock)?;
        for object in self.op.objects().into_iter().flatten() {
            visit.call(object)?;
        }
        if let State::Waiting { fut, handle, .. } = &self.state {
            visit.call(fut)?;
            visit.call(handle)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.state = State::Done;
    }
}

/// `sock_connect`'s address, resolved without I/O if it is an IP literal (asyncio's
/// `_ensure_resolved` with `base_events._ipaddr_info`); `None` if it needs `getaddrinfo` (or
/// is malformed: asyncio's own coroutine then raises what asyncio raises).
pub(crate) fn resolved_address<'py>(
    sock: &Bound<'py, PyAny>,
    address: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyAny>> {
    let py = sock.py();
    let family: i64 = sock.getattr(intern!(py, "family")).ok()?.extract().ok()?;
    if family != i64::from(libc::AF_INET) && family != i64::from(libc::AF_INET6) {
        return Some(address.clone());
    }
    (|| -> PyResult<Option<Bound<'py, PyAny>>> {
        let base_events = py.import("asyncio.base_events")?;
        let host = address.get_item(0)?;
        let port = address.get_item(1)?;
        let mut args = vec![
            host,
            port,
            sock.getattr(intern!(py, "family"))?,
            sock.getattr(intern!(py, "type"))?,
            sock.getattr(intern!(py, "proto"))?,
        ];
        let len = address.len()?;
        for i in 2..len {
            args.push(address.get_item(i)?);
        }
        let info = base_events
            .getattr("_ipaddr_info")?
            .call1(PyTuple::new(py, args)?)?;
        if info.is_none() {
            return Ok(None);
        }
        Ok(Some(info.get_item(4)?))
    })()
    .ok()
    .flatten()
}
