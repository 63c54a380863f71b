//! One-shot waits (`Reactor::arm`), what the loop's socket operations wait with: reported
//! once, re-armed on the same registration, safe across a closed and reused fd number, and
//! independent of the level-triggered interest on the same fd.

mod util;

use std::error::Error;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use evloop_reactor::{Armed, Interest, Reactor, Ready};
use util::{SETTLE, high_fd};

type TestResult = Result<(), Box<dyn Error>>;

fn poll_once(reactor: &mut Reactor, timeout: Duration) -> io::Result<Vec<Ready>> {
    let mut ready = Vec::new();
    reactor.poll(Some(timeout), &mut ready)?;
    Ok(ready)
}

fn readable(fd: i32) -> Ready {
    Ready {
        fd,
        readable: true,
        writable: false,
    }
}

#[test]
fn a_wait_is_reported_once_and_rearmed_on_the_same_registration() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    let fd = b.as_raw_fd();
    assert_eq!(reactor.arm(fd, Interest::READABLE)?, Armed::Fresh);
    assert!(poll_once(&mut reactor, Duration::ZERO)?.is_empty());
    a.write_all(b"x")?;
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [readable(fd)]);
    // Still readable, but the wait is over.
    assert!(poll_once(&mut reactor, Duration::ZERO)?.is_empty());
    assert_eq!(
        reactor.interest(fd),
        Interest::NONE,
        "a wait is no interest"
    );
    assert_eq!(reactor.arm(fd, Interest::READABLE)?, Armed::Kept);
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [readable(fd)]);
    Ok(())
}

// The number of a closed socket is reused at once: the re-arm meets a file the kernel does not
// hold under it, adds it, and says so; the new socket's readiness is reported.
#[test]
fn a_reused_number_is_armed_afresh_and_reported() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (old, _old_peer) = UnixStream::pair()?;
    let old = high_fd(old, 960)?;
    let fd = old.as_raw_fd();
    reactor.arm(fd, Interest::READABLE)?;
    reactor.disarm(fd, Interest::READABLE, false)?;
    drop(old);
    let (new, mut new_peer) = UnixStream::pair()?;
    let new: OwnedFd = high_fd(new, 960)?;
    assert_eq!(new.as_raw_fd(), fd, "the number was not reused");
    assert_eq!(reactor.arm(fd, Interest::READABLE)?, Armed::Fresh);
    new_peer.write_all(b"x")?;
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [readable(fd)]);
    Ok(())
}

// Reading and writing armed on one fd: the readable report disarms the kernel's one-shot
// registration as a whole, and the reactor re-arms the writable wait that is still pending.
#[test]
fn a_read_report_leaves_a_pending_write_wait_armed() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    b.set_nonblocking(true)?;
    let fd = b.as_raw_fd();
    // Fill b's send buffer so that writability waits for a's reads.
    let chunk = [0u8; 65536];
    let mut filled = 0usize;
    loop {
        match (&b).write(&chunk) {
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err.into()),
        }
    }
    reactor.arm(fd, Interest::WRITABLE)?;
    reactor.arm(fd, Interest::READABLE)?;
    a.write_all(b"x")?;
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [readable(fd)]);
    let mut drained = vec![0u8; filled];
    a.read_exact(&mut drained)?;
    let ready = poll_once(&mut reactor, SETTLE)?;
    assert_eq!(
        ready,
        [Ready {
            fd,
            readable: false,
            writable: true
        }]
    );
    Ok(())
}

// A level-triggered reader and a one-shot wait on one fd: the wait ends, the reader stays.
#[test]
fn a_wait_beside_a_reader_ends_and_leaves_the_reader() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    let fd = b.as_raw_fd();
    reactor.set_interest(fd, Interest::READABLE)?;
    reactor.arm(fd, Interest::WRITABLE)?;
    let ready = poll_once(&mut reactor, SETTLE)?;
    assert_eq!(
        ready,
        [Ready {
            fd,
            readable: false,
            writable: true
        }]
    );
    // The writable wait is spent: the always-writable socket is no longer reported.
    assert!(poll_once(&mut reactor, Duration::ZERO)?.is_empty());
    a.write_all(b"x")?;
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [readable(fd)]);
    assert_eq!(
        poll_once(&mut reactor, SETTLE)?,
        [readable(fd)],
        "level-triggered"
    );
    reactor.remove(fd)?;
    assert!(poll_once(&mut reactor, Duration::ZERO)?.is_empty());
    Ok(())
}

#[test]
fn a_wait_needs_an_interest_and_a_valid_fd() -> TestResult {
    let mut reactor = Reactor::new()?;
    let err = reactor.arm(-1, Interest::READABLE).unwrap_err();
    assert_eq!(err.to_string(), "invalid file descriptor: -1");
    let (a, _b) = UnixStream::pair()?;
    let err = reactor.arm(a.as_raw_fd(), Interest::NONE).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "a wait needs an interest");
    Ok(())
}
