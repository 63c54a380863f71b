//! Streams: asyncio's `open_connection`, `start_server`, `open_unix_connection` and
//! `start_unix_server`, which hand out a [`StreamReader`] and a [`StreamWriter`] instead of
//! driving a [`Protocol`](crate::Protocol).
//!
//! They are built on the public transport API only: a stream is a transport whose protocol
//! ([`shared::StreamProtocol`], asyncio's `StreamReaderProtocol`) appends what arrives to a
//! buffer the reader takes from, and records flow control and the connection's end for the
//! writer. The connection and server options are the transport methods' own
//! ([`ConnectOptions`], [`ServerOptions`], [`UnixServerOptions`]), so every option of those
//! methods works here unchanged.
//!
//! The functions use the running loop (as asyncio's): await them in a task.

mod error;
mod reader;
mod shared;
mod writer;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::path::Path;
use std::rc::Rc;

use evloop_sched::get_running_loop;

pub use error::{IncompleteReadError, LimitOverrunError};
pub use reader::StreamReader;
pub use writer::StreamWriter;

use crate::open::{ConnectOptions, ServerOptions, UnixServerOptions};
use crate::server::Server;
use crate::stream_ext::LoopStreamExt;
use shared::{ClientCallback, ClientTask};
// The subprocess streams (`Process`) feed the same state from the pipes' events.
pub(crate) use shared::{Shared, StreamProtocol};

/// The reader's default limit, 64 KiB (asyncio's `_DEFAULT_LIMIT`).
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// `limit` or the default; zero is refused, as asyncio refuses `limit <= 0`.
pub(crate) fn check_limit(limit: Option<usize>) -> io::Result<usize> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "limit cannot be <= 0",
        )),
        Some(n) => Ok(n),
    }
}

/// Opens a TCP connection and returns its reader and writer (asyncio's `open_connection`):
/// `options` are [`create_connection`](LoopStreamExt::create_connection)'s, `limit` the
/// reader's (`None`: [`DEFAULT_LIMIT`]).
///
/// # Errors
///
/// - `InvalidInput` "limit cannot be <= 0" for `Some(0)`;
/// - the loop's not-running error outside the loop;
/// - what `create_connection` returns (resolution, connect errors).
///
/// # Examples
///
/// See [`StreamReader`].
pub async fn open_connection(
    options: ConnectOptions,
    limit: Option<usize>,
) -> io::Result<(StreamReader, StreamWriter)> {
    let limit = check_limit(limit)?;
    let lp = get_running_loop()?;
    let shared = Shared::new(limit);
    let s2 = shared.clone();
    let (transport, _) = lp
        .create_connection(move || StreamProtocol::new(s2), options)
        .await?;
    Ok((
        StreamReader::new(shared.clone()),
        StreamWriter::new(transport, shared),
    ))
}

/// Connects to the Unix stream socket at `path` and returns its reader and writer (asyncio's
/// `open_unix_connection`).
///
/// # Errors
///
/// As [`open_connection`], with [`create_unix_connection`](LoopStreamExt::create_unix_connection)'s
/// errors (`NotFound`, `ConnectionRefused`).
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
    limit: Option<usize>,
) -> io::Result<(StreamReader, StreamWriter)> {
    let limit = check_limit(limit)?;
    let lp = get_running_loop()?;
    let shared = Shared::new(limit);
    let s2 = shared.clone();
    let (transport, _) = lp
        .create_unix_connection(move || StreamProtocol::new(s2), path)
        .await?;
    Ok((
        StreamReader::new(shared.clone()),
        StreamWriter::new(transport, shared),
    ))
}

/// Wraps a client callback so the server can share it between connections.
fn client_callback<F, Fut>(mut client_connected_cb: F) -> ClientCallback
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    Rc::new(RefCell::new(move |r, w| -> ClientTask {
        Box::pin(client_connected_cb(r, w))
    }))
}

/// Starts a TCP server whose every connection runs `client_connected_cb(reader, writer)` as a
/// task of its own (asyncio's `start_server`); returns the [`Server`].
///
/// `options` are [`create_server`](LoopStreamExt::create_server)'s, `limit` the readers'. A
/// callback that returns an error, panics or is cancelled has its connection closed, the
/// first two reported to the exception handler ("Unhandled exception in client_connected_cb",
/// with the keys `exception` and `transport`), as asyncio 3.12+ does. One that returns `Ok`
/// leaves the connection as it is; dropping the writer closes it.
///
/// # Errors
///
/// - `InvalidInput` "limit cannot be <= 0" for `Some(0)`;
/// - the loop's not-running error outside the loop;
/// - what `create_server` returns (resolution, bind errors).
///
/// # Examples
///
/// See [`StreamReader`].
pub async fn start_server<F, Fut>(
    client_connected_cb: F,
    options: ServerOptions,
    limit: Option<usize>,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let limit = check_limit(limit)?;
    let lp = get_running_loop()?;
    let client = client_callback(client_connected_cb);
    let l2 = lp.clone();
    lp.create_server(
        move || StreamProtocol::with_client(Shared::new(limit), l2.clone(), client.clone()),
        options,
    )
    .await
}

/// Starts a Unix stream server on `path` whose every connection runs `client_connected_cb`
/// (asyncio's `start_unix_server`); as [`start_server`] otherwise.
///
/// # Errors
///
/// As [`start_server`], with [`create_unix_server`](LoopStreamExt::create_unix_server)'s errors.
pub async fn start_unix_server<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
    options: UnixServerOptions,
    limit: Option<usize>,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let limit = check_limit(limit)?;
    let lp = get_running_loop()?;
    let client = client_callback(client_connected_cb);
    let l2 = lp.clone();
    lp.create_unix_server(
        move || StreamProtocol::with_client(Shared::new(limit), l2.clone(), client.clone()),
        path,
        options,
    )
    .await
}
