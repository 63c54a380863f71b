//! asyncio's `timeout`, `timeout_at` and `wait_for` (Lib/test/test_asyncio/test_timeouts.py and
//! test_waitfor.py).

mod util;

use std::cell::Cell;
use std::error::Error as StdError;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_sched::EventLoop;
use evloop_task::{LoopFuture, LoopTaskExt, sleep, timeout, timeout_at, wait_for};

type TestResult = Result<(), Box<dyn StdError>>;

// CPython: test_timeouts.py::test_timeout_basic, test_timeout_at_basic.
#[test]
fn a_deadline_that_passes_first_is_a_timed_out_error() -> TestResult {
    let lp = EventLoop::new()?;
    let started = Instant::now();
    let err = lp
        .run_until_complete(timeout(0.01, sleep(10.0)))?
        .unwrap_err();
    assert!(err.is_timed_out(), "{err:?}");
    assert_eq!(err.to_string(), "timed out");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::TimedOut
    );
    let when = lp.time() + 0.01;
    let err = lp
        .run_until_complete(timeout_at(when, sleep(10.0)))?
        .unwrap_err();
    assert!(err.is_timed_out());
    assert!(started.elapsed() < Duration::from_secs(5));
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_timeout_not_called, test_timeout_disabled,
// test_timeout_at_disabled.
#[test]
fn a_future_that_finishes_first_gives_its_output_and_no_deadline_never_expires() -> TestResult {
    let lp = EventLoop::new()?;
    let out = lp.run_until_complete(timeout(10.0, async {
        sleep(0.01).await?;
        Ok::<_, evloop_task::Error>(5)
    }))?;
    assert_eq!(out??, 5);
    let out = lp.run_until_complete(timeout(f64::INFINITY, async {
        sleep(0.01).await?;
        Ok::<_, evloop_task::Error>(6)
    }))?;
    assert_eq!(out??, 6);
    let out = lp.run_until_complete(timeout_at(f64::INFINITY, async { 7 }))?;
    assert_eq!(out?, 7);
    // `when()` before and after the first poll; none for no deadline.
    let mut t = timeout(f64::INFINITY, async { 1 });
    assert_eq!(t.when(), None);
    t.reschedule(Some(1.0))?;
    assert_eq!(t.when(), Some(1.0));
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_timeout_zero, test_timeout_zero_sleep_zero,
// test_timeout_in_the_past_sleep_zero.
#[test]
fn a_deadline_already_past_lets_the_future_run_until_it_suspends() -> TestResult {
    let lp = EventLoop::new()?;
    let ran = Rc::new(Cell::new(0));
    let r2 = ran.clone();
    let err = lp
        .run_until_complete(timeout(0.0, async move {
            r2.set(1);
            sleep(0.0).await?;
            r2.set(2);
            Ok::<_, evloop_task::Error>(())
        }))?
        .unwrap_err();
    assert!(err.is_timed_out());
    assert_eq!(
        ran.get(),
        1,
        "the body ran to its first suspension, not beyond"
    );
    let past = lp.time() - 10.0;
    let err = lp
        .run_until_complete(timeout_at(past, sleep(0.0)))?
        .unwrap_err();
    assert!(err.is_timed_out());
    // A future that completes without suspending beats even a past deadline.
    assert_eq!(lp.run_until_complete(timeout(-1.0, async { 3 }))??, 3);
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_foreign_exception_passed.
#[test]
fn the_futures_own_failure_passes_through_as_its_output() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let out = lp.run_until_complete(async move {
        let t = lp2.create_task(async { panic!("boom") })?;
        let inner: Result<(), evloop_task::Error> = timeout(10.0, t).await?;
        Ok::<_, evloop_task::Error>(inner)
    })??;
    let err = out.unwrap_err();
    assert!(err.is_panic() && !err.is_timed_out());
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_cancel_in_timeout_after_cancellation / test_waitfor.py::
// test_wait_for_timeout_less_then_0_or_0 (the awaited task is cancelled at the deadline).
#[test]
fn at_the_deadline_the_awaited_task_is_cancelled() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let (timed_out, cancelled) = lp.run_until_complete(async move {
        let inner = lp2.create_task(sleep(10.0))?;
        let err = timeout(0.01, inner.clone()).await.unwrap_err();
        // The cancelled task ends on its next step.
        sleep(0.0).await?;
        sleep(0.0).await?;
        Ok::<_, evloop_task::Error>((err.is_timed_out(), inner.cancelled()))
    })??;
    assert!(timed_out);
    assert!(cancelled);
    // A loop future awaited inside is cancelled too.
    let fut: LoopFuture<i32> = LoopFuture::new(&lp);
    let f2 = fut.clone();
    let err = lp.run_until_complete(timeout(0.01, f2))?.unwrap_err();
    assert!(err.is_timed_out());
    assert!(fut.cancelled());
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_outer_task_is_not_cancelled, test_nested_timeouts.
#[test]
fn nested_timeouts_each_report_their_own_deadline() -> TestResult {
    let lp = EventLoop::new()?;
    let out = lp.run_until_complete(async {
        // The inner deadline passes first: the inner timeout reports it, the outer one gets
        // the inner's result as its output and goes on.
        let inner = timeout(10.0, timeout(0.01, sleep(10.0))).await;
        let outer_ok = matches!(&inner, Ok(Err(e)) if e.is_timed_out());
        // The outer deadline passes first: the outer reports it.
        let outer = timeout(0.01, timeout(10.0, sleep(10.0))).await;
        let outer_timed_out = matches!(&outer, Err(e) if e.is_timed_out());
        (outer_ok, outer_timed_out)
    })?;
    assert_eq!(out, (true, true));
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_reschedule, test_timeout_expired.
#[test]
fn reschedule_moves_the_deadline_and_expired_tells_what_happened() -> TestResult {
    let lp = EventLoop::new()?;
    let out = lp.run_until_complete(async {
        let lp = evloop_sched::get_running_loop()?;
        let mut t = timeout(0.01, sleep(0.05));
        // Polled once to take the deadline, then pushed out before it passes.
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut t).poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        let first = t.when().ok_or("no deadline after the first poll")?;
        t.reschedule(Some(lp.time() + 10.0))?;
        let moved = t.when().ok_or("no deadline after reschedule")? > first + 5.0;
        let expired_before = t.expired();
        let out = (&mut t).await;
        Ok::<_, Box<dyn StdError>>((moved, expired_before, out.is_ok(), t.expired()))
    })?;
    assert_eq!(out.map_err(|e| e.to_string())?, (true, false, true, false));
    // Pulled in: it expires.
    let out = lp.run_until_complete(async {
        let lp = evloop_sched::get_running_loop()?;
        let mut t = timeout(f64::INFINITY, sleep(10.0));
        t.reschedule(Some(lp.time() + 0.01))?;
        let err = (&mut t).await.unwrap_err();
        Ok::<_, evloop_task::Error>((err.is_timed_out(), t.expired()))
    })??;
    assert_eq!(out, (true, true));
    assert!(timeout(1.0, async {}).reschedule(Some(f64::NAN)).is_err());
    lp.close()?;
    Ok(())
}

// CPython: test_waitfor.py::test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started,
// test_wait_for_timeout_less_then_0_or_0_result_ready (a done future: see the docs).
#[test]
fn wait_for_with_no_time_left_never_starts_the_future() -> TestResult {
    let lp = EventLoop::new()?;
    let started = Rc::new(Cell::new(false));
    let s2 = started.clone();
    let err = lp
        .run_until_complete(wait_for(async move { s2.set(true) }, 0.0))?
        .unwrap_err();
    assert!(err.is_timed_out());
    assert!(!started.get());
    let err = lp
        .run_until_complete(wait_for(async { 1 }, -1.0))?
        .unwrap_err();
    assert!(err.is_timed_out());
    lp.close()?;
    Ok(())
}

// CPython: test_waitfor.py::test_wait_for, test_wait_for_with_global_loop,
// test_wait_for_blocking (the result within the timeout; None waits forever).
#[test]
fn wait_for_gives_the_result_within_the_timeout() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let out = lp.run_until_complete(async move {
        let t = lp2.create_task(async {
            sleep(0.01).await?;
            Ok::<_, evloop_task::Error>("foo")
        })?;
        let a = wait_for(t, 10.0).await???;
        let b = wait_for(async { "bar" }, f64::INFINITY).await?;
        let c = wait_for(sleep(10.0), 0.01).await;
        Ok::<_, evloop_task::Error>((a, b, c.unwrap_err().is_timed_out()))
    })??;
    assert_eq!(out, ("foo", "bar", true));
    lp.close()?;
    Ok(())
}

// CPython: test_timeouts.py::test_timeout_basic (cancelling the outer task while in a timeout
// cancels what it awaits, not as a timeout).
#[test]
fn cancelling_the_awaiting_task_cancels_through_the_timeout() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let err = lp.run_until_complete(async move {
        let inner = lp2.create_task(sleep(10.0))?;
        let i2 = inner.clone();
        let outer = lp2.create_task(async move { timeout(10.0, i2).await })?;
        sleep(0.01).await?;
        outer.cancel(Some("stop"));
        let err = outer.await.unwrap_err();
        sleep(0.0).await?;
        Ok::<_, evloop_task::Error>((err, inner.cancelled()))
    })??;
    assert!(err.0.is_cancelled() && !err.0.is_timed_out());
    assert!(err.1, "the inner task is cancelled with the outer one");
    lp.close()?;
    Ok(())
}

#[test]
fn a_nan_delay_is_an_invalid_argument() -> TestResult {
    let lp = EventLoop::new()?;
    let err = lp
        .run_until_complete(timeout(f64::NAN, async {}))?
        .unwrap_err();
    assert!(
        err.loop_error().is_some_and(|e| e.is_invalid_argument()),
        "{err:?}"
    );
    let err = lp
        .run_until_complete(timeout_at(f64::NAN, async {}))?
        .unwrap_err();
    assert!(
        err.loop_error().is_some_and(|e| e.is_invalid_argument()),
        "{err:?}"
    );
    // Outside a running loop, the future says so.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut t = timeout(1.0, async {});
    match std::pin::Pin::new(&mut t).poll(&mut cx) {
        std::task::Poll::Ready(Err(e)) => {
            assert!(e.loop_error().is_some_and(|e| e.is_not_running()))
        }
        other => return Err(format!("{other:?}").into()),
    }
    lp.close()?;
    Ok(())
}
