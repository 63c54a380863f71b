//! Subprocesses: a start abandoned half-way (its future dropped while the pipes connect)
//! kills the child and still reaps it. Alone in its binary: it counts every child of the
//! process.

#[path = "util/process.rs"]
mod process_util;

use std::time::Duration;

use evloop_net::{LoopProcessExt, ProcessOptions};
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, timeout};
use process_util::{Rec, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The pids whose parent is this process, zombies included (from `/proc/*/stat`).
fn children() -> std::io::Result<Vec<u32>> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the comm may hold spaces, so split after its ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(me.as_str()) {
            found.push(pid);
        }
    }
    Ok(found)
}

// CPython: Lib/asyncio/base_subprocess.py `_connect_pipes` and unix_events.py
// `_make_subprocess_transport` (a start that fails or is cancelled closes the transport,
// killing the child, and waits for it); gh-125502 (a cancelled start must not hang or leak).
#[test]
fn a_cancelled_start_kills_and_reaps_the_child() -> TestResult {
    let lp = EventLoop::new()?;
    assert!(children()?.is_empty());
    // The deadline is already past: the start runs until it first waits (the child is
    // spawned, the pipes are connecting), then it is dropped.
    let start = lp.subprocess_exec(Rec::default, "sleep", ["30"], ProcessOptions::new());
    let result = lp.run_until_complete(timeout(0.0, start))?;
    assert!(result.is_err_and(|e| e.is_timed_out()));
    assert_eq!(children()?.len(), 1, "the child was spawned");
    let mut gone = false;
    run_until(&lp, Duration::from_secs(10), || {
        gone = children().is_ok_and(|c| c.is_empty());
        gone
    })?;
    assert!(gone, "children left: {:?}", children()?);
    lp.close()?;
    Ok(())
}
