//! Wakers from other threads (I47's path for tasks) and a `run_coroutine_threadsafe` analogue
//! (I49).

mod util;

use std::cell::Cell;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop_sched::{EventLoop, get_running_loop};
use evloop_task::LoopTaskExt;
use util::{record_exceptions, run_one_iteration};

type TestResult = Result<(), Box<dyn StdError>>;

/// A future completed by another thread: a plain std waker hand-off.
#[derive(Default)]
struct Shared {
    done: bool,
    waker: Option<Waker>,
}

struct FromThread(Arc<Mutex<Shared>>);

impl Future for FromThread {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.done {
            Poll::Ready(())
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

// I47 for tasks: a waker woken from another thread wakes the sleeping loop.
#[test]
fn a_waker_woken_from_another_thread_wakes_the_loop() -> TestResult {
    let lp = EventLoop::new()?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let s2 = shared.clone();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let waker = {
            let mut s = s2.lock().unwrap_or_else(|p| p.into_inner());
            s.done = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    });
    let start = Instant::now();
    lp.run_until_complete(FromThread(shared))?;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    worker.join().map_err(|_| "worker panicked")?;
    Ok(())
}

// Ours: a waker of a closed loop is a no-op, never a panic, on any thread.
#[test]
fn a_waker_of_a_closed_loop_does_nothing() -> TestResult {
    let lp = EventLoop::new()?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let _task = lp.create_task(FromThread(shared.clone()))?;
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop())?;
    lp.run_forever()?; // the task's first step: its waker is now in `shared`
    let waker = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .waker
        .take();
    let waker = waker.ok_or("the task registered no waker")?;
    lp.close()?;
    let w2 = waker.clone();
    std::thread::spawn(move || w2.wake())
        .join()
        .map_err(|_| "wake panicked off-thread")?;
    waker.wake(); // and on the loop's thread
    Ok(())
}

// CPython: tasks::RunCoroutineThreadsafeTests (I49), analogue: another thread submits work that
// creates a task on the loop and gets its result back.
#[test]
fn another_thread_gets_a_task_result_back() -> TestResult {
    let lp = EventLoop::new()?;
    let remote = lp.remote();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let submitted = remote.call_soon_threadsafe(move || {
            if let Ok(lp) = get_running_loop() {
                let lp2 = lp.clone();
                let task = lp.create_task(async move {
                    let _ = evloop_task::sleep(0.0).await;
                    let _ = tx.send(1 + 2);
                    lp2.stop();
                });
                drop(task);
            }
        });
        submitted.map(|_| ())
    });
    lp.run_forever()?;
    worker.join().map_err(|_| "worker panicked")??;
    assert_eq!(rx.recv_timeout(Duration::from_secs(5))?, 3);
    Ok(())
}

/// Records the thread that dropped it.
struct DropThread(Arc<Mutex<Option<std::thread::ThreadId>>>);

impl Drop for DropThread {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current().id());
    }
}

// Ours (issue 4's raw task): waker clones made, woken and dropped on several threads at once
// all reach the loop, which resumes the task on its own thread.
#[test]
fn waker_clones_woken_on_many_threads_resume_the_task_on_the_loop_thread() -> TestResult {
    let lp = EventLoop::new()?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let s2 = shared.clone();
    let loop_thread = std::thread::current().id();
    let task = lp.create_task(async move {
        FromThread(s2).await;
        std::thread::current().id()
    })?;
    run_until_waker(&lp, &shared)?;
    let waker = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .waker
        .take()
        .ok_or("the task registered no waker")?;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let w = waker.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let clone = w.clone();
                    clone.wake_by_ref();
                    clone.wake();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "a waking thread panicked")?;
    }
    shared.lock().unwrap_or_else(|p| p.into_inner()).done = true;
    std::thread::spawn(move || waker.wake())
        .join()
        .map_err(|_| "the last wake panicked")?;
    let resumed_on = lp.run_until_complete(task)??;
    assert_eq!(resumed_on, loop_thread);
    Ok(())
}

/// Runs the loop until the task has stored its waker in `shared`.
fn run_until_waker(lp: &EventLoop, shared: &Arc<Mutex<Shared>>) -> TestResult {
    for _ in 0..10 {
        if shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waker
            .is_some()
        {
            return Ok(());
        }
        lp.run_forever_setup()?;
        lp.run_once_timeout(Duration::ZERO)?;
        lp.run_forever_cleanup()?;
    }
    Err("the task never registered its waker".into())
}

// Ours (issue 4's raw task): the last waker of a finished task, dropped on another thread,
// does not free the task there: its unclaimed output is dropped on the loop's thread, on the
// loop's next iteration.
#[test]
fn the_last_waker_dropped_on_another_thread_frees_the_task_on_the_loop_thread() -> TestResult {
    let lp = EventLoop::new()?;
    let dropped_on = Arc::new(Mutex::new(None));
    let output = DropThread(dropped_on.clone());
    let (tx, rx) = mpsc::channel::<Waker>();
    let task = lp.create_task(async move {
        let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let _ = tx.send(waker);
        output
    })?;
    let l2 = lp.clone();
    task.add_done_callback(move |_| l2.stop());
    lp.run_forever()?;
    assert!(task.done());
    drop(task); // the output is never taken
    let waker = rx.recv_timeout(Duration::from_secs(5))?;
    assert_eq!(*dropped_on.lock().unwrap_or_else(|p| p.into_inner()), None);
    std::thread::spawn(move || drop(waker))
        .join()
        .map_err(|_| "dropping the waker panicked")?;
    lp.run_forever_setup()?;
    lp.run_once_timeout(Duration::from_secs(5))?;
    lp.run_forever_cleanup()?;
    let dropped = *dropped_on.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(dropped, Some(std::thread::current().id()));
    Ok(())
}

/// Records the thread its owner is dropped on.
struct DropHere(Rc<Cell<Option<std::thread::ThreadId>>>);

impl Drop for DropHere {
    fn drop(&mut self) {
        self.0.set(Some(std::thread::current().id()));
    }
}

// Ours (issue 13): a wake from another thread travels to the loop as a message. A loop closed
// with that message unhandled drops it on its own thread: the task ends cancelled, reported as
// destroyed while pending, its body dropped on the loop's thread, and the late wake does
// nothing more.
#[test]
fn a_wake_from_another_thread_left_unhandled_at_close_ends_the_task_on_the_loop_thread()
-> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let dropped_on = Rc::new(Cell::new(None));
    let guard = DropHere(dropped_on.clone());
    let task = lp.create_task({
        let shared = shared.clone();
        async move {
            let _guard = guard;
            FromThread(shared).await;
        }
    })?;
    run_one_iteration(&lp)?; // the task's first step: its waker is now in `shared`
    let waker = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .waker
        .take()
        .ok_or("the task registered no waker")?;
    std::thread::spawn(move || waker.wake())
        .join()
        .map_err(|_| "wake panicked off-thread")?;
    assert!(!task.done());
    assert_eq!(dropped_on.get(), None);
    lp.close()?;
    assert!(task.cancelled());
    assert_eq!(dropped_on.get(), Some(std::thread::current().id()));
    let messages: Vec<String> = seen.take().into_iter().map(|s| s.message).collect();
    assert_eq!(messages, ["Task was destroyed but it is pending!"]);
    Ok(())
}
