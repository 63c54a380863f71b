//! [`Process`]: asyncio's high-level `asyncio.subprocess.Process`, whose piped stdin, stdout
//! and stderr are the streams' [`StreamWriter`] and [`StreamReader`]s, over the child's pipe
//! transports.
//!
//! [`ProcessProtocol`] is asyncio's `SubprocessStreamProtocol`: in `connection_made` it makes
//! one stream per piped fd, each fed by a [`StreamProtocol`] of its own on the same
//! [`Shared`] state a socket stream uses, so the readers keep asyncio's limit and flow control
//! (the pipe stops being read above twice the limit buffered) and the stdin writer's `drain`
//! follows the pipe's write buffer.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::task::Poll;

use super::protocol::SubprocessProtocol;
use super::spawn::SubprocessConnection;
use super::transport::SubprocessTransport;
use crate::protocol::Protocol;
use crate::streams::{Shared, StreamProtocol, StreamReader, StreamWriter};

/// What [`Process::communicate`] collected: `(stdout, stderr)`, each `None` if not piped.
pub type Communicated = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The protocol behind a [`Process`] (asyncio's `SubprocessStreamProtocol`): it hands each
/// pipe's events to the stream of that fd.
pub(crate) struct ProcessProtocol {
    limit: usize,
    /// Indexed by fd: what feeds the stream of each piped fd.
    feeds: [Option<StreamProtocol>; 3],
    /// The streams made in `connection_made`, until [`Process::new`] takes them.
    stdin: Option<StreamWriter>,
    stdout: Option<StreamReader>,
    stderr: Option<StreamReader>,
}

impl ProcessProtocol {
    /// A protocol whose readers have the limit `limit` (checked by the caller: not zero).
    pub(crate) fn new(limit: usize) -> ProcessProtocol {
        ProcessProtocol {
            limit,
            feeds: [None, None, None],
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    /// The feed of the child's fd `fd`, if piped.
    fn feed(&mut self, fd: i32) -> Option<&mut StreamProtocol> {
        self.feeds.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }
}

impl SubprocessProtocol for ProcessProtocol {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        for (fd, feed) in (0..).zip(&mut self.feeds) {
            let Some(pipe) = transport.get_pipe_transport(fd) else {
                continue;
            };
            let shared = Shared::new(self.limit);
            let mut proto = StreamProtocol::new(shared.clone());
            proto.connection_made(&pipe);
            *feed = Some(proto);
            match fd {
                0 => self.stdin = Some(StreamWriter::new(pipe, shared)),
                1 => self.stdout = Some(StreamReader::new(shared)),
                _ => self.stderr = Some(StreamReader::new(shared)),
            }
        }
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        if let Some(feed) = self.feed(fd) {
            feed.data_received(data);
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, err: Option<io::Error>) {
        // End of file for a reader (its error if the pipe failed); for stdin, the end of the
        // writer: `drain` and `wait_closed` return (asyncio's `_stdin_closed`).
        if let Some(feed) = self.feed(fd) {
            feed.connection_lost(err);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(feed) = self.feed(0) {
            feed.pause_writing();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(feed) = self.feed(0) {
            feed.resume_writing();
        }
    }
}

/// A child process started by `create_subprocess_exec` or `create_subprocess_shell`
/// (asyncio's `asyncio.subprocess.Process`).
///
/// Its piped streams are the fields [`stdin`](Process::stdin) (a [`StreamWriter`] on the
/// child's stdin pipe), [`stdout`](Process::stdout) and [`stderr`](Process::stderr)
/// ([`StreamReader`]s with the limit of
/// [`ProcessOptions::limit`](crate::ProcessOptions::limit), 64 KiB by default); `None` for a
/// stream that is not piped. They are fields, as asyncio's attributes, so that one can be
/// written while another is read; take one out (`child.stdout.take()`) to move it into a task
/// of its own. Closing or dropping the writer closes the child's stdin: it reads end of file.
/// `!Send`, like the loop.
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
/// let (line, out, code) = lp.run_until_complete(async move {
///     let mut child = l2.create_subprocess_exec("cat", [""; 0], ProcessOptions::new()).await?;
///     // Line by line through the streams (`cat` writes each line back as it reads it)...
///     let stdin = child.stdin.as_ref().expect("piped");
///     stdin.write(b"hello\n");
///     stdin.drain().await?;
///     let line = child.stdout.as_mut().expect("piped").readline().await?;
///     // ...or the rest all at once.
///     let (out, _err) = child.communicate(Some(b"world")).await?;
///     Ok::<_, std::io::Error>((line, out, child.returncode()))
/// })??;
/// assert_eq!(line, b"hello\n");
/// assert_eq!(out.as_deref(), Some(&b"world"[..]));
/// assert_eq!(code, Some(0));
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Process {
    transport: SubprocessTransport,
    /// The child's stdin, if piped (asyncio's `Process.stdin`).
    pub stdin: Option<StreamWriter>,
    /// The child's stdout, if piped (asyncio's `Process.stdout`).
    pub stdout: Option<StreamReader>,
    /// The child's stderr, if piped (asyncio's `Process.stderr`).
    pub stderr: Option<StreamReader>,
}

impl Process {
    pub(crate) fn new((transport, protocol): SubprocessConnection<ProcessProtocol>) -> Process {
        // `connection_made` ran (the start awaited it), so the streams are there; the
        // protocol's other calls come from loop callbacks, never while this borrow lasts.
        let mut protocol = protocol.borrow_mut();
        Process {
            transport,
            stdin: protocol.stdin.take(),
            stdout: protocol.stdout.take(),
            stderr: protocol.stderr.take(),
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
    /// that writes more than twice the stream limit to a pipe nobody reads blocks, and so
    /// does `wait` (use [`communicate`](Process::communicate)).
    ///
    /// # Errors
    ///
    /// The loop's closed error if the loop closes first.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn wait(&self) -> impl Future<Output = io::Result<i32>> + 'static {
        self.transport.wait()
    }

    /// Writes `input` (if any) to stdin, drains and closes it, while reading stdout and
    /// stderr to their end; then waits for the child to exit; `(stdout, stderr)`, each `None`
    /// if not piped (asyncio's `communicate`). The three run at once, so a child that writes
    /// much before it has read all its input does not deadlock. A child that exits without
    /// reading all of `input` is not an error: `BrokenPipe` and `ConnectionReset` from the
    /// stdin writer are ignored, as asyncio ignores `BrokenPipeError` and
    /// `ConnectionResetError`. What was read before the call (by `readline`, say) is not
    /// returned again.
    ///
    /// # Errors
    ///
    /// A read error on stdout or stderr, another error of the stdin writer; the loop's closed
    /// error.
    pub async fn communicate(&mut self, input: Option<&[u8]>) -> io::Result<Communicated> {
        let (fed, out, err) = join3(
            feed_stdin(self.stdin.as_ref(), input),
            read_stream(self.stdout.as_mut()),
            read_stream(self.stderr.as_mut()),
        )
        .await;
        fed?;
        let (out, err) = (out?, err?);
        self.wait().await?;
        Ok((out, err))
    }
}

/// `communicate`'s stdin part (asyncio's `_feed_stdin`).
async fn feed_stdin(stdin: Option<&StreamWriter>, input: Option<&[u8]>) -> io::Result<()> {
    let Some(stdin) = stdin else {
        return Ok(());
    };
    if let Some(input) = input {
        stdin.write(input);
    }
    let drained = stdin.drain().await;
    stdin.close();
    match drained {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// `communicate`'s part for one output (asyncio's `_read_stream`).
async fn read_stream(stream: Option<&mut StreamReader>) -> io::Result<Option<Vec<u8>>> {
    match stream {
        Some(stream) => stream.read_all().await.map(Some),
        None => Ok(None),
    }
}

/// Runs three futures at once until all are done (the part of asyncio's `gather` that
/// `communicate` needs, without tasks: the futures borrow the process).
async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(move |cx| {
        if ra.is_none() {
            if let Poll::Ready(out) = a.as_mut().poll(cx) {
                ra = Some(out);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(out) = b.as_mut().poll(cx) {
                rb = Some(out);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(out) = c.as_mut().poll(cx) {
                rc = Some(out);
            }
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(a), Some(b), Some(c)) => Poll::Ready((a, b, c)),
            (a, b, c) => {
                (ra, rb, rc) = (a, b, c);
                Poll::Pending
            }
        }
    })
    .await
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("returncode", &self.returncode())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}
