//! Wakers from other threads (I47's path for tasks) and a `run_coroutine_threadsafe` analogue
//! (I49).

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop_sched::{EventLoop, get_running_loop};
use evloop_task::LoopTaskExt;

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
