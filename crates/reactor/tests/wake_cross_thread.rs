//! The cross-thread wake-up: a blocked poll is woken, never before the wake,
//! and a storm of wakes leaves at most one notification behind.

mod util;

use std::error::Error;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use evloop_reactor::Reactor;
use util::SETTLE;

type TestResult = Result<(), Box<dyn Error>>;

/// A poll that nothing should wake: long enough to tell "timed out" from
/// "returned at once".
const QUIET: Duration = Duration::from_millis(30);

/// Joins `handle`, turning a panic in the thread into an error.
fn join<T>(handle: thread::JoinHandle<T>) -> Result<T, Box<dyn Error>> {
    handle.join().map_err(|_| "helper thread panicked".into())
}

#[test]
fn blocked_poll_none_is_woken_from_another_thread_not_before() -> TestResult {
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    let delay = Duration::from_millis(50);
    let (woke_at, when) = mpsc::channel();

    let start = Instant::now();
    reactor.prepare_sleep();
    let helper = thread::spawn(move || {
        thread::sleep(delay);
        let now = Instant::now();
        waker.wake();
        woke_at.send(now).ok();
    });
    let n = reactor.poll(None, &mut Vec::new())?;
    let returned = Instant::now();
    join(helper)?;

    assert_eq!(n, 0, "a wake-up reports no fd");
    let wake_time = when.recv()?;
    assert!(returned >= wake_time, "poll returned before the wake-up");
    assert!(returned - start >= delay);
    assert!(returned - start < SETTLE, "took {:?}", returned - start);
    Ok(())
}

#[test]
fn wake_between_prepare_sleep_and_poll_is_not_lost() -> TestResult {
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    reactor.prepare_sleep();
    join(thread::spawn(move || waker.wake()))?;

    let start = Instant::now();
    assert_eq!(reactor.poll(Some(SETTLE), &mut Vec::new())?, 0);
    assert!(start.elapsed() < SETTLE / 2, "the pending wake-up was lost");
    Ok(())
}

#[test]
fn storm_of_wakes_returns_once_and_leaves_nothing_behind() -> TestResult {
    let mut reactor = Reactor::new()?;
    reactor.prepare_sleep();
    let helpers: Vec<_> = (0..4)
        .map(|_| {
            let waker = reactor.waker();
            thread::spawn(move || {
                for _ in 0..10_000 {
                    waker.wake();
                }
            })
        })
        .collect();
    for helper in helpers {
        join(helper)?;
    }

    let start = Instant::now();
    reactor.poll(Some(SETTLE), &mut Vec::new())?;
    assert!(
        start.elapsed() < SETTLE / 2,
        "the storm did not wake the poll"
    );

    // Had the storm written more than once, this poll would return at once.
    reactor.prepare_sleep();
    let start = Instant::now();
    assert_eq!(reactor.poll(Some(QUIET), &mut Vec::new())?, 0);
    assert!(
        start.elapsed() >= QUIET,
        "a leftover notification woke the poll"
    );
    Ok(())
}

#[test]
fn wake_while_not_sleeping_writes_nothing() -> TestResult {
    // The loop is busy (no prepare_sleep): wakes are free and leave nothing
    // behind. The scheduler's re-check after prepare_sleep finds the work.
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    for _ in 0..1000 {
        waker.wake();
    }
    reactor.prepare_sleep();
    let start = Instant::now();
    assert_eq!(reactor.poll(Some(QUIET), &mut Vec::new())?, 0);
    assert!(
        start.elapsed() >= QUIET,
        "a wake while busy was carried over"
    );
    Ok(())
}

#[test]
fn poll_ends_the_sleep_so_later_wakes_are_free() -> TestResult {
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    reactor.prepare_sleep();
    // A zero-timeout poll after prepare_sleep (the re-check found work) ends
    // the sleep: a wake afterwards must not leave a notification behind.
    reactor.poll(Some(Duration::ZERO), &mut Vec::new())?;
    waker.wake();
    reactor.prepare_sleep();
    let start = Instant::now();
    assert_eq!(reactor.poll(Some(QUIET), &mut Vec::new())?, 0);
    assert!(start.elapsed() >= QUIET);
    Ok(())
}

#[test]
fn waker_outlives_its_reactor() -> TestResult {
    let reactor = Reactor::new()?;
    let waker = reactor.waker();
    let clone = waker.clone();
    reactor.prepare_sleep();
    drop(reactor);
    waker.wake();
    clone.wake();
    Ok(())
}

#[test]
fn waker_and_reactor_cross_threads() -> TestResult {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<evloop_reactor::Waker>();
    assert_send::<Reactor>();

    // A reactor built here and polled on another thread.
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    reactor.prepare_sleep();
    let helper = thread::spawn(move || reactor.poll(Some(SETTLE), &mut Vec::new()));
    thread::sleep(Duration::from_millis(10));
    waker.wake();
    assert_eq!(join(helper)??, 0);
    Ok(())
}

#[test]
fn wake_consumed_by_zero_timeout_poll_leaves_the_reactor_wakeable() -> TestResult {
    // Regression guard for the cheap zero-timeout path: it must hand a
    // wake-up notification back to polling's full wait (which re-arms the
    // one-shot notifier), or the next sleep could never be woken.
    let mut reactor = Reactor::new()?;
    let waker = reactor.waker();
    for _ in 0..3 {
        reactor.prepare_sleep();
        waker.wake();
        assert_eq!(reactor.poll(Some(Duration::ZERO), &mut Vec::new())?, 0);
    }

    reactor.prepare_sleep();
    let delay = Duration::from_millis(20);
    let start = Instant::now();
    let helper = thread::spawn(move || {
        thread::sleep(delay);
        waker.wake();
    });
    reactor.poll(Some(SETTLE), &mut Vec::new())?;
    let elapsed = start.elapsed();
    join(helper)?;
    assert!(elapsed >= delay, "returned before the wake-up: {elapsed:?}");
    assert!(
        elapsed < SETTLE / 2,
        "the second wake-up was lost: {elapsed:?}"
    );
    Ok(())
}
