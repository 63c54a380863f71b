//! The fallback: read a chunk of the file on the executor (the file may be a pipe or a slow
//! disk, whose reads would block the loop), then send it: with `sock_sendall`, or by a
//! transport's `write` once its writing is not paused (asyncio's `_sock_sendfile_fallback` and
//! `_sendfile_fallback`).

use std::fs::File;
use std::future::poll_fn;
use std::io::{self, Read, Seek, SeekFrom};

use evloop_exec::LoopExecExt;
use evloop_sched::EventLoop;
use socket2::Socket;

use super::Position;
use crate::send::SockSendall;
use crate::transport::Transport;
use crate::transport::sendfile::closed_under_sendfile;

/// The largest chunk the fallback reads at once: 256 KiB, asyncio's
/// `SENDFILE_FALLBACK_READBUFFER_SIZE` (its transport fallback reads 16 KiB at a time; evloop
/// uses the larger size for both, since each chunk costs a trip to the executor).
pub(super) const FALLBACK_CHUNK: u64 = 256 * 1024;

/// Reads a file chunk by chunk on the loop's default executor, through a duplicate of its fd
/// (which shares the file's position).
struct ChunkReader {
    /// `None` only while a read is on the executor.
    file: Option<File>,
    buf: Vec<u8>,
}

impl ChunkReader {
    fn new(file: &File) -> io::Result<ChunkReader> {
        Ok(ChunkReader {
            file: Some(file.try_clone()?),
            buf: Vec::new(),
        })
    }

    /// The next chunk of at most `want` bytes; empty at end of file.
    async fn read(&mut self, lp: &EventLoop, want: usize) -> io::Result<&[u8]> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("sendfile: a cancelled read lost the file"))?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(want, 0);
        let job = lp.run_in_executor(None, move || {
            let got = loop {
                match file.read(&mut buf[..want]) {
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    got => break got,
                }
            };
            (file, buf, got)
        })?;
        let (file, buf, got) = job.await?;
        self.file = Some(file);
        self.buf = buf;
        let n = got?;
        Ok(&self.buf[..n])
    }
}

/// How much to read next: up to [`FALLBACK_CHUNK`], and no more than what is left of `count`.
fn next_len(count: Option<u64>, sent: u64) -> usize {
    let left = count.map_or(FALLBACK_CHUNK, |count| count.saturating_sub(sent));
    // At most FALLBACK_CHUNK, which fits in a usize.
    left.min(FALLBACK_CHUNK) as usize
}

/// Moves the file's position to `offset` first, as asyncio's fallback does (`file.seek`).
fn seek_start(file: &File, offset: u64) -> io::Result<()> {
    if offset != 0 {
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
    }
    Ok(())
}

/// `sock_sendfile`'s fallback: read, then `sock_sendall`.
pub(super) async fn sock(
    lp: &EventLoop,
    sock: &Socket,
    file: &File,
    offset: u64,
    count: Option<u64>,
) -> io::Result<u64> {
    seek_start(file, offset)?;
    let mut position = Position::new(file, offset);
    let mut reader = ChunkReader::new(file)?;
    loop {
        let want = next_len(count, position.sent);
        if want == 0 {
            break;
        }
        let chunk = reader.read(lp, want).await?;
        if chunk.is_empty() {
            break;
        }
        SockSendall::new(lp, sock, chunk).await?;
        position.sent += chunk.len() as u64;
    }
    Ok(position.sent)
}

/// `sendfile`'s fallback on a transport: read, wait while writing is paused (flow control
/// holds: at most the high-water mark plus one chunk is buffered), then `write`. Reading is
/// paused meanwhile, as asyncio's `_SendfileFallbackProtocol` does.
pub(super) async fn transport(
    lp: &EventLoop,
    transport: &Transport,
    file: &File,
    offset: u64,
    count: Option<u64>,
) -> io::Result<u64> {
    let inner = transport.inner.clone();
    inner.begin_sendfile(false)?;
    let _restore = Restore {
        transport,
        was_reading: transport.is_reading(),
    };
    transport.pause_reading();
    seek_start(file, offset)?;
    let mut position = Position::new(file, offset);
    let mut reader = ChunkReader::new(file)?;
    loop {
        let want = next_len(count, position.sent);
        if want == 0 {
            break;
        }
        let chunk = reader.read(lp, want).await?;
        if chunk.is_empty() {
            break;
        }
        if transport.is_closing() {
            return Err(closed_under_sendfile());
        }
        poll_fn(|cx| inner.poll_unpaused(cx)).await?;
        if transport.is_closing() {
            return Err(closed_under_sendfile());
        }
        transport.write(chunk);
        position.sent += chunk.len() as u64;
    }
    Ok(position.sent)
}

/// Ends a transport's fallback however it ends: the transport takes other sendfiles again,
/// and reads again if it read before.
struct Restore<'a> {
    transport: &'a Transport,
    was_reading: bool,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.transport.inner.end_sendfile();
        if self.was_reading {
            self.transport.resume_reading();
        }
    }
}
