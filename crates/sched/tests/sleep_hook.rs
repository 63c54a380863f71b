//! The sleep hook: called around polls that may sleep, and only those (issue 17, item 1).

mod util;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use evloop_sched::{EventLoop, SleepHook};
use util::Log;

/// Records "before"/"after" into a log the callbacks also write to.
struct Recorder(Log<&'static str>);

impl SleepHook for Recorder {
    fn before_sleep(&self) {
        self.0.push("before");
    }
    fn after_sleep(&self) {
        self.0.push("after");
    }
}

// A chain of callbacks never sleeps, so it never calls the hook; the timer's wait does, once,
// as a pair, before the timer's callback runs.
#[test]
fn the_hook_runs_around_sleeping_polls_only_and_in_order() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    lp.set_sleep_hook(Some(Rc::new(Recorder(log.clone()))));
    fn chain(lp: &EventLoop, log: &Log<&'static str>, left: u32) {
        log.push("callback");
        if left > 0 {
            let (l2, log2) = (lp.clone(), log.clone());
            let _ = lp.call_soon(move || chain(&l2, &log2, left - 1));
        }
    }
    let (l2, log2) = (lp.clone(), log.clone());
    // 200 iterations: more than MAX_SKIPPED_POLLS, so zero-timeout polls do happen.
    lp.call_soon(move || chain(&l2, &log2, 199))?;
    lp.run_forever_setup()?;
    for _ in 0..200 {
        lp.run_once()?;
    }
    assert_eq!(log.take(), vec!["callback"; 200]);
    // Nothing ready and a zero bound: a poll that cannot sleep.
    lp.run_once_timeout(Duration::ZERO)?;
    assert_eq!(log.take(), Vec::<&str>::new());
    // Nothing ready but a timer: the poll sleeps until it is due.
    let log2 = log.clone();
    lp.call_later(Duration::from_millis(10), move || log2.push("timer"))?;
    lp.run_once()?;
    lp.run_forever_cleanup()?;
    assert_eq!(log.take(), ["before", "after", "timer"]);
    Ok(())
}

// A stop()ed loop polls with a zero timeout: no hook.
#[test]
fn a_stopping_loop_does_not_call_the_hook() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    lp.set_sleep_hook(Some(Rc::new(Recorder(log.clone()))));
    lp.stop();
    lp.run_forever()?;
    assert_eq!(log.take(), Vec::<&str>::new());
    // Removed: a sleeping poll no longer calls it.
    lp.set_sleep_hook(None);
    let l2 = lp.clone();
    lp.call_later(Duration::from_millis(5), move || l2.stop())?;
    lp.run_forever()?;
    assert_eq!(log.take(), Vec::<&str>::new());
    lp.close()?;
    Ok(())
}

/// The lock of `another_thread_takes_the_lock_while_the_loop_sleeps` (no other test uses it).
static GLOBAL_LOCK: Mutex<()> = Mutex::new(());

/// A global lock the loop's thread holds while it runs callbacks and gives up while it sleeps,
/// as CPython's GIL.
#[derive(Default)]
struct GiveUpWhileAsleep {
    held: RefCell<Option<MutexGuard<'static, ()>>>,
}

impl GiveUpWhileAsleep {
    fn take(&self) {
        *self.held.borrow_mut() = Some(GLOBAL_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl SleepHook for GiveUpWhileAsleep {
    fn before_sleep(&self) {
        drop(self.held.borrow_mut().take());
    }
    fn after_sleep(&self) {
        self.take();
    }
}

// The deadlock the hook exists for: another thread must take the loop thread's lock before it
// can call call_soon_threadsafe (a Python thread needs the GIL). With the lock given up around
// the sleep, the loop, blocked with nothing to do, is reached and woken, and the callback runs
// with the lock taken back.
#[test]
fn another_thread_takes_the_lock_while_the_loop_sleeps() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let hook = Rc::new(GiveUpWhileAsleep::default());
    hook.take(); // the loop's thread holds the lock while it runs
    lp.set_sleep_hook(Some(hook.clone()));
    let remote = lp.remote();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _guard = GLOBAL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let scheduled = remote.call_soon_threadsafe(move || {
            let _ = tx.send(GLOBAL_LOCK.try_lock().is_err());
        });
        scheduled.is_ok() && remote.stop().is_ok()
    });
    lp.run_forever()?;
    assert!(worker.join().expect("worker thread"));
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).ok(), Some(true));
    assert!(
        hook.held.borrow().is_some(),
        "the loop's thread took the lock back"
    );
    lp.close()?;
    Ok(())
}
