//! [`LoopProcessExt`]: starting children as loop methods (asyncio's `subprocess_exec`,
//! `subprocess_shell`, and `asyncio.create_subprocess_exec`/`_shell`).

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io;
use std::process::Command;
use std::rc::Rc;

use evloop_sched::EventLoop;

use super::high::{Process, ProcessProtocol};
use super::options::{self, ProcessOptions};
use super::protocol::SubprocessProtocol;
use super::sys::{self, Pid};
use super::transport::{Inner, SubprocessTransport};
use super::watch::Watch;
use crate::streams::check_limit;

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// What `subprocess_exec` and `subprocess_shell` return: the transport and the protocol it
/// drives.
pub type SubprocessConnection<P> = (SubprocessTransport, Rc<RefCell<P>>);

/// The shell `subprocess_shell` runs commands with, as asyncio's (`/bin/sh -c CMD`).
pub const SHELL: &str = "/bin/sh";

/// asyncio's subprocess methods on [`EventLoop`].
///
/// Each method returns a `'static` future to await in a task (or to hand to
/// `run_until_complete`); the child is started when the future is first polled. The future
/// completes once the child runs, its pipes are connected and the protocol's
/// `connection_made` has run. The child is started with `std::process::Command` (fork and
/// exec, close-on-exec fds, exec errors reported), and its exit is watched by the loop: a
/// pidfd on Linux 5.3 and later, a thread waiting for it elsewhere.
///
/// # Errors
///
/// - the spawn error, its message naming the program (`NotFound` for a program that does not
///   exist, `PermissionDenied` for one that cannot be executed);
/// - `InvalidInput` for [`ProcessStdio::Stdout`](crate::ProcessStdio::Stdout) given as stdin or
///   stdout;
/// - `InvalidInput` "limit cannot be <= 0" for a [`ProcessOptions::limit`] of zero
///   (`create_subprocess_*` only);
/// - the loop's closed error; OS errors making pipes. On an error after the child started, it
///   is killed and reaped.
pub trait LoopProcessExt: sealed::Sealed {
    /// Starts `program` with `args` (asyncio's `subprocess_exec`); `program` is looked up in
    /// `PATH` unless it contains a slash.
    ///
    /// # Errors
    ///
    /// See [`LoopProcessExt`].
    ///
    /// # Examples
    ///
    /// See [`SubprocessProtocol`] and [`SubprocessTransport`].
    fn subprocess_exec<P, F, I, S>(
        &self,
        factory: F,
        program: impl AsRef<OsStr>,
        args: I,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<SubprocessConnection<P>>> + 'static
    where
        P: SubprocessProtocol,
        F: FnOnce() -> P + 'static,
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>;

    /// Runs `cmd` with the shell, `/bin/sh -c cmd` (asyncio's `subprocess_shell`). Quoting is
    /// the caller's business, as in asyncio.
    ///
    /// # Errors
    ///
    /// See [`LoopProcessExt`].
    fn subprocess_shell<P, F>(
        &self,
        factory: F,
        cmd: impl AsRef<OsStr>,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<SubprocessConnection<P>>> + 'static
    where
        P: SubprocessProtocol,
        F: FnOnce() -> P + 'static;

    /// Starts `program` with `args` as a [`Process`] (asyncio's
    /// `asyncio.create_subprocess_exec`), whose piped streams are read and written through it.
    ///
    /// # Errors
    ///
    /// See [`LoopProcessExt`].
    ///
    /// # Examples
    ///
    /// See [`Process`].
    fn create_subprocess_exec<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<Process>> + 'static
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>;

    /// Runs `cmd` with the shell as a [`Process`] (asyncio's
    /// `asyncio.create_subprocess_shell`).
    ///
    /// # Errors
    ///
    /// See [`LoopProcessExt`].
    fn create_subprocess_shell(
        &self,
        cmd: impl AsRef<OsStr>,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<Process>> + 'static;
}

/// A command line: the program, as the user named it, and its arguments.
struct CommandLine {
    program: OsString,
    args: Vec<OsString>,
}

impl CommandLine {
    fn exec(program: &OsStr, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> CommandLine {
        CommandLine {
            program: program.to_owned(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
        }
    }

    fn shell(cmd: &OsStr) -> CommandLine {
        CommandLine {
            program: OsString::from(SHELL),
            args: vec![OsString::from("-c"), cmd.to_owned()],
        }
    }
}

/// Starts the child and its transport; completes once `connection_made` ran.
async fn start<P: SubprocessProtocol>(
    lp: EventLoop,
    line: CommandLine,
    options: ProcessOptions,
    factory: impl FnOnce() -> P,
) -> io::Result<SubprocessConnection<P>> {
    if lp.is_closed() {
        return Err(evloop_sched::Error::closed().into());
    }
    let mut cmd = Command::new(&line.program);
    cmd.args(&line.args);
    let ends = options::apply(options, &mut cmd)?;
    let child = cmd.spawn().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("{err}: {:?}", line.program.to_string_lossy()),
        )
    })?;
    // The child's ends of the pipes go now: the child holds its own copies.
    drop(cmd);
    // std's `Child` neither waits nor kills when dropped: the pid is the watch's from here on.
    let pid = Pid::try_from(child.id())
        .map_err(|_| io::Error::other("spawn: the child's pid is out of range"))?;
    drop(child);
    let watch = match Watch::start(pid) {
        Ok(watch) => watch,
        Err(err) => {
            // Nobody could learn of its exit: end it now rather than leave it unwatched.
            let _ = sys::kill(pid, libc::SIGKILL);
            sys::reap_blocking(pid);
            return Err(err);
        }
    };
    let protocol = Rc::new(RefCell::new(factory()));
    let piped = [0, 1, 2].map(|fd| ends[fd].is_some());
    let inner = Inner::new(&lp, pid, watch, piped, protocol.clone());
    inner.clone().start(ends).await?;
    Ok((SubprocessTransport { inner }, protocol))
}

/// Starts the child as a [`Process`], its streams with the options' limit.
async fn start_process(
    lp: EventLoop,
    line: CommandLine,
    options: ProcessOptions,
) -> io::Result<Process> {
    let limit = check_limit(options.limit)?;
    let started = start(lp, line, options, move || ProcessProtocol::new(limit)).await?;
    Ok(Process::new(started))
}

impl LoopProcessExt for EventLoop {
    fn subprocess_exec<P, F, I, S>(
        &self,
        factory: F,
        program: impl AsRef<OsStr>,
        args: I,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<SubprocessConnection<P>>> + 'static
    where
        P: SubprocessProtocol,
        F: FnOnce() -> P + 'static,
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let line = CommandLine::exec(program.as_ref(), args);
        start(self.clone(), line, options, factory)
    }

    fn subprocess_shell<P, F>(
        &self,
        factory: F,
        cmd: impl AsRef<OsStr>,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<SubprocessConnection<P>>> + 'static
    where
        P: SubprocessProtocol,
        F: FnOnce() -> P + 'static,
    {
        let line = CommandLine::shell(cmd.as_ref());
        start(self.clone(), line, options, factory)
    }

    fn create_subprocess_exec<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<Process>> + 'static
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let line = CommandLine::exec(program.as_ref(), args);
        start_process(self.clone(), line, options)
    }

    fn create_subprocess_shell(
        &self,
        cmd: impl AsRef<OsStr>,
        options: ProcessOptions,
    ) -> impl Future<Output = io::Result<Process>> + 'static {
        let line = CommandLine::shell(cmd.as_ref());
        start_process(self.clone(), line, options)
    }
}
