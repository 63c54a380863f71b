//! The process around a test: panics, fds, fd limits, CPU time, child processes under a
//! watchdog, and a small seeded random generator.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::line::Line;

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts every panic of this process (caught or not), then reports it as usual.
pub(crate) fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default(info);
    }));
}

/// Runs one test's `body` as its line: timed, an error turned into the line's failure, and the
/// process's panics counted.
pub(crate) fn measured(
    test: &str,
    tried: &str,
    body: impl FnOnce(&mut Line) -> Result<(), String>,
) -> Line {
    let started = Instant::now();
    let mut line = Line::new(test, tried);
    if let Err(e) = body(&mut line) {
        line.fail(e);
    }
    line.secs = started.elapsed().as_secs_f64();
    line.panics = panics();
    line
}

/// Panics so far in this process.
pub(crate) fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// The number of open fds of this process (entries of `/proc/self/fd`, less the one the
/// listing itself holds).
pub(crate) fn fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

/// The `(soft, hard)` limit on open fds.
pub(crate) fn nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer for getrlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the soft limit on open fds (at most the hard one); returns the soft limit now.
pub(crate) fn set_nofile(soft: u64) -> io::Result<u64> {
    let (_, hard) = nofile()?;
    let lim = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit at most the hard limit, which needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(nofile()?.0)
}

/// CPU time (user + system) this process used so far.
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for getrusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } < 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// This binary, to start as a helper: `--child NAME ARGS...`.
pub(crate) fn helper(name: &str, args: &[String]) -> io::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--child").arg(name).args(args);
    Ok(cmd)
}

/// What a child left behind.
pub(crate) struct Finished {
    /// `None` if the watchdog killed it.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

/// Runs `cmd` with its stdout and stderr captured, and kills it after `limit`.
///
/// With `own_group` (the suite starting a test) the child leads a process group of its own and
/// the watchdog kills the whole group, helpers included. Without it (a test starting a process)
/// the child stays in the test's group, so the suite's watchdog reaches it too, and only the
/// child is killed.
pub(crate) fn run_with_watchdog(
    mut cmd: Command,
    limit: Duration,
    own_group: bool,
) -> io::Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if own_group {
        cmd.process_group(0);
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_until(&mut child, started + limit)?;
    if status.is_none() {
        if own_group {
            kill_group(&child);
        } else {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
    let elapsed = started.elapsed();
    let join = |h: thread::JoinHandle<String>| h.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout: join(out),
        stderr: join(err),
        elapsed,
    })
}

/// Waits for `child` until `deadline`; `None` if it is still running then.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Kills `child`'s process group (it leads its own, see [`run_with_watchdog`]).
pub(crate) fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the group is our child's.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Starts `cmd` with its stdout and stderr read by threads (whose texts the handles return).
pub(crate) fn spawn_captured(mut cmd: Command) -> io::Result<Captured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    Ok(Captured {
        child,
        stdout,
        stderr,
    })
}

/// A child started by [`spawn_captured`].
pub(crate) struct Captured {
    pub(crate) child: Child,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
}

impl Captured {
    /// Waits for the child (killing it first if `kill`) and returns its stdout and stderr.
    pub(crate) fn finish(mut self, kill: bool) -> (Option<ExitStatus>, String, String) {
        if kill {
            let _ = self.child.kill();
        }
        let status = self.child.wait().ok();
        let out = self.stdout.join().unwrap_or_default();
        let err = self.stderr.join().unwrap_or_default();
        (status, out, err)
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// How a process ended, in words.
pub(crate) fn describe(status: Option<ExitStatus>, limit: Duration) -> String {
    match status {
        None => format!("hung: killed by the watchdog after {} s", limit.as_secs()),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            _ => "ended oddly".to_string(),
        },
    }
}

/// A signal's name, for the report.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGTERM => "SIGTERM",
        _ => "other",
    }
}

/// The last `n` lines of `text`, on one line.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// Runs the test `name` in a child and returns its line; a child that hangs, dies or prints
/// no line gives a failed line saying so.
pub(crate) fn run_child_line(name: &str, args: &[String], limit: Duration) -> Line {
    let finished = std::env::current_exe().and_then(|exe| {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        // The tests panic on purpose (panicking destructors, protocol methods); with
        // RUST_BACKTRACE set, std's panic hook would symbolize a backtrace for each and keep
        // megabytes of debug info cached, which the heap checks would count as a leak.
        cmd.env("RUST_BACKTRACE", "0");
        run_with_watchdog(cmd, limit, true)
    });
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            let mut line = Line::new(name, "(not started)");
            line.fail(format!("cannot start the child: {e}"));
            return line;
        }
    };
    let ok_exit = finished.status.is_some_and(|s| s.success());
    match Line::parse_output(&finished.stdout) {
        Some(mut line) => {
            if !ok_exit {
                line.fail(format!(
                    "the child then ended badly: {}",
                    describe(finished.status, limit)
                ));
            }
            line
        }
        None => {
            let mut line = Line::new(name, "(no result)");
            line.secs = finished.elapsed.as_secs_f64();
            line.fail(format!(
                "the child printed no result: {}; stderr: {}",
                describe(finished.status, limit),
                tail(&finished.stderr, 3)
            ));
            line
        }
    }
}

/// A small seeded generator (xorshift64*): the same sizes on every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = u64::try_from(hi - lo + 1).unwrap_or(u64::MAX);
        lo + usize::try_from(self.next_u64() % span).unwrap_or(0)
    }
}

/// The byte at `offset` of connection `conn`'s stream: a pattern both sides compute, so every
/// byte is checked without keeping what was sent.
pub(crate) fn pattern(conn: usize, offset: usize) -> u8 {
    let x = conn.wrapping_mul(31).wrapping_add(offset.wrapping_mul(7)) ^ (offset >> 8);
    x.to_le_bytes()[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.range(3, 9);
            assert_eq!(x, b.range(3, 9));
            assert!((3..=9).contains(&x));
        }
    }

    #[test]
    fn a_child_that_hangs_is_killed_and_said_to_hang() -> io::Result<()> {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let f = run_with_watchdog(cmd, Duration::from_millis(200), false)?;
        assert_eq!(f.status, None);
        assert!(f.elapsed < Duration::from_secs(10));
        assert!(describe(f.status, Duration::from_secs(1)).starts_with("hung"));
        Ok(())
    }
}
