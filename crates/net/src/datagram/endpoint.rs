//! The state behind a [`DatagramTransport`](super::DatagramTransport): the socket, the
//! protocol, the write buffer, and the reader and writer callbacks.
//!
//! # Ground rules
//!
//! - Everything lives on the loop's thread: `Cell` and `RefCell`, no locks. Every `RefCell`
//!   borrow here is short and never spans a protocol call or a user callback.
//! - Life cycle: open → closing (`close()`: reading stopped, the buffer still flushing) →
//!   lost (`connection_lost` scheduled; nothing is sent any more) → released (after
//!   `connection_lost` ran: the protocol and the socket are dropped).
//! - The reader is registered from the iteration after creation (after `connection_made`) until
//!   closing; the writer only while datagrams wait in the buffer. Both callbacks hold the
//!   endpoint, so an endpoint nobody closes lives as long as the loop watches it, as in asyncio;
//!   closing the loop releases it (see `registry`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use evloop_sched::{EventLoop, FdClaim};
use socket2::{SockAddr, Socket};

use super::DatagramProtocol;
use super::dispatch::Call;
use crate::limits::DEFAULT_HIGH_WATER;
use crate::readbuf::DatagramBuffer;
use crate::registry::{NO_SLOT, Registry, Release};

/// What one buffered datagram adds to the write buffer size besides its payload: a UDP
/// header, as asyncio counts it (`_header_size = 8`), so that empty datagrams are not free.
pub(super) const DATAGRAM_OVERHEAD: usize = 8;

/// The number of sends dropped after close from which each one is logged (asyncio's
/// `LOG_THRESHOLD_FOR_CONNLOST_WRITES`).
pub(super) const LOG_THRESHOLD_FOR_DROPPED_SENDS: usize = 5;

/// A datagram waiting for the socket to become writable: an owned copy, and where it goes
/// (`None`: the connected peer).
pub(super) type Pending = (Box<[u8]>, Option<SockAddr>);

/// The shared state of one datagram endpoint.
pub(super) struct Endpoint {
    pub(super) lp: EventLoop,
    /// The loop's shared read buffer, looked up once.
    pub(super) read_buffer: Rc<DatagramBuffer>,
    pub(super) fd: RawFd,
    /// The endpoint's exclusive hold on its fd's watches; released before the socket closes.
    claim: RefCell<Option<FdClaim>>,
    /// `None` once released. An `Rc` so that `with_socket` can lend it without a borrow.
    pub(super) sock: RefCell<Option<Rc<Socket>>>,
    /// Where `sendto(data, None)` goes: the remote address the endpoint was made with.
    pub(super) remote: Option<SockAddr>,
    /// True if the socket is connected (sent with `send`, not `sendto`).
    pub(super) connected: bool,
    pub(super) peername: Option<SockAddr>,
    pub(super) sockname: Option<SockAddr>,
    /// `None` once released, after `connection_lost`.
    pub(super) protocol: RefCell<Option<Rc<RefCell<dyn DatagramProtocol>>>>,
    /// The protocol's type name, for the exception handler's `protocol` key.
    pub(super) protocol_name: &'static str,
    /// Protocol calls waiting for the protocol to be free (see `dispatch`).
    pub(super) queue: RefCell<VecDeque<Call>>,
    pub(super) drain_scheduled: Cell<bool>,
    pub(super) buffer: RefCell<VecDeque<Pending>>,
    /// Payload bytes plus [`DATAGRAM_OVERHEAD`] per buffered datagram.
    pub(super) buffer_size: Cell<usize>,
    /// `(low, high)` water marks.
    pub(super) limits: Cell<(usize, usize)>,
    pub(super) paused: Cell<bool>,
    pub(super) reading: Cell<bool>,
    pub(super) writing: Cell<bool>,
    pub(super) closing: Cell<bool>,
    pub(super) lost: Cell<bool>,
    /// Sends dropped because the endpoint was closing.
    pub(super) dropped_sends: Cell<usize>,
    /// The endpoint's slot in the loop's [`Registry`] while it is not released.
    pub(super) slot: Cell<u32>,
}

impl Endpoint {
    /// The state of a fresh endpoint on `sock`, which must be non-blocking; `remote` is the
    /// address given at creation, if any.
    pub(super) fn new(
        lp: &EventLoop,
        sock: Socket,
        remote: Option<SockAddr>,
        protocol: Rc<RefCell<dyn DatagramProtocol>>,
        protocol_name: &'static str,
    ) -> io::Result<Endpoint> {
        let claim = lp.claim_fd(sock.as_raw_fd())?;
        let peername = sock.peer_addr().ok();
        let sockname = sock.local_addr().ok();
        Ok(Endpoint {
            lp: lp.clone(),
            read_buffer: DatagramBuffer::of(lp),
            fd: sock.as_raw_fd(),
            claim: RefCell::new(Some(claim)),
            sock: RefCell::new(Some(Rc::new(sock))),
            connected: peername.is_some(),
            remote: remote.or_else(|| peername.clone()),
            peername,
            sockname,
            protocol: RefCell::new(Some(protocol)),
            protocol_name,
            queue: RefCell::new(VecDeque::new()),
            drain_scheduled: Cell::new(false),
            buffer: RefCell::new(VecDeque::new()),
            buffer_size: Cell::new(0),
            limits: Cell::new((DEFAULT_HIGH_WATER / 4, DEFAULT_HIGH_WATER)),
            paused: Cell::new(false),
            reading: Cell::new(false),
            writing: Cell::new(false),
            closing: Cell::new(false),
            lost: Cell::new(false),
            dropped_sends: Cell::new(0),
            slot: Cell::new(NO_SLOT),
        })
    }

    /// Records the endpoint in the loop's registry, so that closing the loop releases it.
    pub(super) fn register(self: &Rc<Self>) {
        self.slot.set(Registry::insert(&self.lp, self));
    }

    /// The socket, unless released.
    pub(super) fn socket(&self) -> Option<Rc<Socket>> {
        self.sock.borrow().clone()
    }

    // ----- reading ------------------------------------------------------------------------

    pub(super) fn start_reading(self: &Rc<Self>) -> io::Result<()> {
        let me = self.clone();
        match self.claim.borrow().as_ref() {
            Some(claim) => claim.add_reader(move || me.read_ready())?,
            None => return Err(evloop_sched::Error::closed().into()),
        }
        self.reading.set(true);
        Ok(())
    }

    pub(super) fn stop_reading(&self) {
        if self.reading.replace(false) {
            if let Some(claim) = self.claim.borrow().as_ref() {
                claim.remove_reader();
            }
        }
    }

    /// One `recvfrom` per readiness event, into the loop's shared buffer.
    fn read_ready(self: &Rc<Self>) {
        if self.closing.get() {
            return;
        }
        let Some(sock) = self.socket() else {
            return;
        };
        self.read_buffer.with(|buf| {
            let got = loop {
                match recv_from(&sock, buf) {
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match got {
                Ok((n, addr)) => self.deliver_datagram(&buf[..n], addr),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => self.deliver(Call::Error(err)),
            }
        });
    }

    // ----- writing ------------------------------------------------------------------------

    /// One send of one datagram, retried on `EINTR`.
    pub(super) fn send_now(&self, data: &[u8], to: Option<&SockAddr>) -> io::Result<()> {
        let Some(sock) = self.socket() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        loop {
            let sent = match to {
                Some(addr) => sock.send_to(data, addr),
                None => sock.send(data),
            };
            match sent {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map(drop),
            }
        }
    }

    /// Buffers a copy of `data` (the send would block) and watches for writability.
    pub(super) fn buffer_datagram(
        self: &Rc<Self>,
        data: &[u8],
        to: Option<&SockAddr>,
    ) -> io::Result<()> {
        if !self.writing.get() {
            let me = self.clone();
            match self.claim.borrow().as_ref() {
                Some(claim) => claim.add_writer(move || me.write_ready())?,
                None => return Err(evloop_sched::Error::closed().into()),
            }
            self.writing.set(true);
        }
        self.buffer
            .borrow_mut()
            .push_back((data.into(), to.cloned()));
        self.buffer_size
            .set(self.buffer_size.get() + data.len() + DATAGRAM_OVERHEAD);
        self.maybe_pause();
        Ok(())
    }

    pub(super) fn stop_writing(&self) {
        if self.writing.replace(false) {
            if let Some(claim) = self.claim.borrow().as_ref() {
                claim.remove_writer();
            }
        }
    }

    /// Sends what the buffer holds, oldest first, until the socket would block again.
    fn write_ready(self: &Rc<Self>) {
        loop {
            let Some((data, to)) = self.buffer.borrow_mut().pop_front() else {
                break;
            };
            self.buffer_size
                .set(self.buffer_size.get() - data.len() - DATAGRAM_OVERHEAD);
            match self.send_now(&data, to.as_ref()) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.buffer_size
                        .set(self.buffer_size.get() + data.len() + DATAGRAM_OVERHEAD);
                    self.buffer.borrow_mut().push_front((data, to));
                    break;
                }
                Err(err) => {
                    // As asyncio: this datagram is lost, the protocol hears why, and the rest
                    // goes out on the next writable event.
                    self.deliver(Call::Error(err));
                    return;
                }
            }
        }
        self.maybe_resume();
        if self.buffer.borrow().is_empty() {
            self.stop_writing();
            if self.closing.get() && !self.lost.get() {
                self.schedule_lost(None);
            }
        }
    }

    // ----- flow control -------------------------------------------------------------------

    /// `pause_writing` once the buffer is strictly above the high-water mark.
    pub(super) fn maybe_pause(self: &Rc<Self>) {
        let (_, high) = self.limits.get();
        if !self.paused.get() && self.buffer_size.get() > high {
            self.paused.set(true);
            self.deliver(Call::PauseWriting);
        }
    }

    /// `resume_writing` once a paused buffer is down to the low-water mark.
    fn maybe_resume(self: &Rc<Self>) {
        let (low, _) = self.limits.get();
        if self.paused.get() && self.buffer_size.get() <= low {
            self.paused.set(false);
            self.deliver(Call::ResumeWriting);
        }
    }

    // ----- closing ------------------------------------------------------------------------

    /// asyncio's `close()`: stop reading; `connection_lost(None)` once the buffer is flushed.
    pub(super) fn close(self: &Rc<Self>) {
        if self.closing.replace(true) {
            return;
        }
        self.stop_reading();
        if self.buffer.borrow().is_empty() && !self.lost.get() {
            self.schedule_lost(None);
        }
    }

    /// asyncio's `_force_close(err)`: drop the buffer, stop watching, and schedule
    /// `connection_lost(err)`. A no-op once `connection_lost` is scheduled.
    pub(super) fn force_close(self: &Rc<Self>, err: Option<io::Error>) {
        if self.lost.get() {
            return;
        }
        self.closing.set(true);
        self.buffer.borrow_mut().clear();
        self.buffer_size.set(0);
        self.stop_reading();
        self.stop_writing();
        self.schedule_lost(err);
    }

    /// Schedules `connection_lost(err)` for the next iteration (never inline).
    fn schedule_lost(self: &Rc<Self>, err: Option<io::Error>) {
        self.lost.set(true);
        let me = self.clone();
        if self
            .lp
            .call_soon(move || me.deliver(Call::ConnectionLost(err)))
            .is_err()
        {
            // A closed loop runs nothing more: release without a last call.
            self.release();
        }
    }

    /// After `connection_lost`: stop watching, drop the protocol (breaking the cycle a
    /// protocol holding its transport makes) and close the socket.
    pub(super) fn release(&self) {
        Registry::<Endpoint>::remove(&self.lp, self.slot.replace(NO_SLOT));
        self.stop_reading();
        self.stop_writing();
        self.buffer.borrow_mut().clear();
        self.buffer_size.set(0);
        let queued = std::mem::take(&mut *self.queue.borrow_mut());
        let protocol = self.protocol.borrow_mut().take();
        let claim = self.claim.borrow_mut().take();
        let sock = self.sock.borrow_mut().take();
        // The claim goes before the socket closes: a new fd with the same number is not ours.
        drop(claim);
        // Dropped after every borrow above has ended: the protocol's `Drop` may use the
        // transport.
        drop(queued);
        drop(protocol);
        drop(sock);
    }
}

/// `recvfrom(2)` into an initialised buffer.
fn recv_from(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `recv_from` only ever writes
    // initialised bytes into the buffer, so `buf` stays initialised.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    sock.recv_from(uninit)
}

impl Release for Endpoint {
    fn release(self: &Rc<Self>) {
        Endpoint::release(self);
    }
}
