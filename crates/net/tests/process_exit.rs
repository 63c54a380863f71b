//! Subprocesses: exit codes, death by signal, signals after reaping, spawn errors.

#[path = "util/process.rs"]
mod process_util;

use std::io;
use std::time::Duration;

use evloop_net::{LoopProcessExt, ProcessOptions, ProcessStdio};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use process_util::{Ev, Log, Rec, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn quiet() -> ProcessOptions {
    ProcessOptions::new()
        .stdin(ProcessStdio::Null)
        .stdout(ProcessStdio::Null)
        .stderr(ProcessStdio::Null)
}

// CPython: test_asyncio/test_events.py SubprocessTestsMixin::test_subprocess_exitcode,
// test_subprocess_shell ("exit 7")
#[test]
fn exit_codes_are_returned() -> TestResult {
    let lp = EventLoop::new()?;
    for (cmd, code) in [("exit 0", 0), ("exit 7", 7), ("exit 255", 255)] {
        let log = Log::default();
        let l2 = log.clone();
        let (t, _p) =
            lp.run_until_complete(lp.subprocess_shell(move || Rec::new(&l2), cmd, quiet()))??;
        assert_eq!(lp.run_until_complete(t.wait())??, code);
        assert_eq!(t.get_returncode(), Some(code));
        assert!(run_until(&lp, Duration::from_secs(10), || log
            .borrow()
            .contains(&Ev::Lost))?);
        assert!(log.borrow().contains(&Ev::Exited(Some(code))));
    }
    let (t, _p) =
        lp.run_until_complete(lp.subprocess_exec(Rec::default, "true", [""; 0], quiet()))??;
    assert_eq!(lp.run_until_complete(t.wait())??, 0);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_kill, test_terminate,
// test_send_signal (the return code is minus the signal)
#[test]
fn death_by_signal_is_minus_the_signal() -> TestResult {
    let lp = EventLoop::new()?;
    let cases: [(i32, i32); 3] = [
        (libc::SIGKILL, -9),
        (libc::SIGTERM, -15),
        (libc::SIGHUP, -1),
    ];
    for (sig, code) in cases {
        let (t, _p) =
            lp.run_until_complete(lp.subprocess_exec(Rec::default, "sleep", ["30"], quiet()))??;
        assert_eq!(t.get_returncode(), None);
        match sig {
            libc::SIGKILL => t.kill()?,
            libc::SIGTERM => t.terminate()?,
            _ => t.send_signal(sig)?,
        }
        assert_eq!(lp.run_until_complete(t.wait())??, code);
        assert_eq!(t.get_returncode(), Some(code));
    }
    lp.close()?;
    Ok(())
}

// CPython: Lib/asyncio/base_subprocess.py `_check_proc` (ProcessLookupError once the child
// is gone); here the error comes as soon as the child is reaped, when its pid may be reused.
#[test]
fn a_reaped_child_cannot_be_signalled() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, _p) =
        lp.run_until_complete(lp.subprocess_exec(Rec::default, "true", [""; 0], quiet()))??;
    lp.run_until_complete(t.wait())??;
    for result in [t.kill(), t.terminate(), t.send_signal(libc::SIGUSR1)] {
        let err = result.err().ok_or("a reaped child was signalled")?;
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_terminate then test_kill:
// a child that ignores SIGTERM survives it, and SIGKILL ends it.
#[test]
fn a_child_that_ignores_sigterm_dies_of_sigkill() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    // An ignored signal stays ignored across exec.
    let script = "trap '' TERM; echo ready; exec sleep 30";
    let options = ProcessOptions::new().stdin(ProcessStdio::Null);
    let (t, _p) =
        lp.run_until_complete(lp.subprocess_shell(move || Rec::new(&l2), script, options))??;
    assert!(run_until(&lp, Duration::from_secs(10), || Rec::data(
        &log, 1
    ) == b"ready\n")?);
    t.terminate()?;
    run_until(&lp, Duration::from_millis(300), || false)?;
    assert_eq!(t.get_returncode(), None, "SIGTERM was ignored");
    t.kill()?;
    assert_eq!(lp.run_until_complete(t.wait())??, -libc::SIGKILL);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_popen_error (a spawn error
// is raised by the call and nothing is left behind); FileNotFoundError names the program.
#[test]
fn a_missing_program_is_not_found_naming_it() -> TestResult {
    let lp = EventLoop::new()?;
    let made = Log::default();
    let m2 = made.clone();
    let err = lp
        .run_until_complete(lp.subprocess_exec(
            move || Rec::new(&m2),
            "evloop-no-such-program",
            ["x"],
            ProcessOptions::new(),
        ))?
        .err()
        .ok_or("a missing program was started")?;
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("evloop-no-such-program"), "{err}");
    assert!(
        made.borrow().is_empty(),
        "no protocol call for a child that never ran"
    );
    let err = lp
        .run_until_complete(lp.create_subprocess_exec("/nonexistent/dir/prog", [""; 0], quiet()))?
        .err()
        .ok_or("a missing program was started")?;
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("/nonexistent/dir/prog"), "{err}");
    lp.close()?;
    Ok(())
}

// asyncio's STDOUT is only for stderr: anywhere else it is refused before anything starts.
#[test]
fn stdout_redirect_is_only_for_stderr() -> TestResult {
    let lp = EventLoop::new()?;
    let options = ProcessOptions::new().stdout(ProcessStdio::Stdout);
    let err = lp
        .run_until_complete(lp.subprocess_exec(Rec::default, "true", [""; 0], options))?
        .err()
        .ok_or("stdout=Stdout was accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "stdout: ProcessStdio::Stdout is only for stderr"
    );
    lp.close()?;
    Ok(())
}
