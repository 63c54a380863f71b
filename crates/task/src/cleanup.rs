//! The async clean-up registry: asyncio's `shutdown_asyncgens` analogue.
//!
//! Rust has no async generators whose `finally` blocks the loop must run; what it does have is
//! clean-up that needs the loop (flushing and closing a stream, telling a long-lived task to
//! stop and awaiting it). Such clean-ups are registered on the loop and run, concurrently, by
//! `run_until_complete(lp.shutdown_cleanups())` before `close()`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::{Context, EventLoop, Exception};

use crate::{LoopTaskExt, Task};

type BoxedCleanup = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>>>;

/// The identity of a registered clean-up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CleanupId(u64);

/// The loop's registered clean-ups, per loop.
#[derive(Default)]
pub(crate) struct Cleanups {
    next: Cell<u64>,
    list: RefCell<Vec<(CleanupId, String, BoxedCleanup)>>,
}

impl Cleanups {
    pub(crate) fn add<F>(&self, name: &str, cleanup: impl FnOnce() -> F + 'static) -> CleanupId
    where
        F: Future<Output = ()> + 'static,
    {
        let id = CleanupId(self.next.get());
        self.next.set(id.0 + 1);
        let boxed: BoxedCleanup = Box::new(move || Box::pin(cleanup()));
        self.list.borrow_mut().push((id, name.to_owned(), boxed));
        id
    }

    pub(crate) fn remove(&self, id: CleanupId) -> bool {
        let removed = {
            let mut list = self.list.borrow_mut();
            list.iter()
                .position(|(i, _, _)| *i == id)
                .map(|pos| list.remove(pos))
        };
        removed.is_some()
    }
}

/// The future of [`LoopTaskExt::shutdown_cleanups`]: completes when every clean-up registered
/// when it was first polled has run.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct ShutdownCleanups {
    lp: EventLoop,
    running: Option<Vec<(String, Task<()>)>>,
}

impl ShutdownCleanups {
    pub(crate) fn new(lp: &EventLoop) -> ShutdownCleanups {
        ShutdownCleanups {
            lp: lp.clone(),
            running: None,
        }
    }
}

impl Future for ShutdownCleanups {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let running = this.running.get_or_insert_with(|| {
            let list = std::mem::take(&mut *this.lp.local::<Cleanups>().list.borrow_mut());
            list.into_iter()
                .filter_map(|(_, name, cleanup)| {
                    // On a closed loop nothing can run; the clean-up is dropped.
                    this.lp.create_task(cleanup()).ok().map(|t| (name, t))
                })
                .collect()
        });
        let mut i = 0;
        while i < running.len() {
            match Pin::new(&mut running[i].1).poll(cx) {
                Poll::Pending => i += 1,
                Poll::Ready(outcome) => {
                    let (name, _) = running.swap_remove(i);
                    if let Err(err) = outcome {
                        if !err.is_cancelled() {
                            let exc = err
                                .take_exception()
                                .unwrap_or_else(|| Exception::from_error(err.clone()));
                            this.lp.call_exception_handler(
                                Context::new(format!(
                                    "an error occurred during the clean-up {name:?}"
                                ))
                                .with_exception(exc)
                                .with("cleanup", name),
                            );
                        }
                    }
                }
            }
        }
        if running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for ShutdownCleanups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownCleanups")
            .field("running", &self.running.as_ref().map(Vec::len))
            .finish()
    }
}
