//! Helpers of the `streams_*` tests: a stream whose other end is a plain blocking socket the
//! test drives by hand (asyncio's tests feed a `StreamReader` directly; ours go through a real
//! connection).

use std::future::poll_fn;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::task::Poll;
use std::thread;
use std::time::Duration;

use evloop_net::{ConnectOptions, StreamReader, StreamWriter, open_connection};

/// A stream to a blocking peer: the reader, the writer, and the peer's socket (reads time out
/// after 10 s, so that a broken test fails instead of hanging).
pub async fn stream_to_peer(
    limit: Option<usize>,
) -> io::Result<(StreamReader, StreamWriter, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (reader, writer) =
        open_connection(ConnectOptions::new().host("127.0.0.1").port(port), limit).await?;
    // The handshake is done: the connection waits in the accept queue, so this does not block.
    let (peer, _) = listener.accept()?;
    peer.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok((reader, writer, peer))
}

/// Writes `chunks` to `peer` from another thread, 20 ms apart, so that each arrives on its
/// own; then, if `eof`, shuts the peer's writing side.
pub fn feed_later(peer: &TcpStream, chunks: &[&[u8]], eof: bool) -> io::Result<()> {
    let mut peer = peer.try_clone()?;
    let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
    thread::spawn(move || {
        for chunk in chunks {
            thread::sleep(Duration::from_millis(20));
            if peer.write_all(&chunk).is_err() {
                return;
            }
        }
        if eof {
            let _ = peer.shutdown(std::net::Shutdown::Write);
        }
    });
    Ok(())
}

/// Resets the connection: `SO_LINGER` 0, then close.
pub fn reset(peer: TcpStream) -> io::Result<()> {
    socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
    drop(peer);
    Ok(())
}

/// How long a test's body may wait: a read or drain that would wait forever fails the test
/// with `TimedOut` instead of hanging it.
pub const TEST_LIMIT_SECS: f64 = 30.0;

/// Runs `fut` on a new loop with `evloop_exec::run`, folding its error in, bounded by
/// [`TEST_LIMIT_SECS`].
pub fn run<T: 'static>(fut: impl Future<Output = io::Result<T>> + 'static) -> io::Result<T> {
    evloop_exec::run(within(TEST_LIMIT_SECS, fut))?
}

/// `fut`'s output, or `TimedOut` after `secs`.
pub async fn within<T>(secs: f64, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let mut fut = pin!(fut);
    let mut timer = pin!(evloop_task::sleep(secs));
    // The timer first: its wake-up must not poll `fut` into noticing what it was never woken
    // for (a missing wake-up is what this catches).
    poll_fn(|cx| {
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still waiting after {secs} s"),
            )));
        }
        fut.as_mut().poll(cx)
    })
    .await
}

/// The partial bytes of an `IncompleteReadError` inside `err`, if that is what it is.
pub fn partial_of(err: &io::Error) -> Option<(Vec<u8>, Option<usize>)> {
    let inner = err
        .get_ref()?
        .downcast_ref::<evloop_net::IncompleteReadError>()?;
    Some((inner.partial().to_vec(), inner.expected()))
}

/// The `consumed` of a `LimitOverrunError` inside `err`, if that is what it is.
pub fn overrun_of(err: &io::Error) -> Option<usize> {
    let inner = err
        .get_ref()?
        .downcast_ref::<evloop_net::LimitOverrunError>()?;
    Some(inner.consumed())
}
