//! [`Executor`] and `run_in_executor`: blocking work on a thread pool, its result back on the
//! loop as a [`LoopFuture`].
//!
//! # Ground rules
//!
//! - A job's closure and its result cross threads; the [`LoopFuture`] never does. The future
//!   waits in the loop's job table under a number; the worker sends the result back with
//!   `call_soon_threadsafe`, and the loop thread looks the future up and completes it.
//! - Cancelling the future removes it from the table and raises a flag the worker reads before
//!   it starts the closure and before it sends the result: a cancelled job is skipped if it has
//!   not started, and a result that arrives late is dropped on the worker, without touching
//!   the loop. After `close()` the send fails and the result is dropped on the worker too.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use evloop_sched::{EventLoop, Exception, get_running_loop};
use evloop_task::{Error, LoopFuture};
use threadpool::ThreadPool;

/// The most worker threads the default executor starts: `min(32, cpus + 4)`, as asyncio's
/// `ThreadPoolExecutor` (enough for I/O-bound jobs, bounded on large machines).
pub const MAX_DEFAULT_WORKERS: usize = 32;

/// Numbers the pools of this process, for their threads' names.
static NEXT_POOL: AtomicUsize = AtomicUsize::new(1);

/// A pool of worker threads for blocking work (asyncio's `ThreadPoolExecutor`). Clones share
/// the pool; its threads end once every clone is dropped and the queued jobs ran.
///
/// # Examples
///
/// ```
/// use evloop::EventLoop;
/// use evloop::{Executor, LoopExecExt};
/// use evloop::LoopTaskExt;
///
/// let lp = EventLoop::new()?;
/// let pool = Executor::new(2);
/// let fut = lp.run_in_executor(Some(&pool), || 6 * 7)?;
/// assert_eq!(lp.run_until_complete(fut)??, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Executor {
    pool: ThreadPool,
    name: String,
}

impl Executor {
    /// A pool of `workers` threads (at least one), named `evloop-exec-N` where N numbers the
    /// pools of the process. Threads are started as jobs arrive.
    pub fn new(workers: usize) -> Executor {
        let name = format!("evloop-exec-{}", NEXT_POOL.fetch_add(1, Ordering::Relaxed));
        let pool = threadpool::Builder::new()
            .num_threads(workers.max(1))
            .thread_name(name.clone())
            .build();
        Executor { pool, name }
    }

    /// The size of the default executor: `min(32, cpus + 4)`.
    pub fn default_workers() -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        MAX_DEFAULT_WORKERS.min(cpus + 4)
    }

    /// The number of worker threads.
    pub fn max_workers(&self) -> usize {
        self.pool.max_count()
    }

    /// The name of this pool's threads.
    pub fn thread_name(&self) -> &str {
        &self.name
    }

    /// Blocks until every queued and running job finished.
    pub fn join(&self) {
        self.pool.join();
    }

    pub(crate) fn execute(&self, job: Box<dyn FnOnce() + Send>) {
        self.pool.execute(job);
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("name", &self.name)
            .field("workers", &self.pool.max_count())
            .field("active", &self.pool.active_count())
            .field("queued", &self.pool.queued_count())
            .finish()
    }
}

/// The loop's default executor and its state, per loop.
#[derive(Default)]
pub(crate) struct DefaultExecutor {
    pub(crate) pool: RefCell<Option<Executor>>,
    pub(crate) shut_down: Cell<bool>,
    hooked: Cell<bool>,
}

impl DefaultExecutor {
    /// The default executor, created on first use.
    ///
    /// # Errors
    ///
    /// - invalid state ("executor shutdown has been called") after `shutdown_default_executor`
    ///   or `close()`.
    pub(crate) fn get(lp: &EventLoop) -> Result<Executor, Error> {
        let slot = lp.local::<DefaultExecutor>();
        if slot.shut_down.get() {
            return Err(Error::invalid_state("executor shutdown has been called"));
        }
        slot.hook_close(lp);
        let mut pool = slot.pool.borrow_mut();
        Ok(pool
            .get_or_insert_with(|| Executor::new(Executor::default_workers()))
            .clone())
    }

    pub(crate) fn set(lp: &EventLoop, executor: Executor) {
        let slot = lp.local::<DefaultExecutor>();
        slot.hook_close(lp);
        let old = slot.pool.replace(Some(executor));
        drop(old);
    }

    /// `close()` shuts the default executor down without waiting (asyncio's `wait=False`): the
    /// pool is released, its threads end after the jobs already queued.
    fn hook_close(&self, lp: &EventLoop) {
        if self.hooked.replace(true) {
            return;
        }
        let weak = std::rc::Rc::downgrade(&lp.local::<DefaultExecutor>());
        lp.on_close(move || {
            if let Some(slot) = weak.upgrade() {
                slot.shut_down.set(true);
                let pool = slot.pool.borrow_mut().take();
                drop(pool);
            }
        });
    }
}

/// Futures waiting for a job's result, by job number, per loop.
#[derive(Default)]
struct Jobs {
    next: Cell<u64>,
    waiting: RefCell<HashMap<u64, Box<dyn Any>>>,
}

/// `run_in_executor`: runs `f` on `executor` and completes the returned future with its result
/// (or its panic, as a failure).
pub(crate) fn run_in_executor<T, F>(
    lp: &EventLoop,
    executor: &Executor,
    f: F,
) -> Result<LoopFuture<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_job(lp, f, |job| executor.execute(job))
}

/// Makes the future, files it under a job number, and hands the job to `start` (a pool, or a
/// thread of its own).
pub(crate) fn spawn_job<T, F>(
    lp: &EventLoop,
    f: F,
    start: impl FnOnce(Box<dyn FnOnce() + Send>),
) -> Result<LoopFuture<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if lp.is_closed() {
        return Err(evloop_sched::Error::closed().into());
    }
    let fut = LoopFuture::<T>::new(lp);
    let jobs = lp.local::<Jobs>();
    let id = jobs.next.get();
    jobs.next.set(id + 1);
    jobs.waiting.borrow_mut().insert(id, Box::new(fut.clone()));

    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let lp2 = lp.clone();
    fut.add_done_callback(move |f| {
        if f.cancelled() {
            flag.store(true, Ordering::Release);
        }
        let gone = lp2.local::<Jobs>().waiting.borrow_mut().remove(&id);
        drop(gone);
    });

    let remote = lp.remote();
    start(Box::new(move || {
        if cancelled.load(Ordering::Acquire) {
            return;
        }
        let outcome = catch_unwind(AssertUnwindSafe(f));
        if cancelled.load(Ordering::Acquire) {
            return; // dropped here, on the worker
        }
        // A closed loop refuses the callback; the result is dropped here, on the worker.
        let _ = remote.call_soon_threadsafe(move || deliver::<T>(id, outcome));
    }));
    Ok(fut)
}

/// On the loop thread: completes the future of job `id`, unless it is gone (cancelled).
fn deliver<T: 'static>(id: u64, outcome: std::thread::Result<T>) {
    let Ok(lp) = get_running_loop() else {
        return;
    };
    let waiting = lp.local::<Jobs>().waiting.borrow_mut().remove(&id);
    let Some(fut) = waiting.and_then(|b| b.downcast::<LoopFuture<T>>().ok()) else {
        return;
    };
    // A future cancelled in the last iteration may still be in the table (its done callback,
    // which removes it, is scheduled); setting it then fails and the outcome is dropped.
    let _ = match outcome {
        Ok(value) => fut.set_result(value),
        Err(payload) => fut.set_exception(Exception::from_panic(payload)),
    };
}
