//! `shutdown_default_executor`: waits for the default executor's jobs, off the loop thread.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use evloop_sched::EventLoop;
use evloop_task::{LoopFuture, Sleep, sleep};

use crate::executor::{DefaultExecutor, spawn_job};

/// The future of
/// [`LoopExecExt::shutdown_default_executor`](crate::LoopExecExt::shutdown_default_executor):
/// `true` once every job of the default executor finished, `false` if the timeout came first
/// (then a warning is logged, as asyncio's `RuntimeWarning`, and nothing waits any longer).
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct ShutdownDefaultExecutor {
    joined: Option<LoopFuture<()>>,
    timeout: Option<(Duration, Sleep)>,
}

impl ShutdownDefaultExecutor {
    pub(crate) fn new(lp: &EventLoop, timeout: Option<Duration>) -> ShutdownDefaultExecutor {
        let slot = lp.local::<DefaultExecutor>();
        slot.shut_down.set(true);
        let pool = slot.pool.borrow_mut().take();
        let joined = pool.and_then(|pool| {
            // Joined on a thread of its own, so the loop keeps running meanwhile.
            let joining = spawn_job(
                lp,
                move || pool.join(),
                |job| {
                    let spawned = std::thread::Builder::new()
                        .name("evloop-exec-join".to_owned())
                        .spawn(job);
                    if let Err(err) = spawned {
                        evloop_sched::log_report(
                            log::Level::Warn,
                            &format!("cannot start the executor's joining thread: {err}"),
                        );
                    }
                },
            );
            joining.ok()
        });
        ShutdownDefaultExecutor {
            joined,
            timeout: timeout.map(|t| (t, sleep(t))),
        }
    }
}

impl Future for ShutdownDefaultExecutor {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<bool> {
        let Some(joined) = self.joined.as_mut() else {
            return Poll::Ready(true);
        };
        if Pin::new(joined).poll(cx).is_ready() {
            self.joined = None;
            return Poll::Ready(true);
        }
        if let Some((limit, timer)) = self.timeout.as_mut() {
            if Pin::new(timer).poll(cx).is_ready() {
                evloop_sched::log_report(
                    log::Level::Warn,
                    &format!(
                        "The executor did not finish joining its threads within {:.3} seconds.",
                        limit.as_secs_f64()
                    ),
                );
                self.joined = None;
                return Poll::Ready(false);
            }
        }
        Poll::Pending
    }
}

impl fmt::Debug for ShutdownDefaultExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownDefaultExecutor")
            .field("joined", &self.joined.is_none())
            .field("timeout", &self.timeout.as_ref().map(|(t, _)| t))
            .finish()
    }
}
