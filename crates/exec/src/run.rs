//! [`run()`]: asyncio's `asyncio.run`, the easy way to use a loop and close it.

use std::future::Future;
use std::time::Duration;

use evloop_sched::{EventLoop, Exception, get_running_loop};
use evloop_task::{Error, LoopTaskExt};

use crate::LoopExecExt;

/// How long `run` waits for the default executor's jobs at the end (asyncio's
/// `constants.THREAD_JOIN_TIMEOUT`, 300 seconds); then it warns and closes the loop anyway.
pub const THREAD_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `fut` on a new loop and closes the loop: asyncio's `asyncio.run(main)`.
///
/// In order: a new [`EventLoop`]; `fut` run to completion with `run_until_complete`; every
/// task still pending cancelled and awaited ([`LoopTaskExt::cancel_all_tasks`]: a task that
/// ends failed instead is reported to the exception handler); the async clean-ups run
/// ([`LoopTaskExt::shutdown_cleanups`], asyncio's `shutdown_asyncgens`); the default executor
/// shut down ([`LoopExecExt::shutdown_default_executor`], waiting at most
/// [`THREAD_JOIN_TIMEOUT`]); and the loop closed, also if `fut` failed. The loop is closed
/// when this returns, whatever happened.
///
/// # Errors
///
/// - a loop error with `is_other_loop_running()` if a loop runs on this thread (asyncio:
///   "asyncio.run() cannot be called from a running event loop");
/// - a failure ([`Error::is_failed`]) carrying the OS error if the loop cannot be created;
/// - what `run_until_complete(fut)` returns: `fut`'s panic, a cancellation, or
///   [`Error::is_stopped`] if `fut` stopped the loop.
///
/// # Examples
///
/// ```
/// use evloop::{LoopTaskExt, get_running_loop, sleep};
///
/// let answer = evloop::run(async {
///     sleep(0.01).await?;
///     // Left pending: cancelled at the end, before the loop is closed.
///     get_running_loop()?.create_task(async { sleep(3600.0).await })?;
///     Ok::<_, evloop::TaskError>(42)
/// })??;
/// assert_eq!(answer, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<F>(fut: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if get_running_loop().is_ok() {
        return Err(evloop_sched::Error::other_loop_running().into());
    }
    let lp = EventLoop::new().map_err(|err| Error::failed(Exception::from_error(err)))?;
    // Closed on every way out, an unwind included.
    let lp = CloseOnDrop(lp);
    let out = lp.0.run_until_complete(fut);
    // Each step below runs even if the one before failed (a loop stopped by a task, say).
    let _ = lp.0.run_until_complete(lp.0.cancel_all_tasks());
    let _ = lp.0.run_until_complete(lp.0.shutdown_cleanups());
    let _ =
        lp.0.run_until_complete(lp.0.shutdown_default_executor(Some(THREAD_JOIN_TIMEOUT)));
    drop(lp);
    out
}

/// Closes the loop when dropped.
struct CloseOnDrop(EventLoop);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Refused only while the loop runs, which it never does here.
        let _ = self.0.close();
    }
}
