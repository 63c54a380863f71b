//! `call_later` / `call_at` and timer handles: conformance area D.

mod util;

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_sched::EventLoop;
use util::{Log, run_one_iteration};

// CPython: base::…::test_call_later, test_time_and_call_at, events::TimerTests::test_when (D17).
#[test]
fn when_is_absolute_and_timers_never_fire_early() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let before = lp.time();
    let t = lp.call_later(10.0, || ())?;
    assert!(t.when() >= before + 10.0 && t.when() <= lp.time() + 10.0 + 1e-6);
    t.cancel();

    let start = Instant::now();
    let t0 = lp.time();
    let l2 = lp.clone();
    lp.call_at(lp.time() + 0.1, move || l2.stop())?;
    lp.run_forever()?;
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(lp.time() - t0 >= 0.1);
    Ok(())
}

// CPython: MAXIMUM_SELECT_TIMEOUT in _run_once (D18): long delays neither overflow nor fire.
#[test]
fn delays_beyond_a_day_keep_their_true_when_and_do_not_fire() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let mut handles = Vec::new();
    for delay in [3.0 * 86_400.0, 1e30, f64::INFINITY] {
        let l2 = log.clone();
        handles.push(lp.call_later(delay, move || l2.push(delay))?);
    }
    let l2 = log.clone();
    lp.call_later(Duration::MAX, move || l2.push(-1.0))?;
    run_one_iteration(&lp)?;
    assert!(log.take().is_empty());
    assert!(handles[0].when() >= lp.time() + 3.0 * 86_400.0 - 1.0);
    // 1e30 s saturates at the clock's range, about 584 years: far beyond any run.
    assert!(handles[1].when() >= 1.8e10);
    assert_eq!(handles[2].when(), f64::INFINITY);
    Ok(())
}

// CPython: tasks::…::test_sleep_when_delay_is_nan (D19) [DIVERGE-OK: rejected at the call].
#[test]
fn a_nan_delay_is_rejected_at_the_call() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let err = lp.call_later(f64::NAN, || ()).unwrap_err();
    assert!(err.is_invalid_argument());
    assert_eq!(err.to_string(), "invalid delay: NaN (not a number)");
    assert!(
        lp.call_at(f64::NAN, || ())
            .is_err_and(|e| e.is_invalid_argument())
    );
    // The loop is not broken by it.
    run_one_iteration(&lp)?;
    Ok(())
}

// CPython: call_later docstring (D20) [DIVERGE-OK: evloop promises FIFO among equal deadlines].
#[test]
fn equal_deadlines_fire_in_scheduling_order() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let when = lp.time() + 0.02;
    for i in 0..100 {
        let l2 = log.clone();
        lp.call_at(when, move || l2.push(i))?;
    }
    let l2 = lp.clone();
    lp.call_at(when + 0.001, move || l2.stop())?;
    lp.run_forever()?;
    assert_eq!(log.take(), (0..100).collect::<Vec<_>>());
    Ok(())
}

// Negative delays and times in the past are due at once, in deadline order.
#[test]
fn past_deadlines_fire_on_the_next_iteration_in_deadline_order() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let now = lp.time();
    for (label, when) in [("b", now - 1.0), ("a", now - 2.0), ("c", now)] {
        let l2 = log.clone();
        lp.call_at(when, move || l2.push(label))?;
    }
    let l2 = log.clone();
    lp.call_later(-5.0, move || l2.push("neg"))?;
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["neg", "a", "b", "c"]); // -5 s is the earliest deadline
    Ok(())
}

// CPython: base::…::test__run_once, tasks::…::test_sleep_cancel (D21, D22): a cancelled timer is
// never called, and cancelling frees it at once (evloop's wheel removes it in O(1); there is no
// lazy compaction to wait for).
#[test]
fn cancelled_timers_never_run_and_are_released_at_once() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let token = Rc::new(());
    let log = Log::new();
    let mut handles = Vec::new();
    for i in 0..150 {
        let (t, l2) = (token.clone(), log.clone());
        handles.push(lp.call_later(0.01, move || {
            drop(t);
            l2.push(i)
        })?);
    }
    for h in handles.iter().filter(|_| true).take(100) {
        h.cancel();
    }
    assert_eq!(Rc::strong_count(&token), 51);
    let l2 = lp.clone();
    lp.call_later(0.03, move || l2.stop())?;
    lp.run_forever()?;
    assert_eq!(log.take(), (100..150).collect::<Vec<_>>());
    // Cancelling after it fired sets cancelled() and changes nothing else.
    handles[120].cancel();
    assert!(handles[120].cancelled());
    Ok(())
}
