//! evloop-exec is floor 4 of evloop: the bridge between the loop and blocking work. It owns
//! [`Executor`] (a `threadpool` pool), `run_in_executor`, the loop's default executor (created
//! lazily, shut down by `shutdown_default_executor` or by `close()`), and `getaddrinfo` /
//! `getnameinfo`, which run on the executor so the loop never blocks on the resolver, and
//! [`run()`] (asyncio's `asyncio.run`: a new loop, the future, every leftover task cancelled,
//! the clean-ups and the executor's shutdown, `close()`), which lives here, the lowest floor
//! that can shut the executor down. It
//! depends only on `evloop-task` (floor 3) and `evloop-sched` (floor 2), plus `threadpool` and
//! `libc`; it must never know about sockets, transports or protocols, which live on floor 5.
//! The loop methods come as the extension trait [`LoopExecExt`] on `evloop_sched::EventLoop`;
//! most users want the facade crate `evloop`, whose prelude brings it in scope.
//!
//! # Threads
//!
//! Jobs and their results cross to and from the workers; loop futures never leave the loop's
//! thread. Results come back through `call_soon_threadsafe`. A result that arrives after its
//! future was cancelled, or after the loop closed, is dropped on the worker.

mod executor;
mod ext;
mod resolve;
mod run;
mod shutdown;

pub use executor::{Executor, MAX_DEFAULT_WORKERS};
pub use ext::LoopExecExt;
pub use resolve::{AddrInfo, AddrInfoHints, Resolve, ResolveError};
pub use run::{THREAD_JOIN_TIMEOUT, run};
pub use shutdown::ShutdownDefaultExecutor;
