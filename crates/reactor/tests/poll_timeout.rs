//! Poll timeouts: the zero-timeout path is quick and reports nothing when
//! nothing is ready; other timeouts are never cut short.

mod util;

use std::error::Error;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use evloop_reactor::{Interest, Reactor};
use util::SETTLE;

type TestResult = Result<(), Box<dyn Error>>;

#[test]
fn zero_timeout_with_nothing_ready_returns_zero_quickly() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (_a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    let mut ready = Vec::new();

    let rounds: u32 = 10_000;
    let start = Instant::now();
    for _ in 0..rounds {
        assert_eq!(reactor.poll(Some(Duration::ZERO), &mut ready)?, 0);
    }
    let elapsed = start.elapsed();
    assert!(ready.is_empty());
    // One syscall each is well under a microsecond; 50 µs each is a loose
    // bound that still catches an accidental sleep or a full wait per poll
    // on a loaded machine.
    assert!(elapsed < Duration::from_micros(50) * rounds, "{elapsed:?}");
    Ok(())
}

#[test]
fn timeout_is_never_cut_short() -> TestResult {
    let mut reactor = Reactor::new()?;
    for millis in [1, 5, 12] {
        let timeout = Duration::from_millis(millis);
        let start = Instant::now();
        assert_eq!(reactor.poll(Some(timeout), &mut Vec::new())?, 0);
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "{timeout:?} took only {elapsed:?}");
        assert!(elapsed < timeout + SETTLE, "{timeout:?} took {elapsed:?}");
    }
    Ok(())
}

#[test]
fn sub_millisecond_timeout_waits_at_least_that_long() -> TestResult {
    // A timeout below epoll's millisecond must not become a zero timeout.
    let mut reactor = Reactor::new()?;
    let timeout = Duration::from_micros(300);
    let start = Instant::now();
    reactor.poll(Some(timeout), &mut Vec::new())?;
    assert!(start.elapsed() >= timeout);
    Ok(())
}

#[test]
fn readiness_ends_a_timed_wait_early() -> TestResult {
    let mut reactor = Reactor::new()?;
    let (mut a, b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    let delay = Duration::from_millis(20);
    let start = Instant::now();
    let writer = thread::spawn(move || {
        thread::sleep(delay);
        a.write_all(b"x")
    });
    let mut ready = Vec::new();
    assert_eq!(reactor.poll(Some(SETTLE), &mut ready)?, 1);
    let elapsed = start.elapsed();
    writer.join().map_err(|_| "writer thread panicked")??;
    assert!(elapsed >= delay, "returned before the write: {elapsed:?}");
    assert!(elapsed < SETTLE, "{elapsed:?}");
    Ok(())
}

#[test]
fn timer_left_by_an_early_wake_does_not_cut_the_next_wait_short() -> TestResult {
    // A timed wait ended early by readiness leaves its timer running; when it
    // fires later, it must neither show up as readiness nor shorten a wait.
    let mut reactor = Reactor::new()?;
    let (mut a, mut b) = UnixStream::pair()?;
    reactor.set_interest(b.as_raw_fd(), Interest::READABLE)?;
    a.write_all(b"x")?;
    assert_eq!(
        reactor.poll(Some(Duration::from_millis(10)), &mut Vec::new())?,
        1
    );
    let mut byte = [0u8; 1];
    b.read_exact(&mut byte)?;

    thread::sleep(Duration::from_millis(20)); // The old timer fires now.
    let mut ready = Vec::new();
    assert_eq!(reactor.poll(Some(Duration::ZERO), &mut ready)?, 0);
    assert_eq!(reactor.poll(Some(Duration::ZERO), &mut ready)?, 0);

    let timeout = Duration::from_millis(15);
    let start = Instant::now();
    assert_eq!(reactor.poll(Some(timeout), &mut ready)?, 0);
    assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
    assert!(ready.is_empty());
    Ok(())
}
