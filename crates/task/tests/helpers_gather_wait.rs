//! asyncio's `gather`, `wait`, `as_completed` and `shield` (Lib/test/test_asyncio/test_tasks.py).

mod util;

use std::cell::Cell;
use std::error::Error as StdError;
use std::rc::Rc;

use evloop_sched::EventLoop;
use evloop_task::{
    LoopTaskExt, ReturnWhen, as_completed, gather, gather_return_exceptions, shield, sleep, wait,
};
use util::Log;

type TestResult = Result<(), Box<dyn StdError>>;

/// A child that sleeps `secs`, logs `name`, and returns it.
async fn child(log: Log<&'static str>, name: &'static str, secs: f64) -> &'static str {
    if sleep(secs).await.is_ok() {
        log.push(name);
    }
    name
}

// CPython: test_tasks.py::GatherTestsBase::test_result (ordered by argument, not completion).
#[test]
fn gather_gives_the_outputs_in_the_order_given() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let l2 = log.clone();
    let out = lp.run_until_complete(async move {
        gather(
            [
                (l2.clone(), "a", 0.03),
                (l2.clone(), "b", 0.01),
                (l2, "c", 0.02),
            ]
            .map(|(l, n, s)| child(l, n, s)),
        )
        .await
    })??;
    assert_eq!(out, ["a", "b", "c"]);
    assert_eq!(log.take(), ["b", "c", "a"]);
    let empty: Vec<i32> =
        lp.run_until_complete(gather(Vec::<std::future::Ready<i32>>::new()))??;
    assert!(empty.is_empty());
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::GatherTestsBase::test_one_exception (the others go on running),
// test_one_cancellation.
#[test]
fn the_first_failure_ends_gather_and_the_others_go_on() -> TestResult {
    let lp = EventLoop::new()?;
    let finished = Rc::new(Cell::new(false));
    let f2 = finished.clone();
    let err = lp.run_until_complete(async move {
        let failing = Box::pin(async {
            sleep(0.01).await.ok();
            if true {
                panic!("boom");
            }
        }) as std::pin::Pin<Box<dyn Future<Output = ()>>>;
        let slow = Box::pin(async move {
            sleep(0.05).await.ok();
            f2.set(true);
        });
        let err = gather([failing, slow]).await.unwrap_err();
        sleep(0.1).await?;
        Ok::<_, evloop_task::Error>(err)
    })??;
    assert!(err.is_panic(), "{err:?}");
    assert!(finished.get(), "the other child was not cancelled");
    // A cancelled child makes gather cancelled.
    let err = lp.run_until_complete(async move {
        // The child cancels its own task: gather's wrapper of it ends cancelled.
        let child = async {
            if let Some(me) = evloop_task::current_task() {
                me.cancel(Some("child"));
            }
            sleep(0.0).await.ok();
        };
        gather([child]).await.unwrap_err()
    })?;
    assert!(err.is_cancelled(), "{err:?}");
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::GatherTestsBase::test_return_exceptions.
#[test]
fn gather_return_exceptions_keeps_every_outcome() -> TestResult {
    let lp = EventLoop::new()?;
    let out = lp.run_until_complete(gather_return_exceptions([
        Box::pin(async { 1 }) as std::pin::Pin<Box<dyn Future<Output = i32>>>,
        Box::pin(async { panic!("boom") }),
        Box::pin(async {
            sleep(0.01).await.ok();
            3
        }),
    ]))??;
    assert_eq!(out.len(), 3);
    assert_eq!(*out[0].as_ref().map_err(|e| e.to_string())?, 1);
    assert!(out[1].as_ref().is_err_and(|e| e.is_panic()));
    assert_eq!(*out[2].as_ref().map_err(|e| e.to_string())?, 3);
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::test_cancel_gather_1 / test_cancel_gather_2 (cancelling the gather
// cancels the children).
#[test]
fn cancelling_the_awaiting_task_cancels_the_children() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let log = Log::new();
    let l2 = log.clone();
    lp.run_until_complete(async move {
        let g = lp2.create_task(gather([child(l2.clone(), "a", 10.0), child(l2, "b", 10.0)]))?;
        sleep(0.01).await?;
        g.cancel(None);
        let err = g.await.unwrap_err();
        assert!(err.is_cancelled());
        // The children's cancels land on their next step.
        sleep(0.0).await?;
        sleep(0.0).await?;
        let left = evloop_task::all_tasks()?.len();
        Ok::<_, evloop_task::Error>(left)
    })
    .map(|left| assert_eq!(left.ok(), Some(1), "only the main task is left"))?;
    assert!(log.take().is_empty(), "no child finished its sleep");
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::test_wait, test_wait_first_completed, test_wait_errors.
#[test]
fn wait_returns_done_and_pending_as_asked() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let out = lp.run_until_complete(async move {
        let log = Log::new();
        let a = lp2.create_task(child(log.clone(), "a", 0.01))?;
        let b = lp2.create_task(child(log.clone(), "b", 0.05))?;
        let (done, pending) = wait(
            [a.clone(), b.clone()],
            f64::INFINITY,
            ReturnWhen::FirstCompleted,
        )
        .await?;
        let first = (done.len(), pending.len(), done[0].take_result()?);
        let (done, pending) = wait([a, b], f64::INFINITY, ReturnWhen::AllCompleted).await?;
        let all = (done.len(), pending.len());
        let empty = wait(
            Vec::<evloop_task::Task<()>>::new(),
            1.0,
            ReturnWhen::AllCompleted,
        )
        .await
        .unwrap_err();
        Ok::<_, evloop_task::Error>((first, all, empty))
    })??;
    assert_eq!(out.0, (1, 1, "a"));
    assert_eq!(out.1, (2, 0));
    assert!(out.2.loop_error().is_some_and(|e| e.is_invalid_argument()));
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::test_wait_first_exception, test_wait_first_exception_in_wait,
// test_wait_with_timeout (nothing is cancelled at the timeout).
#[test]
fn wait_stops_at_the_first_failure_or_the_timeout() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let out = lp.run_until_complete(async move {
        let ok = lp2.create_task(async {
            sleep(10.0).await.ok();
        })?;
        let bad = lp2.create_task(async {
            sleep(0.01).await.ok();
            panic!("boom")
        })?;
        let (done, pending) =
            wait([ok.clone(), bad], f64::INFINITY, ReturnWhen::FirstException).await?;
        let first = (done.len(), pending.len(), done[0].exception()?.is_some());
        let (done, pending) = wait([ok.clone()], 0.01, ReturnWhen::AllCompleted).await?;
        let timed = (done.len(), pending.len(), ok.cancelled() || ok.done());
        ok.cancel(None);
        Ok::<_, evloop_task::Error>((first, timed))
    })??;
    assert_eq!(out.0, (1, 1, true));
    assert_eq!(out.1, (0, 1, false));
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::test_as_completed, test_as_completed_with_timeout.
#[test]
fn as_completed_hands_out_in_completion_order_then_times_out() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let l2 = log.clone();
    let out = lp.run_until_complete(async move {
        let mut it = as_completed(
            // Far apart, so that slow first steps (under valgrind) cannot reorder them.
            [
                (l2.clone(), "slow", 0.45),
                (l2.clone(), "quick", 0.05),
                (l2, "mid", 0.25),
            ]
            .map(|(l, n, s)| child(l, n, s)),
            f64::INFINITY,
        );
        let mut order = Vec::new();
        while let Some(outcome) = it.next().await {
            order.push(outcome?);
        }
        let log = Log::new();
        let mut it = as_completed([child(log.clone(), "x", 0.0), child(log, "y", 10.0)], 0.05);
        let first = it.next().await.map(|o| o.is_ok());
        let second = it.next().await.map(|o| o.is_err_and(|e| e.is_timed_out()));
        let third = it.next().await.is_none();
        Ok::<_, evloop_task::Error>((order, first, second, third))
    })??;
    assert_eq!(out.0, ["quick", "mid", "slow"]);
    // Whatever the timing, they come out in the order the children finished.
    assert_eq!(out.0, log.take());
    assert_eq!((out.1, out.2, out.3), (Some(true), Some(true), true));
    lp.close()?;
    Ok(())
}

// CPython: test_tasks.py::test_shield_result, test_shield_cancel_outer,
// test_shield_cancel_inner.
#[test]
fn shield_keeps_the_inner_task_running_when_the_outer_is_cancelled() -> TestResult {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    let out = lp.run_until_complete(async move {
        let r = shield(async { 5 }).await?;
        let finished = Rc::new(Cell::new(false));
        let f2 = finished.clone();
        let outer = lp2.create_task(shield(async move {
            sleep(0.02).await.ok();
            f2.set(true);
        }))?;
        sleep(0.0).await?;
        outer.cancel(None);
        let outer_cancelled = outer.clone().await.is_err_and(|e| e.is_cancelled());
        sleep(0.05).await?;
        // Cancelling the inner task ends the shield cancelled.
        let s = shield(sleep(10.0));
        let inner = s.task().cloned().expect("the shield started its task");
        let waiter = lp2.create_task(s)?;
        sleep(0.0).await?;
        inner.cancel(None);
        let inner_cancel = waiter.await?.is_err_and(|e| e.is_cancelled());
        Ok::<_, evloop_task::Error>((r, outer_cancelled, finished.get(), inner_cancel))
    })??;
    assert_eq!(out, (5, true, true, true));
    lp.close()?;
    Ok(())
}

// gather, as_completed and shield made before the loop runs start on the first poll.
#[test]
fn helpers_made_outside_the_loop_start_when_first_polled() -> TestResult {
    let lp = EventLoop::new()?;
    let out = lp.run_until_complete(gather([1, 2].map(|i| async move { i })))??;
    assert_eq!(out, [1, 2]);
    assert_eq!(lp.run_until_complete(shield(async { 3 }))??, 3);
    let mut it = as_completed([async { 4 }], f64::INFINITY);
    let first = lp.run_until_complete(async move { it.next().await })?;
    assert_eq!(first.map(|r| r.ok()), Some(Some(4)));
    lp.close()?;
    Ok(())
}
