//! `evloop_exec::run`: asyncio's `asyncio.run` (issue 12, defect 6).

use std::cell::{Cell, RefCell};
use std::error::Error as StdError;
use std::rc::Rc;

use evloop_exec::{LoopExecExt, run};
use evloop_sched::{Context, EventLoop, get_running_loop};
use evloop_task::{AnyTask, Error, LoopTaskExt, current_task, sleep};

type TestResult = Result<(), Box<dyn StdError>>;

/// What the exception handler saw: (message, exception message).
type Seen = Rc<RefCell<Vec<(String, Option<String>)>>>;

/// Records its drop.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Panics when dropped: a task that fails while being cancelled.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("cannot cancel");
    }
}

// CPython: test_runners.py RunTests::test_asyncio_run_return,
// test_asyncio_run_cancels_hanging_tasks, test_asyncio_run_reports_hanging_tasks_errors and
// test_asyncio_run_closes_gens_after_hanging_tasks_errors: the value comes back; a task left
// pending is cancelled (its future dropped); one that fails instead is reported with
// "unhandled exception during ... shutdown"; then the clean-ups run, the default executor is
// shut down, and the loop is closed.
#[test]
fn run_returns_the_value_cancels_leftovers_and_closes_the_loop() -> TestResult {
    let seen: Seen = Rc::default();
    let hanging_dropped = Rc::new(Cell::new(false));
    let cleaned = Rc::new(Cell::new(false));
    let the_loop: Rc<RefCell<Option<EventLoop>>> = Rc::default();
    let left: Rc<RefCell<Vec<AnyTask>>> = Rc::default();
    let (s2, h2, c2, l2, t2) = (
        seen.clone(),
        hanging_dropped.clone(),
        cleaned.clone(),
        the_loop.clone(),
        left.clone(),
    );
    let out = run(async move {
        let lp = get_running_loop()?;
        lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
            s2.borrow_mut().push((
                ctx.message().to_owned(),
                ctx.exception().map(|e| e.message()),
            ));
        })));
        let guard = DropFlag(h2);
        let hanging = lp.create_task(async move {
            let _guard = guard;
            sleep(3600.0).await
        })?;
        let failing = lp.create_task(async {
            let _guard = PanicOnDrop;
            sleep(3600.0).await
        })?;
        t2.borrow_mut().extend([hanging.as_any(), failing.as_any()]);
        lp.add_cleanup("flag", move || async move { c2.set(true) });
        let _ = lp.run_in_executor(None, || ())?.await;
        *l2.borrow_mut() = Some(lp);
        sleep(0.0).await?;
        Ok::<_, Error>("main's value")
    })??;
    assert_eq!(out, "main's value");
    let lp = the_loop.borrow_mut().take().ok_or("main did not run")?;
    assert!(lp.is_closed());
    assert!(!lp.is_running() && get_running_loop().is_err());
    let left = left.borrow();
    assert!(left[0].cancelled() && hanging_dropped.get());
    assert!(left[1].done() && !left[1].cancelled());
    assert!(cleaned.get());
    assert!(
        lp.run_in_executor(None, || ())
            .is_err_and(|e| e.is_closed() || e.is_invalid_state())
    );
    assert_eq!(
        *seen.borrow(),
        [(
            "unhandled exception during evloop::run() shutdown".to_owned(),
            Some("cannot cancel".to_owned())
        )]
    );
    Ok(())
}

// CPython: test_runners.py RunTests::test_asyncio_run_from_running_loop: refused inside a
// running loop, and nothing is left behind.
#[test]
fn run_is_refused_inside_a_running_loop() -> TestResult {
    let lp = EventLoop::new()?;
    let err = lp.run_until_complete(async {
        let inner = run(async { 1 });
        (
            inner.is_err_and(|e| e.loop_error().is_some_and(|l| l.is_other_loop_running())),
            current_task().is_some(),
        )
    })?;
    assert_eq!(err, (true, true));
    lp.close()?;
    Ok(())
}

// CPython: test_runners.py RunTests::test_asyncio_run_raises / test_asyncio_run_only_coro:
// main's failure comes back, and the loop is closed anyway.
#[test]
fn a_failing_main_is_returned_and_the_loop_still_closed() -> TestResult {
    let the_loop: Rc<RefCell<Option<EventLoop>>> = Rc::default();
    let l2 = the_loop.clone();
    let err = run(async move {
        *l2.borrow_mut() = get_running_loop().ok();
        panic!("main failed");
    })
    .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "panic: main failed");
    assert!(the_loop.borrow().as_ref().is_some_and(EventLoop::is_closed));
    Ok(())
}
