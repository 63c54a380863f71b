//! Debug mode reports a loop left unclosed (issue 12, defect 6). The reports go to stderr (no
//! logger is installed), so the case runs in a child process: this test binary again.

use std::io;
use std::process::Command;
use std::thread;

use evloop_sched::EventLoop;

/// Set in the child.
const CHILD: &str = "EVLOOP_TEST_UNCLOSED_CHILD";
const WARNING: &str =
    "WARN evloop: unclosed event loop <EventLoop running=False closed=False debug=True>";

/// The child: three loops left unclosed, between markers on stderr.
fn leave_loops_unclosed() -> io::Result<()> {
    drop(EventLoop::new()?); // not in debug mode: nothing to report
    eprintln!("<marker 1>");
    let lp = EventLoop::new()?;
    lp.set_debug(true);
    drop(lp); // dropped without close()
    eprintln!("<marker 2>");
    let closed = EventLoop::new()?;
    closed.set_debug(true);
    closed.close()?;
    drop(closed); // closed first: nothing to report
    eprintln!("<marker 3>");
    thread::spawn(|| -> io::Result<()> {
        // Kept alive by its own pending callback: closed, and reported, at the thread's end.
        let lp = EventLoop::new()?;
        lp.set_debug(true);
        let l2 = lp.clone();
        lp.call_later(3600.0, move || l2.stop())?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("the thread panicked"))??;
    eprintln!("<marker 4>");
    Ok(())
}

// CPython: base_events.BaseEventLoop.__del__ warns "unclosed event loop" (a ResourceWarning,
// shown in development mode) for a loop collected unclosed; test_base_events'
// BaseEventLoopTests::test_del_* cover that close() silences it. Ours: debug mode reports it.
#[test]
fn debug_mode_reports_a_loop_left_unclosed() -> io::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return leave_loops_unclosed();
    }
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "debug_mode_reports_a_loop_left_unclosed",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env_remove("EVLOOP_DEBUG")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let parts: Vec<&str> = stderr.split("<marker ").collect();
    assert_eq!(parts.len(), 5, "{stderr}");
    assert!(!parts[0].contains("unclosed"), "{stderr}");
    assert_eq!(parts[1].matches(WARNING).count(), 1, "{stderr}");
    assert!(!parts[2].contains("unclosed"), "{stderr}");
    assert_eq!(parts[3].matches(WARNING).count(), 1, "{stderr}");
    Ok(())
}
