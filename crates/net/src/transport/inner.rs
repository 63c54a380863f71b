//! A stream transport's state and its state machine: reading, the write buffer, flow control,
//! closing. [`Transport`](super::Transport) is the public handle on it.
//!
//! # Ground rules
//!
//! - Only the loop's callbacks and the handle's methods touch it, all on the loop's thread.
//! - Calls into the protocol go through [`Inner::deliver`] (or the copy-free data path), which
//!   keeps their order and defers a call the protocol is too busy (already borrowed) to take.
//! - `connection_lost` is always delivered from a callback of its own, never inside a method
//!   the user called; after it the fd is closed and the protocol dropped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;

use evloop_sched::{Context, EventLoop, Exception, FdClaim};

use super::deliver::Event;
use super::sys::{self, FdKind};
use super::wbuf::WriteBuf;
use crate::limits::{DEFAULT_HIGH_WATER, water_marks};
use crate::protocol::Protocol;
use crate::readbuf::ReadBuffer;
use crate::registry::{NO_SLOT, Registry, Release};
use evloop_sched::log_report;
use log::Level;

/// Which stream transport this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A connected stream socket: reads and writes.
    Socket,
    /// The read end of a pipe.
    ReadPipe,
    /// The write end of a pipe.
    WritePipe,
}

impl Role {
    fn reads(self) -> bool {
        self != Role::WritePipe
    }

    fn kind(self) -> FdKind {
        match self {
            Role::Socket => FdKind::Socket,
            Role::ReadPipe | Role::WritePipe => FdKind::Pipe,
        }
    }
}

/// Flag bits of [`Inner::flags`].
pub(crate) mod flag {
    /// `connection_made` was delivered.
    pub(crate) const CONNECTED: u16 = 1;
    /// `close()`, `abort()`, a fatal error or EOF began closing.
    pub(crate) const CLOSING: u16 = 1 << 1;
    /// The user paused reading.
    pub(crate) const PAUSED: u16 = 1 << 2;
    /// A reader is registered with the loop.
    pub(crate) const READER: u16 = 1 << 3;
    /// A writer is registered with the loop.
    pub(crate) const WRITER: u16 = 1 << 4;
    /// `write_eof()` was called.
    pub(crate) const EOF: u16 = 1 << 5;
    /// The protocol was told to pause writing.
    pub(crate) const PROTO_PAUSED: u16 = 1 << 6;
    /// `connection_lost` is scheduled or done.
    pub(crate) const LOST: u16 = 1 << 7;
    /// A protocol method is running.
    pub(crate) const IN_CALL: u16 = 1 << 8;
    /// A drain of deferred events is scheduled.
    pub(crate) const DRAIN: u16 = 1 << 9;
    /// The fd was closed.
    pub(crate) const RELEASED: u16 = 1 << 10;
    /// A write overran the buffer while paused, and it was reported (until the next resume).
    pub(crate) const OVERRUN: u16 = 1 << 11;
    /// A write pipe whose readability means its reader went away (a socket or FIFO; not a
    /// character device such as a pty, where it means input arrived).
    pub(crate) const HANGUP_WATCH: u16 = 1 << 12;
    /// `start_tls` put a TLS layer on the socket: writes through a plain handle are refused.
    pub(crate) const WRAPPED: u16 = 1 << 13;
    /// A `sendfile` runs on this transport (one at a time).
    pub(crate) const SENDFILE: u16 = 1 << 14;
    /// A native `sendfile` owns the fd's writing side: writes are refused until it ends.
    pub(crate) const SENDFILE_NATIVE: u16 = 1 << 15;
}

/// A write that leaves more than `OVERRUN_FACTOR` × the high-water mark (and at least
/// [`OVERRUN_FLOOR`]) buffered, made while the transport was already paused, is reported: the
/// writer ignores both `pause_writing` and [`Inner::is_writing_paused`].
const OVERRUN_FACTOR: usize = 16;
/// See [`OVERRUN_FACTOR`].
const OVERRUN_FLOOR: usize = 1 << 20;

/// The transport's state.
pub(crate) struct Inner {
    pub(crate) lp: EventLoop,
    fd: RawFd,
    /// The transport's exclusive hold on its fd's watches; released just before the fd closes.
    pub(super) claim: RefCell<Option<FdClaim>>,
    pub(crate) role: Role,
    flags: Cell<u16>,
    /// Dropped after `connection_lost`.
    pub(crate) protocol: RefCell<Option<Rc<RefCell<dyn Protocol>>>>,
    /// For reports: the protocol's type name.
    pub(crate) protocol_name: &'static str,
    readbuf: Rc<ReadBuffer>,
    wbuf: RefCell<WriteBuf>,
    high: Cell<usize>,
    low: Cell<usize>,
    /// Writes dropped because the transport was closing (asyncio's `_conn_lost` count).
    dropped_writes: Cell<u32>,
    /// Protocol calls waiting for the protocol to be free, in order.
    pub(crate) deferred: RefCell<VecDeque<Event>>,
    slot: Cell<u32>,
    /// Run once after `connection_lost` (a server forgets its client).
    on_lost: Cell<Option<Box<dyn FnOnce()>>>,
    /// A `sendfile` waiting for the buffer to drain, writing to resume, the fd to be writable,
    /// or the end (`super::sendfile`); woken by each of those.
    pub(super) waiter: Cell<Option<Waker>>,
}

impl Inner {
    /// A transport on `fd`, which it now owns (and closes after `connection_lost`). The fd must
    /// be non-blocking.
    ///
    /// # Errors
    ///
    /// The loop's error if it is closed (the fd is closed then).
    pub(crate) fn new(
        lp: &EventLoop,
        fd: std::os::fd::OwnedFd,
        role: Role,
        protocol: Rc<RefCell<dyn Protocol>>,
        protocol_name: &'static str,
    ) -> io::Result<Rc<Inner>> {
        let claim = lp.claim_fd(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
        let fd = std::os::fd::IntoRawFd::into_raw_fd(fd);
        let flags = if role == Role::WritePipe && sys::readable_means_hangup(fd) {
            flag::HANGUP_WATCH
        } else {
            0
        };
        let inner = Rc::new(Inner {
            lp: lp.clone(),
            fd,
            claim: RefCell::new(Some(claim)),
            role,
            flags: Cell::new(flags),
            protocol: RefCell::new(Some(protocol)),
            protocol_name,
            readbuf: ReadBuffer::of(lp),
            wbuf: RefCell::new(WriteBuf::default()),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_HIGH_WATER / 4),
            dropped_writes: Cell::new(0),
            deferred: RefCell::new(VecDeque::new()),
            slot: Cell::new(NO_SLOT),
            on_lost: Cell::new(None),
            waiter: Cell::new(None),
        });
        inner.slot.set(Registry::insert(lp, &inner));
        Ok(inner)
    }

    pub(crate) fn has(&self, bits: u16) -> bool {
        self.flags.get() & bits != 0
    }

    pub(crate) fn set(&self, bits: u16) {
        self.flags.set(self.flags.get() | bits);
    }

    pub(crate) fn unset(&self, bits: u16) {
        self.flags.set(self.flags.get() & !bits);
    }

    /// The fd, or `None` once it was closed.
    pub(crate) fn fd(&self) -> Option<RawFd> {
        (!self.has(flag::RELEASED)).then_some(self.fd)
    }

    pub(crate) fn set_on_lost(&self, f: Box<dyn FnOnce()>) {
        self.on_lost.set(Some(f));
    }

    /// Schedules `connection_made`, then reading; `then` runs right after (it completes the
    /// waiter of `create_connection`).
    pub(crate) fn start(self: &Rc<Self>, then: impl FnOnce() + 'static) -> io::Result<()> {
        let me = self.clone();
        self.lp.call_soon(move || {
            me.deliver(Event::Made);
            if me.role.reads() && !me.has(flag::CLOSING | flag::PAUSED) {
                me.add_reader();
            }
            if me.role == Role::WritePipe && me.has(flag::HANGUP_WATCH) && !me.has(flag::CLOSING) {
                // A socket or FIFO write end is readable only when its reader went away: watch
                // for that. A pty is readable when input arrives: not watched, as asyncio.
                me.add_reader();
            }
            then();
        })?;
        Ok(())
    }

    // ----- reading -----

    fn add_reader(self: &Rc<Self>) {
        if self.has(flag::READER | flag::RELEASED) {
            return;
        }
        let me = self.clone();
        let claim = self.claim.borrow();
        let Some(claim) = claim.as_ref() else {
            return;
        };
        let added = match self.role {
            Role::WritePipe => claim.add_reader(move || me.write_pipe_hangup()),
            _ => claim.add_reader(move || me.read_ready()),
        };
        match added {
            Ok(()) => self.set(flag::READER),
            Err(err) => self.fatal_error(err, "Fatal error: cannot watch the transport's fd"),
        }
    }

    fn remove_reader(&self) {
        if self.has(flag::READER) {
            self.unset(flag::READER);
            if let Some(claim) = self.claim.borrow().as_ref() {
                claim.remove_reader();
            }
        }
    }

    pub(crate) fn pause_reading(&self) {
        if !self.role.reads() || self.has(flag::CLOSING | flag::PAUSED) {
            return;
        }
        self.set(flag::PAUSED);
        self.remove_reader();
    }

    pub(crate) fn resume_reading(self: &Rc<Self>) {
        if !self.role.reads() || self.has(flag::CLOSING) || !self.has(flag::PAUSED) {
            return;
        }
        self.unset(flag::PAUSED);
        if self.has(flag::CONNECTED) {
            self.add_reader();
        }
    }

    pub(crate) fn is_reading(&self) -> bool {
        self.role.reads() && !self.has(flag::PAUSED | flag::CLOSING)
    }

    /// The fd is readable: one read into the loop's shared buffer, handed to the protocol.
    fn read_ready(self: &Rc<Self>) {
        if self.has(flag::LOST | flag::RELEASED) {
            return;
        }
        let fd = self.fd;
        self.readbuf.with(|buf| match sys::read(fd, buf) {
            Ok(0) => self.read_eof(),
            Ok(n) => self.deliver_data(&buf[..n]),
            Err(err) if sys::is_transient(&err) => {}
            Err(err) => match self.role {
                Role::ReadPipe => self.fatal_error(err, "Fatal read error on pipe transport"),
                _ => self.fatal_error(err, "Fatal read error on socket transport"),
            },
        });
    }

    fn read_eof(self: &Rc<Self>) {
        self.remove_reader();
        match self.role {
            Role::ReadPipe => {
                // asyncio: eof_received and connection_lost both come from callbacks of their
                // own, and eof_received's answer is ignored.
                self.set(flag::CLOSING);
                let me = self.clone();
                if self
                    .lp
                    .call_soon(move || me.deliver(Event::PipeEof))
                    .is_ok()
                {
                    self.schedule_lost(None);
                }
            }
            _ => self.deliver(Event::Eof),
        }
    }

    /// `eof_received` answered `keep_open`.
    pub(crate) fn after_eof(self: &Rc<Self>, keep_open: bool) {
        if !keep_open {
            self.close();
        }
    }

    /// A write pipe's fd became readable: its reader closed. As asyncio's
    /// `_UnixWritePipeTransport._read_ready`: `connection_lost(None)`, or
    /// `connection_lost(BrokenPipe)` if bytes were still buffered; the exception handler is
    /// not told either way.
    fn write_pipe_hangup(self: &Rc<Self>) {
        log::debug!(target: "evloop", "{:?} was closed by peer", self.describe());
        if self.wbuf.borrow().is_empty() {
            self.close();
        } else {
            self.force_close(Some(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
    }

    // ----- writing -----

    /// Whether a write must be refused; counts it if so.
    ///
    /// A socket refuses writes once `connection_lost` is scheduled (asyncio's `_conn_lost`), not
    /// as soon as `close()` is called: while `close()` still flushes the buffer, a write (from
    /// `resume_writing`, say) is appended and sent before `connection_lost(None)`
    /// (`selector_events._SelectorSocketTransport.write`, gh-115514). A write pipe refuses them
    /// from `close()` on, as asyncio's `_UnixWritePipeTransport.write` does.
    fn refuse_write(&self) -> bool {
        if self.has(flag::SENDFILE_NATIVE) {
            self.refuse_during_sendfile();
            return true;
        }
        if self.has(flag::EOF) && !self.has(flag::CLOSING) && self.role == Role::Socket {
            self.lp.call_exception_handler(
                Context::new("Cannot call write() after write_eof(): the data was dropped")
                    .with("transport", self.describe()),
            );
            return true;
        }
        let refused = match self.role {
            Role::Socket => self.has(flag::LOST | flag::EOF),
            Role::ReadPipe | Role::WritePipe => self.has(flag::CLOSING),
        };
        if refused {
            let n = self.dropped_writes.get().saturating_add(1);
            self.dropped_writes.set(n);
            if n >= 5 {
                let what = match self.role {
                    Role::Socket => "socket.send() raised exception.",
                    _ => "pipe closed by peer or os.write(pipe, data) raised exception.",
                };
                log_report(
                    Level::Warn,
                    &format!("{what} ({n} writes dropped after close)"),
                );
            }
            return true;
        }
        false
    }

    pub(crate) fn write(self: &Rc<Self>, data: &[u8]) {
        if data.is_empty() || self.refuse_write() {
            return;
        }
        if !self.role_writes() {
            return;
        }
        let rest = if self.wbuf.borrow().is_empty() {
            match sys::write(self.fd, self.role.kind(), data) {
                Ok(n) if n == data.len() => return,
                Ok(n) => &data[n..],
                Err(err) if sys::is_transient(&err) => data,
                Err(err) => return self.write_failed(err),
            }
        } else {
            data
        };
        let was_paused = self.has(flag::PROTO_PAUSED);
        self.wbuf.borrow_mut().push(rest);
        self.add_writer();
        self.maybe_pause();
        self.check_overrun(was_paused);
    }

    /// A write through the plain handle of a socket that `start_tls` wrapped: it would put
    /// plaintext in the middle of the TLS stream. Dropped and reported.
    pub(crate) fn refuse_wrapped(&self) {
        self.lp.call_exception_handler(
            Context::new(
                "write() on a transport that start_tls() replaced: the data was dropped (write \
                 through the transport start_tls() returned)",
            )
            .with("transport", self.describe())
            .with("protocol", self.protocol_name),
        );
    }

    pub(crate) fn writelines(self: &Rc<Self>, bufs: &[&[u8]]) {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 || self.refuse_write() || !self.role_writes() {
            return;
        }
        let mut sent = 0;
        let was_paused = self.has(flag::PROTO_PAUSED);
        if self.wbuf.borrow().is_empty() {
            let slices: Vec<IoSlice<'_>> = bufs
                .iter()
                .filter(|b| !b.is_empty())
                .map(|b| IoSlice::new(b))
                .collect();
            match sys::write_vectored(self.fd, self.role.kind(), &slices) {
                Ok(n) => sent = n,
                Err(err) if sys::is_transient(&err) => {}
                Err(err) => return self.write_failed(err),
            }
            if sent == total {
                return;
            }
        }
        {
            let mut wbuf = self.wbuf.borrow_mut();
            let mut skip = sent;
            for buf in bufs {
                if skip >= buf.len() {
                    skip -= buf.len();
                    continue;
                }
                wbuf.push(&buf[skip..]);
                skip = 0;
            }
        }
        self.add_writer();
        self.maybe_pause();
        self.check_overrun(was_paused);
    }

    /// Whether the buffer is above the high-water mark: from the moment a write takes it
    /// strictly above high until it drains to low. The protocol's `pause_writing` may come
    /// later than this turns true (it waits while the protocol is busy).
    pub(crate) fn is_writing_paused(&self) -> bool {
        self.has(flag::PROTO_PAUSED)
    }

    /// A write made while paused left far more than the high-water mark buffered: the writer
    /// heeds neither `pause_writing` nor `is_writing_paused`. Nothing is dropped (that would
    /// lose data silently); the exception handler hears of it once per pause.
    fn check_overrun(&self, was_paused: bool) {
        let limit = self
            .high
            .get()
            .saturating_mul(OVERRUN_FACTOR)
            .max(OVERRUN_FLOOR);
        if !was_paused || self.has(flag::OVERRUN) || self.buffer_size() <= limit {
            return;
        }
        self.set(flag::OVERRUN);
        self.lp.call_exception_handler(
            Context::new(
                "write() while writing is paused: the write buffer is far above its high-water \
                 mark (stop writing on pause_writing() or when Transport::is_writing_paused())",
            )
            .with("transport", self.describe())
            .with("protocol", self.protocol_name),
        );
    }

    /// Whether this transport writes; a write on a read pipe is reported and dropped.
    fn role_writes(&self) -> bool {
        if self.role == Role::ReadPipe {
            self.lp.call_exception_handler(
                Context::new("write() on a read pipe transport: the data was dropped")
                    .with("transport", self.describe()),
            );
            return false;
        }
        true
    }

    fn write_failed(self: &Rc<Self>, err: io::Error) {
        let what = match self.role {
            Role::Socket => "Fatal write error on socket transport",
            _ => "Fatal write error on pipe transport",
        };
        self.fatal_error(err, what);
    }

    fn add_writer(self: &Rc<Self>) {
        if self.has(flag::WRITER | flag::RELEASED) {
            return;
        }
        let me = self.clone();
        let added = match self.claim.borrow().as_ref() {
            Some(claim) => claim.add_writer(move || me.write_ready()),
            None => return,
        };
        match added {
            Ok(()) => self.set(flag::WRITER),
            Err(err) => self.write_failed(err),
        }
    }

    pub(super) fn remove_writer(&self) {
        if self.has(flag::WRITER) {
            self.unset(flag::WRITER);
            if let Some(claim) = self.claim.borrow().as_ref() {
                claim.remove_writer();
            }
        }
    }

    /// The fd is writable: send what is buffered.
    fn write_ready(self: &Rc<Self>) {
        if self.has(flag::LOST | flag::RELEASED) {
            return;
        }
        let outcome = {
            let wbuf = self.wbuf.borrow();
            sys::write(self.fd, self.role.kind(), wbuf.as_slice())
        };
        match outcome {
            Ok(n) => self.wbuf.borrow_mut().consume(n),
            Err(err) if sys::is_transient(&err) => return,
            Err(err) => return self.write_failed(err),
        }
        self.maybe_resume();
        if self.wbuf.borrow().is_empty() {
            self.wake_waiter();
            self.remove_writer();
            if self.has(flag::CLOSING) {
                if !self.has(flag::LOST) {
                    self.schedule_lost(None);
                }
            } else if self.has(flag::EOF) {
                self.shutdown_write();
            }
        }
    }

    /// Wakes the `sendfile` waiting on this transport, if any.
    pub(super) fn wake_waiter(&self) {
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    pub(crate) fn buffer_size(&self) -> usize {
        self.wbuf.borrow().len()
    }

    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.low.get(), self.high.get())
    }

    pub(crate) fn set_limits(
        self: &Rc<Self>,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        let (low, high) = water_marks(high, low)?;
        self.high.set(high);
        self.low.set(low);
        self.maybe_pause();
        Ok(())
    }

    fn maybe_pause(self: &Rc<Self>) {
        if !self.has(flag::PROTO_PAUSED) && self.buffer_size() > self.high.get() {
            self.set(flag::PROTO_PAUSED);
            self.deliver(Event::Pause);
        }
    }

    fn maybe_resume(self: &Rc<Self>) {
        if self.has(flag::PROTO_PAUSED) && self.buffer_size() <= self.low.get() {
            self.unset(flag::PROTO_PAUSED | flag::OVERRUN);
            self.wake_waiter();
            self.deliver(Event::Resume);
        }
    }

    pub(crate) fn write_eof(self: &Rc<Self>) {
        if self.role == Role::WritePipe {
            // A pipe has no half-close: its end of file is closing it.
            return self.close();
        }
        if self.role != Role::Socket || self.has(flag::CLOSING | flag::EOF) {
            return;
        }
        self.set(flag::EOF);
        if self.wbuf.borrow().is_empty() {
            self.shutdown_write();
        }
    }

    fn shutdown_write(self: &Rc<Self>) {
        if let Err(err) = sys::shutdown_write(self.fd) {
            self.fatal_error(err, "Fatal error on shutdown(SHUT_WR)");
        }
    }

    // ----- closing -----

    pub(crate) fn is_closing(&self) -> bool {
        self.has(flag::CLOSING)
    }

    pub(crate) fn close(self: &Rc<Self>) {
        if self.has(flag::CLOSING) {
            return;
        }
        self.set(flag::CLOSING);
        self.remove_reader();
        if self.wbuf.borrow().is_empty() {
            self.schedule_lost(None);
        }
        self.wake_waiter();
    }

    /// `abort()`, and the end of every fatal error: drops the buffer and schedules
    /// `connection_lost(err)`. A second call does nothing.
    pub(crate) fn force_close(self: &Rc<Self>, err: Option<io::Error>) {
        if self.has(flag::LOST) {
            return;
        }
        self.wbuf.borrow_mut().clear();
        self.remove_writer();
        self.set(flag::CLOSING);
        self.remove_reader();
        self.schedule_lost(err);
        self.wake_waiter();
    }

    /// An OS error ended the transport. It goes to the protocol (`connection_lost(Some(err))`)
    /// and, as in asyncio, to the exception handler only from a read pipe, unless it is EIO (a
    /// pty whose other side hung up): `_UnixReadPipeTransport._fatal_error`. Sockets
    /// (`_SelectorTransport._fatal_error`) and write pipes (`_UnixWritePipeTransport.
    /// _fatal_error`) only log it at debug level.
    pub(crate) fn fatal_error(self: &Rc<Self>, err: io::Error, message: &str) {
        let report = self.role == Role::ReadPipe && err.raw_os_error() != Some(libc::EIO);
        if !report {
            log::debug!(target: "evloop", "{message}: {err} on {:?}", self.describe());
        } else {
            self.lp.call_exception_handler(
                Context::new(message)
                    .with_exception(Exception::from_error(io::Error::new(
                        err.kind(),
                        err.to_string(),
                    )))
                    .with("transport", self.describe())
                    .with("protocol", self.protocol_name),
            );
        }
        self.force_close(Some(err));
    }

    fn schedule_lost(self: &Rc<Self>, err: Option<io::Error>) {
        self.set(flag::LOST);
        let me = self.clone();
        if self
            .lp
            .call_soon(move || me.deliver(Event::Lost(err)))
            .is_err()
        {
            // The loop is closed: nothing will run; let go of everything now.
            self.release();
        }
    }

    /// After `connection_lost`: the fd is closed, the protocol dropped, the loop forgets us.
    pub(crate) fn finish_lost(&self) {
        self.release();
        if let Some(f) = self.on_lost.take() {
            f();
        }
    }

    /// Closes the fd and drops the protocol and buffers; idempotent.
    pub(crate) fn release(&self) {
        if self.has(flag::RELEASED) {
            return;
        }
        self.remove_reader();
        self.remove_writer();
        self.set(flag::RELEASED | flag::CLOSING | flag::LOST);
        self.wake_waiter();
        // The claim goes before the fd closes: a new fd with the same number is not ours.
        let claim = self.claim.borrow_mut().take();
        drop(claim);
        sys::close(self.fd);
        Registry::<Inner>::remove(&self.lp, self.slot.replace(NO_SLOT));
        self.wbuf.borrow_mut().clear();
        let protocol = self.protocol.borrow_mut().take();
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        // Dropped outside every borrow: their destructors may call back into the transport.
        drop(deferred);
        drop(protocol);
    }

    /// What reports and `Debug` show of the transport.
    pub(crate) fn describe(&self) -> TransportInfo {
        TransportInfo {
            fd: self.fd(),
            role: self.role,
            closing: self.is_closing(),
            buffered: self.buffer_size(),
        }
    }
}

/// A transport as a report describes it: the `transport` value of an exception handler's
/// context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TransportInfo {
    fd: Option<RawFd>,
    role: Role,
    closing: bool,
    buffered: usize,
}

impl TransportInfo {
    /// The transport's fd, `None` once closed.
    pub fn fd(&self) -> Option<RawFd> {
        self.fd
    }

    /// Whether it was closing.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Bytes in its write buffer.
    pub fn buffered(&self) -> usize {
        self.buffered
    }
}

impl fmt::Debug for TransportInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.role {
            Role::Socket => "SocketTransport",
            Role::ReadPipe => "ReadPipeTransport",
            Role::WritePipe => "WritePipeTransport",
        };
        let mut d = f.debug_struct(name);
        match self.fd {
            Some(fd) => d.field("fd", &fd),
            None => d.field("fd", &"closed"),
        };
        d.field("closing", &self.closing)
            .field("buffered", &self.buffered)
            .finish()
    }
}

impl Drop for Inner {
    /// A transport nobody holds any more (not even the loop's fd watches, which closing the
    /// loop drops) still owns its fd: close it, as asyncio's transport `__del__` does, so the
    /// peer sees end of file instead of a leaked connection.
    fn drop(&mut self) {
        self.release();
    }
}

impl Release for Inner {
    fn release(self: &Rc<Self>) {
        Inner::release(self);
    }
}
