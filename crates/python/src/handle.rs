//! `Handle` and `TimerHandle`: asyncio's handles, and running the Python callback they hold.
//!
//! A handle keeps the callback, its arguments, the `contextvars.Context` it runs in (copied when
//! it was scheduled, as asyncio does) and its loop. The Rust closure queued on the evloop loop
//! holds only a reference to the handle; running it ([`fire`]) enters the context, calls the
//! callback, leaves the context, and sends an exception to the loop's `call_exception_handler`
//! with asyncio's keys (`message`, `exception`, `handle`), as asyncio's `Handle._run` does. `SystemExit` and
//! `KeyboardInterrupt` are not reported: they leave `run_forever` (see `crate::running`).

use std::time::Instant;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit, ffi};

use crate::on_thread::OnThread;
use crate::running;

/// asyncio's `Handle`: a callback scheduled with `call_soon` (or watching an fd).
#[pyclass(subclass, module = "evloop._core", name = "Handle")]
pub(crate) struct Handle {
    callback: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    context: Py<PyAny>,
    event_loop: Py<PyAny>,
    cancelled: bool,
    /// Debug mode: where the handle was made (`format_helpers.extract_stack`), as asyncio's.
    source_traceback: Option<Py<PyAny>>,
}

impl Handle {
    /// A handle for `callback(*args)` in `context` (`None`: a copy of the current context). In
    /// `debug` mode it records the Python stack that made it.
    pub(crate) fn new(
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        event_loop: Py<PyAny>,
        debug: bool,
    ) -> PyResult<Handle> {
        let context = match context {
            Some(ctx) if !ctx.is_none() => ctx.unbind(),
            _ => copy_context(py)?,
        };
        Ok(Handle {
            callback: Some(callback.unbind()),
            args: Some(args.unbind()),
            context,
            event_loop,
            cancelled: false,
            source_traceback: if debug { source_traceback(py) } else { None },
        })
    }

    /// True once cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// Cancels a watch's handle when the watch is replaced or removed.
    pub(crate) fn cancel_watch(&mut self) {
        self.cancel_inner();
    }

    fn cancel_inner(&mut self) {
        if !self.cancelled {
            self.cancelled = true;
            // As asyncio: a cancelled handle lets go of what its callback holds.
            self.callback = None;
            self.args = None;
        }
    }

    /// asyncio's `_repr_info` after the class name: `cancelled`, then the callback's source.
    fn repr_tail(&self, py: Python<'_>) -> PyResult<String> {
        let mut parts = Vec::new();
        if self.cancelled {
            parts.push("cancelled".to_string());
        }
        self.repr_callback(py, &mut parts)?;
        Ok(parts.join(" "))
    }

    /// The callback's source and, in debug mode, where the handle was made.
    fn repr_callback(&self, py: Python<'_>, parts: &mut Vec<String>) -> PyResult<()> {
        if let (Some(cb), Some(args)) = (&self.callback, &self.args) {
            parts.push(format_callback(
                py,
                cb.bind(py),
                args.bind(py),
                &self.event_loop,
            )?);
        }
        if let Some(tb) = &self.source_traceback {
            let tb = tb.bind(py);
            if tb.len()? > 0 {
                let frame = tb.get_item(-1)?;
                parts.push(format!(
                    "created at {}:{}",
                    frame.get_item(0)?.str()?,
                    frame.get_item(1)?.str()?
                ));
            }
        }
        Ok(())
    }
}

/// `format_helpers.extract_stack(sys._getframe(0))`: called from the native `call_soon`, the
/// top frame is its Python caller, the last entry asyncio's handles show. `None` if there is no
/// Python frame.
fn source_traceback(py: Python<'_>) -> Option<Py<PyAny>> {
    let frame = py
        .import("sys")
        .ok()?
        .call_method1("_getframe", (0,))
        .ok()?;
    py.import("asyncio.format_helpers")
        .ok()?
        .call_method1("extract_stack", (frame,))
        .ok()
        .map(Bound::unbind)
}

/// `contextvars.copy_context()`.
fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: called with the GIL held (`py`); the result is a new reference or null with an
    // exception set, which `from_owned_ptr_or_err` turns into the error.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent()) }.map(Bound::unbind)
}

/// asyncio's `format_helpers._format_callback_source(callback, args)`; from 3.13 it shows the
/// arguments only in debug mode, and is told the loop's.
fn format_callback(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    event_loop: &Py<PyAny>,
) -> PyResult<String> {
    let helpers = py.import("asyncio.format_helpers")?;
    if py.version_info() >= (3, 13) {
        let kwargs = PyDict::new(py);
        kwargs.set_item("debug", event_loop.bind(py).call_method0("get_debug")?)?;
        helpers
            .call_method("_format_callback_source", (callback, args), Some(&kwargs))?
            .extract()
    } else {
        helpers
            .call_method1("_format_callback_source", (callback, args))?
            .extract()
    }
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run. Cancelling twice does nothing.
    fn cancel(&mut self) {
        self.cancel_inner();
    }

    /// True once [`cancel`](Handle::cancel) was called.
    fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback.as_ref().map(|cb| cb.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.args.as_ref().map(|a| a.clone_ref(py))
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.cancelled
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.source_traceback.as_ref().map(|tb| tb.clone_ref(py))
    }

    #[getter]
    fn _context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    /// Runs the callback now, as the loop would (asyncio's `Handle._run`).
    fn _run(slf: &Bound<'_, Self>) {
        run(slf);
    }

    /// What the handle holds, for Python's cycle collector: a handle kept by an object its
    /// callback holds (a timeout's handle, whose callback is the timeout's method) is a cycle
    /// the collector can then free.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callback)?;
        visit.call(&self.args)?;
        visit.call(&self.context)?;
        visit.call(&self.source_traceback)?;
        visit.call(&self.event_loop)
    }

    /// Breaks a cycle through the callback (the collector's side of `cancel`).
    fn __clear__(&mut self) {
        self.callback = None;
        self.args = None;
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let tail = self.repr_tail(py)?;
        Ok(if tail.is_empty() {
            "<Handle>".to_string()
        } else {
            format!("<Handle {tail}>")
        })
    }
}

/// asyncio's `TimerHandle`: a callback scheduled with `call_later` or `call_at`.
#[pyclass(extends = Handle, module = "evloop._core", name = "TimerHandle")]
pub(crate) struct TimerHandle {
    when: f64,
    /// The timer in the evloop loop's wheel, removed there on `cancel`.
    timer: OnThread<Option<evloop_sched::TimerHandle>>,
}

impl TimerHandle {
    pub(crate) fn new(when: f64) -> TimerHandle {
        TimerHandle {
            when,
            timer: OnThread::new(None),
        }
    }

    /// Records the wheel entry (set right after scheduling, on the loop's thread).
    pub(crate) fn set_timer(slf: &Bound<'_, Self>, timer: evloop_sched::TimerHandle) {
        slf.borrow_mut().timer = OnThread::new(Some(timer));
    }
}

#[pymethods]
impl TimerHandle {
    /// The absolute time, on the loop's clock, the callback is due.
    fn when(&self) -> f64 {
        self.when
    }

    /// Cancels the callback and removes it from the loop's timer wheel (at once on the loop's
    /// thread; from another thread it is skipped when due).
    fn cancel(mut slf: PyRefMut<'_, Self>) {
        if let Some(Some(timer)) = slf.timer.try_get() {
            timer.cancel();
        }
        slf.as_super().cancel_inner();
    }

    /// asyncio's: `<TimerHandle [cancelled] when=W [callback source]>`.
    fn __repr__(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<String> {
        let base = slf.as_super();
        let mut parts = vec!["TimerHandle".to_string()];
        if base.cancelled {
            parts.push("cancelled".to_string());
        }
        parts.push(format!("when={}", py_float_repr(py, slf.when)?));
        base.repr_callback(py, &mut parts)?;
        Ok(format!("<{}>", parts.join(" ")))
    }
}

fn py_float_repr(py: Python<'_>, x: f64) -> PyResult<String> {
    Ok(x.into_pyobject(py)?.repr()?.to_string())
}

/// Runs the handle's callback if it was not cancelled (see the module docs). Called on the
/// loop's thread, holding the GIL, by the closures the loop queues.
pub(crate) fn fire(handle: &Py<Handle>) {
    Python::attach(|py| run(handle.bind(py)));
}

fn run(handle: &Bound<'_, Handle>) {
    let py = handle.py();
    let (callback, args, context) = {
        let h = handle.borrow();
        let (Some(cb), Some(args)) = (&h.callback, &h.args) else {
            return; // cancelled
        };
        (
            cb.clone_ref(py),
            args.clone_ref(py),
            h.context.clone_ref(py),
        )
    };
    // SAFETY: GIL held; `context` is a `contextvars.Context` (copied by us or given to
    // call_soon, whose `context=` asyncio also passes straight to `Context.run`). On failure
    // (a context already entered) it returns -1 with an exception set.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        report(handle, &callback, &args, PyErr::fetch(py));
        return;
    }
    let started = running::debug().then(Instant::now);
    let args = args.bind(py);
    // No arguments (a task's step, a future's callback): the vectorcall path, no tuple unpacking.
    let outcome = if args.is_empty() {
        callback.bind(py).call0()
    } else {
        callback.bind(py).call1(args)
    };
    // SAFETY: GIL held; `context` was entered above on this thread and is exited once.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
        running::escape(PyErr::fetch(py));
    }
    // Reported outside the context, as asyncio's `Handle._run` does (3.12+'s
    // `call_exception_handler` then runs a custom handler inside the handle's context itself).
    if let Err(err) = outcome {
        report(handle, &callback, &args.clone().unbind(), err);
    }
    if let Some(started) = started {
        warn_if_slow(handle, started);
    }
}

/// asyncio's `Handle._run` failure path.
fn report(handle: &Bound<'_, Handle>, callback: &Py<PyAny>, args: &Py<PyTuple>, err: PyErr) {
    let py = handle.py();
    if err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py) {
        running::escape(err);
        return;
    }
    let event_loop = handle.borrow().event_loop.clone_ref(py);
    let reported = (|| -> PyResult<()> {
        let source = format_callback(py, callback.bind(py), args.bind(py), &event_loop)?;
        let context = PyDict::new(py);
        context.set_item("message", format!("Exception in callback {source}"))?;
        context.set_item("exception", err.value(py))?;
        context.set_item("handle", handle)?;
        if let Some(tb) = &handle.borrow().source_traceback {
            context.set_item("source_traceback", tb)?;
        }
        event_loop
            .bind(py)
            .call_method1("call_exception_handler", (context,))?;
        Ok(())
    })();
    if let Err(failed) = reported {
        // asyncio lets what the exception handler raises leave run_forever.
        running::escape(failed);
    }
}

/// Debug mode: asyncio's "Executing <Handle ...> took 0.123 seconds" warning.
#[cold]
fn warn_if_slow(handle: &Bound<'_, Handle>, started: Instant) {
    let py = handle.py();
    let took = started.elapsed().as_secs_f64();
    let event_loop = handle.borrow().event_loop.clone_ref(py);
    let warned = (|| -> PyResult<()> {
        let threshold: f64 = event_loop
            .bind(py)
            .getattr("slow_callback_duration")?
            .extract()?;
        if took >= threshold {
            let logger = py.import("asyncio.log")?.getattr("logger")?;
            let what = py
                .import("asyncio.base_events")?
                .call_method1("_format_handle", (handle,))?;
            logger.call_method1("warning", ("Executing %s took %.3f seconds", what, took))?;
        }
        Ok(())
    })();
    if let Err(err) = warned {
        err.write_unraisable(py, Some(handle.as_any()));
    }
}

/// Registers the handle classes in the module.
pub(crate) fn add_classes(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Handle>()?;
    m.add_class::<TimerHandle>()?;
    Ok(())
}
