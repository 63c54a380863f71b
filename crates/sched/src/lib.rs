//! evloop-sched is floor 2 of evloop: the event loop itself, asyncio's `BaseEventLoop` without
//! futures and networking. It owns the ready queue, one iteration of the loop ("tick"),
//! `run_forever`/`stop`/`close`, `call_soon`/`call_later`/`call_at`/`call_soon_threadsafe`,
//! fd watching, signal handlers, the exception handler and debug mode. It depends only on the
//! floor-1 crates `evloop-reactor` (readiness, wake-up, signals) and `evloop-timer` (the timer
//! wheel), plus `concurrent-queue`, `libc` and `log`; it must never know about futures, tasks,
//! executors or sockets, which live on the floors above. Alone it is a complete callback loop;
//! most users want the facade crate `evloop`, which re-exports all of this with the rest.
//!
//! # Ordering promises
//!
//! - Callbacks run in the order they were scheduled (FIFO), including those submitted from
//!   other threads once they have arrived.
//! - Timers run in deadline order, never early; timers with equal deadlines run in the order
//!   they were scheduled. asyncio makes no such promise for equal deadlines; evloop does.
//! - What a callback schedules with `call_soon` runs on the next iteration, never in the
//!   current one.
//!
//! # Panics in callbacks
//!
//! A panicking callback is caught at the callback boundary and reported to the exception
//! handler with the keys `message`, `exception` (the panic payload) and `handle`; the loop keeps
//! running. Rust's panic hook still prints the panic message to stderr first, as for any caught
//! panic. A panic escaping a [`RawStep`] (the crates above catch their own first) is
//! reported the same way, without `handle`: a step has none.

mod clock;
mod close;
mod error;
mod event_loop;
mod exception;
mod handle;
mod io;
mod job;
mod owned;
mod remote;
mod running;
mod sleep;
mod step;
mod tick;

pub use clock::{Deadline, Delay};
pub use error::Error;
pub use event_loop::{DEBUG_ENV, DEFAULT_SLOW_CALLBACK, EventLoop, ExceptionHandler};
pub use evloop_reactor::Armed;
pub use exception::{Context, ContextValue, Exception, default_exception_handler, log_report};
pub use handle::{Handle, RemoteHandle, TimerHandle};
pub use io::FdClaim;
pub use remote::RemoteLoop;
pub use running::get_running_loop;
pub use sleep::SleepHook;
pub use step::{RawStep, StepName, StepVTable};
pub use tick::MAX_SKIPPED_POLLS;
