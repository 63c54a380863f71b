//! The `sendfile` group: `sendfile_50m`, a 50 MB file (its pages cached) sent over loopback
//! TCP to a reader that discards it, and the sending side's CPU time per byte:
//! `evloop_sendfile` (`sock_sendfile`, the kernel copies from the page cache),
//! `evloop_readwrite` (the file read in 256 KiB chunks on the loop's thread, each sent by
//! `sock_sendall`: the read-and-write path a program writes by hand) and `tokio_copy`
//! (`tokio::io::copy` from a `tokio::fs::File` to a `TcpStream` on a current_thread runtime).
//!
//! The sending side's CPU is the process's (`getrusage(RUSAGE_SELF)`, so executor and blocking
//! threads count) minus the receiving thread's own (`RUSAGE_THREAD`), over the transfer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use evloop::prelude::*;
use evloop::socket2::Socket;

use crate::harness::{Ctx, cpu_time, median};

const GROUP: &str = "sendfile";
const CELL: &str = "sendfile_50m";
/// The file's full size: 50 MB, as the issue says.
const FULL_LEN: usize = 50 * 1000 * 1000;
/// The read-and-write path's chunk: the fallback's, 256 KiB.
const CHUNK: usize = 256 * 1024;
/// Transfers per sample: the CPU time of one 50 MB transfer is a few milliseconds, of the
/// order of what the other processes on a loaded machine move between threads; four in a row
/// smooth that out.
const TRANSFERS: usize = 4;

/// A subject: sends `file` (`len` bytes) to `to`, and returns when every byte was handed to
/// the kernel and the connection closed.
type Send = fn(&File, u64, SocketAddr) -> Result<(), String>;

pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    let len = ctx.n(FULL_LEN) as u64;
    let file = pattern_file(len).map_err(|e| format!("making the file: {e}"))?;
    let subjects: [(&str, Send); 3] = [
        ("evloop_sendfile", evloop_sendfile),
        ("evloop_readwrite", evloop_readwrite),
        ("tokio_copy", tokio_copy),
    ];
    // Warm-up: the file's pages into the cache, each path once.
    for (name, send) in subjects {
        transfer(&file, len, send).map_err(|e| format!("{CELL}/{name}: {e}"))?;
    }
    let mut samples = vec![Vec::new(); subjects.len()];
    for _ in 0..ctx.repeats() {
        for (i, (name, send)) in subjects.iter().enumerate() {
            let transfers = if ctx.smoke { 1 } else { TRANSFERS };
            let mut cpu = Duration::ZERO;
            for _ in 0..transfers {
                cpu += transfer(&file, len, *send).map_err(|e| format!("{CELL}/{name}: {e}"))?;
            }
            samples[i].push(cpu.as_secs_f64() * 1e9 / (len as f64 * transfers as f64));
        }
    }
    let per_byte: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    for (i, (name, _)) in subjects.iter().enumerate() {
        ctx.record(CELL, name, "cpu_per_byte", per_byte[i], "ns/B");
    }
    let ratio = |theirs: f64| per_byte[0] / theirs.max(1e-12);
    ctx.record(
        CELL,
        "evloop_sendfile",
        "cpu_vs_readwrite",
        ratio(per_byte[1]),
        "×",
    );
    ctx.record(
        CELL,
        "evloop_sendfile",
        "cpu_vs_tokio_copy",
        ratio(per_byte[2]),
        "×",
    );
    ctx.note(
        GROUP,
        &format!(
            "{len} bytes from an unlinked file in the temp dir (cached by a warm-up) over loopback \
             TCP to a thread that reads 256 KiB at a time and discards; CPU of the sending side \
             per byte = (process CPU − the reading thread's CPU) / bytes over {TRANSFERS} \
             transfers per sample, the medians of {} repeat(s), subjects interleaved (loopback \
             TCP's receive processing runs in the sender's softirq context and is the same for \
             every subject: it bounds how far sendfile can go below the others); evloop_readwrite: read(2) of 256 KiB on the loop's \
             thread + sock_sendall; tokio_copy: tokio::fs::File (reads on the blocking pool) + \
             tokio::io::copy to a TcpStream, current_thread runtime; the target is \
             cpu_vs_readwrite ≤ 0.5",
            ctx.repeats()
        ),
    );
    Ok(())
}

/// An unlinked file of `len` bytes of a pattern, in the temp dir.
fn pattern_file(len: u64) -> io::Result<File> {
    let path = std::env::temp_dir().join(format!("evloop-bench-sendfile-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// This thread's CPU time so far (`getrusage(RUSAGE_THREAD)`).
fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` points to writable memory of the size and alignment of `rusage`, which
    // getrusage fills in when it returns 0.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage returned 0, so it initialised `usage`.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// One transfer with `send`: the sending side's CPU time.
fn transfer(file: &File, len: u64, send: Send) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let reader = discard(listener);
    let before = cpu_time();
    send(file, len, addr)?;
    let (got, reader_cpu) = reader
        .join()
        .map_err(|_| "the reader panicked".to_string())?
        .map_err(|e| format!("reader: {e}"))?;
    let total = cpu_time().saturating_sub(before);
    if got != len {
        return Err(format!("the reader got {got} bytes, expected {len}"));
    }
    Ok(total.saturating_sub(reader_cpu))
}

/// Accepts one connection and reads it to end of file: the byte count and the thread's CPU.
fn discard(listener: TcpListener) -> JoinHandle<io::Result<(u64, Duration)>> {
    thread::spawn(move || {
        let start = thread_cpu();
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut buf = vec![0; 256 * 1024];
        let mut got = 0u64;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok((got, thread_cpu().saturating_sub(start)))
    })
}

/// A non-blocking socket connected to `to`.
fn connect(to: SocketAddr) -> Result<Socket, String> {
    let stream = TcpStream::connect(to).map_err(|e| e.to_string())?;
    let sock = Socket::from(stream);
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(sock)
}

fn evloop_sendfile(file: &File, len: u64, to: SocketAddr) -> Result<(), String> {
    let sock = connect(to)?;
    let file = file.try_clone().map_err(|e| e.to_string())?;
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let l2 = lp.clone();
    let sent = lp
        .run_until_complete(async move { l2.sock_sendfile(&sock, &file, 0, None, false).await })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    crate::common::check("bytes sent", sent as usize, len as usize)
}

fn evloop_readwrite(file: &File, len: u64, to: SocketAddr) -> Result<(), String> {
    let sock = connect(to)?;
    let mut file = file.try_clone().map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let l2 = lp.clone();
    let sent = lp
        .run_until_complete(async move {
            let mut buf = vec![0; CHUNK];
            let mut sent = 0u64;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    return Ok::<_, io::Error>(sent);
                }
                l2.sock_sendall(&sock, &buf[..n]).await?;
                sent += n as u64;
            }
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    crate::common::check("bytes sent", sent as usize, len as usize)
}

fn tokio_copy(file: &File, len: u64, to: SocketAddr) -> Result<(), String> {
    let mut file = file.try_clone().map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let sent = rt
        .block_on(async move {
            let mut sock = tokio::net::TcpStream::connect(to).await?;
            let mut file = tokio::fs::File::from_std(file);
            tokio::io::copy(&mut file, &mut sock).await
        })
        .map_err(|e| e.to_string())?;
    crate::common::check("bytes sent", sent as usize, len as usize)
}
