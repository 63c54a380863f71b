//! [`LoopDatagramExt`]: `create_datagram_endpoint` as a loop method, on
//! `evloop_sched::EventLoop`.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::rc::Rc;

use evloop_sched::EventLoop;

use super::create::create_endpoint;
use super::{DatagramOptions, DatagramProtocol, DatagramTransport};

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// asyncio's `loop.create_datagram_endpoint` on [`EventLoop`].
pub trait LoopDatagramExt: sealed::Sealed {
    /// Opens a datagram endpoint (UDP, or `AF_UNIX` `SOCK_DGRAM`) as `options` describe, makes
    /// its protocol with `factory`, and returns the transport and the protocol once
    /// [`DatagramProtocol::connection_made`] has run. `connection_made` is scheduled with
    /// `call_soon`, never called inside this future's poll directly.
    ///
    /// The future holds a clone of the loop and nothing borrowed, so it can be spawned as a
    /// task. Dropping it before it completes closes the endpoint.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` naming the argument for options that do not make sense together
    ///   (see [`DatagramOptions`]): no address and no family ("unexpected address family"),
    ///   a `sock` that is not a datagram socket ("A datagram socket was expected"), `sock`
    ///   with any other option, local and remote addresses (or `family`) of different
    ///   families;
    /// - the resolver's failure (an `io::Error` wrapping `evloop_exec::ResolveError`);
    /// - the OS error of creating, binding or connecting the socket (`AddrInUse`,
    ///   `ConnectionRefused` for a Unix path nobody listens on…), from the first address
    ///   tried when every one failed;
    /// - the loop's closed error (as an `io::Error`);
    /// - an `Other` error if the protocol closed the endpoint inside `connection_made`.
    ///
    /// A panic in `connection_made` is not an error of this call: as in asyncio (where
    /// `connection_made` is a `call_soon` callback), it goes to the exception handler as
    /// `Exception in callback DatagramProtocol::connection_made()` and the endpoint is
    /// returned, open.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use evloop::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    /// use evloop::socket2::SockAddr;
    ///
    /// #[derive(Default)]
    /// struct Collect(Vec<Vec<u8>>);
    /// impl DatagramProtocol for Collect {
    ///     fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
    ///         self.0.push(data.to_vec());
    ///     }
    /// }
    ///
    /// let lp = EventLoop::new()?;
    /// let options = DatagramOptions::new().local_addr("127.0.0.1", 0);
    /// let (transport, protocol) =
    ///     lp.run_until_complete(lp.create_datagram_endpoint(Collect::default, options))??;
    /// let addr = transport.sockname().and_then(|a| a.as_socket()).ok_or("no address")?;
    /// UdpSocket::bind("127.0.0.1:0")?.send_to(b"ping", addr)?;
    /// // The datagram is already queued on loopback: a few iterations bring it in.
    /// while protocol.borrow().0.is_empty() {
    ///     lp.run_until_complete(evloop::sleep(std::time::Duration::ZERO))??;
    /// }
    /// assert_eq!(protocol.borrow().0, [b"ping".to_vec()]);
    /// transport.close();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        options: DatagramOptions,
    ) -> impl Future<Output = io::Result<(DatagramTransport, Rc<RefCell<P>>)>> + 'static;
}

impl LoopDatagramExt for EventLoop {
    fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        options: DatagramOptions,
    ) -> impl Future<Output = io::Result<(DatagramTransport, Rc<RefCell<P>>)>> + 'static {
        create_endpoint(self.clone(), factory, options)
    }
}
