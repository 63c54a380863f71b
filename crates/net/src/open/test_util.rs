//! Helpers of the unit tests of this module: a bounded run of a future on a real loop, free
//! loopback ports, and a unique temporary directory.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evloop_exec::AddrInfo;
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, Socket, Type};

/// How long any one test may run its loop before it is stopped (and fails).
const BOUND: Duration = Duration::from_secs(10);

/// Runs `fut` on `lp` until it completes, or fails after [`BOUND`].
pub(crate) fn run<T: 'static>(
    lp: &EventLoop,
    fut: impl Future<Output = T> + 'static,
) -> io::Result<T> {
    let l2 = lp.clone();
    let guard = lp
        .call_later(BOUND, move || l2.stop())
        .map_err(io::Error::from)?;
    let out = lp.run_until_complete(fut);
    guard.cancel();
    out.map_err(io::Error::from)
}

/// A listening loopback TCP socket on a port of the system's choosing.
pub(crate) fn listener() -> io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

/// A loopback address where nothing listens, reserved (bound, not listening) so that no one
/// else takes it while the socket lives: connecting to it is refused.
pub(crate) fn refusing() -> io::Result<(Socket, SocketAddr)> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(
        &"127.0.0.1:0"
            .parse::<SocketAddr>()
            .map_err(io::Error::other)?
            .into(),
    )?;
    let addr = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet address"))?;
    Ok((s, addr))
}

/// The resolver's answer for a TCP address, as the tests hand it to `connect_any`.
pub(crate) fn tcp_info(addr: SocketAddr) -> AddrInfo {
    AddrInfo {
        family: if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        },
        socktype: libc::SOCK_STREAM,
        protocol: libc::IPPROTO_TCP,
        canonname: String::new(),
        addr,
    }
}

/// Whether this machine can bind `::1`; tests needing it say loudly when they skip.
pub(crate) fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A fresh directory under the system's temporary directory, removed with its content on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> io::Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("evloop-open-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(TempDir(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
