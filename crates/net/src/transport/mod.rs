//! [`Transport`]: asyncio's stream transport, for TCP and Unix sockets and pipes.

mod deliver;
pub(crate) mod inner;
pub(crate) mod sendfile;
pub(crate) mod sys;
mod wbuf;

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;

use evloop_sched::EventLoop;
use socket2::SockRef;

use crate::address::Address;
use crate::protocol::Protocol;
use crate::tls::layer::TlsInner;
use crate::tls::{TlsConfig, TlsSession};
pub use inner::TransportInfo;
use inner::{Inner, Role, flag};

/// A stream transport: one connection's socket (or pipe), its write buffer and its protocol.
///
/// A cheap handle (`Clone` shares it), `!Send` like the loop. The loop drives it: when the fd
/// is readable it reads once into the loop's shared read buffer and calls
/// [`Protocol::data_received`]; [`write`](Transport::write) sends at once when nothing is
/// buffered, and buffers the rest, sending it when the fd is writable.
///
/// # Flow control
///
/// The write buffer has a high-water mark (64 KiB by default) and a low one (high / 4). The
/// protocol's `pause_writing` is called once when the buffer grows strictly above high, and
/// `resume_writing` once when it drains to low or below. Writing more while paused is allowed:
/// nothing is dropped, the buffer just grows.
///
/// A protocol method is never called while another one runs (the protocol is borrowed), so a
/// protocol that writes in a loop inside `connection_made` or `resume_writing` does not get
/// `pause_writing` until that method returns: asyncio's idiom "write while my `paused` flag is
/// false" would never stop. Ask the transport instead: [`is_writing_paused`] turns true
/// the moment a write takes the buffer above the high-water mark. The idiom, which keeps at
/// most the high-water mark plus one chunk buffered (the `is_closing` test ends the loop if
/// the connection fails meanwhile: writes are dropped then, so the buffer would never fill):
///
/// ```
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
/// use evloop::{LoopStreamExt, Protocol, Transport};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// /// Streams `left` bytes without ever burying the transport.
/// struct Producer { transport: Option<Transport>, left: usize }
///
/// impl Producer {
///     fn fill(&mut self) {
///         let Some(t) = &self.transport else { return };
///         while self.left > 0 && !t.is_writing_paused() && !t.is_closing() {
///             let n = self.left.min(16 * 1024);
///             t.write(&vec![b'x'; n]);
///             self.left -= n;
///         }
///     }
/// }
///
/// impl Protocol for Producer {
///     fn connection_made(&mut self, t: &Transport) {
///         self.transport = Some(t.clone());
///         self.fill();
///     }
///     fn resume_writing(&mut self) {
///         self.fill();
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let (ours, _peer) = UnixStream::pair()?; // a peer that never reads
/// let (t, _p) = lp.run_until_complete(lp.connect_accepted_socket(
///     || Producer { transport: None, left: 1 << 30 },
///     OwnedFd::from(ours).into(),
/// ))??;
/// assert!(t.is_writing_paused());
/// assert!(t.get_write_buffer_size() <= 64 * 1024 + 16 * 1024);
/// t.abort();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A writer that heeds neither `pause_writing` nor [`is_writing_paused`] is not cut off
/// (nothing is dropped, as in asyncio), but it is reported: a write made while paused that
/// leaves more than 16 × the high-water mark (and at least 1 MiB) buffered calls the loop's
/// exception handler, once per pause, with the keys `message`, `transport` and `protocol`.
///
/// [`is_writing_paused`]: Transport::is_writing_paused
///
/// # Errors
///
/// Methods do not return errors: an OS error on the connection (reset, broken pipe) closes the
/// transport, and the protocol learns it from `connection_lost(Some(err))`, exactly once.
///
/// On a socket, a write after `close()` is still accepted while `close()` flushes the buffer
/// (a `resume_writing` that writes more gets it sent before `connection_lost(None)`); once
/// `connection_lost` is scheduled (the buffer drained, `abort()`, a fatal error), writes are
/// dropped. That is asyncio's rule (`_SelectorSocketTransport.write`, gh-115514). A write pipe,
/// as asyncio's, drops writes from `close()` on. Dropped writes are counted, with a warning in
/// the log from the fifth on. A write after [`write_eof`](Transport::write_eof), or on a read
/// pipe, is dropped and reported to the exception handler.
///
/// # Closing the loop
///
/// `EventLoop::close` closes every transport still open, held or not: its fd is closed (the
/// peer sees end of file), its buffer and protocol are dropped, and `connection_lost` is not
/// called (a closed loop runs no callbacks). A handle kept past that reads as closed
/// (`is_closing()`, `fileno()` is `None`) and its methods do nothing. asyncio's `loop.close()`
/// leaves such a transport's socket open until the transport is collected; evloop closes it
/// at once, so an `Rc` cycle between a protocol and its transport cannot keep an fd open.
/// A transport nobody holds closes its fd when it is dropped, as asyncio's `__del__` does.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::{ConnectOptions, LoopStreamExt, Protocol, ServerOptions, Transport};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
///     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(data); }
/// }
///
/// #[derive(Default)]
/// struct Client { got: Vec<u8>, done: Option<EventLoop> }
/// impl Protocol for Client {
///     fn data_received(&mut self, data: &[u8]) {
///         self.got.extend_from_slice(data);
///         if self.got.len() == 5 { self.done.take().unwrap().stop(); }
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let server = lp.run_until_complete(
///     lp.create_server(Echo::default, ServerOptions::new().host("127.0.0.1").port(0)),
/// )??;
/// let addr = server.sockets()[0].local_addr()?.as_socket().unwrap();
/// let l2 = lp.clone();
/// let (transport, client) = lp.run_until_complete(lp.create_connection(
///     move || Client { got: Vec::new(), done: Some(l2) },
///     ConnectOptions::new().host("127.0.0.1").port(addr.port()),
/// ))??;
/// transport.write(b"hello");
/// lp.run_forever()?;
/// assert_eq!(client.borrow().got, b"hello");
/// transport.close();
/// server.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # TLS
///
/// A connection opened with `ssl` (or upgraded by `start_tls`) hands its protocol a
/// `Transport` too, whose methods act on the TLS layer: `write` encrypts, `close` sends
/// `close_notify` before closing the socket, `abort` does not. Its write buffer, water marks
/// and pause state are the socket's (plaintext is encrypted as it is written, so nothing
/// waits in front of the socket's buffer); `pause_reading` stops reading the socket. It has
/// no half-close: [`can_write_eof`](Transport::can_write_eof) is false, and an
/// `eof_received` answer of true has no effect, as in asyncio. `peername`, `sockname`,
/// [`fileno`](Transport::fileno) and [`with_socket`](Transport::with_socket) are the
/// socket's; [`get_extra_info`](Transport::get_extra_info) adds the TLS keys.
#[derive(Clone)]
pub struct Transport {
    /// The socket (or pipe) transport; under TLS, the socket the layer speaks through.
    pub(crate) inner: Rc<Inner>,
    /// The TLS layer, for a TLS connection's user-facing handle.
    pub(crate) tls: Option<Rc<TlsInner>>,
}

impl Transport {
    /// Wraps `fd` (owned from now on, non-blocking) with `protocol`; nothing happens until
    /// [`Inner::start`].
    pub(crate) fn new<P: Protocol>(
        lp: &EventLoop,
        fd: std::os::fd::OwnedFd,
        role: Role,
        protocol: Rc<RefCell<P>>,
    ) -> std::io::Result<Transport> {
        let protocol: Rc<RefCell<dyn Protocol>> = protocol;
        let inner = Inner::new(lp, fd, role, protocol, std::any::type_name::<P>())?;
        Ok(Transport { inner, tls: None })
    }

    /// The plain handle on the socket transport `inner`.
    pub(crate) fn plain(inner: Rc<Inner>) -> Transport {
        Transport { inner, tls: None }
    }

    /// Writes `data`: sent at once if nothing is buffered (what the kernel does not take is
    /// buffered), else appended to the buffer. `write(b"")` does nothing.
    pub fn write(&self, data: &[u8]) {
        match &self.tls {
            Some(tls) => tls.write(data),
            None if self.inner.has(flag::WRAPPED) => self.inner.refuse_wrapped(),
            None => self.inner.write(data),
        }
    }

    /// Writes several buffers in order; with an empty write buffer, in one vectored syscall
    /// (under TLS, encrypted together and sent in one write).
    pub fn writelines(&self, bufs: &[&[u8]]) {
        match &self.tls {
            Some(tls) => tls.writelines(bufs),
            None if self.inner.has(flag::WRAPPED) => self.inner.refuse_wrapped(),
            None => self.inner.writelines(bufs),
        }
    }

    /// Closes the writing side once the buffer is flushed (`shutdown(SHUT_WR)`, once even if
    /// called twice), keeping the reading side open. After it, writes are refused. On a write
    /// pipe it is the same as [`close`](Transport::close); on a closed transport it does nothing.
    pub fn write_eof(&self) {
        match &self.tls {
            Some(_) => self.inner.lp.call_exception_handler(
                evloop_sched::Context::new(
                    "write_eof() is not supported on a TLS transport (can_write_eof() is false)",
                )
                .with("transport", self.inner.describe()),
            ),
            None if self.inner.has(flag::WRAPPED) => self.inner.refuse_wrapped(),
            None => self.inner.write_eof(),
        }
    }

    /// Whether [`write_eof`](Transport::write_eof) is supported: true for sockets and write
    /// pipes, false for read pipes and TLS connections (as asyncio's SSL transport; their
    /// `write_eof` is reported to the exception handler and does nothing).
    pub fn can_write_eof(&self) -> bool {
        self.tls.is_none() && self.inner.role != Role::ReadPipe
    }

    /// Closes the transport: reading stops now; the buffered bytes are still sent (and, on a
    /// socket, what is written before they drain), then `connection_lost(None)` is called (on
    /// a later iteration, never inside this call).
    pub fn close(&self) {
        match &self.tls {
            Some(tls) => tls.close(),
            None => self.inner.close(),
        }
    }

    /// Closes the transport at once: the write buffer is dropped, and `connection_lost(None)`
    /// comes on the next iteration. A second call does nothing.
    pub fn abort(&self) {
        match &self.tls {
            Some(tls) => tls.abort(),
            None => self.inner.force_close(None),
        }
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.is_closing(),
            None => self.inner.is_closing(),
        }
    }

    /// Stops reading until [`resume_reading`](Transport::resume_reading); no
    /// `data_received` meanwhile. Does nothing if already paused, closing, or a write pipe.
    pub fn pause_reading(&self) {
        match &self.tls {
            Some(tls) => tls.pause_reading(),
            None => self.inner.pause_reading(),
        }
    }

    /// Resumes reading after [`pause_reading`](Transport::pause_reading); does nothing unless
    /// paused, or once closing.
    pub fn resume_reading(&self) {
        match &self.tls {
            Some(tls) => tls.resume_reading(),
            None => self.inner.resume_reading(),
        }
    }

    /// Whether the transport reads: false when paused, closing, or a write pipe. (As asyncio,
    /// still true after `eof_received` kept a connection half-open, though nothing more comes.)
    pub fn is_reading(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.is_reading(),
            None => self.inner.is_reading(),
        }
    }

    /// Sets the write buffer's high- and low-water marks. `high` defaults to 64 KiB (or
    /// 4 × `low` when only `low` is given), `low` to `high / 4`. Lowering `high` below what is
    /// buffered pauses the protocol at once.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `low > high`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> std::io::Result<()> {
        self.inner.set_limits(high, low)
    }

    /// The write buffer's `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.limits()
    }

    /// Whether writing is paused: true from the moment a write takes the buffer strictly above
    /// the high-water mark until it drains to the low one. It turns true inside the `write`
    /// call that crosses the mark, even while the protocol is busy and its `pause_writing`
    /// must wait, so a protocol can stop a write loop in any method (see the flow-control
    /// idiom above).
    pub fn is_writing_paused(&self) -> bool {
        self.inner.is_writing_paused()
    }

    /// Bytes buffered, not yet taken by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.buffer_size()
    }

    /// The remote address (asyncio's `get_extra_info('peername')`); `None` for pipes and
    /// once the transport is closed.
    pub fn peername(&self) -> Option<Address> {
        self.with_socket(|s| s.peer_addr().ok())
            .flatten()
            .map(Address::from)
    }

    /// The local address (`get_extra_info('sockname')`); `None` for pipes and once closed.
    pub fn sockname(&self) -> Option<Address> {
        self.with_socket(|s| s.local_addr().ok())
            .flatten()
            .map(Address::from)
    }

    /// Runs `f` with the transport's socket, borrowed (`get_extra_info('socket')`): read its
    /// options, set `TCP_NODELAY`... `None` for pipes and once the transport is closed. Do not
    /// make the socket blocking or close it: the transport owns it.
    pub fn with_socket<R>(&self, f: impl FnOnce(SockRef<'_>) -> R) -> Option<R> {
        if self.inner.role != Role::Socket {
            return None;
        }
        let fd = self.inner.fd()?;
        // SAFETY: `fd` is open: the transport closes it only in `release`, which cannot run
        // during this call (it runs from loop callbacks or `Drop`, and we hold a handle).
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        Some(f(SockRef::from(&borrowed)))
    }

    /// The transport's fd (`get_extra_info('socket')`'s or `'pipe'`'s number), `None` once
    /// closed. Valid until `connection_lost`; the transport owns it.
    pub fn fileno(&self) -> Option<RawFd> {
        self.inner.fd()
    }

    /// asyncio's `get_extra_info(name)`: `"peername"`, `"sockname"`, `"socket"` (for sockets)
    /// and `"pipe"` (for pipes); `None` for any other name or when the value is unknown.
    ///
    /// A TLS connection adds `"peercert"` (the DER of the peer's certificate, if it sent one),
    /// `"cipher"` (asyncio's tuple: suite, protocol version, secret bits), `"compression"`
    /// (always `None`: TLS compression is not done), `"sslcontext"` (the [`TlsConfig`]),
    /// `"ssl_object"` (a [`TlsSession`] snapshot) and `"alpn_protocol"` (the protocol ALPN
    /// agreed on; asyncio users ask the `ssl_object` for it).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        if let Some(tls) = &self.tls {
            if let Some(info) = tls.extra_info(name) {
                return Some(info);
            }
        }
        match name {
            "peername" => self.peername().map(ExtraInfo::Addr),
            "sockname" => self.sockname().map(ExtraInfo::Addr),
            "socket" if self.inner.role == Role::Socket => self.fileno().map(ExtraInfo::Fd),
            "pipe" if self.inner.role != Role::Socket => self.fileno().map(ExtraInfo::Fd),
            _ => None,
        }
    }

    /// The loop the transport runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.lp.clone()
    }

    /// Whether `self` and `other` are the same transport.
    pub fn ptr_eq(&self, other: &Transport) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
            && match (&self.tls, &other.tls) {
                (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// A value of [`Transport::get_extra_info`].
#[derive(Clone, Debug)]
pub enum ExtraInfo {
    /// An address: `peername`, `sockname`.
    Addr(Address),
    /// A file descriptor, owned by the transport: `socket`, `pipe`.
    Fd(RawFd),
    /// `peercert`: the peer's end-entity certificate, DER-encoded.
    PeerCert(Vec<u8>),
    /// `cipher`: the suite's name, the protocol version (`"TLSv1.3"`) and the secret bits,
    /// as asyncio's tuple.
    Cipher(String, String, u32),
    /// `sslcontext`: the configuration the connection was made with.
    TlsConfig(TlsConfig),
    /// `ssl_object`: what the session negotiated.
    TlsSession(TlsSession),
    /// `alpn_protocol`: the application protocol ALPN agreed on.
    Alpn(Vec<u8>),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            Some(_) => f
                .debug_tuple("TlsTransport")
                .field(&self.inner.describe())
                .finish(),
            None => self.inner.describe().fmt(f),
        }
    }
}
