//! Datagram endpoints: `create_datagram_endpoint`, [`DatagramProtocol`],
//! [`DatagramTransport`] and [`DatagramOptions`], for UDP and `AF_UNIX` `SOCK_DGRAM` sockets.
//!
//! One file per concept: the protocol trait, the public transport handle, the endpoint state
//! behind it (socket, write buffer, reader and writer), the calls into the protocol
//! (`dispatch`: never while it is borrowed, panics contained), the water marks, the loop's
//! registry of open endpoints (released when the loop closes), the options and their
//! validation, the opening of the socket, and the loop extension trait.

mod create;
mod dispatch;
mod endpoint;
mod ext;
mod options;
mod protocol;
mod transport;

pub use ext::LoopDatagramExt;
pub use options::DatagramOptions;
pub use protocol::DatagramProtocol;
pub use transport::DatagramTransport;
