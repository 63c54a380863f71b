//! A loop left open with a pending task on a thread that ends is closed then, the task reported
//! and dropped, the loop's fds released (issue 12, defect 6). Alone in its test binary: it
//! counts the process's open fds, which other tests would change meanwhile.

use std::error::Error as StdError;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use evloop_sched::{Context, EventLoop};
use evloop_task::{LoopTaskExt, sleep};

type TestResult = Result<(), Box<dyn StdError>>;

/// The number of fds open in this process.
fn open_fds() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// Records its drop, for another thread to see.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// CPython: base_events.BaseEventLoop.__del__ closes a loop collected unclosed, and its pending
// tasks are then reported as destroyed while pending (tasks.Task.__del__). Ours: the loop is
// kept alive by a suspended task that holds a clone of it (a cycle through its timer and
// waker); the thread's end closes it, the task is reported and its future dropped, and the
// loop's fds are released.
#[test]
fn a_thread_that_ends_closes_its_loop_and_drops_its_pending_task() -> TestResult {
    let before = open_fds()?;
    let dropped = Arc::new(AtomicBool::new(false));
    let reports = Arc::new(AtomicUsize::new(0));
    let (d2, r2) = (dropped.clone(), reports.clone());
    let worker = thread::spawn(move || -> Result<usize, String> {
        let lp = EventLoop::new().map_err(|e| e.to_string())?;
        lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
            if ctx.message() == "Task was destroyed but it is pending!" {
                r2.fetch_add(1, Ordering::SeqCst);
            }
        })));
        let flag = DropFlag(d2);
        let l2 = lp.clone();
        let task = lp
            .create_task(async move {
                let _flag = flag;
                let _keep = l2;
                sleep(3600.0).await
            })
            .map_err(|e| e.to_string())?;
        drop(task);
        // One iteration: the task starts and suspends on its sleep.
        let l3 = lp.clone();
        lp.call_soon(move || l3.stop()).map_err(|e| e.to_string())?;
        lp.run_forever().map_err(|e| e.to_string())?;
        drop(lp);
        open_fds().map_err(|e| e.to_string())
    });
    let during = worker.join().map_err(|_| "the worker thread panicked")??;
    assert!(during > before, "the loop held fds while the thread ran");
    assert_eq!(open_fds()?, before, "the thread's end closed the loop");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task's future was dropped"
    );
    assert_eq!(reports.load(Ordering::SeqCst), 1);
    Ok(())
}
