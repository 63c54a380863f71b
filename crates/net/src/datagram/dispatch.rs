//! Calling into a datagram protocol: never while it is borrowed, never letting a panic out.
//!
//! # Ground rules
//!
//! - Every protocol call goes through [`Endpoint::deliver`] (or the allocation-free
//!   [`Endpoint::deliver_datagram`] for the read path). The protocol is borrowed with
//!   `try_borrow_mut`; when that fails (a protocol method called the transport, which now wants
//!   to call back), the call is queued and a drain is scheduled with `call_soon`.
//! - Once something is queued, later calls queue behind it, so the protocol sees its calls in
//!   the order the transport made them.
//! - No borrow of the endpoint's own state is held while a protocol method runs.
//! - A panic is caught at the call, reported to the exception handler after the protocol's
//!   borrow has ended, and aborts the transport (`connection_lost(Some(err))` follows), except
//!   in `connection_made`, which asyncio runs as a plain callback: reported, and the endpoint
//!   carries on.
//! - `connection_lost` is the last call: after it the protocol and the socket are released.

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use evloop_sched::{Context, Exception};
use socket2::SockAddr;

use super::endpoint::Endpoint;
use super::{DatagramProtocol, DatagramTransport};

/// One protocol call, with what it carries, owned so that it can wait in the queue.
pub(super) enum Call {
    /// `connection_made(transport)`.
    ConnectionMade,
    /// `datagram_received(data, addr)`, with the datagram copied out of the shared buffer.
    Datagram(Box<[u8]>, Box<SockAddr>),
    /// `error_received(err)`.
    Error(io::Error),
    /// `pause_writing()`.
    PauseWriting,
    /// `resume_writing()`.
    ResumeWriting,
    /// `connection_lost(err)`: the last call.
    ConnectionLost(Option<io::Error>),
}

impl Call {
    /// The method's name, for the exception handler's message.
    fn method(&self) -> &'static str {
        match self {
            Call::ConnectionMade => "connection_made",
            Call::Datagram(..) => "datagram_received",
            Call::Error(_) => "error_received",
            Call::PauseWriting => "pause_writing",
            Call::ResumeWriting => "resume_writing",
            Call::ConnectionLost(_) => "connection_lost",
        }
    }

    fn apply(self, ep: &Rc<Endpoint>, proto: &mut dyn DatagramProtocol) {
        match self {
            Call::ConnectionMade => proto.connection_made(&DatagramTransport::from_endpoint(ep)),
            Call::Datagram(data, addr) => proto.datagram_received(&data, &addr),
            Call::Error(err) => proto.error_received(err),
            Call::PauseWriting => proto.pause_writing(),
            Call::ResumeWriting => proto.resume_writing(),
            Call::ConnectionLost(err) => proto.connection_lost(err),
        }
    }
}

type Protocol = Rc<RefCell<dyn DatagramProtocol>>;

impl Endpoint {
    /// The protocol, unless it was released after `connection_lost`.
    fn protocol(&self) -> Option<Protocol> {
        self.protocol.borrow().clone()
    }

    /// Makes `call` now if the protocol is free and nothing is queued; queues it otherwise.
    pub(super) fn deliver(self: &Rc<Self>, call: Call) {
        if self.queue.borrow().is_empty() {
            match self.try_call(call) {
                Ok(()) => return,
                Err(call) => self.queue.borrow_mut().push_back(call),
            }
        } else {
            self.queue.borrow_mut().push_back(call);
        }
        self.schedule_drain();
    }

    /// `datagram_received(data, addr)` straight from the shared read buffer; copied only if
    /// the call has to wait.
    pub(super) fn deliver_datagram(self: &Rc<Self>, data: &[u8], addr: SockAddr) {
        let Some(proto) = self.protocol() else {
            return;
        };
        if self.queue.borrow().is_empty() {
            if let Ok(mut p) = proto.try_borrow_mut() {
                let outcome = catch_unwind(AssertUnwindSafe(|| p.datagram_received(data, &addr)));
                drop(p);
                if let Err(payload) = outcome {
                    self.protocol_failed("datagram_received", payload);
                }
                return;
            }
        }
        self.queue
            .borrow_mut()
            .push_back(Call::Datagram(data.into(), Box::new(addr)));
        self.schedule_drain();
    }

    /// Makes `call` if the protocol can be borrowed; hands it back if it cannot. A call on a
    /// released protocol is dropped.
    fn try_call(self: &Rc<Self>, call: Call) -> Result<(), Call> {
        let Some(proto) = self.protocol() else {
            return Ok(());
        };
        let Ok(mut p) = proto.try_borrow_mut() else {
            return Err(call);
        };
        let method = call.method();
        let last = matches!(call, Call::ConnectionLost(_));
        let outcome = catch_unwind(AssertUnwindSafe(|| call.apply(self, &mut *p)));
        drop(p);
        drop(proto);
        if last {
            self.release();
        }
        if let Err(payload) = outcome {
            self.protocol_failed(method, payload);
        }
        Ok(())
    }

    fn schedule_drain(self: &Rc<Self>) {
        if self.drain_scheduled.replace(true) {
            return;
        }
        let me = self.clone();
        if self.lp.call_soon(move || me.drain()).is_err() {
            // A closed loop runs nothing more: what waits in the queue is never delivered.
            self.drain_scheduled.set(false);
            self.queue.borrow_mut().clear();
        }
    }

    /// Delivers the queued calls in order, as long as the protocol can be borrowed.
    fn drain(self: &Rc<Self>) {
        self.drain_scheduled.set(false);
        loop {
            // Popped before the call, so the call can queue more behind it.
            let Some(call) = self.queue.borrow_mut().pop_front() else {
                return;
            };
            if let Err(call) = self.try_call(call) {
                // Someone still holds the protocol (a borrow kept across iterations): retry on
                // the next iteration rather than panic or reorder.
                self.queue.borrow_mut().push_front(call);
                self.schedule_drain();
                return;
            }
        }
    }

    /// A protocol method panicked: report it, then abort the transport (a no-op once
    /// `connection_lost` was scheduled, so a panicking `connection_lost` is only reported).
    ///
    /// A panicking `connection_made` is only reported: asyncio schedules a datagram
    /// transport's `connection_made` with `call_soon`, so what it raises is an ordinary
    /// callback error and the endpoint carries on (as a stream transport's does here, C60).
    fn protocol_failed(self: &Rc<Self>, method: &'static str, payload: Box<dyn Any + Send>) {
        let exception = Exception::from_panic(payload);
        if method == "connection_made" {
            let ctx = Context::new("Exception in callback DatagramProtocol::connection_made()")
                .with_exception(exception)
                .with("transport", DatagramTransport::from_endpoint(self))
                .with("protocol", self.protocol_name);
            self.lp.call_exception_handler(ctx);
            return;
        }
        let err = io::Error::other(format!(
            "protocol.{method}() panicked: {}",
            exception.message()
        ));
        let ctx = Context::new(format!("Fatal error: protocol.{method}() call failed."))
            .with_exception(exception)
            .with("transport", DatagramTransport::from_endpoint(self))
            .with("protocol", self.protocol_name);
        self.lp.call_exception_handler(ctx);
        self.force_close(Some(err));
    }
}
