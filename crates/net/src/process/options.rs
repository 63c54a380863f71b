//! [`ProcessOptions`] and [`ProcessStdio`]: how a child is started (asyncio's `stdin`,
//! `stdout`, `stderr`, `env`, `cwd` keyword arguments).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::sys;

/// Where one of a child's standard streams goes (asyncio's `subprocess.PIPE`, `None`,
/// `DEVNULL`, a file object, `STDOUT`).
#[non_exhaustive]
pub enum ProcessStdio {
    /// A pipe to the loop: the transport's pipe transport for that fd, and
    /// `pipe_data_received` for output (asyncio's `PIPE`).
    Pipe,
    /// The parent's own stream, inherited (asyncio's `None`).
    Inherit,
    /// `/dev/null` (asyncio's `DEVNULL`).
    Null,
    /// This fd (a file, a socket, a pipe made elsewhere), given to the child as it is.
    Fd(OwnedFd),
    /// For `stderr` only: wherever `stdout` goes (asyncio's `STDOUT`).
    Stdout,
}

impl fmt::Debug for ProcessStdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessStdio::Pipe => f.write_str("Pipe"),
            ProcessStdio::Inherit => f.write_str("Inherit"),
            ProcessStdio::Null => f.write_str("Null"),
            ProcessStdio::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            ProcessStdio::Stdout => f.write_str("Stdout"),
        }
    }
}

/// How to start a child: its standard streams, environment and working directory.
///
/// `ProcessOptions::new()` pipes all three streams, as asyncio's `loop.subprocess_exec` does
/// by default; say [`ProcessStdio::Inherit`] for a stream the child should share with this
/// process (the default of asyncio's `create_subprocess_exec`).
///
/// # Examples
///
/// ```
/// use evloop::{ProcessOptions, ProcessStdio};
///
/// let options = ProcessOptions::new()
///     .stdin(ProcessStdio::Null)
///     .stderr(ProcessStdio::Stdout)
///     .env("LC_ALL", "C")
///     .cwd("/");
/// # let _ = options;
/// ```
#[derive(Debug)]
pub struct ProcessOptions {
    pub(crate) stdin: ProcessStdio,
    pub(crate) stdout: ProcessStdio,
    pub(crate) stderr: ProcessStdio,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    pub(crate) limit: Option<usize>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions::new()
    }
}

impl ProcessOptions {
    /// All three streams piped, this process's environment and working directory.
    pub fn new() -> ProcessOptions {
        ProcessOptions {
            stdin: ProcessStdio::Pipe,
            stdout: ProcessStdio::Pipe,
            stderr: ProcessStdio::Pipe,
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            limit: None,
        }
    }

    /// Where the child's stdin comes from ([`ProcessStdio::Stdout`] is refused there).
    pub fn stdin(mut self, stdio: ProcessStdio) -> ProcessOptions {
        self.stdin = stdio;
        self
    }

    /// Where the child's stdout goes ([`ProcessStdio::Stdout`] is refused there).
    pub fn stdout(mut self, stdio: ProcessStdio) -> ProcessOptions {
        self.stdout = stdio;
        self
    }

    /// Where the child's stderr goes; [`ProcessStdio::Stdout`] sends it with stdout.
    pub fn stderr(mut self, stdio: ProcessStdio) -> ProcessOptions {
        self.stderr = stdio;
        self
    }

    /// Sets a variable of the child's environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ProcessOptions {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes a variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> ProcessOptions {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment, plus what [`env`](ProcessOptions::env)
    /// adds (asyncio's `env={...}`, which replaces the environment).
    pub fn env_clear(mut self) -> ProcessOptions {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> ProcessOptions {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The limit of the [`Process`](crate::Process)'s stdout and stderr readers (asyncio's
    /// `limit` argument of `create_subprocess_exec`; [`DEFAULT_LIMIT`](crate::DEFAULT_LIMIT),
    /// 64 KiB, unless set): the longest line `readline` returns, and half of what is buffered
    /// before the pipe stops being read. `subprocess_exec` and `subprocess_shell`, whose
    /// protocol gets the data as it comes, ignore it. Zero is refused when the child is
    /// started (`InvalidInput` "limit cannot be <= 0").
    pub fn limit(mut self, limit: usize) -> ProcessOptions {
        self.limit = Some(limit);
        self
    }
}

/// The parent's ends of the pipes asked for, by fd (0, 1, 2).
pub(crate) type ParentEnds = [Option<OwnedFd>; 3];

/// Applies `options` to `cmd`: environment, directory and the three streams. Returns the
/// parent's ends of the pipes; the child's ends live in `cmd` until it is dropped.
///
/// # Errors
///
/// `InvalidInput` for [`ProcessStdio::Stdout`] given as stdin or stdout; OS errors making pipes
/// or duplicating fds.
pub(crate) fn apply(options: ProcessOptions, cmd: &mut Command) -> io::Result<ParentEnds> {
    if options.env_clear {
        cmd.env_clear();
    }
    for (key, value) in &options.env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    if let Some(dir) = &options.cwd {
        cmd.current_dir(dir);
    }
    for (name, stdio) in [("stdin", &options.stdin), ("stdout", &options.stdout)] {
        if matches!(stdio, ProcessStdio::Stdout) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: ProcessStdio::Stdout is only for stderr"),
            ));
        }
    }
    let mut ends: ParentEnds = [None, None, None];
    let stdin = child_end(options.stdin, true, &mut ends[0])?;
    cmd.stdin(stdio_of(stdin));
    let stdout = child_end(options.stdout, false, &mut ends[1])?;
    let stderr = match options.stderr {
        ProcessStdio::Stdout => Some(match &stdout {
            Some(fd) => fd.try_clone()?,
            None => io::stdout().as_fd().try_clone_to_owned()?,
        }),
        other => child_end(other, false, &mut ends[2])?,
    };
    cmd.stdout(stdio_of(stdout));
    cmd.stderr(stdio_of(stderr));
    Ok(ends)
}

/// The child's end as std's `Stdio`: `None` inherits the parent's.
fn stdio_of(end: Option<OwnedFd>) -> Stdio {
    end.map_or_else(Stdio::inherit, Stdio::from)
}

/// Makes the child's end of `stdio` (`None`: inherit the parent's); for a pipe, the parent's
/// end goes to `parent`.
fn child_end(
    stdio: ProcessStdio,
    input: bool,
    parent: &mut Option<OwnedFd>,
) -> io::Result<Option<OwnedFd>> {
    Ok(Some(match stdio {
        ProcessStdio::Inherit | ProcessStdio::Stdout => return Ok(None),
        ProcessStdio::Null => OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(input)
                .write(!input)
                .open("/dev/null")?,
        ),
        ProcessStdio::Fd(fd) => fd,
        ProcessStdio::Pipe => {
            let (r, w) = sys::pipe()?;
            let (ours, theirs) = if input { (w, r) } else { (r, w) };
            *parent = Some(ours);
            theirs
        }
    }))
}
