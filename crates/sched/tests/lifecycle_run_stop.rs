//! Loop lifecycle and `stop()`/`run_forever` semantics: conformance areas A and B.

mod util;

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use evloop_sched::{EventLoop, get_running_loop};
use util::{Log, record_exceptions, run_one_iteration};

// CPython: base::BaseEventLoopTests::test_close, events::EventLoopTestsMixin::test_close (A1).
#[test]
fn close_is_idempotent_and_everything_scheduling_fails_after_it() -> io::Result<()> {
    let lp = EventLoop::new()?;
    assert!(!lp.is_closed());
    lp.close()?;
    assert!(lp.is_closed());
    lp.close()?; // a second close does nothing
    assert!(lp.run_forever().is_err_and(|e| e.is_closed()));
    assert!(lp.call_soon(|| ()).is_err_and(|e| e.is_closed()));
    assert!(lp.call_soon_threadsafe(|| ()).is_err_and(|e| e.is_closed()));
    assert!(lp.call_later(0.1, || ()).is_err_and(|e| e.is_closed()));
    assert!(lp.call_at(lp.time(), || ()).is_err_and(|e| e.is_closed()));
    assert!(
        lp.remote()
            .call_soon_threadsafe(|| ())
            .is_err_and(|e| e.is_closed())
    );
    let err = lp.add_signal_handler(libc::SIGUSR2, || ()).unwrap_err();
    assert_eq!(err.to_string(), "event loop is closed");
    Ok(())
}

// CPython: events::…::test_close_running_event_loop (A2).
#[test]
fn close_from_inside_the_running_loop_is_refused_and_the_loop_keeps_running() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let (l2, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        let err = l2.close().unwrap_err();
        log2.push(err.is_close_while_running());
        let (l3, log3) = (l2.clone(), log2.clone());
        l2.call_soon(move || {
            log3.push(l3.is_running());
            l3.stop();
        })
        .unwrap();
    })?;
    lp.run_forever()?;
    assert_eq!(log.take(), [true, true]);
    assert!(!lp.is_closed());
    lp.close()?;
    Ok(())
}

// CPython: events::…::test_run_until_complete_nesting, base::RunningLoopTests::
// test_running_loop_within_a_loop (A3).
#[test]
fn nested_runs_are_errors() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let other = EventLoop::new()?;
    let log = Log::new();
    let (l2, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.push(l2.run_forever().unwrap_err().is_already_running());
        log2.push(other.run_forever().unwrap_err().is_other_loop_running());
        log2.push(
            other
                .run_forever_setup()
                .unwrap_err()
                .is_other_loop_running(),
        );
        l2.stop();
    })?;
    lp.run_forever()?;
    assert_eq!(log.take(), [true, true, true]);
    Ok(())
}

// CPython: base::…::test_custom_run_forever_integration (A8).
#[test]
fn the_step_api_drives_the_loop_from_outside() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let ran = Log::new();
    let r2 = ran.clone();
    lp.call_soon(move || r2.push(()))?;
    assert!(lp.run_once().is_err_and(|e| e.is_not_running()));
    assert!(
        lp.run_once_timeout(Duration::ZERO)
            .is_err_and(|e| e.is_not_running())
    );
    lp.run_forever_setup()?;
    for _ in 0..10 {
        lp.run_once_timeout(Duration::ZERO)?;
        assert!(lp.is_running());
        assert!(get_running_loop()?.ptr_eq(&lp));
    }
    lp.run_forever_cleanup()?;
    assert!(!lp.is_running());
    assert!(get_running_loop().is_err_and(|e| e.is_not_running()));
    assert_eq!(ran.len(), 1);
    Ok(())
}

// CPython: base_events.py::_run_once ("ntodo"), base::…::test__run_once_schedule_handle (B9).
#[test]
fn stop_finishes_the_batch_and_later_callbacks_wait_for_the_next_run() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let (l2, log_a) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log_a.push("a");
        l2.stop();
        let log_c = log_a.clone();
        l2.call_soon(move || log_c.push("c")).unwrap();
    })?;
    let log_b = log.clone();
    lp.call_soon(move || log_b.push("b"))?;
    lp.run_forever()?;
    assert_eq!(log.take(), ["a", "b"]);
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["c"]);
    Ok(())
}

// CPython: base::…::test_run_forever_pre_stopped, test_run_once (B10).
#[test]
fn a_pre_stopped_loop_runs_exactly_one_iteration() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let (l2, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.push(1);
        let log3 = log2.clone();
        l2.call_soon(move || log3.push(2)).unwrap();
    })?;
    lp.stop();
    let start = Instant::now();
    lp.run_forever()?; // polls once with a zero timeout: returns at once
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(log.take(), [1]);
    // The stop flag was reset on exit: the next run needs its own stop.
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), [2]);
    Ok(())
}

// CPython: base::…::test__run_once (B11): the poll timeout is the time to the next live timer
// (a cancelled head does not count) and blocks when nothing is pending.
#[test]
fn the_loop_sleeps_until_the_next_live_timer() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let early = lp.call_later(0.01, || panic!("cancelled timer ran"))?;
    early.cancel();
    let l2 = lp.clone();
    // Taken before the timer is scheduled: its delay counts from the call, so a clock read
    // after it (slow under valgrind) could see less than 150 ms with a timer on time.
    let start = Instant::now();
    lp.call_later(0.15, move || l2.stop())?;
    lp.run_forever()?;
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert!(start.elapsed() < Duration::from_secs(5));
    Ok(())
}

// CPython: events::…::test_timeout_rounding (B12): short sleeps do not busy-spin.
#[test]
fn tiny_delays_take_few_iterations() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let done = Log::new();
    fn chain(lp: &EventLoop, delays: &'static [f64], done: Log<()>) {
        let Some((&first, rest)) = delays.split_first() else {
            done.push(());
            return;
        };
        let l2 = lp.clone();
        lp.call_later(first, move || chain(&l2, rest, done))
            .unwrap();
    }
    chain(&lp, &[1e-2, 1e-4, 1e-6, 1e-8, 1e-10], done.clone());
    lp.run_forever_setup()?;
    let mut iterations = 0;
    while done.len() == 0 && iterations < 1000 {
        lp.run_once()?;
        iterations += 1;
    }
    lp.run_forever_cleanup()?;
    assert_eq!(done.len(), 1);
    assert!(iterations <= 20, "{iterations} iterations");
    Ok(())
}

/// Panics when dropped: what a pending callback or timer captures in the tests below.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

// Ours (issue 12, defect 4): a destructor that panics while close() drops a pending callback,
// timer, fd watch or signal handler, and a close hook that panics, are each reported; close()
// still finishes every other drop and runs every hook.
#[test]
fn panicking_destructors_and_hooks_at_close_are_reported_and_every_hook_runs() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    let soon = PanicOnDrop("soon");
    lp.call_soon(move || drop(soon))?;
    let later = PanicOnDrop("later");
    lp.call_later(3600.0, move || drop(later))?;
    let reader = PanicOnDrop("reader");
    lp.add_reader(a.as_raw_fd(), move || {
        let _ = &reader;
    })?;
    let hooks = Log::new();
    let h1 = hooks.clone();
    lp.on_close(move || h1.push("first"));
    lp.on_close(|| panic!("hook"));
    let h3 = hooks.clone();
    lp.on_close(move || h3.push("last"));
    lp.close()?;
    assert!(lp.is_closed());
    assert_eq!(hooks.take(), ["first", "last"]);
    let seen = seen.take();
    let panics: Vec<_> = seen.iter().filter_map(|s| s.exception.clone()).collect();
    assert_eq!(panics, ["soon", "later", "reader", "hook"]);
    assert!(
        seen[0]
            .message
            .starts_with("Exception in the destructor of <Handle cancelled created at ")
    );
    assert_eq!(seen[0].keys, ["message", "exception", "handle"]);
    assert_eq!(seen[3].message, "Exception in a close hook at close()");
    drop((a, b));
    Ok(())
}
