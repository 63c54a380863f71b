//! Opening Unix stream sockets: the listener of `create_unix_server` (with its socket file,
//! removed on close only if it is still ours) and the socket of `create_unix_connection`.
//!
//! # The socket file
//!
//! Binding a path creates a socket file that outlives the socket. A stale one left by an
//! earlier server is unlinked before binding (only if it is a socket: a regular file there is
//! `AddrInUse`). When the server closes, [`UnixSocketFile::remove`] unlinks the file only if
//! it is still the inode the server bound: another server may have replaced it since. Abstract
//! names (a leading NUL byte) have no file and are never stat'ed or unlinked.

use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use evloop_sched::EventLoop;
use evloop_task::sleep;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::open::common::{expect_unix_stream, invalid};
use crate::open::options::UnixServerOptions;

/// The first pause before retrying a connect that found the listener's queue full.
const FULL_QUEUE_FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause between such retries: pauses double from 1 ms up to this, so a server
/// that drains its queue is reached within about 50 ms and a stuck one costs 20 wake-ups a
/// second.
const FULL_QUEUE_MAX_PAUSE: Duration = Duration::from_millis(50);

const BOTH: &str = "path and sock can not be specified at the same time";

/// The socket file a Unix server bound, identified by device and inode at bind time.
#[derive(Debug)]
pub(crate) struct UnixSocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl UnixSocketFile {
    /// The file of the path `sock` is bound to, if it has one (not abstract, not unnamed)
    /// and it exists.
    fn of(sock: &Socket) -> io::Result<Option<UnixSocketFile>> {
        let addr = sock.local_addr()?;
        let Some(path) = addr.as_pathname() else {
            return Ok(None);
        };
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(UnixSocketFile {
                path: path.to_owned(),
                dev: meta.dev(),
                ino: meta.ino(),
            })),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The path of the socket file.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Unlinks the file if it is still the one bound; a file replaced since is left alone, and
    /// a file already gone is no error.
    ///
    /// # Errors
    ///
    /// The error of `stat` or `unlink` other than `NotFound` (permissions…).
    pub(crate) fn remove(self) -> io::Result<()> {
        let ignore_gone = |err: io::Error| match err.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(err),
        };
        match fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == (self.dev, self.ino) => {
                fs::remove_file(&self.path).or_else(ignore_gone)
            }
            Ok(_) => Ok(()),
            Err(err) => ignore_gone(err),
        }
    }
}

/// What `create_unix_server` needs from the opening.
#[derive(Debug)]
pub(crate) struct UnixListener {
    /// The non-blocking socket, bound but not listening yet (`Server::start_serving` listens).
    pub(crate) sock: Socket,
    /// The socket file to remove on close; `None` with `cleanup_socket(false)`, for abstract
    /// names and for unnamed sockets.
    pub(crate) file: Option<UnixSocketFile>,
    /// How many connections one readiness event may accept.
    pub(crate) backlog: u32,
    /// Whether to accept at once.
    pub(crate) start_serving: bool,
}

fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// Binds a new `AF_UNIX` stream socket to `path`, unlinking a stale socket file first.
fn bind_path(path: &Path) -> io::Result<Socket> {
    if !is_abstract(path) {
        if let Ok(meta) = fs::metadata(path) {
            if meta.file_type().is_socket() {
                // A failure here (permissions) is reported by bind below, naming the path.
                let _ = fs::remove_file(path);
            }
        }
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    match sock.bind(&SockAddr::unix(path)?) {
        Ok(()) => Ok(sock),
        Err(err) if err.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("address '{}' is already in use", path.display()),
        )),
        Err(err) => Err(err),
    }
}

/// The listener of `create_unix_server`: bound to `path` (or the given `sock`, checked),
/// non-blocking, with the socket file to remove on close unless `cleanup_socket(false)` (and
/// for abstract or unnamed addresses). It does not listen yet: `Server::start_serving` does,
/// as asyncio's `Server._start_serving`.
///
/// # Errors
///
/// - `InvalidInput` for both `path` and `sock`, for neither, and for a `sock` that is not an
///   `AF_UNIX` stream socket;
/// - `AddrInUse` naming the path when something other than a socket file is there, or
///   another server listens on it;
/// - the error of `socket` or `bind`.
pub(crate) fn open_unix_listener(
    path: Option<&Path>,
    opts: UnixServerOptions,
) -> io::Result<UnixListener> {
    let UnixServerOptions {
        backlog,
        start_serving,
        cleanup_socket,
        sock,
        .. // the TLS options, taken out by the caller
    } = opts;
    let sock = match (path, sock) {
        (Some(_), Some(_)) => return Err(invalid(BOTH)),
        (None, None) => return Err(invalid("path was not specified, and no sock specified")),
        (None, Some(given)) => {
            let sock = given.take()?;
            expect_unix_stream(&sock)?;
            sock
        }
        (Some(path), None) => bind_path(path)?,
    };
    let file = if cleanup_socket {
        UnixSocketFile::of(&sock)?
    } else {
        None
    };
    if let Err(err) = sock.set_nonblocking(true) {
        if let (Some(file), Some(_)) = (file, path) {
            // We created the file a moment ago; it is ours to take back.
            let _ = file.remove();
        }
        return Err(err);
    }
    Ok(UnixListener {
        sock,
        file,
        backlog,
        start_serving,
    })
}

/// The socket of `create_unix_connection`: connected to `path` without blocking the loop, or
/// the given `sock`, checked and set non-blocking.
///
/// # Errors
///
/// - the loop's closed error (as an `io::Error`) on a closed loop;
/// - `InvalidInput` for both `path` and `sock`, for neither, and for a `sock` that is not an
///   `AF_UNIX` stream socket;
/// - `NotFound` if nothing is at `path`, `ConnectionRefused` if no one listens there, or
///   another error of `socket` or `connect`.
pub(crate) fn open_unix_connection(
    lp: &EventLoop,
    path: Option<PathBuf>,
    sock: Option<Socket>,
) -> impl Future<Output = io::Result<Socket>> + 'static {
    let lp = lp.clone();
    async move {
        match (path, sock) {
            (Some(_), Some(_)) => Err(invalid(BOTH)),
            (None, None) => Err(invalid("no path and sock were specified")),
            (None, Some(sock)) => {
                expect_unix_stream(&sock)?;
                sock.set_nonblocking(true)?;
                Ok(sock)
            }
            (Some(path), None) => {
                if lp.is_closed() {
                    return Err(evloop_sched::Error::closed().into());
                }
                let addr = SockAddr::unix(&path)?;
                let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                sock.set_nonblocking(true)?;
                connect_unix(&sock, &addr).await?;
                Ok(sock)
            }
        }
    }
}

/// Connects a non-blocking `AF_UNIX` stream socket without blocking the loop.
///
/// A Unix connect either completes at once or fails with `EAGAIN` when the listener's queue is
/// full; it never goes "in progress", and the socket never becomes writable for it, so waiting
/// for writability (as `sock_connect` does) would wait forever. A blocking `connect(2)` sleeps
/// until the queue has room; this retries with growing pauses instead, until the connection is
/// queued, fails otherwise, or the future is dropped.
async fn connect_unix(sock: &Socket, addr: &SockAddr) -> io::Result<()> {
    let mut pause = FULL_QUEUE_FIRST_PAUSE;
    loop {
        match sock.connect(addr) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                sleep(pause).await.map_err(io::Error::from)?;
                pause = (pause * 2).min(FULL_QUEUE_MAX_PAUSE);
            }
            Err(err) => return Err(err),
        }
    }
}
