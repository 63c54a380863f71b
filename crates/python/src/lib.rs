//! evloop-python is floor 7 of evloop: the `evloop` Python module, evloop as CPython's asyncio
//! event loop. It depends on `evloop-sched` (floor 2) and PyO3, and nothing depends on it. It
//! must never know about evloop's futures, tasks or transports: asyncio's own Python code
//! (`asyncio.BaseEventLoop` and the selector loop's transports) runs on top of the native
//! scheduling core, fd watching, `sock_*` methods and signal wake-ups this crate gives.
//!
//! Built with maturin (`crates/python/pyproject.toml`); outside the root workspace because a
//! Python extension is linked against libpython only when the interpreter loads it
//! (docs/architecture.md, "The Python module"). `cargo xtask pytest` builds it and runs
//! CPython's own `test.test_asyncio` on it.
//!
//! Modules, lowest first: `on_thread` (a value bound to its thread) and `running` (what the
//! loop running on this thread asks of its callbacks) ← `gil` (the sleep hook that releases the
//! GIL) and `handle` (asyncio's handles, running a Python callback) ← `core` (`LoopCore`) and
//! `sock` (the `sock_*` methods' native coroutines). Those two name each other: the `sock_*`
//! methods must sit in `LoopCore`'s one `#[pymethods]` block (PyO3 without its
//! `multiple-pymethods` feature, which needs a dependency of its own), and their coroutines
//! watch fds through `LoopCore`.

mod core;
mod gil;
mod handle;
mod on_thread;
mod running;
mod sock;

use pyo3::prelude::*;

/// The native module `evloop._core`; `evloop/__init__.py` builds `evloop.Loop` on it.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<core::LoopCore>()?;
    m.add_function(wrap_pyfunction!(core::forget_running_loop, m)?)?;
    handle::add_classes(m)?;
    m.add_class::<sock::SockCall>()?;
    Ok(())
}
