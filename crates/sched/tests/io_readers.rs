//! `add_reader` / `add_writer` and fd lifecycle: conformance area J.

mod util;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_sched::EventLoop;
use util::run_one_iteration;

// CPython: events::…::test_reader_callback (J50).
#[test]
fn a_reader_runs_while_readable_and_sees_every_byte() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let (r, mut w) = UnixStream::pair()?;
    r.set_nonblocking(true)?;
    let fd = r.as_raw_fd();
    let data = Rc::new(RefCell::new(Vec::new()));
    let removed = Rc::new(RefCell::new(None));
    let (l2, d2, rm2) = (lp.clone(), data.clone(), removed.clone());
    let mut r = r;
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 2]; // small reads: level-triggering must call again
        match r.read(&mut buf) {
            Ok(0) => {
                *rm2.borrow_mut() = Some(l2.remove_reader(fd));
                l2.stop();
            }
            Ok(n) => d2.borrow_mut().extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    })?;
    lp.call_soon(move || {
        w.write_all(b"abc").unwrap();
        w.write_all(b"def").unwrap();
        drop(w);
    })?;
    lp.run_forever()?;
    assert_eq!(&*data.borrow(), b"abcdef");
    assert_eq!(*removed.borrow(), Some(true));
    assert!(!lp.remove_reader(fd));
    Ok(())
}

// CPython: events::…::test_writer_callback (J50).
#[test]
fn a_writer_runs_when_writable_and_removes_once() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let (w, mut r) = UnixStream::pair()?;
    let fd = w.as_raw_fd();
    let (l2, mut w) = (lp.clone(), w);
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let o2 = outcome.clone();
    lp.add_writer(fd, move || {
        w.write_all(b"x").unwrap();
        o2.borrow_mut().push(l2.remove_writer(fd));
        o2.borrow_mut().push(l2.remove_writer(fd));
        l2.stop();
    })?;
    lp.run_forever()?;
    assert_eq!(*outcome.borrow(), [true, false]);
    let mut buf = [0u8; 1];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf, b"x");
    Ok(())
}

// CPython: unix::TestFunctional::test_add_reader_invalid_argument (J51).
#[test]
fn bad_fds_are_clear_errors() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let err = lp.add_reader(-1, || ()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "invalid file descriptor: -1");
    assert_eq!(
        lp.add_writer(-1, || ()).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );

    // An fd that is not open: EBADF from epoll. Not a number we just closed: the other tests of
    // this binary run on threads of the same process and may be handed that number meanwhile.
    // The soft limit on open files is a number no fd of this process can have.
    let raw = never_open_fd()?;
    let err = lp.add_reader(raw, || ()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert!(!lp.remove_reader(raw));
    assert!(!lp.remove_writer(-1));
    run_one_iteration(&lp)?;
    Ok(())
}

/// The soft `RLIMIT_NOFILE`: every fd this process opens is below it, so epoll answers EBADF.
fn never_open_fd() -> io::Result<RawFd> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(RawFd::try_from(limit.rlim_cur).unwrap_or(RawFd::MAX))
}

// An fd closed while it is watched is dropped from the set; the loop carries on.
#[test]
fn an_fd_closed_while_watched_does_not_break_the_loop() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let (a, b) = UnixStream::pair()?;
    lp.add_reader(a.as_raw_fd(), || ())?;
    let fd = a.as_raw_fd();
    drop(a);
    drop(b);
    run_one_iteration(&lp)?;
    assert!(lp.remove_reader(fd));
    run_one_iteration(&lp)?;
    Ok(())
}

// CPython: events::…::test_add_fds_after_closing, test_remove_fds_after_closing (J53).
#[test]
fn fd_calls_after_close() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let captured = Rc::new(());
    let c2 = captured.clone();
    lp.add_reader(fd, move || drop(c2.clone()))?;
    lp.close()?;
    assert_eq!(
        Rc::strong_count(&captured),
        1,
        "close drops the fd callbacks"
    );
    assert!(lp.add_reader(fd, || ()).is_err());
    assert!(lp.add_writer(fd, || ()).is_err());
    assert!(!lp.remove_reader(fd));
    assert!(!lp.remove_writer(fd));
    Ok(())
}
