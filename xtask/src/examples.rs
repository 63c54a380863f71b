//! The reference examples, built once, run and checked against what the
//! asyncio page shows.
//!
//! The table [`EXAMPLES`] says, for each example, where its source lives,
//! which package builds it, how long it may run and what it must print; a
//! check is a plain function over a running child. Every example in the
//! table must exist: a missing source fails the check.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::cmd::{Cmd, Result, human};
use crate::{layers, provision};

#[path = "examples_net.rs"]
mod net;

#[path = "examples_process.rs"]
mod process;

/// One example to build, run and check.
struct Example {
    /// The example's name, which is also its binary's name.
    name: &'static str,
    /// The package that declares it.
    package: &'static str,
    /// Its source, relative to the workspace root.
    source: &'static str,
    /// After this long the child is killed and the check fails.
    timeout: Duration,
    /// What it must do.
    check: fn(&mut Run) -> Result,
}

/// The examples `cargo xtask ci` runs, in order.
const EXAMPLES: &[Example] = &[
    Example {
        name: "hello_world",
        package: "evloop",
        source: "examples/hello_world.rs",
        timeout: Duration::from_secs(10),
        check: hello_world,
    },
    Example {
        name: "display_date",
        package: "evloop",
        source: "examples/display_date.rs",
        timeout: Duration::from_secs(20),
        check: display_date,
    },
    Example {
        name: "watch_fd",
        package: "evloop",
        source: "examples/watch_fd.rs",
        timeout: Duration::from_secs(10),
        check: watch_fd,
    },
    Example {
        name: "signals",
        package: "evloop",
        source: "examples/signals.rs",
        timeout: Duration::from_secs(10),
        check: signals,
    },
    Example {
        name: "echo_server",
        package: "evloop",
        source: "examples/echo_server.rs",
        timeout: Duration::from_secs(240),
        check: net::echo_server,
    },
    Example {
        name: "echo_streams",
        package: "evloop",
        source: "examples/echo_streams.rs",
        timeout: Duration::from_secs(90),
        check: net::echo_streams,
    },
    Example {
        name: "echo_sock",
        package: "evloop",
        source: "examples/echo_sock.rs",
        timeout: Duration::from_secs(30),
        check: net::echo_sock,
    },
    Example {
        name: "http_hello",
        package: "evloop",
        source: "examples/http_hello.rs",
        timeout: Duration::from_secs(40),
        check: net::http_hello,
    },
    Example {
        name: "file_server",
        package: "evloop",
        source: "examples/file_server.rs",
        timeout: Duration::from_secs(40),
        check: net::file_server,
    },
    Example {
        name: "https_hello",
        package: "evloop",
        source: "examples/https_hello.rs",
        timeout: Duration::from_secs(60),
        check: net::https_hello,
    },
    Example {
        name: "unix_echo",
        package: "evloop",
        source: "examples/unix_echo.rs",
        timeout: Duration::from_secs(30),
        check: net::unix_echo,
    },
    Example {
        name: "udp_echo",
        package: "evloop",
        source: "examples/udp_echo.rs",
        timeout: Duration::from_secs(30),
        check: net::udp_echo,
    },
    Example {
        name: "cat_pipe",
        package: "evloop",
        source: "examples/cat_pipe.rs",
        timeout: Duration::from_secs(40),
        check: net::cat_pipe,
    },
    Example {
        name: "flow_control",
        package: "evloop",
        source: "examples/flow_control.rs",
        timeout: Duration::from_secs(60),
        check: prints_something,
    },
    Example {
        name: "subprocess_ls",
        package: "evloop",
        source: "examples/subprocess_ls.rs",
        timeout: Duration::from_secs(30),
        check: process::subprocess_ls,
    },
    Example {
        name: "echo_multicore",
        package: "evloop",
        source: "examples/echo_multicore.rs",
        timeout: Duration::from_secs(60),
        check: net::echo_multicore,
    },
    Example {
        name: "wheel",
        package: "evloop-timer",
        source: "crates/timer/examples/wheel.rs",
        timeout: Duration::from_secs(60),
        check: prints_something,
    },
];

/// `hello_world`: stdout is exactly `Hello World\n`.
fn hello_world(run: &mut Run) -> Result {
    let out = run.rest()?;
    let bytes: Vec<u8> = out.iter().flat_map(|l| l.bytes.iter().copied()).collect();
    if bytes != b"Hello World\n" {
        return Err(format!(
            "expected stdout \"Hello World\\n\", got {:?}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    run.exits_ok()
}

/// `display_date`: five non-empty lines, each at least 0.9 s after the one before.
fn display_date(run: &mut Run) -> Result {
    const LINES: usize = 5;
    const MIN_GAP: Duration = Duration::from_millis(900);
    let out = run.rest()?;
    if out.len() != LINES || out.iter().any(|l| l.text().is_empty()) {
        let texts: Vec<String> = out.iter().map(Line::text).collect();
        return Err(format!("expected {LINES} non-empty lines, got {texts:?}"));
    }
    for pair in out.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        if gap < MIN_GAP {
            return Err(format!(
                "line {:?} came {gap:?} after the one before; expected at least {MIN_GAP:?}",
                pair[1].text()
            ));
        }
    }
    run.exits_ok()
}

/// `watch_fd`: prints the line `Received: abc`.
fn watch_fd(run: &mut Run) -> Result {
    let out = run.rest()?;
    if !out.iter().any(|l| l.text() == "Received: abc") {
        return Err("no line \"Received: abc\"".to_string());
    }
    run.exits_ok()
}

/// `signals`: announces itself and its pid, exits cleanly on SIGINT.
fn signals(run: &mut Run) -> Result {
    let first = run.expect_line()?;
    if first != "Event loop running forever, press Ctrl+C to interrupt." {
        return Err(format!("unexpected first line {first:?}"));
    }
    let second = run.expect_line()?;
    let pid = second
        .strip_prefix("pid ")
        .and_then(|s| s.strip_suffix(": send SIGINT or SIGTERM to exit."))
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| {
            format!("expected \"pid <N>: send SIGINT or SIGTERM to exit.\", got {second:?}")
        })?;
    if pid != run.child.id() {
        return Err(format!(
            "printed pid {pid}, but its pid is {}",
            run.child.id()
        ));
    }
    println!("+ kill -INT {pid}");
    run.interrupt()?;
    let out = run.rest()?;
    if !out.iter().any(|l| l.text() == "got signal SIGINT: exit") {
        return Err("no line \"got signal SIGINT: exit\" after SIGINT".to_string());
    }
    run.exits_ok()
}

/// Any example without a precise contract: it prints something and exits 0.
fn prints_something(run: &mut Run) -> Result {
    if run.rest()?.is_empty() {
        return Err("printed nothing".to_string());
    }
    run.exits_ok()
}

/// Builds the examples, runs each one and checks it. Nothing is skipped: a
/// missing example is an error (the returned list is always empty).
pub(crate) fn run() -> Result<Vec<String>> {
    provision::ensure(provision::EXAMPLE_CLIENTS)?;
    let mut present = Vec::new();
    for example in EXAMPLES {
        if !Path::new(example.source).is_file() {
            return Err(format!(
                "example {}: {} is missing",
                example.name, example.source
            ));
        }
        present.push(example);
    }
    let mut packages: Vec<&str> = Vec::new();
    for example in &present {
        if !packages.contains(&example.package) {
            packages.push(example.package);
        }
    }
    for package in packages {
        Cmd::cargo()
            .args(["build", "-p", package, "--examples"])
            .run()?;
    }
    let bin_dir = target_dir()?.join("debug").join("examples");
    for example in present {
        let started = Instant::now();
        let path = bin_dir.join(example.name);
        println!("+ {} (timeout {})", path.display(), human(example.timeout));
        let mut run = Run::spawn(Command::new(&path), example.name, example.timeout)?;
        (example.check)(&mut run).map_err(|e| format!("example {}: {e}", example.name))?;
        println!(
            "examples: ok {} ({})",
            example.name,
            human(started.elapsed())
        );
    }
    Ok(Vec::new())
}

/// The target directory cargo builds into (honours `CARGO_TARGET_DIR` and
/// `build.target-dir`).
fn target_dir() -> Result<PathBuf> {
    let meta = layers::metadata()?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata: no `target_directory`".to_string())
}

/// One line of a child's stdout and when it arrived.
struct Line {
    at: Instant,
    /// The raw bytes, newline included (the last line may lack one).
    bytes: Vec<u8>,
}

impl Line {
    /// The line as text, without its line ending.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string()
    }
}

/// A running example: its stdout arrives line by line, and everything that
/// waits on it is bounded by one deadline.
struct Run {
    name: &'static str,
    child: Child,
    lines: Receiver<Line>,
    deadline: Instant,
    timeout: Duration,
}

impl Run {
    /// Starts `command` with stdin closed and stdout piped to us.
    fn spawn(mut command: Command, name: &'static str, timeout: Duration) -> Result<Run> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("example {name}: cannot start {command:?}: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| format!("example {name}: no stdout pipe"))?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || forward_lines(stdout, name, tx));
        Ok(Run {
            name,
            child,
            lines,
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    fn timed_out(&mut self) -> String {
        // Killing may fail only if it already exited; either way it is gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("timed out after {} and was killed", human(self.timeout))
    }

    /// The next line, or `None` at the end of stdout.
    fn next_line(&mut self) -> Result<Option<Line>> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(self.timed_out()),
        }
    }

    /// The next line's text; the end of stdout is an error.
    fn expect_line(&mut self) -> Result<String> {
        match self.next_line()? {
            Some(line) => Ok(line.text()),
            None => Err("stdout ended early".to_string()),
        }
    }

    /// Every line up to the end of stdout.
    fn rest(&mut self) -> Result<Vec<Line>> {
        let mut out = Vec::new();
        while let Some(line) = self.next_line()? {
            out.push(line);
        }
        Ok(out)
    }

    /// Sends SIGINT to the child.
    fn interrupt(&mut self) -> Result {
        let pid =
            libc::pid_t::try_from(self.child.id()).map_err(|e| format!("pid out of range: {e}"))?;
        // SAFETY: kill(2) has no memory-safety preconditions. The pid is our own
        // child, which we have not waited for, so it cannot have been reused.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("kill: {}", std::io::Error::last_os_error()))
        }
    }

    /// Waits for the child's exit within the deadline.
    fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() >= self.deadline => return Err(self.timed_out()),
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("cannot wait for {}: {e}", self.name)),
            }
        }
    }

    /// Fails unless the child exits with status 0 within the deadline.
    fn exits_ok(&mut self) -> Result {
        let status = self.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("exited with {status}"))
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A check that failed early leaves the child running: end it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the child's stdout, echoes each line to ours and forwards it with
/// its arrival time, until the end of stdout or until nobody listens.
fn forward_lines(stdout: ChildStdout, name: &str, tx: mpsc::Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let at = Instant::now();
                println!("  {name}| {}", String::from_utf8_lossy(&bytes).trim_end());
                if tx.send(Line { at, bytes }).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell script stands in for an example binary.
    ///
    /// The script gets SIGINT at its default: a shell cannot `trap` a signal it was started
    /// with ignored, and a command run in the background (`cargo xtask ci &`) starts with
    /// SIGINT ignored, which a real example overrides with its own handler but `sh` cannot.
    fn sh(script: &str, timeout: Duration) -> Result<Run> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        // SAFETY: the closure runs in the forked child before exec and only calls
        // `signal`, which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Run::spawn(command, "test", timeout)
    }

    #[test]
    fn exact_output_and_exit_status_are_checked() -> Result {
        hello_world(&mut sh("echo 'Hello World'", Duration::from_secs(5))?)?;
        let err = hello_world(&mut sh("echo 'Hello World!'", Duration::from_secs(5))?);
        assert!(err.is_err_and(|e| e.contains("Hello World!")));
        let err = hello_world(&mut sh(
            "echo 'Hello World'; exit 3",
            Duration::from_secs(5),
        )?);
        assert!(err.is_err_and(|e| e.contains("exit status: 3")));
        Ok(())
    }

    #[test]
    fn lines_arriving_too_fast_fail_display_date() -> Result {
        let err = display_date(&mut sh(
            "for i in 1 2 3 4 5; do echo $i; done",
            Duration::from_secs(5),
        )?);
        assert!(err.is_err_and(|e| e.contains("after the one before")));
        Ok(())
    }

    #[test]
    fn a_hung_example_is_killed_at_the_timeout() -> Result {
        let started = Instant::now();
        let err = watch_fd(&mut sh(
            "echo start; exec sleep 30",
            Duration::from_millis(300),
        )?);
        assert!(err.is_err_and(|e| e.contains("timed out")));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(20));
        Ok(())
    }

    #[test]
    fn signals_check_sends_sigint_to_the_printed_pid() -> Result {
        let script = "trap 'echo \"got signal SIGINT: exit\"; exit 0' INT
echo 'Event loop running forever, press Ctrl+C to interrupt.'
echo \"pid $$: send SIGINT or SIGTERM to exit.\"
i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; exit 1";
        signals(&mut sh(script, Duration::from_secs(8))?)
    }
}
