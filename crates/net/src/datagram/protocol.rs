//! [`DatagramProtocol`]: what a datagram transport tells the code that owns an endpoint.

use std::io;

use socket2::SockAddr;

use super::DatagramTransport;

/// asyncio's `DatagramProtocol`: the callbacks a datagram transport (UDP or `AF_UNIX`
/// `SOCK_DGRAM`) makes on the loop's thread. Every method has a default that does nothing, so a
/// protocol implements only what it needs.
///
/// The transport owns the protocol as an `Rc<RefCell<P>>` and borrows it mutably for each
/// call; [`create_datagram_endpoint`](crate::LoopDatagramExt::create_datagram_endpoint) hands
/// the caller a clone. A call the transport has to make while the protocol is already borrowed
/// (`pause_writing`, when `datagram_received` itself overfills the write buffer) is queued and
/// delivered on a later iteration, in order, never as a panic.
///
/// # Order
///
/// `connection_made` exactly once, on an iteration after the endpoint was made (never inside
/// the call that made it); then any number of `datagram_received` and `error_received`;
/// `pause_writing` and `resume_writing` alternate, starting with a pause; `connection_lost`
/// exactly once, last, on an iteration after the transport was closed or failed. After it the
/// transport drops its reference to the protocol, which breaks the cycle a protocol that keeps
/// its transport creates, and closes the socket.
///
/// # Panics
///
/// A panic in a protocol method is caught at the transport: it is reported to the loop's
/// exception handler with the keys `message` ("Fatal error: protocol.datagram_received() call
/// failed.", with the method's name), `exception`, `transport` (the [`DatagramTransport`])
/// and `protocol` (the protocol's type name), and the transport is aborted, so
/// `connection_lost` follows with `Some(err)`. A panic in `connection_lost` itself is only
/// reported.
///
/// # Examples
///
/// ```
/// use evloop::{DatagramProtocol, DatagramTransport};
/// use evloop::socket2::SockAddr;
///
/// /// Sends every datagram back to where it came from.
/// #[derive(Default)]
/// struct Echo {
///     transport: Option<DatagramTransport>,
/// }
///
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, transport: &DatagramTransport) {
///         self.transport = Some(transport.clone());
///     }
///     fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
///         if let Some(t) = &self.transport {
///             let _ = t.sendto(data, Some(addr));
///         }
///     }
/// }
/// ```
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready; `transport` is how to send. Keep a clone to send later.
    fn connection_made(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }

    /// A datagram arrived from `addr`. `data` is a view into the loop's shared read buffer,
    /// valid for this call only: copy what must outlive it. A datagram longer than the buffer
    /// (256 KiB) is truncated, as `recvfrom` truncates it.
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        let _ = (data, addr);
    }

    /// A send or a receive failed with an OS error (`ConnectionRefused` after an ICMP
    /// "port unreachable", `EMSGSIZE`…). The endpoint stays open: datagram errors are not
    /// fatal.
    fn error_received(&mut self, err: io::Error) {
        let _ = err;
    }

    /// The endpoint is gone: `None` after `close()` or `abort()`, `Some(err)` for the failure
    /// (a panicking protocol method, a failed registration) that ended it.
    fn connection_lost(&mut self, err: Option<io::Error>) {
        let _ = err;
    }

    /// The transport's write buffer went above its high-water mark: stop sending for a while.
    fn pause_writing(&mut self) {}

    /// The transport's write buffer drained to its low-water mark: sending may resume.
    fn resume_writing(&mut self) {}
}
