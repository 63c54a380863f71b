//! POSIX signals: delivery into the reactor, validation, and the default
//! disposition coming back when the last watcher goes.
//!
//! Every signal test lives in this one file because dispositions are
//! process-wide: the tests are serialised by `SERIAL` and use distinct
//! signals where they can.

use std::error::Error;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use evloop_reactor::{Reactor, validate_signal};

type TestResult = Result<(), Box<dyn Error>>;

/// Serialises the tests of this file (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes `SERIAL`; a failed test must not fail the others by poisoning.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Long enough for a delivery that really happened to show up.
const SETTLE: Duration = Duration::from_secs(5);

/// Sends `signum` to the calling thread; its handler has run on return.
fn raise(signum: i32) -> io::Result<()> {
    // SAFETY: raise has no memory-safety preconditions. Every caller watches
    // `signum` first, so the process is not terminated.
    if unsafe { libc::raise(signum) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `signum` has the default disposition, asked of the kernel.
fn is_default(signum: i32) -> io::Result<bool> {
    // SAFETY: all-zero is a valid `sigaction` for the kernel to overwrite.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action makes this a pure query into `current`.
    if unsafe { libc::sigaction(signum, std::ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(current.sa_sigaction == libc::SIG_DFL)
}

/// Polls without waiting and returns the signals that arrived.
fn poll_signals(reactor: &mut Reactor) -> io::Result<Vec<i32>> {
    reactor.poll(Some(Duration::ZERO), &mut Vec::new())?;
    let mut signals = Vec::new();
    reactor.take_signals(&mut signals);
    Ok(signals)
}

#[test]
fn raised_signal_is_taken_after_a_poll() -> TestResult {
    let _serial = serial();
    let mut reactor = Reactor::new()?;
    reactor.watch_signal(libc::SIGUSR1)?;
    raise(libc::SIGUSR1)?;

    let mut signals = Vec::new();
    reactor.take_signals(&mut signals);
    assert_eq!(signals, [], "signals are collected by poll, not before");

    assert_eq!(poll_signals(&mut reactor)?, [libc::SIGUSR1]);
    assert_eq!(
        poll_signals(&mut reactor)?,
        [],
        "each delivery is taken once"
    );
    assert!(reactor.unwatch_signal(libc::SIGUSR1)?);
    Ok(())
}

#[test]
fn repeated_signals_are_taken_once_in_ascending_order() -> TestResult {
    let _serial = serial();
    let mut reactor = Reactor::new()?;
    reactor.watch_signal(libc::SIGUSR1)?;
    reactor.watch_signal(libc::SIGUSR2)?;
    for signum in [libc::SIGUSR2, libc::SIGUSR1, libc::SIGUSR2, libc::SIGUSR1] {
        raise(signum)?;
    }
    let mut expected = [libc::SIGUSR1, libc::SIGUSR2];
    expected.sort_unstable();
    assert_eq!(poll_signals(&mut reactor)?, expected);
    assert!(reactor.unwatch_signal(libc::SIGUSR1)?);
    assert!(reactor.unwatch_signal(libc::SIGUSR2)?);
    Ok(())
}

#[test]
fn signal_wakes_a_blocking_poll() -> TestResult {
    let _serial = serial();
    let mut reactor = Reactor::new()?;
    reactor.watch_signal(libc::SIGHUP)?;
    let delay = Duration::from_millis(20);
    let start = Instant::now();
    // Raised on another thread: the handler runs there and writes the pipe.
    let raiser = thread::spawn(move || {
        thread::sleep(delay);
        raise(libc::SIGHUP)
    });
    let mut signals = Vec::new();
    while signals.is_empty() && start.elapsed() < SETTLE {
        reactor.poll(Some(SETTLE), &mut Vec::new())?;
        reactor.take_signals(&mut signals);
    }
    let elapsed = start.elapsed();
    raiser.join().map_err(|_| "raiser thread panicked")??;
    assert_eq!(signals, [libc::SIGHUP]);
    assert!(elapsed >= delay, "woke before the signal: {elapsed:?}");
    assert!(elapsed < SETTLE, "{elapsed:?}");
    assert!(reactor.unwatch_signal(libc::SIGHUP)?);
    Ok(())
}

#[test]
fn watch_unwatch_watch_restores_the_handler_and_the_default() -> TestResult {
    // signal-hook-registry installs its handler only on the first register
    // of a signal; after our SIG_DFL the second watch must put it back, or
    // the raise below would terminate the test process.
    let _serial = serial();
    let signum = libc::SIGALRM;
    let mut reactor = Reactor::new()?;

    reactor.watch_signal(signum)?;
    assert!(!is_default(signum)?);
    assert!(reactor.unwatch_signal(signum)?);
    assert!(is_default(signum)?, "the last unwatch restores SIG_DFL");

    reactor.watch_signal(signum)?;
    assert!(
        !is_default(signum)?,
        "the second watch reinstalls the handler"
    );
    raise(signum)?;
    assert_eq!(poll_signals(&mut reactor)?, [signum]);
    assert!(reactor.unwatch_signal(signum)?);
    assert!(is_default(signum)?);

    // The same again through a fresh reactor.
    let mut fresh = Reactor::new()?;
    fresh.watch_signal(signum)?;
    raise(signum)?;
    assert_eq!(poll_signals(&mut fresh)?, [signum]);
    assert!(fresh.unwatch_signal(signum)?);
    assert!(is_default(signum)?);
    Ok(())
}

#[test]
fn two_reactors_watching_one_signal_both_receive_it() -> TestResult {
    let _serial = serial();
    let signum = libc::SIGUSR2;
    let mut first = Reactor::new()?;
    let mut second = Reactor::new()?;
    first.watch_signal(signum)?;
    second.watch_signal(signum)?;
    raise(signum)?;
    assert_eq!(poll_signals(&mut first)?, [signum]);
    assert_eq!(poll_signals(&mut second)?, [signum]);

    // One leaves: the other still receives, and the handler stays.
    assert!(first.unwatch_signal(signum)?);
    assert!(!is_default(signum)?);
    raise(signum)?;
    assert_eq!(poll_signals(&mut first)?, []);
    assert_eq!(poll_signals(&mut second)?, [signum]);

    assert!(second.unwatch_signal(signum)?);
    assert!(is_default(signum)?);
    Ok(())
}

#[test]
fn reactors_on_other_threads_watch_signals_too() -> TestResult {
    let _serial = serial();
    let signum = libc::SIGUSR1;
    let watcher = thread::spawn(move || -> io::Result<Vec<i32>> {
        let mut reactor = Reactor::new()?;
        reactor.watch_signal(signum)?;
        raise(signum)?;
        let signals = poll_signals(&mut reactor)?;
        reactor.unwatch_signal(signum)?;
        Ok(signals)
    });
    let signals = watcher.join().map_err(|_| "watcher thread panicked")??;
    assert_eq!(signals, [signum]);
    Ok(())
}

#[test]
fn watch_is_idempotent_and_unwatch_reports_whether_it_was_watched() -> TestResult {
    let _serial = serial();
    let signum = libc::SIGWINCH;
    let mut reactor = Reactor::new()?;
    assert!(!reactor.unwatch_signal(signum)?);
    reactor.watch_signal(signum)?;
    reactor.watch_signal(signum)?;
    assert!(reactor.unwatch_signal(signum)?);
    // One registration only: the single unwatch was the last one.
    assert!(is_default(signum)?);
    assert!(!reactor.unwatch_signal(signum)?);
    // Never watchable, so never watched.
    assert!(!reactor.unwatch_signal(libc::SIGKILL)?);
    Ok(())
}

#[test]
fn dropping_a_reactor_unwatches_its_signals() -> TestResult {
    let _serial = serial();
    let signum = libc::SIGVTALRM;
    let mut reactor = Reactor::new()?;
    reactor.watch_signal(signum)?;
    assert!(!is_default(signum)?);
    drop(reactor);
    assert!(is_default(signum)?);
    Ok(())
}

#[test]
fn validate_signal_gives_asyncio_errors() {
    let cases = [
        (0, "invalid signal number 0".to_owned()),
        (-1, "invalid signal number -1".to_owned()),
        (65, "invalid signal number 65".to_owned()),
        (66, "invalid signal number 66".to_owned()),
        (libc::SIGKILL, "sig 9 cannot be caught".to_owned()),
        (
            libc::SIGSTOP,
            format!("sig {} cannot be caught", libc::SIGSTOP),
        ),
    ];
    for (signum, message) in cases {
        let err = validate_signal(signum).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signum}");
        assert_eq!(err.to_string(), message);
    }
    for signum in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGCHLD] {
        assert!(validate_signal(signum).is_ok(), "{signum}");
    }
}

#[test]
fn fault_signals_and_reserved_numbers_are_refused() {
    for signum in [libc::SIGSEGV, libc::SIGILL, libc::SIGFPE] {
        let err = validate_signal(signum).expect_err("fault signal refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            format!("sig {signum} cannot be watched: it reports a fault")
        );
    }
    // glibc keeps 32 and 33 for its threads; the kernel would accept them.
    if cfg!(target_env = "gnu") {
        for signum in [32, 33] {
            let err = validate_signal(signum).expect_err("reserved by glibc");
            assert_eq!(err.to_string(), format!("invalid signal number {signum}"));
        }
    }
}

#[test]
fn watch_signal_refuses_what_validate_signal_refuses() -> TestResult {
    let _serial = serial();
    let mut reactor = Reactor::new()?;
    for signum in [0, -3, 99, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
        let err = reactor.watch_signal(signum).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signum}");
    }
    let err = reactor.unwatch_signal(0).expect_err("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}
