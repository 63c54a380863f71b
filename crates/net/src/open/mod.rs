//! Opening sockets before a transport exists: the connected socket of `create_connection`
//! (every address tried, or raced by Happy Eyeballs), the listening sockets of
//! `create_server`, and their Unix counterparts.
//!
//! The option builders ([`ConnectOptions`], [`ServerOptions`], [`UnixServerOptions`]) are
//! public; the functions that consume them are crate-internal and called by the `create_*`
//! methods, which wrap the socket in a transport or a `Server`.

mod common;
mod connect;
mod errors;
mod listen;
mod options;
mod race;
mod unix;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_connect;
#[cfg(test)]
mod tests_listen;
#[cfg(test)]
mod tests_unix;

pub use errors::ConnectErrors;
pub use options::{
    AcceptedOptions, ConnectOptions, HostPort, ServerOptions, UnixConnectOptions, UnixServerOptions,
};

pub(crate) use common::{expect_stream, invalid, set_nodelay_if_tcp};
pub(crate) use connect::open_connection;
pub(crate) use listen::{listen_backlog, open_listeners};
pub(crate) use unix::{UnixSocketFile, open_unix_connection, open_unix_listener};
