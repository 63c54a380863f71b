//! An echo server subject as a child process: how it is started (pinned to the server core),
//! how its port is learnt, how its CPU time and memory are read from `/proc`, and the guarantee
//! that it never outlives the measurement ([`ServerProc`] kills it when dropped, and the server
//! also exits when its stdin closes).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::harness::Ctx;
use crate::sys::{nproc, pinned, pinned_to};

/// The core the servers run on.
pub(crate) const SERVER_CPU: usize = 0;

/// The core the load (our client, or redis-benchmark) runs on.
pub(crate) const CLIENT_CPU: usize = 1;

/// How long a server may take to print its port (a Python one imports asyncio first).
const START_LIMIT: Duration = Duration::from_secs(20);

/// Whether server and load can be pinned to different cores (two or more).
pub(crate) fn can_pin() -> bool {
    nproc() > CLIENT_CPU
}

/// How to start one subject's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Launch {
    /// This binary in its hidden `--serve <subject>` mode.
    Rust(&'static str),
    /// `python/echo_server.py --loop <subject>` on the given interpreter.
    Python {
        subject: &'static str,
        python: PathBuf,
    },
}

impl Launch {
    /// The subject's name in the report.
    pub(crate) fn subject(&self) -> &'static str {
        match self {
            Launch::Rust(subject) | Launch::Python { subject, .. } => subject,
        }
    }

    fn command(&self) -> Result<Command, String> {
        match self {
            Launch::Rust(subject) => {
                let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
                let mut cmd = Command::new(exe);
                cmd.args(["--serve", subject, "--addr", "127.0.0.1:0"]);
                Ok(cmd)
            }
            Launch::Python { subject, python } => {
                let mut cmd = Command::new(python);
                cmd.arg(scripts_dir().join("echo_server.py"))
                    .args(["--loop", subject, "--port", "0"]);
                Ok(cmd)
            }
        }
    }
}

/// The folder of the Python peer scripts.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// A running echo server; killed and reaped when dropped.
#[derive(Debug)]
pub(crate) struct ServerProc {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    what: &'static str,
}

impl ServerProc {
    /// Starts `launch`'s server, pinned to [`SERVER_CPU`] when [`can_pin`] (a multi-core
    /// subject to every CPU but the load's), and waits for the port it prints.
    ///
    /// # Errors
    ///
    /// The server cannot be started, exits, or prints no port within [`START_LIMIT`].
    pub(crate) fn start(launch: &Launch) -> Result<ServerProc, String> {
        let what = launch.subject();
        let mut cmd = launch.command()?;
        if can_pin() {
            if crate::echo_mc::is_multicore(what) {
                pinned_to(&mut cmd, &crate::echo_mc::server_cpus());
            } else {
                pinned(&mut cmd, SERVER_CPU);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {what} server: {e}"))?;
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        // Reads the port line, then drains the rest so that the server never blocks on it.
        thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut server = ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            what,
        };
        let line = match rx.recv_timeout(START_LIMIT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(format!("the {what} server exited before printing its port")),
            Err(_) => {
                return Err(format!(
                    "the {what} server printed no port within {} s",
                    START_LIMIT.as_secs()
                ));
            }
        };
        let port = parse_port(&line).map_err(|e| format!("the {what} server: {e}"))?;
        server.addr.set_port(port);
        Ok(server)
    }

    /// The server's process id (taskset has exec'd it, so it is the server's own).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the server has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the {} server exited: {status}", self.what)),
            Err(e) => Err(format!("the {} server: {e}", self.what)),
        }
    }

    /// CPU time the server has used so far, all threads, in ns (see [`cpu_ns`]).
    pub(crate) fn cpu_ns(&self) -> Result<u64, String> {
        cpu_ns(self.pid())
    }

    /// The server's resident set size in bytes (`VmRSS`).
    pub(crate) fn rss_bytes(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        vm_rss_bytes(&status).ok_or_else(|| format!("{path}: no VmRSS line"))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // Either it is still running and dies now, or it is already gone; both are fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port a server printed: one line holding a port number other than 0.
pub(crate) fn parse_port(line: &str) -> Result<u16, String> {
    match line.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("expected a port number, got {line:?}")),
    }
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
pub(crate) fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

/// The CPU time process `pid` has used, in ns: the sum over its threads of the first field of
/// `/proc/PID/task/TID/schedstat` (nanosecond resolution), or `utime + stime` of
/// `/proc/PID/stat` (clock ticks, usually 10 ms) where schedstat is missing.
pub(crate) fn cpu_ns(pid: u32) -> Result<u64, String> {
    let tasks = format!("/proc/{pid}/task");
    if let Ok(entries) = std::fs::read_dir(&tasks) {
        let mut total = 0u64;
        let mut found = false;
        for entry in entries.flatten() {
            let path = entry.path().join("schedstat");
            // A thread may exit between the listing and the read; it simply does not count.
            if let Some(ns) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
        if found {
            return Ok(total);
        }
    }
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let ticks = stat_cpu_ticks(&stat).ok_or_else(|| format!("{path}: unreadable"))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100);
    Ok(ticks * (1_000_000_000 / hz))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub(crate) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: field 3 (state) is the first; utime is field 14, the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The Python peers' servers that can run, skipping (with the reason) those that cannot. Not
/// in smoke mode, as for every Python peer. Each peer serves twice: the Protocol echo under its
/// own name, and asyncio's `sock_*` echo as `<peer>_sock` (`echo_server.py`).
pub(crate) fn python_launches(ctx: &mut Ctx, group: &str) -> Vec<Launch> {
    let mut launches = Vec::new();
    for (subject, sock_subject) in [
        ("asyncio", "asyncio_sock"),
        ("uvloop", "uvloop_sock"),
        ("evloop_py", "evloop_py_sock"),
    ] {
        if ctx.smoke {
            ctx.skip(group, subject, "python peers are not run in smoke mode");
            continue;
        }
        // python.rs runs its self-check script on the subject's interpreter: this makes (or
        // reuses) the uvloop venv and skips with the reason when the peer cannot run.
        if crate::python::python_peer(ctx, group, subject, "selfcheck.py", &[]).is_none() {
            continue;
        }
        let python = match subject {
            "uvloop" => ctx.uvloop_python.clone().and_then(Result::ok),
            "evloop_py" => crate::python::evloop_python().ok(),
            _ => python3_on_path(),
        };
        match python {
            Some(python) => {
                launches.push(Launch::Python {
                    subject,
                    python: python.clone(),
                });
                launches.push(Launch::Python {
                    subject: sock_subject,
                    python,
                });
            }
            None => ctx.skip(group, subject, "no interpreter found for the echo server"),
        }
    }
    launches
}

/// The `python3` on `PATH`, as python.rs runs the asyncio peer.
fn python3_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_parsed_strictly() {
        assert_eq!(parse_port("40627\n"), Ok(40627));
        assert!(parse_port("0").is_err());
        assert!(parse_port("port 80").is_err());
        assert!(parse_port("70000").is_err());
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n";
        assert_eq!(vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t 12 MB\n"), None);
    }

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A name with a space and a parenthesis; utime = 7, stime = 5.
        let stat = "123 (a b) c) S 1 1 1 0 -1 4194560 10 0 0 0 7 5 0 0 20 0 1 0 99 1000 50";
        assert_eq!(stat_cpu_ticks(stat), Some(12));
        assert_eq!(stat_cpu_ticks("123 (x) S 1"), None);
    }

    #[test]
    fn cpu_time_of_this_process_grows() -> Result<(), String> {
        let pid = std::process::id();
        let before = cpu_ns(pid)?;
        let started = std::time::Instant::now();
        let mut x = 1u64;
        while started.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_ns(pid)?;
        // 30 ms of spinning; a shared machine may give us less than a core, so only a lower
        // bound well under it.
        assert!(after > before, "{before} -> {after}");
        Ok(())
    }

    #[test]
    fn the_python_sock_echo_shape_echoes_every_byte() -> Result<(), String> {
        use std::io::{Read, Write};
        let python = python3_on_path().ok_or("no python3 on PATH")?;
        let server = ServerProc::start(&Launch::Python {
            subject: "asyncio_sock",
            python,
        })?;
        let mut conn = std::net::TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        for size in [1, 1024, 100_000] {
            let sent: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            conn.write_all(&sent).map_err(|e| e.to_string())?;
            let mut got = vec![0; size];
            conn.read_exact(&mut got)
                .map_err(|e| format!("{size} bytes: {e}"))?;
            assert!(got == sent, "{size} bytes came back changed");
        }
        Ok(())
    }

    #[test]
    fn a_missing_interpreter_fails_to_start_with_its_reason() {
        let launch = Launch::Python {
            subject: "asyncio",
            python: PathBuf::from("/nonexistent/python3"),
        };
        let err = ServerProc::start(&launch).err().unwrap_or_default();
        // Without taskset the spawn fails; with it, taskset fails to exec and exits.
        assert!(err.contains("the asyncio server"), "{err}");
    }
}
