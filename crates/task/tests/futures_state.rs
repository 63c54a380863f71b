//! Loop futures: conformance area E.

mod util;

use std::error::Error as StdError;

use evloop_sched::{EventLoop, Exception};
use evloop_task::LoopTaskExt;
use util::{Log, record_exceptions, run_one_iteration};

type TestResult = Result<(), Box<dyn StdError>>;

// CPython: fut::BaseFutureTests::test_initial_state, test_cancel (E23).
#[test]
fn cancel_makes_a_pending_future_done_and_cancelled_once() -> TestResult {
    let lp = EventLoop::new()?;
    let f = lp.create_future::<u32>();
    assert!(!f.done() && !f.cancelled());
    assert!(f.cancel(None));
    assert!(f.done() && f.cancelled());
    assert!(f.result().is_err_and(|e| e.is_cancelled()));
    assert!(f.exception().is_err_and(|e| e.is_cancelled()));
    assert!(f.set_result(1).is_err_and(|e| e.is_invalid_state()));
    assert!(
        f.set_exception(Exception::from_error("x"))
            .is_err_and(|e| e.is_invalid_state())
    );
    assert!(!f.cancel(None));
    Ok(())
}

// CPython: fut::…::test_result, test_exception (E24).
#[test]
fn result_and_exception_follow_the_state() -> TestResult {
    let lp = EventLoop::new()?;
    let f = lp.create_future::<u32>();
    let err = f.result().unwrap_err();
    assert!(err.is_invalid_state());
    assert_eq!(err.to_string(), "result is not set");
    assert_eq!(
        f.exception().unwrap_err().to_string(),
        "exception is not set"
    );
    f.set_result(42)?;
    assert_eq!(f.result()?, 42);
    assert_eq!(f.result()?, 42); // cloned, as often as asked
    assert!(f.exception()?.is_none());
    assert!(!f.cancel(None));
    assert!(f.set_result(1).is_err_and(|e| e.is_invalid_state()));

    let g = lp.create_future::<u32>();
    g.set_exception(Exception::from_error("boom"))?;
    let err = g.result().unwrap_err();
    assert!(err.is_failed() && !err.is_panic());
    assert_eq!(err.to_string(), "boom");
    assert_eq!(
        g.exception()?.map(|e| e.to_string()),
        Some("boom".to_owned())
    );
    Ok(())
}

// Ours: the value of a non-Clone future is handed out once.
#[test]
fn take_result_hands_the_value_out_once() -> TestResult {
    let lp = EventLoop::new()?;
    let f = lp.create_future::<String>();
    f.set_result("v".to_owned())?;
    assert_eq!(f.take_result()?, "v");
    let err = f.take_result().unwrap_err();
    assert!(err.is_invalid_state());
    assert!(f.done() && !f.cancelled());
    Ok(())
}

// CPython: fut::…::test_future_cancel_message_getter (E25).
#[test]
fn awaiting_a_cancelled_future_gives_its_message() -> TestResult {
    let lp = EventLoop::new()?;
    let f = lp.create_future::<()>();
    f.cancel(Some("my message"));
    let err = lp.run_until_complete(f)?.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.cancel_message(), Some("my message"));
    Ok(())
}

// CPython: fut::BaseFutureDoneCallbackTests::test_callbacks_invoked_on_set_result (E26).
#[test]
fn done_callbacks_are_scheduled_in_order_never_inline() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let f = lp.create_future::<u32>();
    let l1 = log.clone();
    f.add_done_callback(move |f| l1.push(format!("cb1 {:?}", f.result().ok())));
    let l2 = log.clone();
    f.add_done_callback(move |_| l2.push("cb2".to_owned()));
    let lx = log.clone();
    lp.call_soon(move || lx.push("x".to_owned()))?;
    f.set_result(7)?;
    assert!(log.snapshot().is_empty());
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["x", "cb1 Some(7)", "cb2"]);

    // Added to a future that is already done: still scheduled, not run inline.
    let l3 = log.clone();
    f.add_done_callback(move |_| l3.push("late".to_owned()));
    assert!(log.snapshot().is_empty());
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["late"]);
    Ok(())
}

// CPython: fut::…::test_remove_done_callback (E26's removal half).
#[test]
fn remove_done_callback_counts_what_it_removed() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let f = lp.create_future::<()>();
    let l1 = log.clone();
    let id = f.add_done_callback(move |_| l1.push(1));
    let l2 = log.clone();
    f.add_done_callback(move |_| l2.push(2));
    assert_eq!(f.remove_done_callback(id), 1);
    assert_eq!(f.remove_done_callback(id), 0);
    f.set_result(())?;
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), [2]);
    Ok(())
}

// CPython: fut::…::test_tb_logger_exception_unretrieved, test_tb_logger_not_called_after_cancel
// (E27).
#[test]
fn an_unretrieved_failure_is_reported_when_dropped() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let f = lp.create_future::<u32>();
    f.set_exception(Exception::from_error("lost"))?;
    drop(f);
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].message, "Future exception was never retrieved");
    assert_eq!(seen[0].exception.as_deref(), Some("lost"));
    assert_eq!(seen[0].keys, ["message", "exception", "future"]);
    Ok(())
}

// CPython: fut::…::test_tb_logger_not_called_after_cancel, test_tb_logger_result_retrieved (E27).
#[test]
fn looked_at_cancelled_or_successful_futures_are_not_reported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let looked = lp.create_future::<u32>();
    looked.set_exception(Exception::from_error("seen"))?;
    let _ = looked.exception();
    let cancelled = lp.create_future::<u32>();
    cancelled.set_exception(Exception::from_error("cancel after"))?;
    assert!(!cancelled.cancel(None)); // returns false on a done future, yet silences the report
    let ok = lp.create_future::<u32>();
    ok.set_result(1)?;
    drop((looked, cancelled, ok));
    assert!(seen.take().is_empty());
    Ok(())
}

// CPython: A1's `create_future()` half: a closed loop still makes futures.
#[test]
fn create_future_works_on_a_closed_loop() -> TestResult {
    let lp = EventLoop::new()?;
    lp.close()?;
    let f = lp.create_future::<u32>();
    f.set_result(3)?;
    assert_eq!(f.result()?, 3);
    // Its done callbacks cannot be scheduled any more: dropped, not run, no panic.
    f.add_done_callback(|_| panic!("must not run"));
    Ok(())
}

// Ours: the outcome slot has no `Option` word (its fullness is a bit of the core's phase), so
// the value must still be dropped exactly once on every path: never taken, taken, read by
// `result()` (a clone), and failed.
#[test]
fn an_outcome_is_dropped_exactly_once_whichever_way_it_leaves() -> TestResult {
    use std::rc::Rc;

    let lp = EventLoop::new()?;
    let value = Rc::new(());

    // Never taken: dropped with the future.
    let f = lp.create_future::<Rc<()>>();
    f.set_result(value.clone())?;
    assert_eq!(Rc::strong_count(&value), 2);
    drop(f);
    assert_eq!(Rc::strong_count(&value), 1);

    // Read by clone, then taken: the future keeps nothing once taken.
    let f = lp.create_future::<Rc<()>>();
    f.set_result(value.clone())?;
    let copy = f.result()?;
    assert_eq!(Rc::strong_count(&value), 3);
    let taken = f.take_result()?;
    assert!(f.take_result().is_err_and(|e| e.is_invalid_state()));
    drop(f);
    assert_eq!(Rc::strong_count(&value), 3);
    drop((copy, taken));
    assert_eq!(Rc::strong_count(&value), 1);

    // A task's outcome, awaited by another task, and one never awaited.
    let v2 = value.clone();
    let t = lp.create_task(async move { v2 })?;
    let v3 = value.clone();
    let unawaited = lp.create_task(async move { v3 })?;
    let got = lp.run_until_complete(t)??;
    assert!(unawaited.done());
    assert_eq!(Rc::strong_count(&value), 3);
    drop((got, unawaited));
    assert_eq!(Rc::strong_count(&value), 1);
    lp.close()?;
    Ok(())
}
