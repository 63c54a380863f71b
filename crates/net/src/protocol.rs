//! [`Protocol`]: what a stream transport tells the code that owns a connection.

use std::io;

use crate::transport::Transport;

/// asyncio's `Protocol`: the callbacks a stream transport (TCP, Unix, pipe) makes on the
/// loop's thread. Every method has a default that does nothing (`eof_received` returns
/// false), so a protocol implements only what it needs.
///
/// The transport owns the protocol as an `Rc<RefCell<P>>` and borrows it mutably for each
/// call; the `create_*` method that made the connection hands the caller a clone. A call the
/// transport has to make while the protocol is already borrowed (`pause_writing`, when
/// `data_received` itself overfills the write buffer) is delivered right after the borrow
/// ends, never as a panic.
///
/// # Order
///
/// `connection_made` exactly once, on an iteration after the transport was made (never inside
/// the call that made it); then any number of `data_received`; at most one `eof_received`;
/// `pause_writing` and `resume_writing` alternate, starting with a pause; `connection_lost`
/// exactly once, last, on an iteration after the transport was closed or failed. After it the
/// transport drops its reference to the protocol, which breaks the cycle a protocol that keeps
/// its transport creates.
///
/// On a TLS connection (`ssl`, `start_tls`), `connection_made` comes once the handshake is
/// done. A handshake that fails (a certificate refused, an alert, the handshake timeout) is
/// the one case of `connection_lost(Some(err))` without `connection_made` before it: the
/// protocol learns why the connection it was made for never came up.
///
/// # Panics
///
/// A panic in a protocol method is caught at the transport: it is reported to the loop's
/// exception handler (keys `message`, `exception`, `transport`, `protocol`) and, for
/// `data_received` and `eof_received`, closes the transport with `connection_lost(Some(err))`.
/// That holds for read pipes too, a deliberate difference: asyncio's read pipe calls
/// `data_received` unguarded, so its exception is reported as "Exception in callback" and the
/// pipe stays open; a protocol that failed mid-stream is in an unknown state, so evloop ends
/// every kind of transport alike.
///
/// # Examples
///
/// ```
/// use evloop::{Protocol, Transport};
///
/// /// Sends every chunk straight back.
/// #[derive(Default)]
/// struct Echo {
///     transport: Option<Transport>,
/// }
///
/// impl Protocol for Echo {
///     fn connection_made(&mut self, transport: &Transport) {
///         self.transport = Some(transport.clone());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.transport {
///             t.write(data);
///         }
///     }
/// }
/// ```
pub trait Protocol: 'static {
    /// The connection is up; `transport` is how to write to it. Keep a clone to write later.
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. `data` is a view into the loop's shared read buffer, valid for this call
    /// only: copy what must outlive it.
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// The peer closed its writing side. Return true to keep the connection half-open (the
    /// transport stops reading but can still write, until `close()`); false closes it.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is gone: `None` for a normal close or abort, `Some(err)` for the OS error
    /// (reset, broken pipe…) or protocol failure that ended it.
    fn connection_lost(&mut self, err: Option<io::Error>) {
        let _ = err;
    }

    /// The transport's write buffer went above its high-water mark: stop writing for a while.
    ///
    /// Called after the protocol method that crossed the mark returns, never inside it: a loop
    /// that writes inside `connection_made` or `resume_writing` must stop on
    /// [`Transport::is_writing_paused`] instead (see the flow-control idiom on [`Transport`]).
    fn pause_writing(&mut self) {}

    /// The transport's write buffer drained to its low-water mark: writing may resume.
    fn resume_writing(&mut self) {}
}
