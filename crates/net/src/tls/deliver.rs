//! Calling the user's protocol from the TLS layer: in order, one call at a time, never while
//! the protocol is borrowed (a busy protocol gets the queued calls from a later callback),
//! panics caught and reported, as the socket transport's own delivery (`transport/deliver.rs`)
//! does for a plain connection.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use evloop_sched::{Context, Exception};

use super::layer::TlsInner;

/// A call to make on the user's protocol.
pub(crate) enum UserEvent {
    Made,
    Data(Vec<u8>),
    Eof,
    Pause,
    Resume,
    Lost(Option<io::Error>),
}

impl UserEvent {
    /// The protocol method the event calls.
    fn method(&self) -> &'static str {
        match self {
            UserEvent::Made => "connection_made",
            UserEvent::Data(_) => "data_received",
            UserEvent::Eof => "eof_received",
            UserEvent::Pause => "pause_writing",
            UserEvent::Resume => "resume_writing",
            UserEvent::Lost(_) => "connection_lost",
        }
    }
}

/// What to do once a user call returned.
enum After {
    Nothing,
    Made,
    Eof(bool),
    Lost,
}

impl TlsInner {
    /// The data path: no copy unless a call is queued or the protocol is busy.
    pub(super) fn deliver_data(self: &Rc<Self>, data: &[u8]) {
        if self.in_call.get() || !self.events.borrow().is_empty() {
            return self.deliver(UserEvent::Data(data.to_vec()));
        }
        let Some(user) = self.user.borrow().clone() else {
            return;
        };
        let Ok(mut guard) = user.try_borrow_mut() else {
            return self.deliver(UserEvent::Data(data.to_vec()));
        };
        self.in_call.set(true);
        let outcome = catch_unwind(AssertUnwindSafe(|| guard.data_received(data)));
        self.in_call.set(false);
        drop(guard);
        if let Err(payload) = outcome {
            self.protocol_failed("data_received", payload);
        }
        self.drain();
    }

    pub(super) fn deliver(self: &Rc<Self>, event: UserEvent) {
        self.events.borrow_mut().push_back(event);
        self.drain();
    }

    /// Makes the queued calls in order; a busy protocol gets the rest from a later callback.
    fn drain(self: &Rc<Self>) {
        if self.in_call.get() {
            // The running call's caller drains after it.
            return;
        }
        loop {
            let Some(event) = self.events.borrow_mut().pop_front() else {
                return;
            };
            let Some(user) = self.user.borrow().clone() else {
                self.events.borrow_mut().clear();
                return;
            };
            let Ok(mut guard) = user.try_borrow_mut() else {
                self.events.borrow_mut().push_front(event);
                self.schedule_retry();
                return;
            };
            self.in_call.set(true);
            let method = event.method();
            let transport = matches!(event, UserEvent::Made).then(|| self.user_transport());
            let outcome = catch_unwind(AssertUnwindSafe(|| match event {
                UserEvent::Made => {
                    if let Some(t) = &transport {
                        guard.connection_made(t);
                    }
                    After::Made
                }
                UserEvent::Data(data) => {
                    guard.data_received(&data);
                    After::Nothing
                }
                UserEvent::Eof => After::Eof(guard.eof_received()),
                UserEvent::Pause => {
                    guard.pause_writing();
                    After::Nothing
                }
                UserEvent::Resume => {
                    guard.resume_writing();
                    After::Nothing
                }
                UserEvent::Lost(err) => {
                    guard.connection_lost(err);
                    After::Lost
                }
            }));
            self.in_call.set(false);
            drop(guard);
            drop(user);
            match outcome {
                Ok(After::Nothing) => {}
                Ok(After::Made) => self.made.set(true),
                Ok(After::Eof(keep_open)) => {
                    if keep_open {
                        // As asyncio: TLS has no half-open connection here.
                        log::warn!(
                            target: "evloop",
                            "returning true from eof_received() has no effect when using ssl"
                        );
                    }
                    self.close();
                }
                Ok(After::Lost) => return self.release_user(),
                // As the socket transport: a failed data_received or eof_received ends the
                // connection; the other methods' panics are reported and the connection goes on.
                Err(payload) => match method {
                    "data_received" | "eof_received" => self.protocol_failed(method, payload),
                    "connection_made" => {
                        self.made.set(true);
                        self.report("Exception in callback Protocol::connection_made()", payload);
                    }
                    "connection_lost" => {
                        self.report("Exception in callback Protocol::connection_lost()", payload);
                        return self.release_user();
                    }
                    _ => self.report(&format!("protocol.{method}() failed"), payload),
                },
            }
        }
    }

    fn schedule_retry(self: &Rc<Self>) {
        if self.retry.replace(true) {
            return;
        }
        let me = self.clone();
        if self
            .lp
            .call_soon(move || {
                me.retry.set(false);
                me.drain();
            })
            .is_err()
        {
            self.retry.set(false);
        }
    }

    /// A user protocol method panicked: report it; the connection goes on.
    fn report(&self, message: &str, payload: Box<dyn Any + Send>) {
        self.lp.call_exception_handler(
            Context::new(message)
                .with_exception(Exception::from_panic(payload))
                .with("transport", self.sock.inner.describe())
                .with("protocol", self.user_name),
        );
    }

    /// A user protocol method panicked: report it, and end the connection with the failure.
    fn protocol_failed(&self, method: &str, payload: Box<dyn Any + Send>) {
        let exception = Exception::from_panic(payload);
        let err = io::Error::other(format!(
            "protocol.{method}() panicked: {}",
            exception.message()
        ));
        self.lp.call_exception_handler(
            Context::new(format!("Fatal error: protocol.{method}() call failed."))
                .with_exception(exception)
                .with("transport", self.sock.inner.describe())
                .with("protocol", self.user_name),
        );
        self.fail(err);
    }
}
