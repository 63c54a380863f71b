//! `cargo xtask pytest`: CPython's own `test.test_asyncio` on the `evloop` Python module.
//!
//! 1. A Python that has the `test` package (pyenv's builds do; Debian's `python3` has it only
//!    with `libpython3.X-testsuite`): `--python`, else `python3.11`, else `python3`.
//! 2. A virtual environment for it under `target/pyvenv-<version>`, with maturin installed by
//!    pip when missing (nothing outside `target/` is touched).
//! 3. The module, built by `maturin develop --release` into that environment, in its own target
//!    directory `target/python` (the crate is a workspace of its own, see docs/architecture.md,
//!    "The Python module").
//! 4. The module's own tests, `crates/python/tests/test_evloop.py`.
//! 5. `crates/python/tests/asyncio_suite.py`, which runs the modules, each test under a
//!    watchdog, and prints `N passed, N failed` for the tests that ran on evloop; it fails on a
//!    failure that is not in `crates/python/tests/known_failures.txt` (each there has a reason).
//!
//! `cargo xtask ci` runs [`CORE`] and `test_sock_lowlevel` this way on Python 3.11.

use std::path::{Path, PathBuf};

use crate::cmd::{Cmd, Result};
use crate::provision;

/// The core subset of test_asyncio: the modules about tasks, synchronisation and cancellation,
/// every one of whose loop-injected tests must pass. A module the Python lacks is skipped and
/// said so (test_eager_task_factory is 3.12+).
pub(crate) const CORE: &[&str] = &[
    "test_tasks",
    "test_locks",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_eager_task_factory",
    "test_threads",
    "test_context",
    "test_futures2",
];

const SUITE: &str = "crates/python/tests/asyncio_suite.py";
/// The module's own tests (what test_asyncio does not pin, and its regressions), run first.
const OWN_TESTS: &str = "crates/python/tests/test_evloop.py";
const KNOWN: &str = "crates/python/tests/known_failures.txt";
/// The per-test watchdog, generous for a loaded 2-core machine (the slowest core test takes
/// about 5 s).
const TIMEOUT_SECS: &str = "60";

const USAGE: &str = "usage: cargo xtask pytest [--python PYTHON] [--core | --all | MODULE...]
  --python PYTHON   the interpreter (default: python3.11, else python3)
  --core            the core subset and test_sock_lowlevel (the default)
  --all             every module of test.test_asyncio
  MODULE            a module of test.test_asyncio, e.g. test_tasks";

/// `cargo xtask pytest [--python PYTHON] [--core | --all | MODULE...]`.
pub(crate) fn run(args: &[String]) -> Result {
    let mut python: Option<String> = None;
    let mut modules: Vec<String> = Vec::new();
    let mut all = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--python" => {
                python = Some(
                    it.next()
                        .ok_or_else(|| format!("--python needs a value\n\n{USAGE}"))?
                        .clone(),
                );
            }
            "--core" => {
                modules.extend(CORE.iter().map(|m| m.to_string()));
                modules.push("test_sock_lowlevel".to_string());
            }
            "--all" => all = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            m if m.starts_with("test_") => modules.push(m.to_string()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let python = python.unwrap_or_else(default_python);
    let venv = prepare(&python)?;
    if all {
        modules = all_modules(&venv)?;
    } else if modules.is_empty() {
        modules.extend(CORE.iter().map(|m| m.to_string()));
        modules.push("test_sock_lowlevel".to_string());
    }
    run_suite(&venv, &modules)
}

/// `ci`'s step: the core subset and test_sock_lowlevel on Python 3.11 (or `python3`).
pub(crate) fn ci() -> Result<Vec<String>> {
    run(&["--core".to_string()])?;
    Ok(Vec::new())
}

/// The interpreter when none is given: `python3.11`, else `python3`.
fn default_python() -> String {
    if provision::on_path("python3.11") {
        "python3.11".to_string()
    } else {
        "python3".to_string()
    }
}

/// The interpreter of a virtual environment with the `evloop` module built in (steps 1 to 3
/// of the module docs, on the default interpreter): what `cargo xtask bench` gives its
/// `evloop_py` peer.
pub(crate) fn module_python() -> Result<PathBuf> {
    Ok(prepare(&default_python())?.join("bin").join("python"))
}

/// Steps 1 to 3 of the module docs; the virtual environment's folder.
fn prepare(python: &str) -> Result<PathBuf> {
    let version = Cmd::new(python)
        .args([
            "-c",
            "import sys, test.test_asyncio; print('%d.%d' % sys.version_info[:2])",
        ])
        .read()
        .map_err(|e| {
            format!(
                "{e}: {python} cannot import test.test_asyncio (Debian's python3 needs the \
                 libpython3.X-testsuite package; pyenv's builds have it): give another \
                 interpreter with --python"
            )
        })?;
    let version = version.trim();
    let venv = crate::cmd::root()
        .join("target")
        .join(format!("pyvenv-{version}"));
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        Cmd::new(python)
            .args(["-m", "venv", &path_str(&venv)?])
            .run()
            .map_err(|e| format!("{e}: creating a virtual environment needs the venv module (Debian: python3-venv)"))?;
    }
    let venv_python = path_str(&bin.join("python"))?;
    if !bin.join("maturin").exists() {
        Cmd::new(&venv_python)
            .args(["-m", "pip", "install", "--quiet", "maturin>=1.5,<2"])
            .run()?;
    }
    Cmd::new(&path_str(&bin.join("maturin"))?)
        .args([
            "develop",
            "--release",
            "--manifest-path",
            crate::layers::PYTHON_MANIFEST,
        ])
        .env("VIRTUAL_ENV", &path_str(&venv)?)
        .env("CARGO_TARGET_DIR", "target/python")
        .env("PYO3_PYTHON", &venv_python)
        .run()?;
    Ok(venv)
}

/// Every `test_*` module of the Python's test.test_asyncio.
fn all_modules(venv: &Path) -> Result<Vec<String>> {
    let listing = Cmd::new(&path_str(&venv.join("bin").join("python"))?)
        .args([
            "-c",
            "import os, test.test_asyncio as t\n\
             d = os.path.dirname(t.__file__)\n\
             print(' '.join(sorted(f[:-3] for f in os.listdir(d) \
             if f.startswith('test_') and f.endswith('.py'))))",
        ])
        .read()?;
    Ok(listing.split_whitespace().map(str::to_string).collect())
}

fn run_suite(venv: &Path, modules: &[String]) -> Result {
    Cmd::new(&path_str(&venv.join("bin").join("python"))?)
        .args([OWN_TESTS])
        .run()?;
    let work = crate::cmd::root().join("target").join("pytest");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let report = work.join(format!(
        "report-{}.json",
        venv.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("python")
    ));
    Cmd::new(&path_str(&venv.join("bin").join("python"))?)
        .args([SUITE, "--timeout", TIMEOUT_SECS, "--known", KNOWN])
        .args(["--workdir".to_string(), path_str(&work)?])
        .args(["--report".to_string(), path_str(&report)?])
        .args(modules.iter().cloned())
        .run()
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}
