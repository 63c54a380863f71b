//! Where the default exception handler's reports go: stderr when the program installed no `log`
//! logger, the logger when it did. Each case runs in a child process (this test binary again,
//! filtered to the one test), because a `log` logger, once installed, stays for the process.

use std::io;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use evloop_sched::EventLoop;

/// Set in the child: which case to run (`bare` or `logger`).
const CHILD: &str = "EVLOOP_TEST_STDERR_CHILD";

/// The reports the child provokes: a panicking callback, and a slow one in debug mode.
fn provoke_reports() -> io::Result<()> {
    let lp = EventLoop::new()?;
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::ZERO);
    lp.call_soon(|| panic!("boom"))?;
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop())?;
    lp.run_forever()?;
    lp.close()?;
    Ok(())
}

/// Runs this test binary's test `name` as a child with `CHILD=case`; gives its stderr.
fn child_stderr(name: &str, case: &str) -> io::Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(io::Error::other(format!("the child failed: {stderr}")));
    }
    Ok(stderr)
}

// CPython: asyncio's reports reach stderr through logging.lastResort when logging is not
// configured (base_events.BaseEventLoop.default_exception_handler logs with logger.error).
#[test]
fn without_a_logger_reports_go_to_stderr() -> io::Result<()> {
    if std::env::var_os(CHILD).is_some_and(|c| c == "bare") {
        return provoke_reports();
    }
    let stderr = child_stderr("without_a_logger_reports_go_to_stderr", "bare")?;
    assert!(
        stderr.contains("ERROR evloop: Exception in callback <Handle created at "),
        "{stderr}"
    );
    assert!(stderr.contains("exception: panic: boom"), "{stderr}");
    assert!(
        stderr.contains("WARN evloop: Executing <Handle created at "),
        "{stderr}"
    );
    Ok(())
}

/// The records a [`Recorder`] got: (level, text).
static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
        records.push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder;

// The other side: a program that installed a logger gets the reports there, not on stderr.
#[test]
fn with_a_logger_reports_go_through_log_only() -> io::Result<()> {
    if std::env::var_os(CHILD).is_some_and(|c| c == "logger") {
        log::set_logger(&RECORDER).map_err(|e| io::Error::other(e.to_string()))?;
        log::set_max_level(log::LevelFilter::Warn);
        provoke_reports()?;
        let records = std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()));
        let levels: Vec<_> = records.iter().map(|(level, _)| *level).collect();
        assert!(levels.contains(&log::Level::Error), "{records:?}");
        assert!(levels.contains(&log::Level::Warn), "{records:?}");
        assert!(
            records
                .iter()
                .any(|(_, text)| text.starts_with("Exception in callback <Handle created at ")),
            "{records:?}"
        );
        return Ok(());
    }
    let stderr = child_stderr("with_a_logger_reports_go_through_log_only", "logger")?;
    assert!(!stderr.contains("evloop: "), "{stderr}");
    assert!(
        stderr.contains("boom"),
        "the panic hook still prints: {stderr}"
    );
    Ok(())
}
