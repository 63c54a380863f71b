//! The executor bridge: conformance area R, and A1's `run_in_executor` part.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use evloop_exec::{Executor, LoopExecExt, MAX_DEFAULT_WORKERS};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;

type TestResult = Result<(), Box<dyn StdError>>;

// CPython: events::…::test_run_in_executor (R100): f runs on a worker thread and its result
// comes back awaitable.
#[test]
fn run_in_executor_runs_on_a_named_worker_and_returns_the_result() -> TestResult {
    let lp = EventLoop::new()?;
    let me = std::thread::current().id();
    let fut = lp.run_in_executor(None, move || {
        let t = std::thread::current();
        (t.id() != me, t.name().map(str::to_owned), "yo".len())
    })?;
    let (other_thread, name, n) = lp.run_until_complete(fut)??;
    assert!(other_thread);
    assert!(name.is_some_and(|n| n.starts_with("evloop-exec-")));
    assert_eq!(n, 2);
    Ok(())
}

// R100: exceptions propagate; here a panic in f is the future's failure.
#[test]
fn a_panic_in_the_job_is_the_futures_failure() -> TestResult {
    let lp = EventLoop::new()?;
    let fut = lp.run_in_executor(None, || -> u8 { panic!("job failed") })?;
    let err = lp.run_until_complete(fut)?.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "panic: job failed");
    Ok(())
}

// The default executor's size: min(32, cpus + 4).
#[test]
fn the_default_size_is_min_32_cpus_plus_4() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        Executor::default_workers(),
        MAX_DEFAULT_WORKERS.min(cpus + 4)
    );
    assert_eq!(Executor::new(3).max_workers(), 3);
    assert_eq!(Executor::new(0).max_workers(), 1);
}

// CPython: fut::…::test_wrap_future_cancel (R100): cancelling the future skips a job that has
// not started, and drops a late result without touching the loop.
#[test]
fn a_cancelled_job_is_skipped_or_its_result_dropped() -> TestResult {
    let lp = EventLoop::new()?;
    let pool = Executor::new(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let started = Arc::new(AtomicBool::new(false));
    let s2 = started.clone();
    let blocker = lp.run_in_executor(Some(&pool), move || {
        s2.store(true, Ordering::SeqCst);
        let _ = release_rx.recv_timeout(Duration::from_secs(5));
        1
    })?;
    let ran_second = Arc::new(AtomicUsize::new(0));
    let r2 = ran_second.clone();
    let queued = lp.run_in_executor(Some(&pool), move || {
        r2.fetch_add(1, Ordering::SeqCst);
    })?;
    while !started.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(blocker.cancel(None));
    assert!(queued.cancel(None));
    // One iteration runs the done callbacks, which raise the workers' cancel flags.
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop())?;
    lp.run_forever()?;
    release_tx.send(())?;
    pool.join();
    assert_eq!(
        ran_second.load(Ordering::SeqCst),
        0,
        "the queued job was skipped"
    );
    assert!(blocker.cancelled() && queued.cancelled());
    // Nothing came back to the loop: an iteration with a short timer finds no callback.
    let l3 = lp.clone();
    lp.call_later(0.01, move || l3.stop())?;
    lp.run_forever()?;
    assert!(blocker.cancelled());
    Ok(())
}

// CPython: base::…::test_shutdown_default_executor_timeout (R101): after shutdown the default
// executor refuses work; an explicit one still works.
#[test]
fn after_shutdown_the_default_executor_refuses_work() -> TestResult {
    let lp = EventLoop::new()?;
    let fut = lp.run_in_executor(None, || 1)?;
    assert_eq!(lp.run_until_complete(fut)??, 1);
    let joined = lp.run_until_complete(lp.shutdown_default_executor(None))?;
    assert!(joined);
    let err = lp.run_in_executor(None, || 2).unwrap_err();
    assert!(err.is_invalid_state());
    assert_eq!(err.to_string(), "executor shutdown has been called");
    let pool = Executor::new(1);
    let fut = lp.run_in_executor(Some(&pool), || 3)?;
    assert_eq!(lp.run_until_complete(fut)??, 3);
    Ok(())
}

// R101: a shutdown timeout is reported, not hung on.
#[test]
fn a_shutdown_timeout_returns_instead_of_hanging() -> TestResult {
    let lp = EventLoop::new()?;
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let _busy = lp.run_in_executor(None, move || {
        let _ = release_rx.recv_timeout(Duration::from_secs(10));
    })?;
    let start = Instant::now();
    let joined =
        lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_millis(50))))?;
    let took = start.elapsed();
    assert!(!joined);
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    release_tx.send(())?;
    Ok(())
}

// CPython: base::…::test_close (A1, T104): a closed loop refuses run_in_executor; close() shuts
// the default executor down without waiting, and a result arriving later is dropped.
#[test]
fn close_refuses_new_jobs_and_drops_late_results() -> TestResult {
    let lp = EventLoop::new()?;
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let fut = lp.run_in_executor(None, move || {
        let _ = release_rx.recv_timeout(Duration::from_secs(5));
        let _ = done_tx.send(());
        7
    })?;
    let start = Instant::now();
    lp.close()?;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "close() does not wait for jobs"
    );
    assert!(lp.run_in_executor(None, || 1).is_err_and(|e| e.is_closed()));
    release_tx.send(())?;
    done_rx.recv_timeout(Duration::from_secs(5))?;
    std::thread::sleep(Duration::from_millis(20));
    assert!(!fut.done(), "the late result never reached the closed loop");
    Ok(())
}

// set_default_executor replaces the pool the default path uses.
#[test]
fn set_default_executor_is_used_by_none() -> TestResult {
    let lp = EventLoop::new()?;
    let pool = Executor::new(1);
    let expected = pool.thread_name().to_owned();
    lp.set_default_executor(pool);
    let fut = lp.run_in_executor(None, || std::thread::current().name().map(str::to_owned))?;
    assert_eq!(
        lp.run_until_complete(fut)??.as_deref(),
        Some(expected.as_str())
    );
    Ok(())
}
