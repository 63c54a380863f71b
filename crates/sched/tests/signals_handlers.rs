//! Signal handlers: conformance area Q. Every test here uses its own signal, because signal
//! dispositions are process-wide and tests run in parallel.

mod util;

use std::io;
use std::time::Duration;

use evloop_sched::EventLoop;
use util::Log;

fn raise(sig: i32) {
    // SAFETY: raise() is always safe to call; every signal raised here has a handler installed.
    unsafe { libc::raise(sig) };
}

fn disposition_is_default(sig: i32) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL
    }
}

// CPython: events::…::test_add_signal_handler, unix::…::test_remove_signal_handler (Q96).
#[test]
fn a_handler_runs_on_a_later_iteration_and_removal_restores_the_default() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let (l2, lg) = (lp.clone(), log.clone());
    lp.add_signal_handler(libc::SIGUSR1, move || {
        lg.push("handler");
        l2.stop();
    })?;
    let lg = log.clone();
    lp.call_soon(move || {
        raise(libc::SIGUSR1);
        lg.push("raised"); // the handler never runs inside the signal context
    })?;
    lp.run_forever()?;
    assert_eq!(log.take(), ["raised", "handler"]);
    assert!(lp.remove_signal_handler(libc::SIGUSR1)?);
    assert!(disposition_is_default(libc::SIGUSR1));
    assert!(!lp.remove_signal_handler(libc::SIGUSR1)?);
    Ok(())
}

// CPython: events::…::test_add_signal_handler, unix::…::test_check_signal (Q97).
#[test]
fn invalid_signals_are_clear_errors() -> io::Result<()> {
    let lp = EventLoop::new()?;
    for bad in [0, -1, libc::SIGRTMAX() + 2] {
        let err = lp.add_signal_handler(bad, || ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), format!("invalid signal number {bad}"));
        let err = lp.remove_signal_handler(bad).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid signal number {bad}"));
    }
    let err = lp.add_signal_handler(libc::SIGKILL, || ()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "sig 9 cannot be caught");
    assert!(lp.add_signal_handler(libc::SIGSTOP, || ()).is_err());
    assert!(!lp.remove_signal_handler(libc::SIGKILL)?);
    Ok(())
}

// CPython: unix::…::test_handle_signal_cancelled_handler (Q98): a second add replaces the first;
// a panicking handler is reported with {message, exception, handle}.
#[test]
fn adding_again_replaces_and_panics_are_reported() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let seen = util::record_exceptions(&lp);
    let log = Log::new();
    let lg = log.clone();
    lp.add_signal_handler(libc::SIGUSR2, move || lg.push("first"))?;
    let (l2, lg) = (lp.clone(), log.clone());
    lp.add_signal_handler(libc::SIGUSR2, move || {
        lg.push("second");
        l2.stop();
        panic!("signal handler failed");
    })?;
    lp.call_soon(|| raise(libc::SIGUSR2))?;
    lp.run_forever()?;
    assert_eq!(log.take(), ["second"]);
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].keys, ["message", "exception", "handle"]);
    lp.close()?;
    Ok(())
}

// CPython: unix::…::test_add_signal_handler_setup_error, unix::…::test_close (Q99)
// [N/T: evloop allows any thread; close() removes every handler].
#[test]
fn a_loop_on_another_thread_handles_signals_and_close_removes_them() -> io::Result<()> {
    let worker = std::thread::spawn(|| -> io::Result<bool> {
        let lp = EventLoop::new()?;
        let log = Log::new();
        let (l2, lg) = (lp.clone(), log.clone());
        lp.add_signal_handler(libc::SIGWINCH, move || {
            lg.push(());
            l2.stop();
        })?;
        lp.call_later(Duration::from_millis(5), || raise(libc::SIGWINCH))
            .map_err(io::Error::from)?;
        lp.run_forever()?;
        lp.close()?;
        Ok(log.len() == 1 && disposition_is_default(libc::SIGWINCH))
    });
    assert!(worker.join().expect("thread")?);
    Ok(())
}
