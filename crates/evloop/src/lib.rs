//! evloop is floor 6, the facade: Python asyncio's event loop rebuilt in Rust. It re-exports the
//! crates below it by name, as one API, and adds only glue (the [`prelude`]); it must never
//! contain loop logic of its own, and no crate of the workspace may ever depend on it.
//!
//! Someone who knows asyncio finds every method under the name they know: [`EventLoop::call_soon`],
//! [`EventLoop::call_later`], [`EventLoop::run_forever`], [`EventLoop::add_reader`],
//! [`EventLoop::add_signal_handler`], [`EventLoop::set_exception_handler`] and the rest.
//! Someone who knows Rust finds ordinary Rust: closures instead of `(callback, *args)`,
//! [`Duration`](std::time::Duration) or `f64` seconds, `Result` instead of exceptions.
//!
//! | floor | crate | owns |
//! |---|---|---|
//! | 1 | `evloop-reactor` | fd readiness (epoll via `polling`), cross-thread wake-up, signal delivery |
//! | 1 | `evloop-timer` | the hierarchical timer wheel |
//! | 2 | `evloop-sched` | the loop: ready queue, iterations, handles, signals, exception handler, debug mode |
//! | 3 | `evloop-task` | futures and tasks: `LoopFuture`, `Task`, `run_until_complete`, `sleep`, task factories |
//! | 4 | `evloop-exec` | the executor bridge: `run_in_executor`, the default thread pool, `getaddrinfo`/`getnameinfo`, `run` |
//! | 5 | `evloop-net` | networking: `sock_*` operations, transports and protocols, `create_connection`, `create_server`, datagrams, pipes, streams, `sendfile` |
//! | 6 | `evloop` | this facade |
//!
//! # Examples
//!
//! asyncio's "Hello World" with `call_soon`:
//!
//! ```
//! use evloop::EventLoop;
//!
//! fn main() -> std::io::Result<()> {
//!     let lp = EventLoop::new()?;
//!     let l2 = lp.clone();
//!     lp.call_soon(move || {
//!         println!("Hello World");
//!         l2.stop();
//!     })?;
//!     lp.run_forever()?;
//!     lp.close()?;
//!     Ok(())
//! }
//! ```
//!
//! Tasks, `sleep` and the executor, with the prelude's extension traits:
//!
//! ```
//! use evloop::prelude::*;
//!
//! let lp = EventLoop::new()?;
//! let l2 = lp.clone();
//! let answer = lp.run_until_complete(async move {
//!     let forty = l2.create_task(async {
//!         sleep(0.01).await?;
//!         Ok::<_, TaskError>(40)
//!     })?;
//!     let two = l2.run_in_executor(None, || 1 + 1)?.await?;
//!     Ok::<_, TaskError>(forty.await?? + two)
//! })??;
//! assert_eq!(answer, 42);
//! lp.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A loop must be closed once you are done with it ([`EventLoop::close`]). [`run()`] does it for
//! you, as `asyncio.run` does: a new loop, the future, every task left pending cancelled, the
//! clean-ups, the default executor shut down, and the loop closed:
//!
//! ```
//! use evloop::prelude::*;
//!
//! let answer = evloop::run(async {
//!     let lp = get_running_loop()?;
//!     let two = lp.run_in_executor(None, || 1 + 1)?.await?;
//!     sleep(0.01).await?;
//!     Ok::<_, TaskError>(40 + two)
//! })??;
//! assert_eq!(answer, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use evloop_sched::{
    Armed, Context, ContextValue, DEBUG_ENV, DEFAULT_SLOW_CALLBACK, Deadline, Delay, Error,
    EventLoop, Exception, ExceptionHandler, FdClaim, Handle, MAX_SKIPPED_POLLS, RemoteHandle,
    RemoteLoop, SleepHook, TimerHandle, default_exception_handler, get_running_loop, log_report,
};

// Floor 3: futures and tasks. Its error type is `TaskError` here, beside the loop's `Error`.
pub use evloop_task::{
    AnyTask, CallbackId, CancelAllTasks, CleanupId, Error as TaskError, LoopFuture, LoopTaskExt,
    NewTask, ShutdownCleanups, Sleep, Task, TaskFactory, all_tasks, all_tasks_of, current_task,
    eager_task_factory, sleep,
};

// asyncio's task helpers that need the loop's clock: timeouts, gather, wait, as_completed,
// shield.
pub use evloop_task::{
    AsCompleted, Gather, GatherAll, Next, ReturnWhen, Shield, Timeout, Wait, as_completed, gather,
    gather_return_exceptions, shield, timeout, timeout_at, wait, wait_for,
};

// Floor 4: the executor bridge.
pub use evloop_exec::{
    AddrInfo, AddrInfoHints, Executor, LoopExecExt, MAX_DEFAULT_WORKERS, Resolve, ResolveError,
    ShutdownDefaultExecutor, THREAD_JOIN_TIMEOUT, run,
};

// Floor 5: networking: the low-level socket operations, stream transports and protocols,
// servers, datagram endpoints, pipes; and the socket2 it speaks.
pub use evloop_net::{
    Address, ConnectErrors, ConnectOptions, Connection, DatagramOptions, DatagramProtocol,
    DatagramTransport, ExtraInfo, HostPort, LoopDatagramExt, LoopSockExt, LoopStreamExt, Protocol,
    ServeForever, Server, ServerOptions, ServerSocket, SockAccept, SockConnect, SockRecv,
    SockRecvInto, SockRecvfrom, SockRecvfromInto, SockSendall, SockSendto, Transport,
    TransportInfo, UnixServerOptions, WaitClosed, socket2,
};

// Floor 5 too: streams (asyncio's `open_connection`, `start_server`, ...), a reader and a
// writer over a transport, which implement the `futures-io` traits.
pub use evloop_net::{
    DEFAULT_LIMIT, IncompleteReadError, LimitOverrunError, StreamReader, StreamWriter,
    open_connection, open_unix_connection, start_server, start_unix_server,
};

// Floor 5 too: TLS over stream transports (`ssl=`, `start_tls`), and the rustls it speaks.
pub use evloop_net::{
    AcceptedOptions, StartTlsOptions, TlsConfig, TlsSession, UnixConnectOptions, rustls,
};

// Floor 5 too: files sent by `sendfile(2)` (asyncio's `sock_sendfile`, `sendfile`).
pub use evloop_net::{LoopSendfileExt, Sendfile, SendfileNotAvailableError, SockSendfile};

// Floor 5: subprocesses, their transports and protocols, and the high-level `Process`.
pub use evloop_net::{
    Communicated, LoopProcessExt, Process, ProcessOptions, ProcessStdio, SHELL,
    SubprocessConnection, SubprocessProtocol, SubprocessTransport,
};

// Floor 5: one loop per core, each on its own thread (a `reuse_port` server on each).
pub use evloop_net::{
    GroupError, GroupStopper, LoopFailure, LoopGroup, LoopGroupOptions, LoopSeat,
};

/// POSIX signals by name (`signal::SIGINT`, `signal::name`, `signal::from_name`,
/// `signal::raise`), for `EventLoop::add_signal_handler` without `libc`.
pub use evloop_reactor::signals as signal;

/// The floor-1 building blocks, for users who want them à la carte.
pub mod raw {
    pub use evloop_reactor::{Armed, Interest, Reactor, Ready, Waker, validate_signal};
    pub use evloop_sched::{RawStep, StepName, StepVTable};
    pub use evloop_timer::{
        Expired, LEVEL_SPAN_NANOS, LEVELS, SLOT_BITS, SLOTS_PER_LEVEL, TICK_NANOS, TICK_SHIFT,
        TimerKey, TimerWheel,
    };
}

/// The names most programs need, for `use evloop::prelude::*;`.
pub mod prelude {
    pub use crate::LoopProcessExt;
    pub use crate::{Context, Error, EventLoop, Handle, RemoteLoop, TimerHandle, get_running_loop};
    pub use crate::{LoopDatagramExt, LoopSendfileExt, LoopSockExt, LoopStreamExt};
    pub use crate::{LoopExecExt, LoopFuture, LoopTaskExt, Task, TaskError, current_task, sleep};
}

/// The README's examples, compiled and run as doc tests so that what a newcomer pastes first
/// works with this crate alone.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
