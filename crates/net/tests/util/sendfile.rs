//! Helpers of the `sendfile_*` tests: files of a known pattern, a checksum, and blocking
//! peers that read in threads of their own.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{SockRef, Socket};

/// The byte at `i` of every test file: a pattern with no short period, so that a chunk sent
/// twice, skipped or out of place changes the checksum.
pub fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// `len` bytes of the pattern from `start`.
pub fn pattern(start: u64, len: u64) -> Vec<u8> {
    (start..start + len).map(byte_at).collect()
}

/// FNV-1a over a stream of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum(pub u64);

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn of(data: &[u8]) -> Checksum {
        let mut sum = Checksum::default();
        sum.update(data);
        sum
    }
}

/// An unlinked temporary file holding `len` bytes of the pattern, positioned at 0, and the
/// checksum of its content.
pub fn pattern_file(len: u64) -> io::Result<(File, Checksum)> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("evloop-sendfile-{}-{n}", std::process::id()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    let mut sum = Checksum::default();
    let mut at = 0;
    while at < len {
        let chunk = pattern(at, (len - at).min(1 << 20));
        file.write_all(&chunk)?;
        sum.update(&chunk);
        at += chunk.len() as u64;
    }
    file.seek(SeekFrom::Start(0))?;
    Ok((file, sum))
}

/// A connected TCP pair on loopback: ours non-blocking (as a socket2 socket), the peer's
/// blocking, with a 30 s read timeout so that a broken test fails instead of hanging.
pub fn tcp_pair() -> io::Result<(Socket, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let ours = TcpStream::connect(listener.local_addr()?)?;
    let (peer, _) = listener.accept()?;
    peer.set_read_timeout(Some(Duration::from_secs(30)))?;
    let ours = Socket::from(ours);
    ours.set_nonblocking(true)?;
    Ok((ours, peer))
}

/// Small kernel buffers on both ends (as asyncio's sendfile tests: 4 KiB), so that a file of
/// a few MiB cannot sit in them whole.
pub fn small_buffers(ours: &Socket, peer: &TcpStream) -> io::Result<()> {
    ours.set_send_buffer_size(4096)?;
    SockRef::from(peer).set_recv_buffer_size(4096)?;
    Ok(())
}

/// Reads `peer` to end of file in a thread: the byte count and checksum.
pub fn sum_to_eof(mut peer: impl Read + Send + 'static) -> JoinHandle<io::Result<(u64, Checksum)>> {
    thread::spawn(move || {
        let mut buf = vec![0; 1 << 16];
        let mut sum = Checksum::default();
        let mut n = 0u64;
        loop {
            match peer.read(&mut buf) {
                Ok(0) => return Ok((n, sum)),
                Ok(got) => {
                    sum.update(&buf[..got]);
                    n += got as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    })
}

/// Reads `peer` to end of file in a thread: every byte.
pub fn read_to_eof(mut peer: impl Read + Send + 'static) -> JoinHandle<io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got)?;
        Ok(got)
    })
}

/// Reads at least `n` bytes from `peer` in a thread, then resets the connection (`SO_LINGER`
/// 0: the close sends RST); returns how many bytes it read.
pub fn reset_after(mut peer: TcpStream, n: usize) -> JoinHandle<io::Result<usize>> {
    thread::spawn(move || {
        let mut buf = vec![0; 1024];
        let mut got = 0;
        while got < n {
            match peer.read(&mut buf)? {
                0 => break,
                k => got += k,
            }
        }
        SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
        drop(peer);
        Ok(got)
    })
}

/// Joins a peer thread, turning its panic into an error.
pub fn join<T>(handle: JoinHandle<io::Result<T>>) -> io::Result<T> {
    handle
        .join()
        .map_err(|_| io::Error::other("the peer thread panicked"))?
}
