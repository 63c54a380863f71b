//! [`SubprocessTransport`]: a child process, its pipe transports and its protocol (asyncio's
//! `BaseSubprocessTransport`).
//!
//! # Ground rules
//!
//! - Only the loop's callbacks and the handle's methods touch [`Inner`], on the loop's thread.
//! - Every protocol call goes through [`Inner::call`]: held back until `connection_made` is
//!   scheduled (asyncio's `_pending_calls`), then queued in order and delivered one per loop
//!   callback. A call the protocol is too busy (already borrowed) to take waits for a later
//!   callback; the order is kept.
//! - The child is reaped only by the exit watch's callback, on the loop's thread, or handed to
//!   a reaper ([`Watch::abandon`]) when the loop never will; signals go only to a child not yet
//!   reaped, so never to a stranger that reused its pid.
//! - `connection_lost` is queued once the child exited and every pipe is closed; after it the
//!   protocol and the pipe transports are dropped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::task::{Poll, Waker};

use evloop_sched::{Context, EventLoop, Exception};
use evloop_task::LoopFuture;

use super::protocol::SubprocessProtocol;
use super::sys::{self, Pid};
use super::watch::Watch;
use crate::protocol::Protocol;
use crate::registry::{NO_SLOT, Registry, Release};
use crate::stream_ext::LoopStreamExt;
use crate::transport::Transport;

/// A protocol call waiting its turn.
enum Call {
    Made,
    Data(i32, Vec<u8>),
    PipeLost(i32, Option<io::Error>),
    Exited,
    PauseWriting,
    ResumeWriting,
    Lost,
}

impl Call {
    fn method(&self) -> &'static str {
        match self {
            Call::Made => "connection_made",
            Call::Data(..) => "pipe_data_received",
            Call::PipeLost(..) => "pipe_connection_lost",
            Call::Exited => "process_exited",
            Call::PauseWriting => "pause_writing",
            Call::ResumeWriting => "resume_writing",
            Call::Lost => "connection_lost",
        }
    }
}

/// The child, as far as reaping goes.
enum Child {
    /// Running (or exited, not yet reaped): signals may go to its pid.
    Running(Watch),
    /// Reaped by the loop.
    Reaped,
    /// Handed to a reaper: the loop closed or the transport went away first.
    Abandoned,
}

/// One piped fd of the child.
#[derive(Default)]
struct Pipe {
    transport: Option<Transport>,
    disconnected: bool,
}

/// The shared state behind a [`SubprocessTransport`].
pub(crate) struct Inner {
    lp: EventLoop,
    pid: Pid,
    child: RefCell<Child>,
    returncode: Cell<Option<i32>>,
    protocol: RefCell<Option<Rc<RefCell<dyn SubprocessProtocol>>>>,
    protocol_name: &'static str,
    /// Indexed by fd; `None` for an fd that is not piped.
    pipes: RefCell<[Option<Pipe>; 3]>,
    /// Calls made before `connection_made` was scheduled; `None` from then on.
    pending: RefCell<Option<Vec<Call>>>,
    queue: RefCell<VecDeque<Call>>,
    /// Set once `connection_made` was delivered.
    made: RefCell<Option<LoopFuture<()>>>,
    closed: Cell<bool>,
    finished: Cell<bool>,
    exit_wakers: RefCell<Vec<Waker>>,
    slot: Cell<u32>,
}

/// A child process started by `subprocess_exec` or `subprocess_shell` (asyncio's
/// `SubprocessTransport`): its pid, its return code, its pipe transports, and signals.
///
/// A cheap handle (`Clone` shares it), `!Send` like the loop. The child is watched until it
/// exits and is then reaped by the loop, whether or not anyone still holds the handle: no
/// zombie is left behind. Closing the loop first closes the transport (the child, if still
/// running, is killed, as [`close`](SubprocessTransport::close) does) and reaps the child in
/// the background.
///
/// # Examples
///
/// ```
/// use evloop::{LoopProcessExt, ProcessOptions, SubprocessProtocol};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// struct Quiet;
/// impl SubprocessProtocol for Quiet {}
///
/// let lp = EventLoop::new()?;
/// let (transport, _proto) = lp.run_until_complete(lp.subprocess_exec(
///     || Quiet,
///     "sleep",
///     ["30"],
///     ProcessOptions::new(),
/// ))??;
/// assert!(transport.get_pid() > 0);
/// assert!(transport.get_pipe_transport(1).is_some());
/// transport.kill()?;
/// let code = lp.run_until_complete(transport.wait())??;
/// assert_eq!(code, -9);
/// assert_eq!(transport.get_returncode(), Some(-9));
/// assert!(transport.kill().is_err(), "a reaped child cannot be signalled");
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SubprocessTransport {
    pub(crate) inner: Rc<Inner>,
}

impl SubprocessTransport {
    /// The child's process id.
    pub fn get_pid(&self) -> u32 {
        // A pid is positive: it came from a successful spawn.
        self.inner.pid.unsigned_abs()
    }

    /// The child's return code once it exited: its exit code, or minus the signal that killed
    /// it (`-9` for `SIGKILL`), as asyncio; `None` while it runs.
    pub fn get_returncode(&self) -> Option<i32> {
        self.inner.returncode.get()
    }

    /// The pipe transport of the child's fd `fd` (0, 1 or 2), if that fd is piped; `None`
    /// otherwise and once `connection_lost` was delivered.
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let index = usize::try_from(fd).ok()?;
        let pipes = self.inner.pipes.borrow();
        pipes.get(index)?.as_ref()?.transport.clone()
    }

    /// Sends signal `sig` to the child.
    ///
    /// # Errors
    ///
    /// - `ESRCH` ("No such process", asyncio's `ProcessLookupError`) once the child was
    ///   reaped: its pid may belong to another process by now;
    /// - `EINVAL` for a signal number that does not exist.
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        if !matches!(*self.inner.child.borrow(), Child::Running(_)) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        sys::kill(self.inner.pid, sig)
    }

    /// Sends `SIGTERM` to the child.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](SubprocessTransport::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends `SIGKILL` to the child.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](SubprocessTransport::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Closes the transport, as asyncio's `close`: every pipe transport is closed, and a child
    /// still running is killed (`SIGKILL`). The protocol still gets its `pipe_connection_lost`
    /// calls, `process_exited` and `connection_lost`. A second call does nothing.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](SubprocessTransport::close) was called.
    pub fn is_closing(&self) -> bool {
        self.inner.closed.get()
    }

    /// Waits until the child exited and was reaped; its return code. Unlike asyncio 3.13 (and
    /// like asyncio since gh-119710), it does not wait for the pipes to close: a grandchild
    /// that kept the child's stdout open does not hold it up.
    ///
    /// # Errors
    ///
    /// The future fails with the loop's closed error if the loop closes first.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub fn wait(&self) -> impl Future<Output = io::Result<i32>> + 'static {
        let inner = self.inner.clone();
        std::future::poll_fn(move |cx| inner.poll_exit(cx.waker()))
    }

    /// The loop the transport runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.lp.clone()
    }
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let piped: Vec<usize> = inner
            .pipes
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(fd, _)| fd)
            .collect();
        f.debug_struct("SubprocessTransport")
            .field("pid", &inner.pid)
            .field("returncode", &inner.returncode.get())
            .field("closed", &inner.closed.get())
            .field("pipes", &piped)
            .field("protocol", &inner.protocol_name)
            .finish()
    }
}

impl Inner {
    /// The state of a child just spawned with `piped` fds; calls are held back until
    /// [`start`](Inner::start) connected them.
    pub(crate) fn new<P: SubprocessProtocol>(
        lp: &EventLoop,
        pid: Pid,
        watch: Watch,
        piped: [bool; 3],
        protocol: Rc<RefCell<P>>,
    ) -> Rc<Inner> {
        let protocol: Rc<RefCell<dyn SubprocessProtocol>> = protocol;
        let pipes = piped.map(|p| p.then(Pipe::default));
        let inner = Rc::new(Inner {
            lp: lp.clone(),
            pid,
            child: RefCell::new(Child::Running(watch)),
            returncode: Cell::new(None),
            protocol: RefCell::new(Some(protocol)),
            protocol_name: std::any::type_name::<P>(),
            pipes: RefCell::new(pipes),
            pending: RefCell::new(Some(Vec::new())),
            queue: RefCell::new(VecDeque::new()),
            made: RefCell::new(None),
            closed: Cell::new(false),
            finished: Cell::new(false),
            exit_wakers: RefCell::new(Vec::new()),
            slot: Cell::new(NO_SLOT),
        });
        inner.slot.set(Registry::insert(lp, &inner));
        inner
    }

    /// Watches the child's exit, connects the pipes `ends` (by fd) and schedules
    /// `connection_made`; completes once it was delivered. On an error (or if the returned
    /// future is dropped first) the transport is closed: the child is killed, and reaped.
    pub(crate) async fn start(self: Rc<Self>, ends: [Option<OwnedFd>; 3]) -> io::Result<()> {
        let mut guard = AbortStart(Some(self.clone()));
        self.watch_exit()?;
        for (fd, end) in ends.into_iter().enumerate() {
            let Some(end) = end else { continue };
            // fd is 0, 1 or 2.
            let fd = fd as i32;
            let proto = PipeProto {
                inner: self.clone(),
                fd,
            };
            if fd == 0 {
                self.lp.connect_write_pipe(move || proto, end).await?;
            } else {
                self.lp.connect_read_pipe(move || proto, end).await?;
            }
        }
        let made = LoopFuture::<()>::new(&self.lp);
        *self.made.borrow_mut() = Some(made.clone());
        self.queue.borrow_mut().push_back(Call::Made);
        self.schedule();
        let held = self.pending.borrow_mut().take().unwrap_or_default();
        for call in held {
            self.queue.borrow_mut().push_back(call);
            self.schedule();
        }
        made.await.map_err(io::Error::other)?;
        guard.0 = None;
        Ok(())
    }

    /// Registers the exit watch's reader: once the child exited, it is reaped and
    /// `process_exited` follows on the next iteration (so that output that arrived with the
    /// exit is delivered first, as asyncio's watcher callback does).
    fn watch_exit(self: &Rc<Self>) -> io::Result<()> {
        let fd = match &*self.child.borrow() {
            Child::Running(watch) => watch.fd(),
            _ => return Ok(()),
        };
        let me = self.clone();
        self.lp.add_reader(fd, move || {
            let sys::Reaped::Exited(code) = sys::try_reap(me.pid) else {
                return;
            };
            me.lp.remove_reader(fd);
            *me.child.borrow_mut() = Child::Reaped;
            let me2 = me.clone();
            let _ = me.lp.call_soon(move || me2.process_exited(code));
        })
    }

    fn process_exited(self: &Rc<Self>, code: i32) {
        self.returncode.set(Some(code));
        self.call(Call::Exited);
        for waker in self.exit_wakers.take() {
            waker.wake();
        }
        self.try_finish();
    }

    fn poll_exit(&self, waker: &Waker) -> Poll<io::Result<i32>> {
        if let Some(code) = self.returncode.get() {
            return Poll::Ready(Ok(code));
        }
        if self.lp.is_closed() {
            return Poll::Ready(Err(evloop_sched::Error::closed().into()));
        }
        let mut wakers = self.exit_wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        Poll::Pending
    }

    fn close(self: &Rc<Self>) {
        if self.closed.replace(true) {
            return;
        }
        let pipes: Vec<Transport> = self
            .pipes
            .borrow()
            .iter()
            .flatten()
            .filter_map(|p| p.transport.clone())
            .collect();
        for pipe in pipes {
            pipe.close();
        }
        if self.returncode.get().is_none() && matches!(*self.child.borrow(), Child::Running(_)) {
            if self.lp.get_debug() {
                log::warn!(target: "evloop", "Close running child process: kill pid {}", self.pid);
            }
            // An unreaped child: the pid is still ours. It may have exited already (a
            // zombie), which the signal does not mind.
            let _ = sys::kill(self.pid, libc::SIGKILL);
        }
    }

    fn pipe_made(&self, fd: i32, transport: &Transport) {
        if let Some(Some(pipe)) = self.pipes.borrow_mut().get_mut(fd as usize) {
            pipe.transport = Some(transport.clone());
        }
        if self.closed.get() {
            // `close()` came while this pipe was connecting.
            transport.close();
        }
    }

    fn pipe_lost(self: &Rc<Self>, fd: i32, err: Option<io::Error>) {
        if let Some(Some(pipe)) = self.pipes.borrow_mut().get_mut(fd as usize) {
            pipe.disconnected = true;
        }
        self.call(Call::PipeLost(fd, err));
        self.try_finish();
    }

    /// Queues `connection_lost` once the child exited and every pipe is closed.
    fn try_finish(self: &Rc<Self>) {
        if self.finished.get() || self.returncode.get().is_none() {
            return;
        }
        let all_closed = self.pipes.borrow().iter().flatten().all(|p| p.disconnected);
        if all_closed {
            self.finished.set(true);
            self.call(Call::Lost);
        }
    }

    /// Hands `call` to the protocol in order (held back before `connection_made`).
    fn call(self: &Rc<Self>, call: Call) {
        if let Some(pending) = self.pending.borrow_mut().as_mut() {
            pending.push(call);
            return;
        }
        self.queue.borrow_mut().push_back(call);
        self.schedule();
    }

    /// One loop callback per queued call; each delivers the call at the queue's head.
    fn schedule(self: &Rc<Self>) {
        let me = self.clone();
        // On a closed loop nothing is delivered any more: `release` cleared the queue.
        let _ = self.lp.call_soon(move || me.deliver_one());
    }

    fn deliver_one(self: &Rc<Self>) {
        let Some(protocol) = self.protocol.borrow().clone() else {
            self.queue.borrow_mut().pop_front();
            return;
        };
        let Ok(mut proto) = protocol.try_borrow_mut() else {
            // The user holds a borrow (across an await, say): try again on a later callback.
            self.schedule();
            return;
        };
        let Some(call) = self.queue.borrow_mut().pop_front() else {
            return;
        };
        let method = call.method();
        let lost = matches!(call, Call::Lost);
        let made = matches!(call, Call::Made);
        let handle = SubprocessTransport {
            inner: self.clone(),
        };
        let result = catch_unwind(AssertUnwindSafe(|| match call {
            Call::Made => proto.connection_made(&handle),
            Call::Data(fd, data) => proto.pipe_data_received(fd, &data),
            Call::PipeLost(fd, err) => proto.pipe_connection_lost(fd, err),
            Call::Exited => proto.process_exited(),
            Call::PauseWriting => proto.pause_writing(),
            Call::ResumeWriting => proto.resume_writing(),
            Call::Lost => proto.connection_lost(None),
        }));
        drop(proto);
        if let Err(payload) = result {
            self.lp.call_exception_handler(
                Context::new(format!("Exception in {}.{method}()", self.protocol_name))
                    .with_exception(Exception::from_panic(payload))
                    .with("transport", handle.clone()),
            );
        }
        if made {
            if let Some(made) = self.made.borrow_mut().take() {
                let _ = made.set_result(());
            }
        }
        if lost {
            self.finish();
        }
    }

    /// After `connection_lost`: the protocol and the pipes go, and the loop forgets us.
    fn finish(&self) {
        let protocol = self.protocol.borrow_mut().take();
        let pipes = std::mem::take(&mut *self.pipes.borrow_mut());
        Registry::<Inner>::remove(&self.lp, self.slot.replace(NO_SLOT));
        // Dropped outside the borrows: their destructors are user code.
        drop(pipes);
        drop(protocol);
    }

    /// The loop will never reap the child: kill it if it runs, and hand it to a reaper.
    fn abandon_child(&self) {
        let child = std::mem::replace(&mut *self.child.borrow_mut(), Child::Abandoned);
        if let Child::Running(watch) = child {
            let _ = sys::kill(self.pid, libc::SIGKILL);
            watch.abandon(self.pid);
        }
    }
}

impl Release for Inner {
    fn release(self: &Rc<Self>) {
        self.closed.set(true);
        self.abandon_child();
        self.pending.borrow_mut().take();
        self.queue.borrow_mut().clear();
        self.made.borrow_mut().take();
        let wakers = self.exit_wakers.take();
        let protocol = self.protocol.borrow_mut().take();
        let pipes = std::mem::take(&mut *self.pipes.borrow_mut());
        drop(pipes);
        drop(protocol);
        drop(wakers);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Only the loop's watch, queued calls, pipes and handles hold us: with the child
        // unreaped that means the loop closed (or the start failed) first.
        self.abandon_child();
        Registry::<Inner>::remove(&self.lp, self.slot.replace(NO_SLOT));
    }
}

/// Closes a transport whose start failed or was abandoned (the caller dropped the future).
struct AbortStart(Option<Rc<Inner>>);

impl Drop for AbortStart {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            // No connection_made, so no other protocol call either, as in asyncio.
            inner.protocol.borrow_mut().take();
            inner.close();
        }
    }
}

/// The protocol of one of the child's pipe transports: it reports to the subprocess
/// transport (asyncio's `ReadSubprocessPipeProto`/`WriteSubprocessPipeProto`).
struct PipeProto {
    inner: Rc<Inner>,
    fd: i32,
}

impl Protocol for PipeProto {
    fn connection_made(&mut self, transport: &Transport) {
        self.inner.pipe_made(self.fd, transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.inner.call(Call::Data(self.fd, data.to_vec()));
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.inner.pipe_lost(self.fd, err);
    }

    fn pause_writing(&mut self) {
        self.inner.call(Call::PauseWriting);
    }

    fn resume_writing(&mut self) {
        self.inner.call(Call::ResumeWriting);
    }
}
