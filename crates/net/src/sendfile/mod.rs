//! [`LoopSendfileExt`]: asyncio's `sock_sendfile` and `sendfile`, a file sent to a stream
//! socket or a transport by `sendfile(2)` (the kernel copies from the page cache; no byte
//! crosses into user space), falling back to reads and writes where that does not apply.
//!
//! # Ground rules
//!
//! - The native path ([`native`]) applies to a regular file (or a block device) and a plain
//!   stream socket. A pipe, a socket or a terminal as the source, a TLS transport, or a kernel
//!   that refuses the pair at the first call, make it "not available"
//!   ([`SendfileNotAvailableError`]); then the fallback ([`fallback`]) runs, or, with
//!   `fallback` false, that error is the result.
//! - Both paths send from `offset` (the file's position is not used) and leave the file's
//!   position just past the last byte sent, if any was (asyncio moves it the same way).
//! - On a transport, what is already buffered goes first; during a native send the socket is
//!   the sendfile's (writes are refused and reported), and reading is paused during either
//!   path, then resumed.

mod fallback;
mod native;

use std::error::Error;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Seek, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_sched::EventLoop;
use socket2::{Socket, Type};

use crate::transport::Transport;
use crate::transport::inner::{Role, flag};

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// asyncio's `SendfileNotAvailableError`: `sendfile(2)` does not apply to this file and socket
/// (the file is not a regular file, the transport is a TLS one, the kernel refused the pair),
/// and the caller asked for no fallback.
///
/// It reaches the caller inside an `io::Error` of kind `Unsupported`; look at it with
/// `get_ref` and `downcast_ref`. Nothing was sent, and the file's position is unchanged.
///
/// # Examples
///
/// ```
/// use std::io;
/// use evloop::SendfileNotAvailableError;
///
/// fn not_available(err: &io::Error) -> bool {
///     err.get_ref().is_some_and(|e| e.is::<SendfileNotAvailableError>())
/// }
/// assert!(!not_available(&io::Error::from(io::ErrorKind::BrokenPipe)));
/// ```
#[derive(Debug)]
pub struct SendfileNotAvailableError {
    message: String,
}

impl SendfileNotAvailableError {
    /// Why `sendfile(2)` does not apply.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SendfileNotAvailableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for SendfileNotAvailableError {}

impl From<SendfileNotAvailableError> for io::Error {
    fn from(err: SendfileNotAvailableError) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, err)
    }
}

/// The "not available" error, as an `io::Error`.
fn not_available(message: &str) -> io::Error {
    SendfileNotAvailableError {
        message: message.to_owned(),
    }
    .into()
}

/// Whether `err` is [`SendfileNotAvailableError`].
fn is_not_available(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<SendfileNotAvailableError>())
}

/// Leaves the file's position just past the bytes sent, if any were, when dropped (however
/// the operation ends: done, failed or cancelled), as asyncio's `_sock_sendfile_update_filepos`
/// and its fallbacks' `finally` do.
struct Position<'a> {
    file: &'a File,
    offset: u64,
    sent: u64,
}

impl<'a> Position<'a> {
    fn new(file: &'a File, offset: u64) -> Position<'a> {
        Position {
            file,
            offset,
            sent: 0,
        }
    }
}

impl Drop for Position<'_> {
    fn drop(&mut self) {
        if self.sent > 0 {
            let mut file = self.file;
            // A file without a position (a pipe) has nothing to update: ESPIPE is ignored.
            let _ = file.seek(SeekFrom::Start(self.offset.saturating_add(self.sent)));
        }
    }
}

/// The checks of asyncio's `_check_sendfile_params` that Rust's types leave: `count` is
/// `None` or positive; `offset` fits the kernel's `off_t`. (A file is bytes, so there is no
/// "binary mode" to check, and an unsigned offset cannot be negative.)
fn check_params(offset: u64, count: Option<u64>) -> io::Result<()> {
    if count == Some(0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "count must be a positive integer (got 0)",
        ));
    }
    if i64::try_from(offset).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("offset must be at most i64::MAX (got {offset})"),
        ));
    }
    Ok(())
}

/// `sock_sendfile`'s socket checks: a non-blocking `SOCK_STREAM` socket.
fn check_socket(sock: &Socket) -> io::Result<()> {
    if sock.r#type()? != Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "only SOCK_STREAM type sockets are supported",
        ));
    }
    if !sock.nonblocking()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket must be non-blocking",
        ));
    }
    Ok(())
}

/// asyncio's `loop.sock_sendfile` and `loop.sendfile` on [`EventLoop`]: a file sent by
/// `sendfile(2)`, or by reads and writes where that does not apply. In scope through
/// `use evloop::prelude::*`.
///
/// Both send `count` bytes of `file` (`None`: up to its end) starting at `offset`, whatever
/// the file's position, and return how many were sent, fewer than `count` if the file ended
/// first. Afterwards, if any byte was sent, the file's position is `offset` plus that number
/// (also after an error or a cancellation), as in asyncio.
///
/// `sendfile(2)` applies to a regular file (or a block device) and a plain stream socket. The
/// fallback reads the file in chunks of up to 256 KiB on the loop's default executor (a read
/// never blocks the loop) and sends each one before reading the next.
///
/// # Errors
///
/// - `InvalidInput` for `count` `Some(0)` ("count must be a positive integer (got 0)", as
///   asyncio) or an `offset` above `i64::MAX`;
/// - [`SendfileNotAvailableError`] (kind `Unsupported`) when `sendfile(2)` does not apply and
///   `fallback` is false;
/// - the connection's error (`BrokenPipe`, `ConnectionReset`...), after the bytes reported by
///   the file's position went out;
/// - the file's read error, or the executor's (a closed loop, a shut-down executor), on the
///   fallback path.
///
/// A connection error at the very first `sendfile(2)` call is that error: asyncio turns any
/// error at the first call into `SendfileNotAvailableError`, which hides a reset behind "not
/// available" when `fallback` is false. evloop does so only for the errors that mean the kernel
/// cannot send this pair (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`).
///
/// # Signals
///
/// `sendfile(2)` has no `MSG_NOSIGNAL`. So that a closed peer is `BrokenPipe` and never a
/// fatal SIGPIPE, the native path blocks SIGPIPE on the loop's thread around its calls and
/// takes the signal an `EPIPE` left pending. A thread that blocks SIGPIPE itself is left
/// alone.
pub trait LoopSendfileExt: sealed::Sealed {
    /// asyncio's `sock_sendfile(sock, file, offset, count, fallback=...)`: sends the file on a
    /// non-blocking stream socket the caller owns, waiting for writability as often as needed.
    ///
    /// While it runs, it is the socket's pending send, as [`LoopSockExt`]'s sends are: another
    /// send on the same socket is refused with `ResourceBusy`. Dropping the future stops it;
    /// what went out stays sent, and the file's position says how much.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSendfileExt`], and:
    /// - `InvalidInput` "only SOCK_STREAM type sockets are supported" for a datagram socket;
    /// - `InvalidInput` "the socket must be non-blocking" for a blocking one (asyncio checks it
    ///   in debug mode only);
    /// - `ResourceBusy` if another send is pending on the socket.
    ///
    /// [`LoopSockExt`]: crate::LoopSockExt
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Seek, Write};
    /// use evloop::socket2::Socket;
    /// use evloop::{EventLoop, LoopSendfileExt, LoopTaskExt};
    ///
    /// let lp = EventLoop::new()?;
    /// let mut file = tempfile_with(b"hello, sendfile")?;
    /// # fn tempfile_with(data: &[u8]) -> std::io::Result<std::fs::File> {
    /// #     let path = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    /// #     let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    /// #     std::fs::remove_file(&path)?;
    /// #     f.write_all(data)?;
    /// #     Ok(f)
    /// # }
    /// # let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # let (sock, mut peer) = (Socket::from(std::os::fd::OwnedFd::from(a)), b);
    /// sock.set_nonblocking(true)?;
    /// let l2 = lp.clone();
    /// let f2 = file.try_clone()?;
    /// let sent = lp.run_until_complete(async move {
    ///     l2.sock_sendfile(&sock, &f2, 7, Some(5), true).await
    /// })??;
    /// assert_eq!(sent, 5);
    /// let mut got = [0; 5];
    /// peer.read_exact(&mut got)?;
    /// assert_eq!(&got, b"sendf");
    /// assert_eq!(file.stream_position()?, 12, "the position is past what was sent");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sock_sendfile<'a>(
        &self,
        sock: &'a Socket,
        file: &'a File,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> SockSendfile<'a>;

    /// asyncio's `sendfile(transport, file, offset, count, fallback=...)`: sends the file on a
    /// stream transport, after what its buffer holds.
    ///
    /// On a plain socket transport, the buffer drains first; then `sendfile(2)` owns the
    /// socket until the end: a `write` meanwhile is dropped and reported to the exception
    /// handler (asyncio raises "sendfile is in progress" there). A connection error ends the
    /// transport too: the protocol gets `connection_lost(Some(err))` and the future fails with
    /// the error. On a TLS transport (asyncio's SSL transports likewise) the fallback runs:
    /// each chunk is written once writing is not paused, so flow control holds, and a `write`
    /// of the protocol meanwhile goes between two chunks. Either way the transport stops
    /// reading while it runs, and reads again after if it read before. The transport's
    /// protocol sees nothing of the sendfile but its bytes and, on the fallback, the pauses
    /// and resumes of its writes. Dropping the future stops it after the last whole chunk.
    ///
    /// # Errors
    ///
    /// As described on [`LoopSendfileExt`], and:
    /// - `InvalidInput` "transport is closing" (asyncio's `RuntimeError`), before anything is
    ///   sent;
    /// - `InvalidInput` for a pipe transport (asyncio: "sendfile is not supported for
    ///   transport");
    /// - `InvalidInput` for the plain handle of a transport that `start_tls` upgraded (its
    ///   bytes would land in the middle of the TLS stream; asyncio has no such handle);
    /// - `ResourceBusy` if another sendfile runs on the transport;
    /// - `BrokenPipe` "connection closed by peer" if the transport closes (`close()`,
    ///   `abort()`, an error) while the sendfile runs;
    /// - [`SendfileNotAvailableError`] for a TLS transport with `fallback` false (asyncio's
    ///   `RuntimeError` "fallback is disabled and native sendfile is not supported").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::OwnedFd;
    /// use std::os::unix::net::UnixStream;
    /// use evloop::{EventLoop, LoopSendfileExt, LoopStreamExt, LoopTaskExt, Protocol};
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet {}
    ///
    /// let lp = EventLoop::new()?;
    /// # let path = std::env::temp_dir().join(format!("evloop-doc-t-{}", std::process::id()));
    /// # let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    /// # std::fs::remove_file(&path)?;
    /// file.write_all(b"0123456789")?;
    /// let (ours, mut peer) = UnixStream::pair()?;
    /// let (transport, _proto) =
    ///     lp.run_until_complete(lp.connect_accepted_socket(|| Quiet, OwnedFd::from(ours).into()))??;
    /// transport.write(b"head:");
    /// let l2 = lp.clone();
    /// let t2 = transport.clone();
    /// let sent = lp.run_until_complete(async move {
    ///     l2.sendfile(&t2, &file, 0, None, true).await
    /// })??;
    /// assert_eq!(sent, 10);
    /// let mut got = [0; 15];
    /// peer.read_exact(&mut got)?;
    /// assert_eq!(&got, b"head:0123456789");
    /// transport.close();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sendfile<'a>(
        &self,
        transport: &Transport,
        file: &'a File,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> Sendfile<'a>;
}

impl LoopSendfileExt for EventLoop {
    fn sock_sendfile<'a>(
        &self,
        sock: &'a Socket,
        file: &'a File,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> SockSendfile<'a> {
        let lp = self.clone();
        SockSendfile(Box::pin(async move {
            check_socket(sock)?;
            check_params(offset, count)?;
            match sock_native(&lp, sock, file, offset, count).await {
                Err(err) if fallback && is_not_available(&err) => {}
                done => return done,
            }
            fallback::sock(&lp, sock, file, offset, count).await
        }))
    }

    fn sendfile<'a>(
        &self,
        transport: &Transport,
        file: &'a File,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> Sendfile<'a> {
        let lp = self.clone();
        let transport = transport.clone();
        Sendfile(Box::pin(async move {
            if transport.is_closing() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "transport is closing",
                ));
            }
            if transport.inner.role != Role::Socket {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sendfile is not supported for transport {transport:?}"),
                ));
            }
            if transport.tls.is_none() && transport.inner.has(flag::WRAPPED) {
                // Its plaintext would land in the middle of the TLS stream.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "sendfile on a transport that start_tls() replaced (use the transport \
                     start_tls() returned)",
                ));
            }
            check_params(offset, count)?;
            if transport.tls.is_none() {
                match transport_native(&transport, file, offset, count).await {
                    Err(err) if fallback && is_not_available(&err) => {}
                    done => return done,
                }
            } else if !fallback {
                return Err(not_available(&format!(
                    "fallback is disabled and native sendfile is not supported for transport \
                     {transport:?}"
                )));
            }
            fallback::transport(&lp, &transport, file, offset, count).await
        }))
    }
}

/// `sock_sendfile`'s native attempt: an empty file is sent at once (0 bytes).
async fn sock_native(
    lp: &EventLoop,
    sock: &Socket,
    file: &File,
    offset: u64,
    count: Option<u64>,
) -> io::Result<u64> {
    let size = native::source_size(file)?;
    if count.is_none() && size == 0 {
        return Ok(0);
    }
    native::NativeSock::new(lp, sock, file, offset, count).await
}

/// `sendfile`'s native attempt on a plain socket transport.
async fn transport_native(
    transport: &Transport,
    file: &File,
    offset: u64,
    count: Option<u64>,
) -> io::Result<u64> {
    let size = native::source_size(file)?;
    if count.is_none() && size == 0 {
        return Ok(0);
    }
    native::NativeTransport::start(transport.inner.clone(), file, offset, count)?.await
}

/// The future of [`sock_sendfile`](LoopSendfileExt::sock_sendfile): the number of bytes sent.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct SockSendfile<'a>(Pin<Box<dyn Future<Output = io::Result<u64>> + 'a>>);

impl Future for SockSendfile<'_> {
    type Output = io::Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for SockSendfile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockSendfile").finish_non_exhaustive()
    }
}

/// The future of [`sendfile`](LoopSendfileExt::sendfile): the number of bytes sent.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Sendfile<'a>(Pin<Box<dyn Future<Output = io::Result<u64>> + 'a>>);

impl Future for Sendfile<'_> {
    type Output = io::Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for Sendfile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sendfile").finish_non_exhaustive()
    }
}
