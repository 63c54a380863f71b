//! Subprocesses: no zombie, also when the loop closes first or the transport is dropped.

#[path = "util/process.rs"]
mod process_util;

use std::time::Duration;

use evloop_net::{LoopProcessExt, ProcessOptions, ProcessStdio};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use process_util::{Ev, Kin, Log, Rec, kin, reaped_within, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

// CPython: Lib/asyncio/base_subprocess.py `__del__` and `close`: a transport left running is
// closed, its child killed. evloop does that when the loop closes first, and reaps the child
// in the background.
#[test]
fn closing_the_loop_first_kills_and_reaps_the_child() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, _p) = lp.run_until_complete(lp.subprocess_exec(
        Rec::default,
        "sleep",
        ["30"],
        ProcessOptions::new(),
    ))??;
    let pid = t.get_pid();
    assert_eq!(kin(pid), Kin::Running);
    lp.close()?;
    assert!(
        reaped_within(pid, Duration::from_secs(10)),
        "pid {pid} left as {:?}",
        kin(pid)
    );
    assert!(t.is_closing());
    assert!(
        t.kill().is_err(),
        "a child handed to the reaper is not ours to signal"
    );
    Ok(())
}

// A transport nobody holds still has its child watched and reaped at the exit.
// CPython: Lib/asyncio/unix_events.py `ThreadedChildWatcher`, which keeps the transport until
// the child's exit.
#[test]
fn a_dropped_transport_still_reaps_its_child() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let options = ProcessOptions::new().stdin(ProcessStdio::Null);
    let (t, p) =
        lp.run_until_complete(lp.subprocess_shell(move || Rec::new(&l2), "sleep 0.2", options))??;
    let pid = t.get_pid();
    drop((t, p));
    assert!(run_until(&lp, Duration::from_secs(10), || log
        .borrow()
        .contains(&Ev::Lost))?);
    assert_eq!(kin(pid), Kin::Gone);
    lp.close()?;
    Ok(())
}
