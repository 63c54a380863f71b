//! evloop-task is floor 3 of evloop: futures and tasks on the callback loop. It owns
//! [`LoopFuture`] (asyncio's `Future`: done callbacks, cancel, result), [`Task`] (a Rust future
//! driven by the loop, one ready-queue entry per step), the task factory, `run_until_complete`,
//! [`sleep()`], [`current_task`]/[`all_tasks`], the async clean-up registry, and asyncio's task
//! helpers that need the loop's clock: [`timeout()`], [`timeout_at`], [`wait_for`], [`gather()`],
//! [`wait()`], [`as_completed`], [`shield()`]. It depends only on `evloop-sched` (floor 2); it must
//! never know about executors, thread pools, sockets or transports, which live on the floors
//! above. The loop methods come as the
//! extension trait [`LoopTaskExt`] on `evloop_sched::EventLoop`; most users want the facade
//! crate `evloop`, whose prelude brings this trait in scope with the rest.
//!
//! # Ordering promises
//!
//! - A task's first step is scheduled like a `call_soon` callback, never run inline (unless an
//!   eager task factory is set and the loop is running), and each later step is one entry in the same FIFO as
//!   callbacks. Queueing a step allocates nothing (`EventLoop::call_soon_step`), and a task is
//!   one allocation: its state, its future and its waker state together.
//! - A task awaiting a future set in iteration N resumes in iteration N + 1.
//! - `sleep(0)` yields exactly one iteration.
//! - Done callbacks are scheduled with `call_soon` when the future completes, in the order they
//!   were added; never run inline.
//!
//! # Threads
//!
//! Futures and tasks are `!Send` and live on the loop's thread; task bodies need not be `Send`.
//! A task's waker is `Send + Sync`: woken from another thread it queues the task's next step
//! through the loop's cross-thread queue and wakes the loop. A waker of a closed (or dropped)
//! loop does nothing.
//!
//! # Panics in tasks
//!
//! A panic inside a task is caught at the step boundary and becomes the task's failure
//! ([`Error::is_panic`]); the loop keeps running. If nobody looks at it, it is reported to the
//! exception handler when the task is dropped ("Task exception was never retrieved").

mod alarm;
mod cancel_all;
mod cleanup;
mod core;
mod current;
mod error;
mod ext;
mod factory;
mod future;
mod gather;
mod shield;
mod sleep;
mod state;
mod step;
mod task;
mod timeouts;
mod until;
mod wait;

pub use cancel_all::CancelAllTasks;
pub use cleanup::{CleanupId, ShutdownCleanups};
pub use core::CallbackId;
pub use current::{AnyTask, all_tasks, all_tasks_of, current_task};
pub use error::Error;
pub use ext::LoopTaskExt;
pub use factory::{NewTask, TaskFactory, eager_task_factory};
pub use future::LoopFuture;
pub use gather::{Gather, GatherAll, gather, gather_return_exceptions};
pub use shield::{Shield, shield};
pub use sleep::{Sleep, sleep};
pub use task::Task;
pub use timeouts::{Timeout, timeout, timeout_at, wait_for};
pub use wait::{AsCompleted, Next, ReturnWhen, Wait, as_completed, wait};
