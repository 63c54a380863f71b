//! evloop-net is floor 5 of evloop: networking, as asyncio's. It depends only on
//! `evloop-sched` (floor 2), `evloop-task` (floor 3) and `evloop-exec` (floor 4, to resolve
//! host names off the loop), plus `socket2`, `libc`, `futures-io` and `rustls` (re-exported:
//! its configurations are in the API); it must never know about the facade crate `evloop`,
//! which re-exports it. Most users want that facade, whose prelude brings the extension traits
//! in scope. It owns:
//!
//! - the low-level socket operations (`sock_recv`, `sock_recv_into`, `sock_sendall`,
//!   `sock_connect`, `sock_accept`, `sock_sendto`, `sock_recvfrom`, `sock_recvfrom_into`) on
//!   non-blocking [`socket2::Socket`]s, as the extension trait [`LoopSockExt`];
//! - stream transports and [`Protocol`] (TCP, Unix sockets, pipes), `create_connection` with
//!   Happy Eyeballs, `create_server` and [`Server`], as [`LoopStreamExt`]; datagram endpoints
//!   as [`LoopDatagramExt`];
//! - TLS between a socket transport and its protocol (`ssl`, `start_tls`, on rustls);
//! - streams ([`open_connection`], [`start_server`], [`StreamReader`], [`StreamWriter`]),
//!   which implement the `futures-io` traits;
//! - subprocesses ([`LoopProcessExt`], [`SubprocessTransport`], [`Process`]);
//! - one loop per core ([`LoopGroup`]): N loops on threads of their own, typically each
//!   serving one port with `reuse_port`, stopped together from any thread;
//! - `sendfile(2)` to a socket or a transport, with a read-and-write fallback
//!   ([`LoopSendfileExt`]: `sock_sendfile`, `sendfile`).
//!
//! # How a `sock_*` operation runs
//!
//! Each operation is a named future borrowing the socket. Its first poll tries the syscall, so
//! a ready socket costs no registration; on `WouldBlock` it watches the fd with `add_reader` or
//! `add_writer` until it completes or is dropped. A dropped (cancelled) operation has consumed
//! no data and leaves no reader or writer behind. One receive (or accept) and one send (or
//! connect) may be pending per socket at a time; a second one fails with `ResourceBusy`.
//!
//! # Threads
//!
//! The futures are `!Send`, like the loop: they run in tasks on the loop's thread.

mod accept;
mod address;
mod connect;
mod datagram;
mod ext;
mod given;
mod limits;
mod multicore;
mod open;
mod process;
mod protocol;
mod readbuf;
mod readiness;
mod recv;
mod registry;
mod send;
mod sendfile;
mod server;
mod stream_ext;
mod streams;
mod tls;
mod transport;

pub use accept::SockAccept;
pub use address::Address;
pub use connect::SockConnect;
pub use datagram::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
pub use ext::LoopSockExt;
pub use multicore::{GroupError, GroupStopper, LoopFailure, LoopGroup, LoopGroupOptions, LoopSeat};
pub use open::{
    AcceptedOptions, ConnectErrors, ConnectOptions, HostPort, ServerOptions, UnixConnectOptions,
    UnixServerOptions,
};
pub use process::{
    Communicated, LoopProcessExt, Process, ProcessOptions, ProcessStdio, SHELL,
    SubprocessConnection, SubprocessProtocol, SubprocessTransport,
};
pub use protocol::Protocol;
pub use recv::{SockRecv, SockRecvInto, SockRecvfrom, SockRecvfromInto};
pub use rustls;
pub use send::{SockSendall, SockSendto};
pub use sendfile::{LoopSendfileExt, Sendfile, SendfileNotAvailableError, SockSendfile};
pub use server::{ServeForever, Server, ServerSocket, WaitClosed};
pub use socket2;
pub use stream_ext::{Connection, LoopStreamExt};
pub use streams::{
    DEFAULT_LIMIT, IncompleteReadError, LimitOverrunError, StreamReader, StreamWriter,
    open_connection, open_unix_connection, start_server, start_unix_server,
};
pub use tls::{StartTlsOptions, TlsConfig, TlsSession};
pub use transport::{ExtraInfo, Transport, TransportInfo};
