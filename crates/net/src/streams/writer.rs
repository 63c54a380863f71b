//! [`StreamWriter`]: asyncio's `StreamWriter`, and `futures_io::AsyncWrite` on it.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::shared::{Shared, StreamProtocol};
use crate::stream_ext::LoopStreamExt;
use crate::tls::{StartTlsOptions, TlsConfig};
use crate::transport::{ExtraInfo, Transport};

/// The writing half of a stream connection (asyncio's `StreamWriter`): it wraps the
/// [`Transport`] and adds [`drain`](StreamWriter::drain), which waits while the transport's
/// write buffer is above its high-water mark.
///
/// The idiom is asyncio's: `writer.write(data); writer.drain().await?;`. `write` itself never
/// waits (what the kernel does not take is buffered). It also implements
/// `futures_io::AsyncWrite`: there `poll_write` waits while writing is paused (so a copy
/// loop buffers at most the high-water mark plus one chunk), `poll_flush` is `drain`, and
/// `poll_close` is `close` then `wait_closed`. Method calls find the inherent (asyncio)
/// `close` before `AsyncWriteExt::close`: spell that one `AsyncWriteExt::close(&mut writer)`.
///
/// Dropping the writer closes the transport if it is still open, as asyncio 3.13's
/// `StreamWriter.__del__` does (without its `ResourceWarning`); the buffered bytes are still
/// sent.
///
/// [`start_tls`](StreamWriter::start_tls) upgrades the connection to TLS in place, as
/// asyncio's `StreamWriter.start_tls`: the reader and the writer carry on over the new layer.
///
/// # Examples
///
/// See [`StreamReader`](crate::StreamReader).
pub struct StreamWriter {
    transport: Transport,
    shared: Rc<Shared>,
}

impl StreamWriter {
    pub(crate) fn new(transport: Transport, shared: Rc<Shared>) -> StreamWriter {
        StreamWriter { transport, shared }
    }

    /// Upgrades the connection to TLS (asyncio's `StreamWriter.start_tls`, a STARTTLS-style
    /// upgrade): the handshake runs on the connection's socket, then this writer and its
    /// [`StreamReader`](crate::StreamReader) go on over the TLS layer. `config`'s variant is
    /// the side: [`TlsConfig::Client`] on the connecting end, [`TlsConfig::Server`] on the
    /// accepting one. Bytes the reader had already received stay readable as they were.
    ///
    /// # Errors
    ///
    /// As [`LoopStreamExt::start_tls`]: `InvalidInput` for a connection that is already TLS,
    /// a pipe or a closing one, or a client configuration without a server name; the
    /// handshake's error (the reader then fails with it too).
    ///
    /// # Examples
    ///
    /// See `crates/net/tests/tls_streams.rs`, which upgrades a plain stream both ways.
    pub async fn start_tls(
        &mut self,
        config: TlsConfig,
        options: StartTlsOptions,
    ) -> io::Result<()> {
        let lp = self.transport.get_loop();
        // A protocol of its own on the same shared state: the TLS layer calls its
        // `connection_made` with the new transport, which the reader then pauses and resumes.
        let protocol = Rc::new(std::cell::RefCell::new(StreamProtocol::new(
            self.shared.clone(),
        )));
        let upgraded = lp
            .start_tls(&self.transport, protocol, config, options)
            .await?;
        self.transport = upgraded;
        Ok(())
    }

    /// The transport underneath (asyncio's `transport` property).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Writes `data` (sent at once when nothing is buffered); never waits. Follow it with
    /// [`drain`](StreamWriter::drain) to respect flow control.
    pub fn write(&self, data: &[u8]) {
        self.transport.write(data);
    }

    /// Writes several buffers in order (in one vectored syscall when nothing is buffered).
    pub fn writelines(&self, bufs: &[&[u8]]) {
        self.transport.writelines(bufs);
    }

    /// Closes the writing side once the buffer is sent; reading goes on (asyncio's
    /// `write_eof`).
    pub fn write_eof(&self) {
        self.transport.write_eof();
    }

    /// Whether [`write_eof`](StreamWriter::write_eof) is supported (true on sockets).
    pub fn can_write_eof(&self) -> bool {
        self.transport.can_write_eof()
    }

    /// Closes the stream: the buffered bytes are still sent, then the connection ends. Await
    /// [`wait_closed`](StreamWriter::wait_closed) to know when.
    pub fn close(&self) {
        self.transport.close();
    }

    /// Whether the stream is closing or closed (by [`close`](StreamWriter::close), the peer,
    /// or an error).
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    /// asyncio's `get_extra_info`: the transport's (see [`Transport::get_extra_info`]).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.transport.get_extra_info(name)
    }

    /// Completes once the connection is gone (`connection_lost` ran): at once if it already
    /// is. Call [`close`](StreamWriter::close) first to close it yourself.
    ///
    /// # Errors
    ///
    /// The error that ended the connection, if one did (a reset, a broken pipe).
    pub async fn wait_closed(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Waits until the write buffer is at or below its low-water mark, if it went above the
    /// high one (asyncio's `drain`); completes at once otherwise. On a closing transport it
    /// first lets one loop iteration run, so that a write loop on a failed connection sees
    /// the failure.
    ///
    /// # Errors
    ///
    /// - The connection's error, once it failed (the peer reset it, a broken pipe): `drain`
    ///   never waits forever on a connection the peer closed.
    /// - `ConnectionReset` "Connection lost" once the connection is gone.
    pub async fn drain(&self) -> io::Result<()> {
        if let Some(err) = self.shared.error() {
            return Err(err);
        }
        if self.transport.is_closing() {
            // asyncio's `await sleep(0)`: lets a scheduled `connection_lost` run.
            YieldNow(false).await;
        }
        if self.shared.lost().is_some() {
            return Err(connection_lost());
        }
        poll_fn(|cx| self.poll_drained(cx)).await
    }

    /// Ready once writing is not paused, or with the outcome of `connection_lost` if it came
    /// while waiting (asyncio's drain waiters get `None` or the exception).
    fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(outcome) = self.shared.lost() {
            return Poll::Ready(outcome);
        }
        if !self.is_write_paused() {
            return Poll::Ready(Ok(()));
        }
        self.shared.add_drain_waiter(cx.waker());
        Poll::Pending
    }

    /// Whether writing is paused: the protocol was told so, or the transport says so now. The
    /// transport's word counts for a stream whose protocol hears of the pause on a later
    /// callback (a child's stdin, whose pipe events the subprocess transport delivers in
    /// order, one callback each), so that a `drain` right after a big write waits. Either
    /// way a `resume_writing` (or `connection_lost`) follows and wakes the waiters.
    fn is_write_paused(&self) -> bool {
        self.shared.is_write_paused() || self.transport.is_writing_paused()
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(outcome) = self.shared.lost() {
            return Poll::Ready(outcome);
        }
        self.shared.add_close_waiter(cx.waker());
        Poll::Pending
    }

    /// The error a write or flush on a stream that is gone or closing gets.
    fn check_open(&self) -> io::Result<()> {
        if let Some(err) = self.shared.error() {
            return Err(err);
        }
        if self.shared.lost().is_some() {
            return Err(connection_lost());
        }
        if self.transport.is_closing() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream writer is closing",
            ));
        }
        Ok(())
    }
}

fn connection_lost() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "Connection lost")
}

/// Pending once, then ready: one step of the task goes by (asyncio's `sleep(0)`).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl futures_io::AsyncWrite for StreamWriter {
    /// Writes all of `buf` (the transport buffers what the kernel does not take), after
    /// waiting while writing is paused.
    ///
    /// An error once the connection failed or is gone, or once it is closing.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_open()?;
        if self.is_write_paused() {
            self.shared.add_drain_waiter(cx.waker());
            return Poll::Pending;
        }
        self.transport.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// [`drain`](StreamWriter::drain).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(err) = self.shared.error() {
            return Poll::Ready(Err(err));
        }
        if self.shared.lost().is_some() {
            return Poll::Ready(Err(connection_lost()));
        }
        self.poll_drained(cx)
    }

    /// [`close`](StreamWriter::close), then [`wait_closed`](StreamWriter::wait_closed).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.transport.close();
        self.poll_closed(cx)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if !self.transport.is_closing() {
            self.transport.close();
        }
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}
