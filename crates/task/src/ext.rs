//! [`LoopTaskExt`]: the loop methods of this floor, on `evloop_sched::EventLoop`.

use std::future::Future;

use evloop_sched::{EventLoop, get_running_loop};

use crate::cancel_all::CancelAllTasks;
use crate::cleanup::{CleanupId, Cleanups, ShutdownCleanups};
use crate::current::{AnyTask, current_node, register_node};
use crate::factory::{self, FactorySlot, NewTask, TaskFactory};
use crate::step;
use crate::until;
use crate::{Error, LoopFuture, Task};

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// Futures and tasks on [`EventLoop`]: asyncio's `create_future`, `create_task`,
/// `run_until_complete`, `set_task_factory`/`get_task_factory`, and an async clean-up registry
/// (the analogue of `shutdown_asyncgens`). In scope through `use evloop::prelude::*`.
pub trait LoopTaskExt: sealed::Sealed {
    /// A pending [`LoopFuture`] bound to this loop (also on a closed loop, as asyncio's).
    ///
    /// # Examples
    ///
    /// See [`LoopFuture`].
    fn create_future<T: 'static>(&self) -> LoopFuture<T>;

    /// Wraps `fut` in a [`Task`] and schedules its first step (through the task factory, if
    /// one is set). Any `Future + 'static` works; it need not be `Send`.
    ///
    /// # Errors
    ///
    /// - a loop error with `is_closed()` on a closed loop;
    /// - what the task factory returns.
    ///
    /// # Examples
    ///
    /// See [`Task`].
    fn create_task<F>(&self, fut: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// Runs the loop until `fut` (wrapped in a task) completes, and returns its output.
    ///
    /// As asyncio's, the loop runs one more iteration after the one in which `fut` completes
    /// (the wrapper's done callback stops it). asyncio passes a task or a future through as it
    /// is, where evloop wraps every `fut`: for a [`Task`] or a [`LoopFuture`]
    /// that finishes in iteration N, asyncio returns after N + 1 and evloop after N + 2 (the
    /// wrapper's step runs in N + 1).
    ///
    /// If the loop stops first, `fut` is dropped (on the loop's thread) and the call returns
    /// [`Error::is_stopped`]; the wrapper never takes an output. To keep the work running
    /// across a stop, pass a task: it stays pending, and a later call with a clone of it
    /// returns its output. asyncio keeps running the task it wrapped a coroutine in; here the
    /// wrapper cannot tell a task passed in from any other future, and one left running would
    /// take the output of the task it awaits the moment that task finished.
    ///
    /// # Errors
    ///
    /// - a loop error: closed (`is_closed()`), already running, or another loop runs here;
    /// - [`Error::is_stopped`] if the loop was stopped before `fut` completed;
    /// - the task's error: cancelled, or failed (a panic inside `fut`).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// assert_eq!(lp.run_until_complete(async { 1 + 2 })?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// Sets the task factory (`None` restores the default).
    ///
    /// # Examples
    ///
    /// See [`NewTask`].
    fn set_task_factory(&self, factory: Option<TaskFactory>);

    /// The task factory, `None` by default.
    fn get_task_factory(&self) -> Option<TaskFactory>;

    /// Registers an async clean-up (closing a stream, stopping a long-lived task) to be run by
    /// [`shutdown_cleanups`](LoopTaskExt::shutdown_cleanups) before the loop is closed.
    fn add_cleanup<F>(&self, name: &str, cleanup: impl FnOnce() -> F + 'static) -> CleanupId
    where
        F: Future<Output = ()> + 'static;

    /// Unregisters a clean-up; false if it was not registered (or already ran).
    fn remove_cleanup(&self, id: CleanupId) -> bool;

    /// asyncio's `shutdown_asyncgens` analogue: runs every registered clean-up as a task,
    /// concurrently, and completes when all are done. A clean-up that panics is reported to
    /// the exception handler with the keys `message`, `exception` and `cleanup`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let closed = Rc::new(Cell::new(false));
    /// let c2 = closed.clone();
    /// lp.add_cleanup("stream", move || async move { c2.set(true) });
    /// lp.run_until_complete(lp.shutdown_cleanups())?;
    /// lp.close()?;
    /// assert!(closed.get());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn shutdown_cleanups(&self) -> ShutdownCleanups;

    /// asyncio's `runners._cancel_all_tasks`, as `evloop::run` uses it: cancels every pending
    /// task of the loop now, and returns a future that completes once all of them are done
    /// (run it with `run_until_complete`). A task that ends failed instead of cancelled is
    /// reported to the exception handler ("unhandled exception during evloop::run() shutdown",
    /// with `exception` and `task`).
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::EventLoop;
    /// use evloop::{LoopTaskExt, sleep};
    ///
    /// let lp = EventLoop::new()?;
    /// let sleeper = lp.create_task(async { sleep(3600.0).await })?;
    /// lp.run_until_complete(lp.cancel_all_tasks())?;
    /// assert!(sleeper.cancelled());
    /// lp.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn cancel_all_tasks(&self) -> CancelAllTasks;
}

impl LoopTaskExt for EventLoop {
    fn create_future<T: 'static>(&self) -> LoopFuture<T> {
        LoopFuture::new(self)
    }

    fn create_task<F>(&self, fut: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_closed() {
            return Err(evloop_sched::Error::closed().into());
        }
        let (core, first) = step::spawn(self, fut);
        let factory = self.local::<FactorySlot>().0.borrow().clone();
        match factory {
            None => {
                factory::start(self, &core.state, first)?;
            }
            Some(factory) => {
                // A factory may hold the task unstarted, or start it eagerly (the current task
                // is then no longer current during that step): both join the registry, so
                // that `all_tasks` still finds them (see `current`'s ground rules).
                let node = core.node();
                register_node(&node);
                if let Some(current) = current_node()
                    && current.event_loop().ptr_eq(self)
                {
                    register_node(&current);
                }
                let new = NewTask {
                    first: Some(first),
                    task: AnyTask { node },
                    lp: self.clone(),
                };
                factory(self, new)?;
            }
        }
        Ok(Task { core })
    }

    fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_closed() {
            return Err(evloop_sched::Error::closed().into());
        }
        // Refused before a task is made, so a refused call leaves nothing behind.
        if let Ok(running) = get_running_loop() {
            return Err(if running.ptr_eq(self) {
                evloop_sched::Error::already_running().into()
            } else {
                evloop_sched::Error::other_loop_running().into()
            });
        }
        until::run(self, fut)
    }

    fn set_task_factory(&self, factory: Option<TaskFactory>) {
        let old = self.local::<FactorySlot>().0.replace(factory);
        drop(old);
    }

    fn get_task_factory(&self) -> Option<TaskFactory> {
        self.local::<FactorySlot>().0.borrow().clone()
    }

    fn add_cleanup<F>(&self, name: &str, cleanup: impl FnOnce() -> F + 'static) -> CleanupId
    where
        F: Future<Output = ()> + 'static,
    {
        self.local::<Cleanups>().add(name, cleanup)
    }

    fn remove_cleanup(&self, id: CleanupId) -> bool {
        self.local::<Cleanups>().remove(id)
    }

    fn shutdown_cleanups(&self) -> ShutdownCleanups {
        ShutdownCleanups::new(self)
    }

    fn cancel_all_tasks(&self) -> CancelAllTasks {
        CancelAllTasks::new(self)
    }
}
