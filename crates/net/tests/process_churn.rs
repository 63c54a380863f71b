//! Subprocesses: 200 short-lived children in a row leave no zombie and no fd. Alone in its
//! binary, so that no other test opens fds while it counts them.

#[path = "util/process.rs"]
mod process_util;

use std::time::Duration;

use evloop_net::{LoopProcessExt, ProcessOptions, ProcessStdio};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use process_util::{Ev, Kin, Log, Rec, fd_count, kin, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CHILDREN: usize = 200;

// CPython: Lib/asyncio/unix_events.py child watchers (every child reaped) and
// base_subprocess.py `_call_connection_lost` (pipes closed at the end): no zombie, no fd.
#[test]
fn two_hundred_children_leave_no_zombie_and_no_fd() -> TestResult {
    let lp = EventLoop::new()?;
    // Warm up once: the loop's lazily made state (read buffer, registries) is not a leak.
    let log = Log::default();
    let l2 = log.clone();
    lp.run_until_complete(lp.subprocess_exec(
        move || Rec::new(&l2),
        "true",
        [""; 0],
        ProcessOptions::new(),
    ))??;
    assert!(run_until(&lp, Duration::from_secs(10), || log
        .borrow()
        .contains(&Ev::Lost))?);
    let fds_before = fd_count()?;
    let mut pids = Vec::with_capacity(CHILDREN);
    for i in 0..CHILDREN {
        let log = Log::default();
        let l2 = log.clone();
        // Alternate the pipes asked for, and the two APIs.
        let options = match i % 3 {
            0 => ProcessOptions::new(),
            1 => ProcessOptions::new()
                .stdin(ProcessStdio::Null)
                .stderr(ProcessStdio::Stdout),
            _ => ProcessOptions::new()
                .stdin(ProcessStdio::Null)
                .stdout(ProcessStdio::Null)
                .stderr(ProcessStdio::Null),
        };
        if i % 2 == 0 {
            let (t, _p) = lp.run_until_complete(lp.subprocess_exec(
                move || Rec::new(&l2),
                "echo",
                [i.to_string()],
                options,
            ))??;
            pids.push(t.get_pid());
            assert!(run_until(&lp, Duration::from_secs(10), || log
                .borrow()
                .contains(&Ev::Lost))?);
            assert_eq!(t.get_returncode(), Some(0));
        } else {
            let l3 = lp.clone();
            let pid = lp.run_until_complete(async move {
                let mut child = l3
                    .create_subprocess_exec("echo", [i.to_string()], options)
                    .await?;
                child.communicate(None).await?;
                Ok::<_, std::io::Error>(child.pid())
            })??;
            pids.push(pid);
        }
    }
    // The last pipes close on the iteration after their connection_lost.
    run_until(&lp, Duration::from_millis(50), || false)?;
    let fds_after = fd_count()?;
    assert_eq!(
        fds_after, fds_before,
        "fds before and after {CHILDREN} children"
    );
    let left: Vec<(u32, Kin)> = pids
        .iter()
        .map(|&p| (p, kin(p)))
        .filter(|(_, k)| *k != Kin::Gone)
        .collect();
    assert!(left.is_empty(), "children not reaped: {left:?}");
    lp.close()?;
    Ok(())
}
