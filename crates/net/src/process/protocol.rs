//! [`SubprocessProtocol`]: what a subprocess transport tells the code that started the child.

use std::io;

use super::transport::SubprocessTransport;

/// asyncio's `SubprocessProtocol`: the callbacks a [`SubprocessTransport`] makes on the loop's
/// thread. Every method has a default that does nothing, so a protocol implements only what it
/// needs. `fd` is the child's fd: 0 (stdin), 1 (stdout) or 2 (stderr).
///
/// # Order
///
/// As asyncio's `BaseSubprocessTransport`: `connection_made` exactly once, first, after every
/// pipe is connected; then, per pipe, any number of `pipe_data_received` and one
/// `pipe_connection_lost`; `process_exited` once, when the child has exited and been reaped;
/// `connection_lost(None)` exactly once, last, only after the child exited *and* every pipe is
/// closed. `process_exited` may come before the last pipe events: a child's pipes can outlive
/// it (a grandchild that inherited them, data still in flight), so, as asyncio documents,
/// `pipe_data_received` and `pipe_connection_lost` can follow `process_exited`. Every call
/// comes from a callback of its own, never inside a method the user called. After
/// `connection_lost` the transport drops the protocol, which breaks the cycle of a protocol
/// that keeps its transport.
///
/// `pause_writing` and `resume_writing` are the stdin pipe's flow control, as on
/// [`Protocol`](crate::Protocol).
///
/// # Panics
///
/// A panic in a protocol method is caught and reported to the loop's exception handler (keys
/// `message`, `exception`, `transport`); the transport goes on with the next call.
///
/// # Examples
///
/// ```
/// use evloop::{LoopProcessExt, ProcessOptions, ProcessStdio, SubprocessProtocol};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// #[derive(Default)]
/// struct Collect { out: Vec<u8>, done: Option<EventLoop> }
///
/// impl SubprocessProtocol for Collect {
///     fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
///         if fd == 1 { self.out.extend_from_slice(data); }
///     }
///     fn connection_lost(&mut self, _err: Option<std::io::Error>) {
///         if let Some(lp) = self.done.take() { lp.stop(); }
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let l2 = lp.clone();
/// let options = ProcessOptions::new().stdin(ProcessStdio::Null);
/// let (transport, proto) = lp.run_until_complete(lp.subprocess_exec(
///     move || Collect { out: Vec::new(), done: Some(l2) },
///     "echo",
///     ["hello"],
///     options,
/// ))??;
/// lp.run_forever()?;
/// assert_eq!(proto.borrow().out, b"hello\n");
/// assert_eq!(transport.get_returncode(), Some(0));
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SubprocessProtocol: 'static {
    /// The child started and its pipes are connected; `transport` is how to reach it. Keep a
    /// clone to signal it or write to its stdin later.
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let _ = transport;
    }

    /// The child wrote `data` on its fd `fd` (1 or 2).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// The pipe of the child's fd `fd` closed: `None` at end of file (or after `close`),
    /// `Some(err)` for the error that ended it.
    fn pipe_connection_lost(&mut self, fd: i32, err: Option<io::Error>) {
        let _ = (fd, err);
    }

    /// The child exited and was reaped; [`SubprocessTransport::get_returncode`] has its code.
    fn process_exited(&mut self) {}

    /// The child exited and every pipe is closed: the last call.
    fn connection_lost(&mut self, err: Option<io::Error>) {
        let _ = err;
    }

    /// The stdin pipe's buffer went above its high-water mark.
    fn pause_writing(&mut self) {}

    /// The stdin pipe's buffer drained to its low-water mark.
    fn resume_writing(&mut self) {}
}
