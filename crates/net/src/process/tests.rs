//! The thread exit watcher, forced on a kernel that has pidfds: the path where `pidfd_open`
//! is missing (asyncio's `ThreadedChildWatcher`).

use std::io;
use std::time::{Duration, Instant};

use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;

use super::watch::FORCE_THREAD;
use super::{LoopProcessExt, ProcessOptions, ProcessStdio, SubprocessProtocol};

struct Quiet;
impl SubprocessProtocol for Quiet {}

fn quiet() -> ProcessOptions {
    ProcessOptions::new()
        .stdin(ProcessStdio::Null)
        .stdout(ProcessStdio::Null)
        .stderr(ProcessStdio::Null)
}

/// Whether `pid` was reaped (asked with `WNOWAIT`, which reaps nothing), waiting up to 10 s.
fn reaped(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child as it is.
        let ret = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if ret < 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pidfds this process holds (only the subprocess tests make any).
fn pidfds() -> io::Result<usize> {
    let mut n = 0;
    for fd in std::fs::read_dir("/proc/self/fd")? {
        let target = std::fs::read_link(fd?.path()).unwrap_or_default();
        if target.to_string_lossy().contains("pidfd") {
            n += 1;
        }
    }
    Ok(n)
}

fn forced<T>(f: impl FnOnce() -> T) -> T {
    FORCE_THREAD.with(|c| c.set(true));
    let out = f();
    FORCE_THREAD.with(|c| c.set(false));
    out
}

// CPython: Lib/asyncio/unix_events.py ThreadedChildWatcher; test_subprocess.py test_kill,
// run under each watcher.
#[test]
fn the_thread_watcher_reports_exit_codes_and_signals() -> io::Result<()> {
    forced(|| {
        let lp = EventLoop::new()?;
        let (t, _p) = lp.run_until_complete(lp.subprocess_shell(|| Quiet, "exit 5", quiet()))??;
        assert_eq!(lp.run_until_complete(t.wait())??, 5);
        let (t, _p) =
            lp.run_until_complete(lp.subprocess_exec(|| Quiet, "sleep", ["30"], quiet()))??;
        assert_eq!(pidfds()?, 0, "a pidfd was used, not the thread watcher");
        t.kill()?;
        assert_eq!(lp.run_until_complete(t.wait())??, -libc::SIGKILL);
        assert!(reaped(t.get_pid()));
        assert_eq!(
            t.kill().err().and_then(|e| e.raw_os_error()),
            Some(libc::ESRCH)
        );
        lp.close()?;
        Ok(())
    })
}

// The loop closes while the thread still waits: the thread reaps the killed child itself.
#[test]
fn the_thread_watcher_reaps_when_the_loop_closes_first() -> io::Result<()> {
    forced(|| {
        let lp = EventLoop::new()?;
        let (t, _p) =
            lp.run_until_complete(lp.subprocess_exec(|| Quiet, "sleep", ["30"], quiet()))??;
        let pid = t.get_pid();
        lp.close()?;
        assert!(reaped(pid), "pid {pid} was left a zombie");
        Ok(())
    })
}
