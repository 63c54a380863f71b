//! [`Process`]: asyncio's high-level `asyncio.subprocess.Process`, with its stdin, stdout and
//! stderr as minimal async handles ([`ProcessStdin`], [`ProcessReader`]) on the pipe
//! transports.
//!
//! The readers keep what the child wrote until it is read, up to a limit: above twice
//! [`STREAM_LIMIT`] buffered, the pipe stops being read until the reader drains it below the
//! limit (asyncio's `StreamReader` flow control), so a child that writes more than its
//! parent reads blocks instead of filling the parent's memory. `communicate` lifts the limit:
//! it keeps everything, as asyncio's does.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::protocol::SubprocessProtocol;
use super::spawn::SubprocessConnection;
use super::transport::SubprocessTransport;

/// asyncio's default stream limit (`asyncio.streams._DEFAULT_LIMIT`, 64 KiB): a reader stops
/// reading its pipe above twice this much buffered.
pub const STREAM_LIMIT: usize = 64 * 1024;

/// What one output pipe delivered and nobody read yet.
#[derive(Default)]
struct Output {
    buf: VecDeque<u8>,
    eof: bool,
    err: Option<io::Error>,
    waker: Option<Waker>,
    /// `None`: no limit (`communicate`).
    limit: Option<usize>,
    /// Reading of the pipe was paused for the limit.
    paused: bool,
}

/// What the stdin pipe reported.
#[derive(Default)]
struct Input {
    lost: bool,
    err: Option<io::Error>,
    wakers: Vec<Waker>,
}

/// The state a [`Process`] shares with its protocol.
#[derive(Default)]
struct Shared {
    transport: Option<SubprocessTransport>,
    /// Indexed by fd: 1 and 2.
    outputs: [Output; 3],
    input: Input,
}

/// What [`Process::communicate`] collected: `(stdout, stderr)`, each `None` if not piped.
pub type Communicated = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The protocol behind a [`Process`] (asyncio's `SubprocessStreamProtocol`).
#[derive(Default)]
pub(crate) struct ProcessProtocol {
    shared: Rc<RefCell<Shared>>,
}

impl SubprocessProtocol for ProcessProtocol {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let mut shared = self.shared.borrow_mut();
        shared.transport = Some(transport.clone());
        for out in &mut shared.outputs {
            out.limit = Some(STREAM_LIMIT);
        }
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let mut shared = self.shared.borrow_mut();
        let transport = shared.transport.clone();
        let Some(out) = shared.outputs.get_mut(fd as usize) else {
            return;
        };
        out.buf.extend(data);
        if let Some(limit) = out.limit {
            if !out.paused && out.buf.len() > 2 * limit {
                if let Some(pipe) = transport.and_then(|t| t.get_pipe_transport(fd)) {
                    pipe.pause_reading();
                    out.paused = true;
                }
            }
        }
        if let Some(waker) = out.waker.take() {
            waker.wake();
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, err: Option<io::Error>) {
        let mut shared = self.shared.borrow_mut();
        if fd == 0 {
            shared.input.lost = true;
            shared.input.err = err;
            for waker in shared.input.wakers.drain(..) {
                waker.wake();
            }
            return;
        }
        if let Some(out) = shared.outputs.get_mut(fd as usize) {
            out.eof = true;
            out.err = err;
            if let Some(waker) = out.waker.take() {
                waker.wake();
            }
        }
    }

    fn resume_writing(&mut self) {
        let mut shared = self.shared.borrow_mut();
        for waker in shared.input.wakers.drain(..) {
            waker.wake();
        }
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        // Breaks the cycle: the transport holds this protocol.
        self.shared.borrow_mut().transport = None;
    }
}

/// A child process started by `create_subprocess_exec` or `create_subprocess_shell`
/// (asyncio's `asyncio.subprocess.Process`).
///
/// Its piped streams are [`stdin`](Process::stdin), [`stdout`](Process::stdout) and
/// [`stderr`](Process::stderr): minimal async handles on the pipe transports (write, drain,
/// close; read, read to the end). `!Send`, like the loop.
///
/// # Examples
///
/// ```
/// use evloop::{LoopProcessExt, ProcessOptions};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// let lp = EventLoop::new()?;
/// let l2 = lp.clone();
/// let (out, code) = lp.run_until_complete(async move {
///     let child = l2.create_subprocess_exec("tr", ["a-z", "A-Z"], ProcessOptions::new()).await?;
///     let (out, _err) = child.communicate(Some(b"hello")).await?;
///     Ok::<_, std::io::Error>((out, child.returncode()))
/// })??;
/// assert_eq!(out.as_deref(), Some(&b"HELLO"[..]));
/// assert_eq!(code, Some(0));
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Process {
    transport: SubprocessTransport,
    stdin: Option<ProcessStdin>,
    stdout: Option<ProcessReader>,
    stderr: Option<ProcessReader>,
}

impl Process {
    pub(crate) fn new((transport, protocol): SubprocessConnection<ProcessProtocol>) -> Process {
        let shared = protocol.borrow().shared.clone();
        let reader = |fd| {
            transport.get_pipe_transport(fd).map(|_| ProcessReader {
                shared: shared.clone(),
                transport: transport.clone(),
                fd,
            })
        };
        let stdout = reader(1);
        let stderr = reader(2);
        let stdin = transport.get_pipe_transport(0).map(|_| ProcessStdin {
            shared: shared.clone(),
            transport: transport.clone(),
        });
        Process {
            transport,
            stdin,
            stdout,
            stderr,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.transport.get_pid()
    }

    /// The child's return code once it exited (minus the signal that killed it); `None`
    /// while it runs.
    pub fn returncode(&self) -> Option<i32> {
        self.transport.get_returncode()
    }

    /// The child's stdin, if piped.
    pub fn stdin(&self) -> Option<&ProcessStdin> {
        self.stdin.as_ref()
    }

    /// The child's stdout, if piped.
    pub fn stdout(&self) -> Option<&ProcessReader> {
        self.stdout.as_ref()
    }

    /// The child's stderr, if piped.
    pub fn stderr(&self) -> Option<&ProcessReader> {
        self.stderr.as_ref()
    }

    /// The subprocess transport underneath.
    pub fn transport(&self) -> &SubprocessTransport {
        &self.transport
    }

    /// Sends signal `sig` to the child.
    ///
    /// # Errors
    ///
    /// As [`SubprocessTransport::send_signal`]: `ESRCH` once the child was reaped.
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        self.transport.send_signal(sig)
    }

    /// Sends `SIGTERM` to the child.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Process::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.transport.terminate()
    }

    /// Sends `SIGKILL` to the child.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Process::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.transport.kill()
    }

    /// Waits for the child to exit; its return code. It does not wait for the pipes: a child
    /// that writes more than the stream limit to a pipe nobody reads blocks, and so does
    /// `wait` (use [`communicate`](Process::communicate)).
    ///
    /// # Errors
    ///
    /// The loop's closed error if the loop closes first.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn wait(&self) -> impl Future<Output = io::Result<i32>> + 'static {
        self.transport.wait()
    }

    /// Writes `input` (if any) to stdin and closes it, reads stdout and stderr to their end,
    /// and waits for the child to exit; `(stdout, stderr)`, each `None` if not piped (asyncio's
    /// `communicate`). A child that exits without reading all of `input` is not an error
    /// (asyncio ignores `BrokenPipeError` and `ConnectionResetError` there too).
    ///
    /// # Errors
    ///
    /// A read error on stdout or stderr; the loop's closed error.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn communicate(
        &self,
        input: Option<&[u8]>,
    ) -> impl Future<Output = io::Result<Communicated>> + 'static {
        // Everything is kept from now on: reading one pipe to its end while the other is
        // paused at its limit would deadlock with a child that writes both.
        for reader in [&self.stdout, &self.stderr].into_iter().flatten() {
            reader.unlimit();
        }
        if let Some(stdin) = &self.stdin {
            if let Some(input) = input {
                stdin.write(input);
            }
            stdin.close();
        }
        let stdout = self.stdout.clone();
        let stderr = self.stderr.clone();
        let wait = self.wait();
        async move {
            let out = match stdout {
                Some(r) => Some(r.read_to_end().await?),
                None => None,
            };
            let err = match stderr {
                Some(r) => Some(r.read_to_end().await?),
                None => None,
            };
            wait.await?;
            Ok((out, err))
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("returncode", &self.returncode())
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

/// A child's stdin pipe (a minimal stand-in for asyncio's `StreamWriter`): writes are
/// buffered by the pipe transport and sent as the child reads.
#[derive(Clone)]
pub struct ProcessStdin {
    shared: Rc<RefCell<Shared>>,
    transport: SubprocessTransport,
}

impl ProcessStdin {
    /// Writes `data` (sent at once if the pipe takes it, buffered otherwise). Dropped once
    /// the pipe is closed.
    pub fn write(&self, data: &[u8]) {
        if let Some(pipe) = self.transport.get_pipe_transport(0) {
            pipe.write(data);
        }
    }

    /// Waits until the pipe's buffer is at or below its low-water mark (asyncio's `drain`).
    ///
    /// # Errors
    ///
    /// The error that closed the pipe (`BrokenPipe` if the child closed its end with data
    /// still buffered); `BrokenPipe` for a pipe closed before the buffer drained.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn drain(&self) -> impl Future<Output = io::Result<()>> + 'static {
        let shared = self.shared.clone();
        let transport = self.transport.clone();
        poll_fn(move |cx| {
            let mut shared = shared.borrow_mut();
            let input = &mut shared.input;
            if input.lost {
                return Poll::Ready(match &input.err {
                    Some(err) => Err(match err.raw_os_error() {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None => io::Error::new(err.kind(), err.to_string()),
                    }),
                    None => Ok(()),
                });
            }
            // The pipe's own state, not the protocol's pause flag: `pause_writing` reaches the
            // protocol on a later callback, and a drain right after a write must see it now.
            let paused = transport
                .get_pipe_transport(0)
                .is_some_and(|pipe| pipe.is_writing_paused());
            if !paused {
                return Poll::Ready(Ok(()));
            }
            if !input.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                input.wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Closes the pipe once its buffer is flushed: the child reads end of file.
    pub fn close(&self) {
        if let Some(pipe) = self.transport.get_pipe_transport(0) {
            pipe.close();
        }
    }

    /// Whether the pipe is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.transport
            .get_pipe_transport(0)
            .is_none_or(|p| p.is_closing())
    }
}

impl fmt::Debug for ProcessStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessStdin")
            .field("pid", &self.transport.get_pid())
            .finish()
    }
}

/// A child's stdout or stderr pipe (a minimal stand-in for asyncio's `StreamReader`).
#[derive(Clone)]
pub struct ProcessReader {
    shared: Rc<RefCell<Shared>>,
    transport: SubprocessTransport,
    fd: i32,
}

impl ProcessReader {
    /// Up to `max` bytes, as soon as any are there; empty at end of file (asyncio's
    /// `read(n)`).
    ///
    /// # Errors
    ///
    /// The read error that closed the pipe, once what came before it was read.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn read(&self, max: usize) -> impl Future<Output = io::Result<Vec<u8>>> + 'static {
        let me = self.clone();
        poll_fn(move |cx| me.poll_take(cx.waker(), max, false))
    }

    /// Everything up to end of file (asyncio's `read()`).
    ///
    /// # Errors
    ///
    /// The read error that closed the pipe.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn read_to_end(&self) -> impl Future<Output = io::Result<Vec<u8>>> + 'static {
        let me = self.clone();
        poll_fn(move |cx| me.poll_take(cx.waker(), usize::MAX, true))
    }

    /// Whether end of file was reached and everything before it read.
    pub fn at_eof(&self) -> bool {
        let shared = self.shared.borrow();
        let out = &shared.outputs[self.index()];
        out.eof && out.buf.is_empty()
    }

    fn index(&self) -> usize {
        // 1 or 2: a reader exists only for those.
        self.fd as usize
    }

    /// Keeps everything from now on (`communicate`).
    fn unlimit(&self) {
        let mut shared = self.shared.borrow_mut();
        let out = &mut shared.outputs[self.index()];
        out.limit = None;
        self.resume_if_paused(out);
    }

    fn resume_if_paused(&self, out: &mut Output) {
        let under = out.limit.is_none_or(|limit| out.buf.len() <= limit);
        if out.paused && under {
            out.paused = false;
            if let Some(pipe) = self.transport.get_pipe_transport(self.fd) {
                pipe.resume_reading();
            }
        }
    }

    fn poll_take(&self, waker: &Waker, max: usize, to_end: bool) -> Poll<io::Result<Vec<u8>>> {
        let mut shared = self.shared.borrow_mut();
        let out = &mut shared.outputs[self.index()];
        if to_end {
            // Nothing is taken before the end: lift the limit so that the end can come.
            out.limit = None;
        }
        let ready = if to_end {
            out.eof
        } else {
            out.eof || !out.buf.is_empty()
        };
        if !ready {
            out.waker = Some(waker.clone());
            self.resume_if_paused(out);
            return Poll::Pending;
        }
        if out.buf.is_empty() {
            if let Some(err) = out.err.take() {
                return Poll::Ready(Err(err));
            }
        }
        let n = out.buf.len().min(max);
        let data: Vec<u8> = out.buf.drain(..n).collect();
        self.resume_if_paused(out);
        if to_end {
            if let Some(err) = out.err.take() {
                return Poll::Ready(Err(err));
            }
        }
        Poll::Ready(Ok(data))
    }
}

impl fmt::Debug for ProcessReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessReader")
            .field("pid", &self.transport.get_pid())
            .field("fd", &self.fd)
            .finish()
    }
}
