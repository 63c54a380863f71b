//! Task cancellation: conformance area F (29–34, 37) and D21's sleep part.

mod util;

use std::cell::Cell;
use std::error::Error as StdError;
use std::rc::Rc;

use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, current_task, sleep};
use util::{Log, record_exceptions, run_one_iteration};

type TestResult = Result<(), Box<dyn StdError>>;

/// Runs `Drop` on the loop's thread and records it.
struct Guard(Log<&'static str>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.push("dropped");
    }
}

// CPython: tasks::…::test_cancel_with_message_before_starting_task (F29).
#[test]
fn a_task_cancelled_before_its_first_step_never_runs() -> TestResult {
    let lp = EventLoop::new()?;
    let ran = Rc::new(Cell::new(false));
    let r2 = ran.clone();
    let t = lp.create_task(async move { r2.set(true) })?;
    assert!(t.cancel(Some("early")));
    let err = lp.run_until_complete(t.clone())?.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.cancel_message(), Some("early"));
    assert!(!ran.get());
    assert!(t.cancelled());
    Ok(())
}

// CPython: tasks::…::test_cancel, test_task_cancel_message_getter, test_cancel_yield,
// test_task_cancel_waiter_future (F30).
#[test]
fn cancelling_a_task_blocked_on_a_future_cancels_both() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let fut = lp.create_future::<u32>();
    let (f2, l2) = (fut.clone(), log.clone());
    let t = lp.create_task(async move {
        let _guard = Guard(l2.clone());
        let _ = f2.await;
        l2.push("after the await");
    })?;
    run_one_iteration(&lp)?;
    assert!(t.cancel(Some("bye")));
    assert!(
        !t.cancelled(),
        "cancelled() stays false until the task's next step"
    );
    assert!(fut.cancelled(), "the awaited future is cancelled at once");
    assert_eq!(fut.exception().unwrap_err().cancel_message(), Some("bye"));
    run_one_iteration(&lp)?;
    assert!(t.cancelled());
    assert_eq!(log.take(), ["dropped"]); // dropped on the loop thread, the body not resumed
    assert_eq!(t.exception().unwrap_err().cancel_message(), Some("bye"));
    assert!(!t.cancel(None));
    Ok(())
}

// CPython: tasks::…::test_cancel_inner_future (F30): cancelling only the awaited future.
#[test]
fn cancelling_the_awaited_future_lets_the_task_see_the_error() -> TestResult {
    let lp = EventLoop::new()?;
    let fut = lp.create_future::<u32>();
    let f2 = fut.clone();
    let t = lp.create_task(f2)?;
    run_one_iteration(&lp)?;
    fut.cancel(Some("inner"));
    let out = lp.run_until_complete(t)??;
    assert_eq!(out.unwrap_err().cancel_message(), Some("inner"));
    Ok(())
}

// CPython: tasks::…::test_cancelling (F31): the first message wins; cancelling() counts.
#[test]
fn the_first_cancel_message_wins_and_cancelling_counts() -> TestResult {
    let lp = EventLoop::new()?;
    let fut = lp.create_future::<()>();
    let f2 = fut.clone();
    let t = lp.create_task(f2)?;
    run_one_iteration(&lp)?;
    assert!(t.cancel(Some("bye")));
    assert!(t.cancel(Some("bye2")));
    assert_eq!(t.cancelling(), 2);
    let err = lp.run_until_complete(t)?.unwrap_err();
    assert_eq!(err.cancel_message(), Some("bye"));
    Ok(())
}

// CPython: tasks::…::test_cancel_current_task, test_cancel_at_end (F33).
#[test]
fn a_task_that_cancels_itself_ends_cancelled() -> TestResult {
    let lp = EventLoop::new()?;
    let t = lp.create_task(async {
        current_task().map(|me| me.cancel(None));
        12
    })?;
    let err = lp.run_until_complete(t.clone())?.unwrap_err();
    assert!(err.is_cancelled());
    assert!(t.cancelled());

    // Cancelling itself, then sleeping: the sleep is cancelled at the end of that step.
    let start = std::time::Instant::now();
    let t = lp.create_task(async {
        current_task().map(|me| me.cancel(Some("self")));
        let _ = sleep(100.0).await;
    })?;
    let err = lp.run_until_complete(t)?.unwrap_err();
    assert_eq!(err.cancel_message(), Some("self"));
    assert!(start.elapsed() < std::time::Duration::from_secs(50));
    Ok(())
}

// CPython: tasks::…::test_cancel_awaited_task (F33): cancelling the outer task cancels the task
// it awaits.
#[test]
fn cancelling_a_task_cancels_the_task_it_awaits() -> TestResult {
    let lp = EventLoop::new()?;
    let inner_fut = lp.create_future::<()>();
    let f2 = inner_fut.clone();
    let inner = lp.create_task(f2)?;
    let i2 = inner.clone();
    let outer = lp.create_task(i2)?;
    run_one_iteration(&lp)?;
    run_one_iteration(&lp)?;
    assert!(outer.cancel(Some("stop")));
    assert!(
        lp.run_until_complete(outer.clone())?
            .is_err_and(|e| e.is_cancelled())
    );
    run_one_iteration(&lp)?;
    assert!(inner.cancelled());
    assert!(inner_fut.cancelled());
    Ok(())
}

// CPython: tasks::…::test_sleep_cancel (D21): cancelling a task blocked in sleep(10) cancels the
// sleep's timer; it leaves the wheel at once.
#[test]
fn cancelling_a_sleeping_task_cancels_its_timer() -> TestResult {
    let lp = EventLoop::new()?;
    let t = lp.create_task(async { sleep(10.0).await })?;
    run_one_iteration(&lp)?;
    let before = format!("{lp:?}");
    assert!(before.contains("timers: Some(1)"), "{before}");
    t.cancel(None);
    let after = format!("{lp:?}");
    assert!(after.contains("timers: Some(0)"), "{after}");
    let start = std::time::Instant::now();
    assert!(lp.run_until_complete(t)?.is_err_and(|e| e.is_cancelled()));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    Ok(())
}

// Ours: dropping a sleep cancels its timer.
#[test]
fn a_dropped_sleep_leaves_the_wheel() -> TestResult {
    let lp = EventLoop::new()?;
    let timers = lp.run_until_complete(async {
        let lp = evloop_sched::get_running_loop()?;
        let mut s = Box::pin(sleep(10.0));
        let waker = std::task::Waker::noop();
        let polled = s.as_mut().poll(&mut std::task::Context::from_waker(waker));
        assert!(polled.is_pending());
        let armed = format!("{lp:?}");
        drop(s);
        Ok::<_, evloop_task::Error>((armed, format!("{lp:?}")))
    })??;
    assert!(timers.0.contains("timers: Some(1)"), "{}", timers.0);
    assert!(timers.1.contains("timers: Some(0)"), "{}", timers.1);
    Ok(())
}

// CPython: tasks::…::test_log_destroyed_pending_task (F37, T104): a pending task dropped at
// close() is reported, and ends cancelled.
#[test]
fn a_task_dropped_while_pending_is_reported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let log = Log::new();
    let l2 = log.clone();
    let t = lp.create_task(async move {
        let _guard = Guard(l2);
        sleep(10.0).await
    })?;
    run_one_iteration(&lp)?;
    lp.close()?;
    assert_eq!(log.take(), ["dropped"]);
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].message, "Task was destroyed but it is pending!");
    assert_eq!(seen[0].keys, ["message", "task"]);
    assert!(t.cancelled());
    Ok(())
}

// CPython: tasks::…::test_tb_logger_not_called_after_cancel and F37's never-retrieved case: a
// failed task nobody looked at is reported with the key `future`.
#[test]
fn an_unretrieved_task_failure_is_reported_with_the_future_key() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let t = lp.create_task(async { panic!("nobody looks") })?;
    run_one_iteration(&lp)?;
    assert!(t.done());
    drop(t);
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].message, "Task exception was never retrieved");
    assert_eq!(seen[0].keys, ["message", "exception", "future"]);
    assert_eq!(seen[0].exception.as_deref(), Some("nobody looks"));
    Ok(())
}

/// Spawns its clean-up as a new task when dropped: the asyncio-style asynchronous clean-up the
/// `Task` docs describe.
struct CleanupOnDrop {
    lp: EventLoop,
    log: Log<&'static str>,
}

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        let log = self.log.clone();
        let spawned = self.lp.create_task(async move {
            log.push("clean-up started");
            let _ = sleep(0.0).await; // it may await anything
            log.push("clean-up finished");
        });
        if spawned.is_err() {
            self.log.push("loop closed: no clean-up");
        }
    }
}

/// Panics when dropped: a body that fails while observing its cancel.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("exit while cancelled");
    }
}

// CPython: tasks::…::test_baseexception_during_cancel (F34). A Rust body observes its cancel in
// `Drop`; a panic there is the coroutine turning `CancelledError` into `SystemExit`: the task
// ends with it and is not cancelled. We differ on one point, as for every panic: it does not
// escape the loop's iteration but is caught at the step boundary (run_until_complete returns).
#[test]
fn a_panic_while_a_cancelled_task_drops_its_body_is_its_failure() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let fut = lp.create_future::<()>();
    let f2 = fut.clone();
    let t = lp.create_task(async move {
        let _guard = PanicOnDrop;
        f2.await
    })?;
    run_one_iteration(&lp)?;
    assert!(t.cancel(Some("bye")));
    let err = lp
        .run_until_complete(t.clone())?
        .expect_err("the task failed");
    assert!(err.is_failed() && err.is_panic(), "{err}");
    assert!(!err.is_cancelled());
    assert_eq!(err.to_string(), "panic: exit while cancelled");
    assert!(t.done() && !t.cancelled());
    assert!(fut.cancelled(), "the awaited future is cancelled first");
    // The failure went to the awaiter, so the exception handler heard nothing.
    run_one_iteration(&lp)?;
    assert!(seen.take().is_empty());
    Ok(())
}

// CPython: tasks::…::test_cancel_task_catching, test_cancel_task_ignoring (F32). We differ on
// purpose: a Rust future cannot catch its cancellation (it is dropped, never resumed), so a
// task cannot turn a cancel into a result. It observes the cancel in `Drop`, and cleans up
// asynchronously by spawning a task there; the cancelled task still ends cancelled.
#[test]
fn a_cancelled_task_cleans_up_asynchronously_from_drop() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let fut = lp.create_future::<u32>();
    let (f2, l2, lp2) = (fut.clone(), log.clone(), lp.clone());
    let t = lp.create_task(async move {
        let _guard = CleanupOnDrop {
            lp: lp2,
            log: l2.clone(),
        };
        let caught = f2.await.unwrap_or(42);
        l2.push("resumed after the cancel"); // never: the body is dropped, not resumed
        caught
    })?;
    run_one_iteration(&lp)?;
    t.cancel(None);
    assert!(
        lp.run_until_complete(t.clone())?
            .is_err_and(|e| e.is_cancelled())
    );
    assert!(t.cancelled());
    for _ in 0..3 {
        run_one_iteration(&lp)?;
    }
    assert_eq!(log.take(), ["clean-up started", "clean-up finished"]);
    Ok(())
}

// Ours (issue 4's raw task): a task whose step wakes itself and then closes its loop loses its
// queued step to close(); it still ends cancelled, its body dropped and reported, instead of
// staying pending forever. The eager factory used to run such a step inside create_task with
// the loop idle; it now starts eagerly only on a running loop (which refuses close()), so the
// step runs from the step API, between run_forever_setup and a close after the clean-up.
#[test]
fn a_task_that_wakes_itself_and_closes_the_loop_ends_cancelled() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    lp.set_task_factory(Some(evloop_task::eager_task_factory()));
    let log = Log::new();
    let log2 = log.clone();
    let task = lp.create_task(async move {
        let _guard = Guard(log2);
        std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            std::task::Poll::Ready(())
        })
        .await;
        std::future::pending::<()>().await;
    })?;
    assert!(
        !task.done(),
        "not run eagerly on a loop that is not running"
    );
    lp.run_forever_setup()?;
    lp.run_once_timeout(std::time::Duration::ZERO)?;
    lp.run_forever_cleanup()?;
    lp.close()?;
    assert!(task.cancelled());
    assert_eq!(log.take(), ["dropped"]);
    let messages: Vec<String> = seen.take().into_iter().map(|s| s.message).collect();
    assert_eq!(messages, ["Task was destroyed but it is pending!"]);
    Ok(())
}

/// A `!Unpin` future that records where it was polled and where it was dropped.
struct PinCheck {
    polled_at: Rc<Cell<usize>>,
    dropped_at: Rc<Cell<usize>>,
    _pinned: std::marker::PhantomPinned,
}

impl std::future::Future for PinCheck {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.polled_at.set(std::ptr::from_ref(&*self).addr());
        std::task::Poll::Pending
    }
}

impl Drop for PinCheck {
    fn drop(&mut self) {
        let here = std::ptr::from_mut(self).addr();
        self.dropped_at.set(here);
    }
}

// Ours (issue 4's raw task): `Pin`'s promise: a cancelled task's body is dropped where it was
// polled, never moved first (a self-referential future would otherwise dangle).
#[test]
fn a_cancelled_task_drops_its_body_where_it_was_pinned() -> TestResult {
    let lp = EventLoop::new()?;
    let (polled_at, dropped_at) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let task = lp.create_task(PinCheck {
        polled_at: polled_at.clone(),
        dropped_at: dropped_at.clone(),
        _pinned: std::marker::PhantomPinned,
    })?;
    run_one_iteration(&lp)?;
    assert_ne!(polled_at.get(), 0);
    assert!(task.cancel(None));
    run_one_iteration(&lp)?;
    assert!(task.cancelled());
    assert_eq!(dropped_at.get(), polled_at.get());
    Ok(())
}
