//! [`Server`]: listening sockets, their accept loop, and the connections they made.
//!
//! # Ground rules
//!
//! - One readiness event on a listener accepts up to `backlog` connections; `WouldBlock` ends
//!   the round quietly.
//! - Out of fds or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the handler hears of it,
//!   the listeners stop being watched for one second, then serving resumes. The listeners stay
//!   open and the loop never spins.
//! - A connection whose protocol factory panics is closed at once (the client sees EOF); the
//!   handler hears of it only in debug mode, as asyncio.
//! - The server keeps its connections (to close or abort them) until each one's
//!   `connection_lost`; `wait_closed` completes once the server is closed and none is left.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use evloop_sched::{Context, EventLoop, Exception, TimerHandle};
use socket2::{SockAddr, Socket};

use crate::open::{UnixSocketFile, listen_backlog};
use crate::protocol::Protocol;
use crate::registry::{NO_SLOT, Registry, Release};
use crate::tls::{self, TlsSetup};
use crate::transport::Transport;
use crate::transport::inner::{Inner, Role};
use evloop_sched::log_report;
use log::Level;

/// How long accepting pauses after running out of fds or memory (asyncio's `ACCEPT_RETRY_DELAY`).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Makes a protocol for each accepted connection; the second value is the protocol's type name.
type Factory = Box<dyn FnMut() -> Rc<RefCell<dyn Protocol>>>;

/// A listening server: asyncio's `Server`, made by `create_server` or `create_unix_server`.
///
/// A cheap handle (`Clone` shares it). Closing it stops listening; the connections it accepted
/// carry on until they close (or [`close_clients`](Server::close_clients) /
/// [`abort_clients`](Server::abort_clients)).
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

struct ServerInner {
    lp: EventLoop,
    listeners: RefCell<Vec<Socket>>,
    factory: RefCell<Factory>,
    protocol_name: &'static str,
    /// TCP listeners (not Unix): accepted sockets get `TCP_NODELAY`.
    tcp: bool,
    /// How many connections one readiness event may accept (at least 1).
    backlog: u32,
    /// The `listen(2)` backlog, given when serving starts.
    listen_backlog: i32,
    serving: Cell<bool>,
    closed: Cell<bool>,
    /// Accepting is paused after EMFILE and friends; the timer resumes it.
    retry: RefCell<Option<TimerHandle>>,
    clients: RefCell<Vec<Option<Transport>>>,
    free: RefCell<Vec<usize>>,
    active: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
    /// The task awaiting `serve_forever`, if any.
    forever: RefCell<Option<Waker>>,
    forever_active: Cell<bool>,
    unix_file: RefCell<Option<UnixSocketFile>>,
    /// The server's slot in the loop's [`Registry`] until it closes (closing the loop does).
    slot: Cell<u32>,
    /// TLS on every accepted connection, when `ssl` was given.
    tls: Option<TlsSetup>,
}

/// One listening socket of a [`Server`], as [`Server::sockets`] lists it.
#[derive(Clone, Debug)]
pub struct ServerSocket {
    fd: RawFd,
    addr: Option<SockAddr>,
}

impl ServerSocket {
    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the address could not be read when the socket was listed.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        self.addr
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no local address"))
    }

    /// Its fd; owned by the server, valid until the server is closed.
    pub fn fileno(&self) -> RawFd {
        self.fd
    }
}

impl Server {
    /// A server over `listeners` (bound, non-blocking, not listening yet), not serving yet.
    pub(crate) fn new<P, F>(
        lp: &EventLoop,
        listeners: Vec<Socket>,
        mut factory: F,
        backlog: u32,
        unix_file: Option<UnixSocketFile>,
        tls: Option<TlsSetup>,
    ) -> Server
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        let factory: Factory = Box::new(move || {
            let protocol: Rc<RefCell<dyn Protocol>> = Rc::new(RefCell::new(factory()));
            protocol
        });
        let tcp = listeners
            .first()
            .and_then(|s| s.domain().ok())
            .is_some_and(|d| d == socket2::Domain::IPV4 || d == socket2::Domain::IPV6);
        let server = Server {
            inner: Rc::new(ServerInner {
                lp: lp.clone(),
                tcp,
                listeners: RefCell::new(listeners),
                factory: RefCell::new(factory),
                protocol_name: std::any::type_name::<P>(),
                backlog: backlog.max(1),
                listen_backlog: listen_backlog(backlog),
                serving: Cell::new(false),
                closed: Cell::new(false),
                retry: RefCell::new(None),
                clients: RefCell::new(Vec::new()),
                free: RefCell::new(Vec::new()),
                active: Cell::new(0),
                waiters: RefCell::new(Vec::new()),
                forever: RefCell::new(None),
                forever_active: Cell::new(false),
                unix_file: RefCell::new(unix_file),
                slot: Cell::new(NO_SLOT),
                tls,
            }),
        };
        let slot = Registry::insert(lp, &server.inner);
        server.inner.slot.set(slot);
        server
    }

    /// Starts listening (`listen(2)` with the backlog) and accepting connections; does
    /// nothing if already serving or closed.
    ///
    /// Until then the sockets are bound but do not listen, as in asyncio (whose
    /// `Server._start_serving` calls `listen()`): a client connecting to a server made with
    /// `start_serving(false)` is refused, not queued.
    ///
    /// # Errors
    ///
    /// The error of `listen(2)` (the server is then not serving), or the loop's error if a
    /// listener cannot be watched (the loop is closed).
    pub fn start_serving(&self) -> io::Result<()> {
        let inner = &self.inner;
        if inner.serving.get() || inner.closed.get() {
            return Ok(());
        }
        for sock in inner.listeners.borrow().iter() {
            sock.listen(inner.listen_backlog)?;
        }
        inner.serving.set(true);
        ServerInner::watch(inner)
    }

    /// Whether the server accepts connections.
    pub fn is_serving(&self) -> bool {
        self.inner.serving.get() && !self.inner.closed.get()
    }

    /// Whether [`close`](Server::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// The server's sockets (bound, listening once serving started); empty once closed.
    pub fn sockets(&self) -> Vec<ServerSocket> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .map(|s| ServerSocket {
                fd: s.as_raw_fd(),
                addr: s.local_addr().ok(),
            })
            .collect()
    }

    /// Stops listening: the listeners are closed (a Unix socket file is removed if it is still
    /// ours). The connections already accepted carry on. A second call does nothing.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closed.replace(true) {
            return;
        }
        Registry::<ServerInner>::remove(&inner.lp, inner.slot.replace(NO_SLOT));
        inner.unwatch();
        inner.serving.set(false);
        if let Some(timer) = inner.retry.borrow_mut().take() {
            timer.cancel();
        }
        let listeners = std::mem::take(&mut *inner.listeners.borrow_mut());
        drop(listeners);
        if let Some(file) = inner.unix_file.borrow_mut().take() {
            if let Err(err) = file.remove() {
                log_report(
                    Level::Warn,
                    &format!("could not remove the server's socket file: {err}"),
                );
            }
        }
        // As asyncio's close() forgets `_serving_forever_fut`: serve_forever may be awaited
        // again (and says the server is closed) while the first one waits for the clients.
        inner.forever_active.set(false);
        if let Some(waker) = inner.forever.borrow_mut().take() {
            waker.wake();
        }
        inner.wake_if_done();
    }

    /// Closes every connection the server accepted (each flushes its buffer first).
    pub fn close_clients(&self) {
        for t in self.clients() {
            t.close();
        }
    }

    /// Aborts every connection the server accepted (their buffers are dropped).
    pub fn abort_clients(&self) {
        for t in self.clients() {
            t.abort();
        }
    }

    /// The connections accepted and not yet lost.
    pub fn clients(&self) -> Vec<Transport> {
        self.inner
            .clients
            .borrow()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Completes once the server is closed and every connection it accepted is gone; at once if
    /// that is already so. It stays pending while the server is open, with or without clients.
    pub fn wait_closed(&self) -> WaitClosed {
        WaitClosed {
            server: self.inner.clone(),
        }
    }

    /// Serves until the server is closed: starts serving, then, once [`close`](Server::close)
    /// is called, waits as [`wait_closed`](Server::wait_closed) does and completes with
    /// `Ok(())` when the last connection the server accepted is gone. The server stops
    /// accepting at `close()` itself. This is asyncio's timing: its `serve_forever` awaits
    /// `wait_closed()` after `close()` (`base_events.Server.serve_forever`).
    ///
    /// Dropping the future (cancelling the task awaiting it) closes the server, as asyncio's
    /// cancellation does.
    ///
    /// Two deliberate differences from asyncio: asyncio raises `CancelledError` from
    /// `serve_forever` when the server is closed, evloop returns `Ok(())`, since closing is the
    /// normal way to end it; and a cancelled `serve_forever` ends at once (a dropped future
    /// cannot wait), where asyncio's waits for the connections too. Await `wait_closed` for
    /// that.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` "server is closed" if the server was closed first;
    /// - `ResourceBusy` "server is already being awaited on serve_forever()" for a second one.
    pub fn serve_forever(&self) -> ServeForever {
        ServeForever {
            server: self.clone(),
            state: ForeverState::New,
        }
    }

    /// The loop the server runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.lp.clone()
    }
}

impl ServerInner {
    fn watch(self: &Rc<Self>) -> io::Result<()> {
        for sock in self.listeners.borrow().iter() {
            let fd = sock.as_raw_fd();
            let me = Rc::downgrade(self);
            self.lp.add_reader(fd, move || {
                if let Some(me) = me.upgrade() {
                    me.accept_ready(fd);
                }
            })?;
        }
        Ok(())
    }

    fn unwatch(&self) {
        for sock in self.listeners.borrow().iter() {
            self.lp.remove_reader(sock.as_raw_fd());
        }
    }

    /// A listener is readable: accept up to `backlog` connections.
    fn accept_ready(self: &Rc<Self>, fd: RawFd) {
        for _ in 0..self.backlog {
            if self.closed.get() || !self.serving.get() {
                return;
            }
            // SAFETY: a null address and length pointer are allowed ("don't report the peer");
            // accept4 takes no other pointers.
            let conn = unsafe {
                libc::accept4(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if conn < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.out_of_resources(err, fd);
                        return;
                    }
                    _ => {
                        self.lp.call_exception_handler(
                            Context::new("socket.accept() failed")
                                .with_exception(Exception::from_error(err))
                                .with("socket", fd),
                        );
                        return;
                    }
                }
            }
            // SAFETY: accept4 returned a new fd that nothing else owns.
            let conn = unsafe { OwnedFd::from_raw_fd(conn) };
            self.accepted(conn);
        }
    }

    fn out_of_resources(self: &Rc<Self>, err: io::Error, fd: RawFd) {
        self.lp.call_exception_handler(
            Context::new("socket.accept() out of system resource")
                .with_exception(Exception::from_error(err))
                .with("socket", fd),
        );
        self.unwatch();
        let me = Rc::downgrade(self);
        let timer = self.lp.call_later(ACCEPT_RETRY_DELAY, move || {
            if let Some(me) = me.upgrade() {
                me.retry.borrow_mut().take();
                if me.serving.get() && !me.closed.get() {
                    let _ = me.watch();
                }
            }
        });
        if let Ok(timer) = timer {
            *self.retry.borrow_mut() = Some(timer);
        }
    }

    fn accepted(self: &Rc<Self>, conn: OwnedFd) {
        let sock = Socket::from(conn);
        if self.tcp {
            // Best effort, as asyncio: a failure here is no reason to drop the connection.
            let _ = sock.set_tcp_nodelay(true);
        }
        let made = catch_unwind(AssertUnwindSafe(|| (self.factory.borrow_mut())()));
        let protocol = match made {
            Ok(protocol) => protocol,
            Err(payload) => {
                // The socket is closed here (the client sees EOF); only debug mode reports it.
                drop(sock);
                if self.lp.get_debug() {
                    self.lp.call_exception_handler(
                        Context::new("Error on transport creation for incoming connection")
                            .with_exception(Exception::from_panic(payload)),
                    );
                }
                return;
            }
        };
        let inner = match Inner::new(
            &self.lp,
            OwnedFd::from(sock),
            Role::Socket,
            protocol.clone(),
            self.protocol_name,
        ) {
            Ok(inner) => inner,
            // Only a closed loop refuses; the socket was closed with the error.
            Err(_) => return,
        };
        let layer = match &self.tls {
            None => None,
            Some(setup) => match tls::wrap(&inner, setup, protocol, self.protocol_name, None) {
                Ok(layer) => Some(layer),
                Err(err) => {
                    inner.release();
                    self.lp.call_exception_handler(
                        Context::new("Error on transport creation for incoming connection")
                            .with_exception(Exception::from_error(err)),
                    );
                    return;
                }
            },
        };
        let transport = Transport { inner, tls: layer };
        let slot = {
            let mut clients = self.clients.borrow_mut();
            match self.free.borrow_mut().pop() {
                Some(slot) => {
                    clients[slot] = Some(transport.clone());
                    slot
                }
                None => {
                    clients.push(Some(transport.clone()));
                    clients.len() - 1
                }
            }
        };
        self.active.set(self.active.get() + 1);
        let me = Rc::downgrade(self);
        transport
            .inner
            .set_on_lost(Box::new(move || detach(&me, slot)));
        if transport.inner.start(|| {}).is_err() {
            transport.inner.release();
            detach(&Rc::downgrade(self), slot);
        }
    }

    fn wake_if_done(&self) {
        if self.closed.get() && self.active.get() == 0 {
            let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
            for waker in waiters {
                waker.wake();
            }
        }
    }
}

impl Drop for ServerInner {
    fn drop(&mut self) {
        // Every handle is gone without `close()`: stop watching the listeners before they close.
        self.unwatch();
    }
}

impl Release for ServerInner {
    /// The loop is closing: the server stops listening, even if the program still holds it.
    fn release(self: &Rc<Self>) {
        Server {
            inner: self.clone(),
        }
        .close();
    }
}

/// A connection of the server was lost: forget it.
fn detach(server: &Weak<ServerInner>, slot: usize) {
    let Some(server) = server.upgrade() else {
        return;
    };
    let gone = server
        .clients
        .borrow_mut()
        .get_mut(slot)
        .and_then(Option::take);
    if gone.is_some() {
        server.free.borrow_mut().push(slot);
        server.active.set(server.active.get().saturating_sub(1));
    }
    drop(gone);
    server.wake_if_done();
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.sockets())
            .field("serving", &self.is_serving())
            .field("clients", &self.inner.active.get())
            .finish()
    }
}

/// The future of [`Server::wait_closed`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct WaitClosed {
    server: Rc<ServerInner>,
}

impl Future for WaitClosed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let s = &self.server;
        if s.closed.get() && s.active.get() == 0 {
            return Poll::Ready(());
        }
        let mut waiters = s.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl fmt::Debug for WaitClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitClosed").finish_non_exhaustive()
    }
}

enum ForeverState {
    New,
    Serving,
    /// Closed; waiting for the server's connections to be gone.
    Draining,
    Done,
}

/// The future of [`Server::serve_forever`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct ServeForever {
    server: Server,
    state: ForeverState,
}

impl Future for ServeForever {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = this.server.inner.clone();
        if let ForeverState::New = this.state {
            if inner.forever_active.get() {
                this.state = ForeverState::Done;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "server is already being awaited on serve_forever()",
                )));
            }
            if inner.closed.get() {
                this.state = ForeverState::Done;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "server is closed",
                )));
            }
            inner.forever_active.set(true);
            this.state = ForeverState::Serving;
            if let Err(err) = this.server.start_serving() {
                this.finish();
                return Poll::Ready(Err(err));
            }
        }
        if let ForeverState::Serving = this.state {
            if !inner.closed.get() {
                *inner.forever.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            this.finish();
            this.state = ForeverState::Draining;
        }
        match this.state {
            ForeverState::Draining => {
                let wait = Pin::new(&mut WaitClosed { server: inner }).poll(cx);
                if wait.is_ready() {
                    this.state = ForeverState::Done;
                }
                wait.map(Ok)
            }
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl ServeForever {
    fn finish(&mut self) {
        self.state = ForeverState::Done;
        self.server.inner.forever_active.set(false);
        self.server.inner.forever.borrow_mut().take();
    }
}

impl Drop for ServeForever {
    fn drop(&mut self) {
        if let ForeverState::Serving = self.state {
            // Cancelled while serving: asyncio closes the server.
            self.finish();
            self.server.close();
        }
    }
}

impl fmt::Debug for ServeForever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeForever").finish_non_exhaustive()
    }
}
