//! The machine the benchmarks run on: cores, kernel, CPU pinning, and
//! running a child process with a time limit.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// What the report says about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct System {
    /// `uname -r`, or `unknown`.
    pub(crate) kernel: String,
    /// The number of cores this process may use.
    pub(crate) nproc: usize,
    /// Whether `taskset` can pin peers to cores.
    pub(crate) taskset: bool,
}

impl System {
    /// Looks at this machine.
    pub(crate) fn describe() -> System {
        let kernel = Command::new("uname")
            .arg("-r")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        System {
            kernel,
            nproc: nproc(),
            taskset: taskset_available(),
        }
    }
}

/// The number of cores this process may run on (what `nproc` prints), at least 1.
pub(crate) fn nproc() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

/// Whether `taskset` (util-linux) is installed and runs; looked up once.
pub(crate) fn taskset_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Makes `cmd` run pinned to `core` by wrapping it as `taskset -c <core> <cmd>`,
/// when taskset exists; otherwise leaves it unchanged (check
/// [`taskset_available`] to say so in the report).
///
/// The program, arguments, environment changes and working directory carry
/// over; set stdin/stdout/stderr after this call, since `Command` does not
/// let them be read back.
pub(crate) fn pinned(cmd: &mut Command, core: usize) {
    pinned_to(cmd, &core.to_string());
}

/// As [`pinned`], onto the CPUs of `cpus`, a `taskset -c` list (`0,2-5`).
pub(crate) fn pinned_to(cmd: &mut Command, cpus: &str) {
    if !taskset_available() {
        return;
    }
    let mut wrapped = Command::new("taskset");
    wrapped
        .arg("-c")
        .arg(cpus)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    *cmd = wrapped;
}

/// What a child printed and how it ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` with stdin closed, collecting its output; kills it once `limit`
/// has passed.
///
/// # Errors
///
/// - the command cannot be started (`NotFound` when the program is missing);
/// - it ran longer than `limit` (`TimedOut`; it has been killed).
pub(crate) fn run_with_limit(cmd: &mut Command, limit: Duration) -> io::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_limit(&mut child, limit)?;
    Ok(Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads a pipe to its end on a thread of its own, so that a child filling
/// one pipe never blocks on it while we wait for it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the output early; what was read still counts.
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_with_limit(child: &mut Child, limit: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            // It may exit between the check and the kill; either way it is gone.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("killed after {} s", limit.as_secs_f64()),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nproc_is_at_least_one() {
        assert!(nproc() >= 1);
        assert_eq!(System::describe().nproc, nproc());
    }

    #[test]
    fn pinned_wraps_with_taskset_and_keeps_args_and_env() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $PIN_TEST; taskset -pc $$"])
            .env("PIN_TEST", "kept");
        pinned(&mut cmd, 0);
        if taskset_available() {
            assert_eq!(cmd.get_program(), "taskset");
            let out = run_with_limit(&mut cmd, Duration::from_secs(10)).map(|f| f.stdout);
            let out = out.unwrap_or_else(|e| e.to_string());
            assert!(out.starts_with("kept\n"), "{out}");
            assert!(out.trim_end().ends_with("list: 0"), "{out}");
        } else {
            assert_eq!(cmd.get_program(), "sh");
        }
    }

    #[test]
    fn run_with_limit_collects_output_and_status() -> io::Result<()> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 4"]);
        let done = run_with_limit(&mut cmd, Duration::from_secs(10))?;
        assert_eq!(done.status.code(), Some(4));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        Ok(())
    }

    #[test]
    fn run_with_limit_kills_at_the_limit() {
        let started = Instant::now();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let err = run_with_limit(&mut cmd, Duration::from_millis(200)).map(|f| f.status);
        assert_eq!(
            err.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::TimedOut)
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn missing_program_is_not_found() {
        let mut cmd = Command::new("evloop-bench-no-such-program");
        let err = run_with_limit(&mut cmd, Duration::from_secs(1)).map(|f| f.status);
        assert_eq!(
            err.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::NotFound)
        );
    }
}
