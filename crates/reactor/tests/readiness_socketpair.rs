//! Readiness of fds: level-triggered reports, interest changes, and the
//! errors asyncio gives for bad fds.

mod util;

use std::error::Error;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use evloop_reactor::{Interest, Reactor, Ready};
use util::{SETTLE, high_fd};

type TestResult = Result<(), Box<dyn Error>>;

/// One poll with the given timeout, returning what it reported.
fn poll_once(reactor: &mut Reactor, timeout: Duration) -> io::Result<Vec<Ready>> {
    let mut ready = Vec::new();
    let n = reactor.poll(Some(timeout), &mut ready)?;
    assert_eq!(n, ready.len(), "poll returns how many it appended");
    Ok(ready)
}

#[test]
fn readable_after_write_and_not_before() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;

    assert_eq!(poll_once(&mut reactor, Duration::ZERO)?, []);
    a.write_all(b"abc")?;
    let expected = Ready {
        fd: b.as_raw_fd(),
        readable: true,
        writable: false,
    };
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [expected]);
    Ok(())
}

#[test]
fn level_triggered_reports_again_while_unread() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, mut b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    a.write_all(b"abc")?;

    for _ in 0..3 {
        let ready = poll_once(&mut reactor, SETTLE)?;
        assert_eq!(ready.len(), 1);
        assert!(ready[0].readable);
        // The zero-timeout path sees it too.
        assert_eq!(poll_once(&mut reactor, Duration::ZERO)?, ready);
    }

    let mut buf = [0u8; 3];
    b.read_exact(&mut buf)?;
    assert_eq!(&buf, b"abc");
    assert_eq!(poll_once(&mut reactor, Duration::ZERO)?, []);
    Ok(())
}

#[test]
fn writable_socket_is_reported_writable_only() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (a, _b) = UnixStream::pair()?;
    reactor.set_interest(a.as_raw_fd(), Interest::WRITABLE)?;
    let expected = Ready {
        fd: a.as_raw_fd(),
        readable: false,
        writable: true,
    };
    assert_eq!(poll_once(&mut reactor, Duration::ZERO)?, [expected]);
    Ok(())
}

#[test]
fn both_interests_report_both_in_one_entry() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::BOTH)?;
    a.write_all(b"x")?;
    let expected = Ready {
        fd: b.as_raw_fd(),
        readable: true,
        writable: true,
    };
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [expected]);
    Ok(())
}

#[test]
fn hang_up_is_reported_only_as_what_was_asked() -> TestResult {
    // epoll flags a hang-up for both directions; a reader must not be told
    // the fd is writable, or a scheduler would look for a writer callback.
    let mut reactor = Reactor::new()?;
    let (a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    drop(a);
    let expected = Ready {
        fd: b.as_raw_fd(),
        readable: true,
        writable: false,
    };
    assert_eq!(poll_once(&mut reactor, SETTLE)?, [expected]);
    Ok(())
}

#[test]
fn narrowing_interest_stops_the_other_direction() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (a, _b) = UnixStream::pair()?;
    reactor.set_interest(a.as_raw_fd(), Interest::BOTH)?;
    reactor.set_interest(a.as_raw_fd(), Interest::READABLE)?;
    assert_eq!(reactor.interest(a.as_raw_fd()), Interest::READABLE);
    // Writable, but only readability is asked for, and nothing is readable.
    assert_eq!(poll_once(&mut reactor, Duration::ZERO)?, []);
    Ok(())
}

#[test]
fn interest_none_removes_the_fd() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    a.write_all(b"abc")?;
    assert_eq!(poll_once(&mut reactor, SETTLE)?.len(), 1);

    reactor.set_interest(b.as_raw_fd(), Interest::NONE)?;
    assert_eq!(reactor.interest(b.as_raw_fd()), Interest::NONE);
    assert_eq!(poll_once(&mut reactor, Duration::from_millis(20))?, []);

    // Registering again works: the kernel really forgot it.
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    assert_eq!(poll_once(&mut reactor, SETTLE)?.len(), 1);
    Ok(())
}

#[test]
fn remove_forgets_and_is_idempotent() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    a.write_all(b"abc")?;
    reactor.remove(b.as_raw_fd())?;
    reactor.remove(b.as_raw_fd())?;
    assert_eq!(reactor.interest(b.as_raw_fd()), Interest::NONE);
    assert_eq!(poll_once(&mut reactor, Duration::ZERO)?, []);
    Ok(())
}

#[test]
fn remove_of_fd_closed_while_registered_is_ok_and_poll_carries_on() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (doomed, _peer) = UnixStream::pair()?;
    let doomed = high_fd(doomed, 900)?;
    let fd = doomed.as_raw_fd();
    reactor.set_interest(fd, Interest::WRITABLE)?;
    drop(doomed); // Closed while registered: the kernel drops it from epoll.

    reactor.remove(fd)?;
    assert_eq!(reactor.interest(fd), Interest::NONE);

    // The reactor carries on with other fds.
    let (mut c, d) = UnixStream::pair()?;
    reactor.set_interest(d.as_raw_fd(), Interest::READABLE)?;
    c.write_all(b"x")?;
    let ready = poll_once(&mut reactor, SETTLE)?;
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].fd, d.as_raw_fd());
    Ok(())
}

#[test]
fn fd_number_reused_without_remove_is_registered_afresh() -> TestResult {
    // The caller broke the contract (closed without remove) and a new socket
    // got the same number: setting interest must reach the new socket.
    let mut reactor = Reactor::new()?;
    let (old, _old_peer) = UnixStream::pair()?;
    let old = high_fd(old, 910)?;
    let fd = old.as_raw_fd();
    reactor.set_interest(fd, Interest::READABLE)?;
    drop(old);

    let (new, mut new_peer) = UnixStream::pair()?;
    let new = new.into_raw_fd();
    // SAFETY: `new` is an fd we own, `fd` is free (just closed, and above
    // the numbers other tests get); dup2 replaces nothing else.
    let moved = unsafe { libc::dup2(new, fd) };
    assert_eq!(moved, fd, "{}", io::Error::last_os_error());
    // SAFETY: `new` is ours and no longer needed.
    unsafe { libc::close(new) };

    reactor.set_interest(fd, Interest::BOTH)?;
    new_peer.write_all(b"x")?;
    let ready = poll_once(&mut reactor, SETTLE)?;
    assert_eq!(
        ready,
        [Ready {
            fd,
            readable: true,
            writable: true
        }]
    );
    reactor.remove(fd)?;
    // SAFETY: `fd` now holds the new socket, which this test owns.
    unsafe { libc::close(fd) };
    Ok(())
}

#[test]
fn set_interest_on_closed_fd_is_ebadf_and_registers_nothing() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (doomed, _peer) = UnixStream::pair()?;
    let doomed = high_fd(doomed, 920)?;
    let fd = doomed.as_raw_fd();
    drop(doomed);

    let err = reactor
        .set_interest(fd, Interest::READABLE)
        .expect_err("a closed fd cannot be registered");
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert_eq!(reactor.interest(fd), Interest::NONE);
    Ok(())
}

#[test]
fn negative_fd_is_invalid_input() -> TestResult {
    let mut reactor = Reactor::new()?;
    for result in [
        reactor.set_interest(-1, Interest::READABLE),
        reactor.remove(-1),
    ] {
        let err = result.expect_err("fd -1 is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "invalid file descriptor: -1");
    }
    assert_eq!(reactor.interest(-1), Interest::NONE);
    Ok(())
}

#[test]
fn regular_file_is_refused_with_eperm() -> TestResult {
    // asyncio: add_reader on a regular file raises PermissionError.
    let mut reactor = Reactor::new()?;
    let file = File::open("Cargo.toml")?;
    let err = reactor
        .set_interest(file.as_raw_fd(), Interest::READABLE)
        .expect_err("epoll refuses regular files");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    assert_eq!(reactor.interest(file.as_raw_fd()), Interest::NONE);
    Ok(())
}

#[test]
fn many_fds_all_reported_in_one_poll() -> TestResult {
    let mut reactor = Reactor::new()?;
    let mut pairs = Vec::new();
    for _ in 0..50 {
        let (mut a, b) = UnixStream::pair()?;
        a.write_all(b"x")?;
        reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
        pairs.push((a, b));
    }
    let mut reported: Vec<_> = poll_once(&mut reactor, SETTLE)?
        .into_iter()
        .map(|ready| ready.fd)
        .collect();
    reported.sort_unstable();
    let mut expected: Vec<_> = pairs.iter().map(|(_, b)| b.as_raw_fd()).collect();
    expected.sort_unstable();
    assert_eq!(reported, expected);
    Ok(())
}

#[test]
fn poll_appends_without_clearing_out() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (a, _b) = UnixStream::pair()?;
    reactor.set_interest(a.as_raw_fd(), Interest::WRITABLE)?;
    let marker = Ready {
        fd: 12345,
        readable: true,
        writable: false,
    };
    let mut ready = vec![marker];
    assert_eq!(reactor.poll(Some(Duration::ZERO), &mut ready)?, 1);
    assert_eq!(ready.len(), 2);
    assert_eq!(ready[0], marker);
    assert_eq!(ready[1].fd, a.as_raw_fd());
    Ok(())
}

/// `remove` takes the fd by number: after the caller closed a registered fd and the number went
/// to a new file, removing it leaves the new file alone, and the new file can be registered
/// under the same number and reported.
#[test]
fn removing_a_closed_fd_whose_number_was_reused_leaves_the_new_file_working() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (first, _peer) = UnixStream::pair()?;
    let first = high_fd(first, 940)?;
    let number = first.as_raw_fd();
    reactor.set_interest(number, Interest::READABLE)?;
    drop(first);

    // Put a fresh socket at the same number (nothing else in this test binary uses fds >= 940
    // near this one; F_DUPFD picks the lowest free number at or above the floor).
    let (second, mut writer) = UnixStream::pair()?;
    let second = high_fd(second, number)?;
    assert_eq!(second.as_raw_fd(), number, "the number was reused");

    reactor.remove(number)?;
    assert_eq!(reactor.interest(number), Interest::NONE);
    reactor.set_interest(number, Interest::READABLE)?;
    writer.write_all(b"x")?;
    let ready = poll_once(&mut reactor, SETTLE)?;
    assert_eq!(ready.len(), 1);
    assert_eq!((ready[0].fd, ready[0].readable), (number, true));
    Ok(())
}
