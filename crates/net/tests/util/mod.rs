//! Helpers shared by the net crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// A pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A new pty, `(master, slave)`; in raw mode (no echo, no newline translation) when `raw`.
pub fn pty(raw: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: the out-pointers are valid; null name, termios and winsize are allowed.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty returned two new fds that nothing else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    if !raw {
        return Ok((master, slave));
    }
    // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `slave` is an open terminal and `tio` a valid pointer for both calls.
    unsafe {
        if libc::tcgetattr(slave.as_raw_fd(), &mut tio) < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut tio);
        if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &tio) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((master, slave))
}

/// Helpers for the streams tests.
pub mod streams;

/// The event mask under which some epoll set of this process holds `fd` (from
/// `/proc/self/fdinfo`), or `None` if none does. A one-shot registration that already reported
/// shows no readiness bits (the kernel keeps only `EPOLLONESHOT` and the like).
pub fn epoll_events(fd: i32) -> io::Result<Option<u32>> {
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let path = entry?.path();
        let Ok(target) = std::fs::read_link(&path) else {
            continue; // closed meanwhile
        };
        if target.to_string_lossy() != "anon_inode:[eventpoll]" {
            continue;
        }
        let Some(name) = path.file_name() else {
            continue;
        };
        let Ok(info) =
            std::fs::read_to_string(std::path::Path::new("/proc/self/fdinfo").join(name))
        else {
            continue;
        };
        for line in info.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["tfd:", tfd, "events:", events, ..] = words[..] {
                if tfd.parse::<i32>().ok() == Some(fd) {
                    let mask = u32::from_str_radix(events, 16).map_err(io::Error::other)?;
                    return Ok(Some(mask));
                }
            }
        }
    }
    Ok(None)
}
/// Helpers for the sendfile tests.
pub mod sendfile;
