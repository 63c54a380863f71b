//! Helpers shared by the net crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, Socket, Type};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A connected pair of non-blocking Unix stream sockets.
pub fn stream_pair() -> io::Result<(Socket, Socket)> {
    let (a, b) = UnixStream::pair()?;
    let (a, b) = (
        Socket::from(OwnedFd::from(a)),
        Socket::from(OwnedFd::from(b)),
    );
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

/// A non-blocking TCP listener on 127.0.0.1, on a port the kernel picked.
pub fn tcp_listener() -> io::Result<(Socket, SocketAddr)> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    sock.listen(100)?;
    sock.set_nonblocking(true)?;
    let addr = sock
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet address"))?;
    Ok((sock, addr))
}

/// A fresh non-blocking socket of `domain` and `ty`.
pub fn nonblocking(domain: Domain, ty: Type) -> io::Result<Socket> {
    let sock = Socket::new(domain, ty, None)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Runs `fut` to completion on `lp`, folding the loop's error into the `io::Error`.
pub fn run<T: 'static>(
    lp: &EventLoop,
    fut: impl Future<Output = io::Result<T>> + 'static,
) -> io::Result<T> {
    lp.run_until_complete(fut)?
}

/// A path in the temp dir no other test (or test run) uses; removed when dropped.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("evloop-net-{}-{tag}-{n}.sock", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
