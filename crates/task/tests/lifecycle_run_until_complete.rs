//! `run_until_complete` and the loop's lifecycle: conformance A1, A3–A7, D19, T104.

mod util;

use std::cell::Cell;
use std::error::Error as StdError;
use std::rc::Rc;
use std::time::Duration;

use evloop_sched::{EventLoop, get_running_loop};
use evloop_task::{LoopTaskExt, sleep};
use util::{Log, record_exceptions};

type TestResult = Result<(), Box<dyn StdError>>;

// CPython: base::BaseEventLoopTests::test_close (A1): after close(), run_until_complete and
// create_task are refused, create_future still works.
#[test]
fn a_closed_loop_refuses_tasks_but_makes_futures() -> TestResult {
    let lp = EventLoop::new()?;
    lp.close()?;
    assert!(
        lp.run_until_complete(async {})
            .is_err_and(|e| e.is_closed())
    );
    assert!(lp.create_task(async {}).is_err_and(|e| e.is_closed()));
    let f = lp.create_future::<()>();
    assert!(!f.done());
    Ok(())
}

// CPython: events::…::test_run_until_complete_nesting, base::RunningLoopTests (A3).
#[test]
fn nested_and_cross_loop_run_until_complete_are_refused() -> TestResult {
    let lp = EventLoop::new()?;
    let other = EventLoop::new()?;
    let lp2 = lp.clone();
    let (nested, cross) = lp.run_until_complete(async move {
        let nested = lp2.run_until_complete(async {}).unwrap_err();
        let cross = other.run_until_complete(async {}).unwrap_err();
        (nested, cross)
    })?;
    assert!(nested.loop_error().is_some_and(|e| e.is_already_running()));
    assert!(
        cross
            .loop_error()
            .is_some_and(|e| e.is_other_loop_running())
    );
    Ok(())
}

// CPython: tasks::…::test_task_basics (A4): the value comes back; an error comes back unchanged.
#[test]
fn run_until_complete_returns_the_value_or_the_error_unchanged() -> TestResult {
    let lp = EventLoop::new()?;
    assert_eq!(lp.run_until_complete(async { 40 + 2 })?, 42);
    let out: Result<u8, std::num::ParseIntError> =
        lp.run_until_complete(async { "x".parse::<u8>() })?;
    assert_eq!(
        out.unwrap_err().to_string(),
        "invalid digit found in string"
    );
    Ok(())
}

// CPython: events::…::test_run_until_complete_stopped, tasks::…::test_stop_while_run_in_complete
// (A5): stopped first → an error; the task stays pending and can be finished later.
#[test]
fn a_loop_stopped_before_the_future_completes_is_an_error() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let t = lp.create_task(async move {
        lp2.stop();
        sleep(0.05).await
    })?;
    let err = lp.run_until_complete(t.clone()).unwrap_err();
    assert!(err.is_stopped());
    assert_eq!(
        err.to_string(),
        "event loop stopped before future completed"
    );
    assert!(!t.done());
    assert!(t.cancel(None));
    assert!(
        lp.run_until_complete(t.clone())?
            .is_err_and(|e| e.is_cancelled())
    );
    assert!(t.cancelled());
    Ok(())
}

// CPython: base::…::test_run_until_complete_baseexception (A6) and
// test_run_until_complete_loop_orphan_future_close_loop (A7). Rust has no KeyboardInterrupt:
// a panic in the future is its failure, nothing is logged, no stop is left pending, and a
// second run_until_complete works (the first one's done callback was removed).
#[test]
fn a_failed_run_leaves_no_stop_pending() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let err = lp
        .run_until_complete(async { panic!("interrupt") })
        .unwrap_err();
    assert!(err.is_panic());
    assert!(seen.take().is_empty());
    assert!(!lp.is_running() && get_running_loop().is_err());

    let t = lp.create_task(sleep(0.02))?;
    let t2 = t.clone();
    assert!(lp.run_until_complete(t2).is_ok());
    assert!(t.done());

    // No stop left pending: call_soon(call_soon(f)) + run_forever runs f.
    let ran = Rc::new(Cell::new(false));
    let (l2, r2) = (lp.clone(), ran.clone());
    lp.call_soon(move || {
        let l3 = l2.clone();
        let _ = l2.call_soon(move || {
            r2.set(true);
            l3.stop();
        });
    })?;
    lp.run_forever()?;
    assert!(ran.get());
    Ok(())
}

// CPython: tasks::…::test_sleep_when_delay_is_nan (D19): a NaN delay is an error at once.
#[test]
fn sleep_with_a_nan_delay_is_an_error() -> TestResult {
    let lp = EventLoop::new()?;
    let err = lp.run_until_complete(sleep(f64::NAN))?.unwrap_err();
    assert!(err.loop_error().is_some_and(|e| e.is_invalid_argument()));
    // And outside a running loop, polling a sleep is a not-running error.
    let out = std::pin::pin!(sleep(0.0))
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    let std::task::Poll::Ready(Err(err)) = out else {
        return Err("a sleep polled outside the loop must fail".into());
    };
    assert!(err.loop_error().is_some_and(|e| e.is_not_running()));
    Ok(())
}

// Timing: a sleep is never early.
#[test]
fn sleep_is_never_early() -> TestResult {
    let lp = EventLoop::new()?;
    let start = std::time::Instant::now();
    lp.run_until_complete(sleep(Duration::from_millis(30)))??;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

// CPython: base::…::test_asyncgen_finalization_by_gc, shutdown_asyncgens (T104): the async
// clean-ups run on the loop before close; a failing one is reported under `cleanup`.
#[test]
fn shutdown_cleanups_runs_every_cleanup_on_the_loop() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let log = Log::new();
    let l1 = log.clone();
    lp.add_cleanup("stream", move || async move {
        let _ = sleep(0.0).await;
        l1.push("stream closed");
    });
    lp.add_cleanup("broken", || async { panic!("cannot close") });
    let l3 = log.clone();
    let removed = lp.add_cleanup("removed", move || async move { l3.push("must not run") });
    assert!(lp.remove_cleanup(removed));
    assert!(!lp.remove_cleanup(removed));
    lp.run_until_complete(lp.shutdown_cleanups())?;
    lp.close()?;
    assert_eq!(log.take(), ["stream closed"]);
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].message,
        "an error occurred during the clean-up \"broken\""
    );
    assert_eq!(seen[0].keys, ["message", "exception", "cleanup"]);
    Ok(())
}

// T104: close() drops queued callbacks and timers; pending tasks end (reported) and a task's
// body is dropped on the loop thread.
#[test]
fn close_drops_queued_task_steps() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let ran = Rc::new(Cell::new(false));
    let r2 = ran.clone();
    let t = lp.create_task(async move { r2.set(true) })?;
    lp.close()?;
    assert!(!ran.get());
    assert!(t.cancelled());
    assert_eq!(
        seen.take()[0].message,
        "Task was destroyed but it is pending!"
    );
    Ok(())
}

// CPython: events::…::test_run_until_complete_stopped and base_events.run_until_complete, which
// passes a task through as it is, so a later call with the same task returns its result
// (issue 12, defect 2). The first call's wrapper must not take the output when the task
// finishes during the second call.
#[test]
fn a_stopped_call_leaves_the_tasks_output_to_a_later_call() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let t = lp.create_task(async move {
        lp2.stop();
        let _ = sleep(0.01).await;
        String::from("seven")
    })?;
    assert!(
        lp.run_until_complete(t.clone())
            .is_err_and(|e| e.is_stopped())
    );
    assert!(!t.done());
    assert_eq!(lp.run_until_complete(t.clone())??, "seven");
    assert!(t.done());
    // Nothing else took it either: the one output went to the call that asked for it.
    assert!(
        t.take_result()
            .is_err_and(|e| e.to_string() == "result was already taken")
    );
    Ok(())
}

/// Records its drop in a shared flag.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

// Ours (documented on run_until_complete): a future passed by value whose call the loop stopped
// first is dropped when the call returns; asyncio keeps running the task it wrapped it in. The
// loop's later runs do not run it, and nothing is reported.
#[test]
fn a_stopped_call_drops_a_future_passed_by_value() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let ran_on = Rc::new(Cell::new(false));
    let (lp2, r2) = (lp.clone(), ran_on.clone());
    let err = lp
        .run_until_complete(async move {
            let _guard = guard;
            lp2.stop();
            let _ = sleep(0.0).await;
            r2.set(true);
        })
        .unwrap_err();
    assert!(err.is_stopped());
    assert!(dropped.get());
    util::run_one_iteration(&lp)?;
    util::run_one_iteration(&lp)?;
    assert!(!ran_on.get());
    lp.close()?;
    assert!(seen.take().is_empty());
    Ok(())
}

/// Counts iterations: a callback that re-schedules itself once per iteration.
fn count_iterations(lp: &EventLoop) -> Rc<Cell<u32>> {
    fn tick(lp: EventLoop, n: Rc<Cell<u32>>) {
        n.set(n.get() + 1);
        let l2 = lp.clone();
        let _ = lp.call_soon(move || tick(l2, n));
    }
    let n = Rc::new(Cell::new(0));
    let (l2, n2) = (lp.clone(), n.clone());
    let _ = lp.call_soon(move || tick(l2, n2));
    n
}

// CPython: base_events.BaseEventLoop.run_until_complete: the task's done callback
// (_run_until_complete_cb) stops the loop, so a coroutine that completes in its first step
// returns after two iterations: the step, then the stop.
#[test]
fn a_future_finishing_in_its_first_step_takes_two_iterations() -> TestResult {
    let lp = EventLoop::new()?;
    let n = count_iterations(&lp);
    assert_eq!(lp.run_until_complete(async { 5 })?, 5);
    assert_eq!(n.get(), 2);
    lp.close()?;
    Ok(())
}

// CPython: base_events.BaseEventLoop.run_until_complete with a future already done: asyncio
// adds the stopping done callback to the future itself and returns after one iteration. Ours
// (documented on run_until_complete): the wrapper's step comes first, so two; the output (or
// the error) comes back the same.
#[test]
fn an_already_done_task_or_future_returns_its_outcome() -> TestResult {
    let lp = EventLoop::new()?;
    let t = lp.create_task(async { 3 })?;
    let f = lp.create_future::<u8>();
    f.set_result(4)?;
    let failed = lp.create_task(async { panic!("early") })?;
    util::run_one_iteration(&lp)?;
    assert!(t.done() && failed.done());
    let n = count_iterations(&lp);
    assert_eq!(lp.run_until_complete(t.clone())??, 3);
    assert_eq!(n.get(), 2);
    assert_eq!(lp.run_until_complete(f.clone())??, 4);
    assert!(
        lp.run_until_complete(failed.clone())?
            .is_err_and(|e| e.is_panic())
    );
    lp.close()?;
    Ok(())
}
