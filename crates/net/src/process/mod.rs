//! Subprocesses (asyncio's `subprocess_exec`, `subprocess_shell`, `SubprocessTransport`,
//! `SubprocessProtocol` and `asyncio.subprocess.Process`), built on the pipe transports
//! (`connect_read_pipe`, `connect_write_pipe`) and the loop's fd watching.
//!
//! The modules go one way: [`sys`] (system calls) ← `watch` (the exit watch: a pidfd, or a
//! thread where pidfds are missing; who reaps) ← `options` and `protocol` ← `transport` (the
//! child, its pipes, the order of protocol calls) ← `high` (`Process`) ← `spawn` (the loop
//! methods).

mod high;
mod options;
mod protocol;
mod spawn;
mod sys;
mod transport;
mod watch;

#[cfg(test)]
mod tests;

pub use high::{Communicated, Process};
pub use options::{ProcessOptions, ProcessStdio};
pub use protocol::SubprocessProtocol;
pub use spawn::{LoopProcessExt, SHELL, SubprocessConnection};
pub use transport::SubprocessTransport;
