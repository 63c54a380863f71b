//! Calling the protocol: in order, never re-entrantly, with panics caught and reported.
//!
//! The transport borrows the protocol (`RefCell`) for each call. When it is already borrowed —
//! a protocol method called the transport, which wants to call back (`pause_writing` from a
//! `write` inside `data_received`), or the user holds a borrow across an `.await` — the event
//! waits in the transport's deferred queue and is delivered as soon as the borrow ends: right
//! after the protocol method returns, or from a callback on the next iteration. While events
//! wait, new ones queue behind them, so the protocol sees everything in order.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use evloop_sched::{Context, Exception};

use super::Transport;
use super::inner::{Inner, flag};
use crate::protocol::Protocol;

/// A call to make on the protocol.
pub(crate) enum Event {
    Made,
    /// A copy of received bytes (only when the call had to wait).
    Data(Box<[u8]>),
    Eof,
    /// A pipe's end of file: the answer is ignored, `connection_lost` follows anyway.
    PipeEof,
    Pause,
    Resume,
    Lost(Option<io::Error>),
}

/// What came of one call.
enum Outcome<R> {
    Done(R),
    Panicked(Box<dyn Any + Send>),
    /// The protocol is borrowed: try again later.
    Busy,
    /// The protocol was dropped (the transport was released).
    Gone,
}

impl Inner {
    /// Calls `f` on the protocol if it is free.
    fn invoke<R>(&self, f: impl FnOnce(&mut dyn Protocol) -> R) -> Outcome<R> {
        let Some(protocol) = self.protocol.borrow().clone() else {
            return Outcome::Gone;
        };
        let Ok(mut guard) = protocol.try_borrow_mut() else {
            return Outcome::Busy;
        };
        self.set(flag::IN_CALL);
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut *guard)));
        self.unset(flag::IN_CALL);
        drop(guard);
        match outcome {
            Ok(value) => Outcome::Done(value),
            Err(payload) => Outcome::Panicked(payload),
        }
    }

    /// Delivers `event` now, or after the events already waiting.
    pub(crate) fn deliver(self: &Rc<Self>, event: Event) {
        if !self.deferred.borrow().is_empty() {
            self.defer(event);
            return;
        }
        if let Err(event) = self.dispatch(event) {
            self.defer(event);
        }
        self.drain_now();
    }

    /// The data path: no copy unless the protocol is busy.
    pub(crate) fn deliver_data(self: &Rc<Self>, data: &[u8]) {
        if !self.deferred.borrow().is_empty() {
            self.defer(Event::Data(data.into()));
            return;
        }
        match self.invoke(|p| p.data_received(data)) {
            Outcome::Done(()) | Outcome::Gone => {}
            Outcome::Busy => self.defer(Event::Data(data.into())),
            Outcome::Panicked(payload) => self.protocol_failed("data_received", payload),
        }
        self.drain_now();
    }

    fn defer(self: &Rc<Self>, event: Event) {
        self.deferred.borrow_mut().push_back(event);
        if !self.has(flag::IN_CALL | flag::DRAIN) {
            self.schedule_drain();
        }
    }

    fn schedule_drain(self: &Rc<Self>) {
        self.set(flag::DRAIN);
        let me = self.clone();
        if self
            .lp
            .call_soon(move || {
                me.unset(flag::DRAIN);
                me.drain();
            })
            .is_err()
        {
            self.unset(flag::DRAIN);
        }
    }

    /// Right after a protocol call: what it caused to wait goes now.
    fn drain_now(self: &Rc<Self>) {
        if !self.has(flag::IN_CALL | flag::DRAIN) && !self.deferred.borrow().is_empty() {
            self.drain();
        }
    }

    fn drain(self: &Rc<Self>) {
        loop {
            let Some(event) = self.deferred.borrow_mut().pop_front() else {
                return;
            };
            if let Err(event) = self.dispatch(event) {
                self.deferred.borrow_mut().push_front(event);
                if !self.has(flag::DRAIN) {
                    self.schedule_drain();
                }
                return;
            }
        }
    }

    /// Makes the call `event` stands for; hands the event back if the protocol is busy.
    fn dispatch(self: &Rc<Self>, event: Event) -> Result<(), Event> {
        match event {
            Event::Made => {
                let transport = Transport::plain(self.clone());
                match self.invoke(|p| p.connection_made(&transport)) {
                    Outcome::Busy => return Err(Event::Made),
                    Outcome::Panicked(payload) => {
                        self.report("Exception in callback Protocol::connection_made()", payload);
                    }
                    Outcome::Done(()) | Outcome::Gone => {}
                }
                self.set(flag::CONNECTED);
            }
            Event::Data(data) => match self.invoke(|p| p.data_received(&data)) {
                Outcome::Busy => return Err(Event::Data(data)),
                Outcome::Panicked(payload) => self.protocol_failed("data_received", payload),
                Outcome::Done(()) | Outcome::Gone => {}
            },
            Event::Eof => match self.invoke(|p| p.eof_received()) {
                Outcome::Busy => return Err(Event::Eof),
                Outcome::Panicked(payload) => self.protocol_failed("eof_received", payload),
                Outcome::Done(keep_open) => self.after_eof(keep_open),
                Outcome::Gone => {}
            },
            Event::PipeEof => match self.invoke(|p| p.eof_received()) {
                Outcome::Busy => return Err(Event::PipeEof),
                Outcome::Panicked(payload) => {
                    self.report("Exception in callback Protocol::eof_received()", payload);
                }
                Outcome::Done(_) | Outcome::Gone => {}
            },
            Event::Pause => match self.invoke(|p| p.pause_writing()) {
                Outcome::Busy => return Err(Event::Pause),
                Outcome::Panicked(payload) => {
                    self.report("protocol.pause_writing() failed", payload)
                }
                Outcome::Done(()) | Outcome::Gone => {}
            },
            Event::Resume => match self.invoke(|p| p.resume_writing()) {
                Outcome::Busy => return Err(Event::Resume),
                Outcome::Panicked(payload) => {
                    self.report("protocol.resume_writing() failed", payload);
                }
                Outcome::Done(()) | Outcome::Gone => {}
            },
            Event::Lost(err) => {
                if self.has(flag::CONNECTED) {
                    let mut err = Some(err);
                    match self.invoke(|p| p.connection_lost(err.take().flatten())) {
                        Outcome::Busy => return Err(Event::Lost(err.flatten())),
                        Outcome::Panicked(payload) => {
                            self.report(
                                "Exception in callback Protocol::connection_lost()",
                                payload,
                            );
                        }
                        Outcome::Done(()) | Outcome::Gone => {}
                    }
                }
                self.finish_lost();
            }
        }
        Ok(())
    }

    /// `data_received` or `eof_received` panicked: report it, then close the transport with
    /// the failure as `connection_lost`'s error.
    fn protocol_failed(self: &Rc<Self>, method: &str, payload: Box<dyn Any + Send>) {
        let exception = Exception::from_panic(payload);
        let err = io::Error::other(format!(
            "protocol.{method}() panicked: {}",
            exception.message()
        ));
        self.report_exception(
            &format!("Fatal error: protocol.{method}() call failed."),
            exception,
        );
        self.force_close(Some(err));
    }

    fn report(&self, message: &str, payload: Box<dyn Any + Send>) {
        self.report_exception(message, Exception::from_panic(payload));
    }

    fn report_exception(&self, message: &str, exception: Exception) {
        self.lp.call_exception_handler(
            Context::new(message)
                .with_exception(exception)
                .with("transport", self.describe())
                .with("protocol", self.protocol_name),
        );
    }
}
