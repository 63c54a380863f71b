//! [`StreamReader`]: asyncio's `StreamReader`, and the `futures-io` read traits on it.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use super::error::{IncompleteReadError, LimitOverrunError};
use super::shared::Shared;

/// The reading half of a stream connection (asyncio's `StreamReader`), made by
/// [`open_connection`](crate::open_connection) and friends or handed to a
/// [`start_server`](crate::start_server) callback.
///
/// The methods are asyncio's: [`read`](StreamReader::read) (and
/// [`read_all`](StreamReader::read_all) for asyncio's `read()` / `read(-1)`),
/// [`readline`](StreamReader::readline), [`readexactly`](StreamReader::readexactly),
/// [`readuntil`](StreamReader::readuntil), [`at_eof`](StreamReader::at_eof). They take
/// `&mut self`, so two reads can never wait on one reader at once (asyncio raises
/// `RuntimeError` for that). It also implements `futures_io::AsyncRead` and `AsyncBufRead`,
/// so code written against those traits (`futures::io::copy`, `lines()`, codecs) reads it
/// unchanged; `fill_buf` lends the reader's own buffer, without a copy. Method calls find the
/// inherent (asyncio) `read` before `AsyncReadExt::read`: spell that one
/// `AsyncReadExt::read(&mut reader, buf)`.
///
/// Readers, writers and their futures are `!Send`, like everything on the loop: they live in
/// tasks on the loop's thread.
///
/// # The limit
///
/// `readuntil` and `readline` refuse a line longer than the limit (64 KiB unless set when
/// the stream is opened). The buffer may hold up to 2 × limit: above that the transport stops
/// reading until a read takes the buffer back to the limit or below (or a read waits for
/// more), as asyncio's.
///
/// # Errors
///
/// Once the connection failed (`connection_lost` with an error: a reset, a broken pipe), every
/// read returns that error, even with bytes still buffered, as asyncio raises the reader's
/// exception first. `read`, `readline` and `read_all` return what is left and then empty at end
/// of file; `readexactly` and `readuntil` return an [`IncompleteReadError`] (kind
/// `UnexpectedEof`).
///
/// # Examples
///
/// ```
/// use evloop::{ConnectOptions, ServerOptions, StreamReader, StreamWriter};
///
/// evloop::run(async {
///     let server = evloop::start_server(
///         |mut reader: StreamReader, writer: StreamWriter| async move {
///             let line = reader.readline().await?;
///             writer.write(&line);
///             writer.drain().await
///         },
///         ServerOptions::new().host("127.0.0.1").port(0),
///         None,
///     )
///     .await?;
///     let port = server.sockets()[0].local_addr()?.as_socket().unwrap().port();
///     let (mut reader, writer) =
///         evloop::open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None)
///             .await?;
///     writer.write(b"hello\n");
///     assert_eq!(reader.readline().await?, b"hello\n");
///     assert_eq!(reader.readline().await?, b"");
///     assert!(reader.at_eof());
///     writer.close();
///     writer.wait_closed().await?;
///     server.close();
///     Ok::<_, std::io::Error>(())
/// })??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamReader {
    shared: Rc<Shared>,
    /// The reader's own buffer; `front[pos..]` is unread.
    front: Vec<u8>,
    pos: usize,
}

impl StreamReader {
    pub(crate) fn new(shared: Rc<Shared>) -> StreamReader {
        StreamReader {
            shared,
            front: Vec::new(),
            pos: 0,
        }
    }

    /// The limit: the longest line `readline` and `readuntil` return (the separator not
    /// counted), and half of what is buffered before reading pauses.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// True once end of file came and everything before it was read (asyncio's `at_eof`).
    pub fn at_eof(&self) -> bool {
        self.shared.eof.get() && self.shared.buffered() == 0
    }

    /// The error that ended the connection, if it failed (asyncio's `exception()`).
    pub fn exception(&self) -> Option<io::Error> {
        self.shared.error()
    }

    /// Reads up to `n` bytes: as soon as at least one is buffered, what is there (at most
    /// `n`); empty at end of file, or at once for `n == 0`. Not bound by the limit.
    ///
    /// # Errors
    ///
    /// The connection's error, if it failed.
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if let Some(err) = self.shared.error() {
            return Err(err);
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        poll_fn(|cx| {
            ready!(self.poll_buffered(cx))?;
            let n = n.min(self.unread().len());
            Poll::Ready(Ok(self.take(n)))
        })
        .await
    }

    /// Reads to end of file and returns everything (asyncio's `read()` or `read(-1)`), a limit's
    /// worth at a time, so that reading never pauses for good.
    ///
    /// # Errors
    ///
    /// The connection's error, if it failed (what was read before is dropped, as in asyncio).
    pub async fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let block = self.read(self.shared.limit).await?;
            if block.is_empty() {
                return Ok(all);
            }
            all.extend_from_slice(&block);
        }
    }

    /// Reads one line, `\n` included (asyncio's `readline`). At end of file it returns what
    /// is left without a newline, then empty.
    ///
    /// # Errors
    ///
    /// - `InvalidData` with a [`LimitOverrunError`] if the line (without its newline) is
    ///   longer than the limit. As asyncio's, the buffer then drops the line if its newline
    ///   is buffered, and everything buffered otherwise.
    /// - The connection's error, if it failed.
    pub async fn readline(&mut self) -> io::Result<Vec<u8>> {
        const SEP: &[u8] = b"\n";
        match self.readuntil(SEP).await {
            Ok(line) => Ok(line),
            Err(err) => {
                if err
                    .get_ref()
                    .is_some_and(|inner| inner.is::<IncompleteReadError>())
                {
                    let partial = err
                        .into_inner()
                        .and_then(|inner| inner.downcast::<IncompleteReadError>().ok())
                        .map(|inner| inner.into_partial());
                    return Ok(partial.unwrap_or_default());
                }
                let overrun = err
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<LimitOverrunError>())
                    .map(LimitOverrunError::consumed);
                let Some(consumed) = overrun else {
                    return Err(err);
                };
                self.pull();
                if self.unread()[consumed..].starts_with(SEP) {
                    self.consume(consumed + SEP.len());
                } else {
                    let all = self.unread().len();
                    self.consume(all);
                }
                Err(err)
            }
        }
    }

    /// Reads exactly `n` bytes (asyncio's `readexactly`); `n == 0` returns empty at once. Not
    /// bound by the limit: reading resumes while it waits.
    ///
    /// # Errors
    ///
    /// - `UnexpectedEof` with an [`IncompleteReadError`] holding what arrived (and
    ///   `expected() == Some(n)`) if end of file comes first; those bytes leave the buffer.
    /// - The connection's error, if it failed.
    pub async fn readexactly(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if let Some(err) = self.shared.error() {
            return Err(err);
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        poll_fn(|cx| {
            loop {
                self.pull();
                if self.unread().len() >= n {
                    return Poll::Ready(Ok(self.take(n)));
                }
                if self.shared.eof.get() {
                    let all = self.unread().len();
                    let partial = self.take(all);
                    return Poll::Ready(Err(IncompleteReadError::new_io(partial, Some(n))));
                }
                ready!(self.poll_more(cx))?;
            }
        })
        .await
    }

    /// Reads up to and including `separator` (asyncio's `readuntil`).
    ///
    /// # Errors
    ///
    /// - `InvalidInput` "separator should be at least one-byte string" for an empty one.
    /// - `InvalidData` with a [`LimitOverrunError`] if no separator ends within the limit
    ///   (or the one found starts beyond it). The buffer is left as it was: the data can be
    ///   read again.
    /// - `UnexpectedEof` with an [`IncompleteReadError`] (`expected() == None`) holding
    ///   everything buffered if end of file comes first; the buffer is then empty.
    /// - The connection's error, if it failed.
    pub async fn readuntil(&mut self, separator: &[u8]) -> io::Result<Vec<u8>> {
        self.readuntil_any(&[separator]).await
    }

    /// Reads up to and including the first of `separators` to end in the stream (asyncio
    /// 3.13's `readuntil` with a tuple): the shortest possible result that ends with any of
    /// them; when two end at the same byte, the shorter separator is the one that matched.
    ///
    /// # Errors
    ///
    /// As [`readuntil`](StreamReader::readuntil), and `InvalidInput` "separator should contain
    /// at least one element" for an empty list. The limit counts the bytes before the
    /// separator that matched; while none is found, the longest separator decides how much
    /// of the buffer is known to hold none.
    pub async fn readuntil_any(&mut self, separators: &[&[u8]]) -> io::Result<Vec<u8>> {
        let (Some(min_len), Some(max_len)) = (
            separators.iter().map(|s| s.len()).min(),
            separators.iter().map(|s| s.len()).max(),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "separator should contain at least one element",
            ));
        };
        if min_len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "separator should be at least one-byte string",
            ));
        }
        if let Some(err) = self.shared.error() {
            return Err(err);
        }
        // Bytes from the start of the buffer known not to hold the start of a separator.
        let mut offset = 0;
        poll_fn(|cx| {
            loop {
                self.pull();
                let limit = self.shared.limit;
                let buf = self.unread();
                let len = buf.len();
                if len - offset >= min_len {
                    if let Some((start, end)) = find_first_end(buf, offset, separators) {
                        if start > limit {
                            return Poll::Ready(Err(LimitOverrunError::new_io(
                                LimitOverrunError::TOO_LONG,
                                start,
                            )));
                        }
                        return Poll::Ready(Ok(self.take(end)));
                    }
                    // The last `max_len - 1` bytes may start a separator.
                    offset = (len + 1).saturating_sub(max_len);
                    if offset > limit {
                        return Poll::Ready(Err(LimitOverrunError::new_io(
                            LimitOverrunError::NOT_FOUND,
                            offset,
                        )));
                    }
                }
                // A separator may complete with the last chunk before end of file: the buffer
                // is searched first.
                if self.shared.eof.get() {
                    let partial = self.take(len);
                    return Poll::Ready(Err(IncompleteReadError::new_io(partial, None)));
                }
                ready!(self.poll_more(cx))?;
            }
        })
        .await
    }

    /// The unread bytes in the reader's own buffer.
    fn unread(&self) -> &[u8] {
        &self.front[self.pos..]
    }

    /// Moves what arrived into the reader's buffer: a swap when that is empty (no copy, and
    /// both allocations are kept), else an append.
    fn pull(&mut self) {
        let mut incoming = self.shared.incoming.borrow_mut();
        if incoming.is_empty() {
            return;
        }
        if self.pos == self.front.len() {
            self.front.clear();
            self.pos = 0;
            std::mem::swap(&mut self.front, &mut *incoming);
        } else {
            if self.pos > 0 {
                self.front.drain(..self.pos);
                self.pos = 0;
            }
            self.front.extend_from_slice(&incoming);
            incoming.clear();
        }
        drop(incoming);
        self.shared.held.set(self.front.len());
    }

    /// Marks `n` unread bytes read, and resumes reading if the buffer is back within the limit.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.front.len());
        if self.pos >= self.front.len() {
            self.front.clear();
            self.pos = 0;
        }
        self.shared.held.set(self.front.len() - self.pos);
        self.shared.maybe_resume_reading();
    }

    /// The first `n` unread bytes, consumed. When they are the whole buffer and fill at least
    /// half of it, the buffer itself is handed out (the common case of a read that takes
    /// everything: no copy, and the one allocation is the one the protocol makes for the next
    /// data); else they are copied.
    fn take(&mut self, n: usize) -> Vec<u8> {
        // Not a buffer mostly empty: the caller would keep its spare capacity.
        if self.pos == 0 && n == self.front.len() && n >= self.front.capacity() / 2 {
            let out = std::mem::take(&mut self.front);
            self.consume(0);
            return out;
        }
        let out = self.unread()[..n].to_vec();
        self.consume(n);
        out
    }

    /// Ready once nothing more will come or something arrived since the last `pull`: waits
    /// for data (asyncio's `_wait_for_data`), resuming a paused transport first so that a
    /// read wanting more than 2 × limit cannot wait forever.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(err) = self.shared.error() {
            return Poll::Ready(Err(err));
        }
        if self.shared.eof.get() || !self.shared.incoming.borrow().is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.shared.resume_reading();
        self.shared.set_read_waker(cx.waker());
        Poll::Pending
    }

    /// Ready once some bytes are buffered (after a `pull`) or end of file came.
    fn poll_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            self.pull();
            if !self.unread().is_empty() || self.shared.eof.get() {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_more(cx))?;
        }
    }
}

/// The separator match in `buf[offset..]` that ends first, as `(start, end)` in `buf`; of two
/// ending at the same byte, the shorter separator's (asyncio sorts them by length and keeps
/// the first strictly earlier end).
fn find_first_end(buf: &[u8], offset: usize, separators: &[&[u8]]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for sep in separators {
        if let Some(at) = find(&buf[offset..], sep) {
            let (start, end) = (offset + at, offset + at + sep.len());
            let better = match best {
                None => true,
                Some((best_start, best_end)) => {
                    end < best_end || (end == best_end && start > best_start)
                }
            };
            if better {
                best = Some((start, end));
            }
        }
    }
    best
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if let [byte] = needle {
        return hay.iter().position(|b| b == byte);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl futures_io::AsyncRead for StreamReader {
    /// Copies what is buffered (at most `buf.len()`); waits when nothing is; `Ok(0)` at end of
    /// file. The connection's error once it failed.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(err) = this.shared.error() {
            return Poll::Ready(Err(err));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_buffered(cx))?;
        let n = buf.len().min(this.unread().len());
        buf[..n].copy_from_slice(&this.unread()[..n]);
        this.consume(n);
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncBufRead for StreamReader {
    /// Lends the reader's buffer (empty at end of file).
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if let Some(err) = this.shared.error() {
            return Poll::Ready(Err(err));
        }
        ready!(this.poll_buffered(cx))?;
        Poll::Ready(Ok(this.unread()))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.unread().len());
        this.consume(amt);
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.shared.buffered())
            .field("eof", &self.shared.eof.get())
            .field("limit", &self.shared.limit)
            .field("paused", &self.shared.read_paused.get())
            .finish_non_exhaustive()
    }
}
