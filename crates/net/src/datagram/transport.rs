//! [`DatagramTransport`]: asyncio's `DatagramTransport`, the handle through which a datagram
//! endpoint is used.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use evloop_sched::EventLoop;
use socket2::{SockAddr, SockRef, Socket};

use super::DatagramProtocol;
use super::endpoint::{Endpoint, LOG_THRESHOLD_FOR_DROPPED_SENDS};
use crate::ExtraInfo;
use crate::address::Address;
use crate::limits::water_marks;
use evloop_sched::log_report;
use log::Level;

/// A datagram endpoint (UDP or `AF_UNIX` `SOCK_DGRAM`), made by
/// [`create_datagram_endpoint`](crate::LoopDatagramExt::create_datagram_endpoint): asyncio's
/// `DatagramTransport`.
///
/// Clones are cheap (an `Rc` inside) and share the endpoint; it is `!Send`, like the loop.
/// Reads are driven by the loop: one `recvfrom` per readiness event into the loop's shared
/// read buffer, handed to [`DatagramProtocol::datagram_received`].
///
/// # Examples
///
/// ```
/// use std::net::{SocketAddr, UdpSocket};
/// use evloop::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// struct Quiet;
/// impl DatagramProtocol for Quiet {}
///
/// let lp = EventLoop::new()?;
/// let peer = UdpSocket::bind("127.0.0.1:0")?;
/// let options = DatagramOptions::new().remote_socket_addr(peer.local_addr()?);
/// let (transport, _protocol) =
///     lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, options))??;
/// transport.sendto(b"hello", None)?;
/// let mut buf = [0; 16];
/// let (n, from) = peer.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// assert_eq!(Some(from), transport.sockname().and_then(|a| a.as_socket()));
/// transport.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DatagramTransport {
    ep: Rc<Endpoint>,
}

impl DatagramTransport {
    /// A fresh transport on the non-blocking `sock`; the reader starts with [`start`].
    ///
    /// [`start`]: DatagramTransport::start
    pub(super) fn new(
        lp: &EventLoop,
        sock: Socket,
        remote: Option<SockAddr>,
        protocol: Rc<RefCell<dyn DatagramProtocol>>,
        protocol_name: &'static str,
    ) -> io::Result<DatagramTransport> {
        let ep = Rc::new(Endpoint::new(lp, sock, remote, protocol, protocol_name)?);
        ep.register();
        Ok(DatagramTransport { ep })
    }

    pub(super) fn from_endpoint(ep: &Rc<Endpoint>) -> DatagramTransport {
        DatagramTransport { ep: ep.clone() }
    }

    /// Schedules `connection_made`, then the reader, then `done(still_open)`, all on the next
    /// iteration (never inline).
    pub(super) fn start(&self, done: impl FnOnce(bool) + 'static) -> io::Result<()> {
        let ep = self.ep.clone();
        self.ep.lp.call_soon(move || {
            ep.deliver(super::dispatch::Call::ConnectionMade);
            if !ep.closing.get() {
                if let Err(err) = ep.start_reading() {
                    ep.force_close(Some(err));
                }
            }
            done(!ep.closing.get());
        })?;
        Ok(())
    }

    /// asyncio's `sendto(data, addr)`: sends `data` as one datagram to `addr`, or to the
    /// endpoint's remote address when `addr` is `None`.
    ///
    /// When nothing is buffered the datagram goes to the socket in this call. If the send
    /// would block, a copy is buffered and sent when the socket is writable (see
    /// [`set_write_buffer_limits`](DatagramTransport::set_write_buffer_limits) for flow
    /// control). An OS error of the send (`ConnectionRefused` after an ICMP "port
    /// unreachable", `EMSGSIZE`…) goes to [`DatagramProtocol::error_received`] and is not
    /// fatal. Once the transport is closing the datagram is dropped and counted; from the
    /// fifth dropped send on, each one is logged at warning level.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` "sendto: invalid address: must be None or …" if the endpoint has a
    ///   remote address and `addr` is another one (asyncio's `ValueError`);
    /// - `InvalidInput` "sendto: no address given …" if the endpoint has no remote address
    ///   and `addr` is `None`. asyncio lets the socket call fail with a `TypeError` that kills
    ///   the endpoint; evloop returns the error and the endpoint stays open;
    /// - the loop's closed error (as an `io::Error`) if the send would block on a closed loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use evloop::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    ///
    /// let lp = EventLoop::new()?;
    /// let peer = UdpSocket::bind("127.0.0.1:0")?;
    /// let options = DatagramOptions::new().local_addr("127.0.0.1", 0);
    /// let (transport, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, options))??;
    /// let err = transport.sendto(b"where to?", None).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// transport.sendto(b"", Some(&peer.local_addr()?.into()))?;
    /// let mut buf = [0; 4];
    /// assert_eq!(peer.recv(&mut buf)?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sendto(&self, data: &[u8], addr: Option<&SockAddr>) -> io::Result<()> {
        let ep = &self.ep;
        let to = self.destination(addr)?;
        if ep.closing.get() {
            let dropped = ep.dropped_sends.get() + 1;
            ep.dropped_sends.set(dropped);
            if dropped >= LOG_THRESHOLD_FOR_DROPPED_SENDS {
                log_report(
                    Level::Warn,
                    &format!(
                        "sendto() on a closed datagram transport: datagram dropped ({dropped} so far)"
                    ),
                );
            }
            return Ok(());
        }
        if ep.buffer.borrow().is_empty() {
            match ep.send_now(data, to) {
                Ok(()) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => {
                    ep.deliver(super::dispatch::Call::Error(err));
                    return Ok(());
                }
            }
        }
        ep.buffer_datagram(data, to)
    }

    /// Where a datagram goes: `None` for the connected peer (sent with `send`), or the address.
    fn destination<'a>(&'a self, addr: Option<&'a SockAddr>) -> io::Result<Option<&'a SockAddr>> {
        let ep = &self.ep;
        let to = match (&ep.remote, addr) {
            (Some(remote), Some(addr)) if !same_addr(remote, addr) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "sendto: invalid address: must be None or {}",
                        describe_addr(remote)
                    ),
                ));
            }
            (Some(remote), _) => remote,
            (None, Some(addr)) => addr,
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "sendto: no address given and the endpoint has no remote address",
                ));
            }
        };
        Ok(if ep.connected { None } else { Some(to) })
    }

    /// asyncio's `close()`: stops receiving at once; datagrams already buffered are still
    /// sent, then [`DatagramProtocol::connection_lost`] is called with `None` on a later
    /// iteration, and the socket is closed. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    ///
    /// let lp = EventLoop::new()?;
    /// let options = DatagramOptions::new().local_addr("127.0.0.1", 0);
    /// let (transport, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, options))??;
    /// transport.close();
    /// assert!(transport.is_closing());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.ep.close();
    }

    /// asyncio's `abort()`: closes at once, dropping the buffered datagrams;
    /// [`DatagramProtocol::connection_lost`] is called with `None` on the next iteration,
    /// never inside this call.
    pub fn abort(&self) {
        self.ep.force_close(None);
    }

    /// True once [`close`](DatagramTransport::close) or
    /// [`abort`](DatagramTransport::abort) was called, or the endpoint failed.
    pub fn is_closing(&self) -> bool {
        self.ep.closing.get()
    }

    /// The connected peer's address (`get_extra_info('peername')`), or `None` for an endpoint
    /// that is not connected (a server, or one made with `allow_broadcast`).
    pub fn peername(&self) -> Option<Address> {
        self.ep.peername.clone().map(Address::from)
    }

    /// The socket's own address (`get_extra_info('sockname')`).
    pub fn sockname(&self) -> Option<Address> {
        self.ep.sockname.clone().map(Address::from)
    }

    /// asyncio's `get_extra_info(name)`: `"peername"` (a connected endpoint's peer),
    /// `"sockname"` and `"socket"` (the fd, owned by the transport; `None` once it is
    /// closed); `None` for any other name or when the value is unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{DatagramOptions, DatagramProtocol, ExtraInfo, LoopDatagramExt};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    ///
    /// let lp = EventLoop::new()?;
    /// let options = DatagramOptions::new().local_addr("127.0.0.1", 0);
    /// let (transport, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, options))??;
    /// let Some(ExtraInfo::Addr(addr)) = transport.get_extra_info("sockname") else {
    ///     panic!("a bound endpoint has a sockname");
    /// };
    /// assert!(addr.as_socket().is_some_and(|a| a.ip().is_loopback()));
    /// assert!(transport.get_extra_info("peername").is_none(), "not connected");
    /// assert!(matches!(transport.get_extra_info("socket"), Some(ExtraInfo::Fd(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => self.peername().map(ExtraInfo::Addr),
            "sockname" => self.sockname().map(ExtraInfo::Addr),
            "socket" => self.ep.socket().map(|sock| ExtraInfo::Fd(sock.as_raw_fd())),
            _ => None,
        }
    }

    /// Runs `f` with the socket (`get_extra_info('socket')`), for options this API does not
    /// cover; `None` once the transport is closed and its socket released. Do not read from
    /// or close the socket behind the transport's back.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    ///
    /// let lp = EventLoop::new()?;
    /// let options = DatagramOptions::new().local_addr("127.0.0.1", 0);
    /// let (transport, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, options))??;
    /// assert_eq!(transport.with_socket(|s| s.broadcast().ok()), Some(Some(false)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_socket<R>(&self, f: impl FnOnce(SockRef<'_>) -> R) -> Option<R> {
        let sock = self.ep.socket()?;
        Some(f(SockRef::from(&*sock)))
    }

    /// The number of bytes waiting to be sent: payloads plus 8 bytes per datagram (a UDP
    /// header, as asyncio counts them).
    pub fn get_write_buffer_size(&self) -> usize {
        self.ep.buffer_size.get()
    }

    /// asyncio's `set_write_buffer_limits(high, low)`: [`DatagramProtocol::pause_writing`] is
    /// called once when the write buffer goes strictly above `high`, and
    /// [`DatagramProtocol::resume_writing`] once when it drains to `low` or below. `high`
    /// defaults to 64 KiB (or `4 * low` when only `low` is given), `low` to `high / 4`.
    /// Lowering `high` below what is buffered pauses at once.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` "high (…) must be >= low (…)" if `low` is above `high`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
    /// use evloop::EventLoop;
    /// use evloop::LoopTaskExt;
    ///
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    ///
    /// let lp = EventLoop::new()?;
    /// let options = DatagramOptions::new().local_addr("127.0.0.1", 0);
    /// let (transport, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, options))??;
    /// assert_eq!(transport.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    /// transport.set_write_buffer_limits(Some(1000), None)?;
    /// assert_eq!(transport.get_write_buffer_limits(), (250, 1000));
    /// assert!(transport.set_write_buffer_limits(Some(10), Some(20)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.ep.limits.set(water_marks(high, low)?);
        self.ep.maybe_pause();
        Ok(())
    }

    /// The write buffer's `(low, high)` water marks, as asyncio's
    /// `get_write_buffer_limits()`.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.ep.limits.get()
    }

    /// The loop this transport runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.ep.lp.clone()
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = &self.ep;
        let state = if ep.sock.try_borrow().is_ok_and(|s| s.is_none()) {
            "closed"
        } else if ep.closing.get() {
            "closing"
        } else {
            "open"
        };
        f.debug_struct("DatagramTransport")
            .field("fd", &ep.fd)
            .field("state", &state)
            .field("sockname", &ep.sockname.as_ref().map(describe_addr))
            .field("peername", &ep.peername.as_ref().map(describe_addr))
            .field("write_buffer_size", &ep.buffer_size.get())
            .finish()
    }
}

/// Address equality that ignores what `SocketAddr` ignores (padding bytes); for non-IP
/// addresses, the raw bytes.
pub(super) fn same_addr(a: &SockAddr, b: &SockAddr) -> bool {
    match (a.as_socket(), b.as_socket()) {
        (Some(a), Some(b)) => a == b,
        (None, None) => a == b,
        _ => false,
    }
}

/// An address as people write it: `127.0.0.1:9`, `[::1]:9`, a path, or `<unnamed>`.
pub(super) fn describe_addr(addr: &SockAddr) -> String {
    if let Some(inet) = addr.as_socket() {
        inet.to_string()
    } else if let Some(path) = addr.as_pathname() {
        path.display().to_string()
    } else if let Some(name) = addr.as_abstract_namespace() {
        format!("@{}", String::from_utf8_lossy(name))
    } else {
        "<unnamed>".to_owned()
    }
}
