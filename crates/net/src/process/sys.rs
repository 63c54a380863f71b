//! The system calls under subprocesses: `pidfd_open`, `waitpid`/`waitid`, `kill`, `eventfd`,
//! `pipe2`, and how a wait status becomes asyncio's return code.
//!
//! `EINTR` is retried here and never surfaces.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use log::Level;

/// A child's process id.
pub(crate) type Pid = libc::pid_t;

/// asyncio's return code of a child the system no longer knows (someone else reaped it, or
/// `SIGCHLD` is ignored): `_UnixSelectorEventLoop` reports 255 with a warning.
pub(crate) const UNKNOWN_CHILD_CODE: i32 = 255;

/// Retries `f` while it fails with `EINTR`; `-1` becomes the OS error.
fn retry(mut f: impl FnMut() -> libc::c_long) -> io::Result<libc::c_long> {
    loop {
        let ret = f();
        if ret >= 0 {
            return Ok(ret);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `pidfd_open(pid, 0)`: an fd that turns readable when the child exits (Linux 5.3+),
/// close-on-exec. `Err` where the kernel (or a seccomp filter) does not have it.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1; no memory is passed.
    let fd = retry(|| unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd_open: fd out of range"))?;
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new non-blocking, close-on-exec eventfd (the thread watcher's wake-up).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd, which makes it readable.
pub(crate) fn eventfd_signal(fd: &OwnedFd) {
    use std::os::fd::AsRawFd;
    let one: u64 = 1;
    // SAFETY: `fd` is open and `one` is 8 readable bytes, what an eventfd write takes. It can
    // fail only if the counter would overflow, which one write per child cannot reach.
    let _ = retry(|| unsafe {
        libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) as libc::c_long
    });
}

/// A pipe, `(read end, write end)`, both close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// asyncio's return code for a wait status: the exit code, or minus the signal that killed
/// the child.
pub(crate) fn returncode(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        // waitpid without WUNTRACED/WCONTINUED reports only those two.
        status
    }
}

/// What a wait for a child found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaped {
    /// Still running.
    Running,
    /// It exited and is reaped: its return code.
    Exited(i32),
}

/// Reaps `pid` if it has exited (`waitpid(pid, WNOHANG)`). A child the system does not know
/// any more (`ECHILD`) counts as exited with [`UNKNOWN_CHILD_CODE`], reported in the log.
pub(crate) fn try_reap(pid: Pid) -> Reaped {
    wait(pid, libc::WNOHANG)
}

/// Waits for `pid` to exit and reaps it (blocking).
pub(crate) fn reap_blocking(pid: Pid) -> i32 {
    match wait(pid, 0) {
        Reaped::Exited(code) => code,
        // A blocking waitpid returns only once the child is gone.
        Reaped::Running => UNKNOWN_CHILD_CODE,
    }
}

fn wait(pid: Pid, flags: libc::c_int) -> Reaped {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is positive (a child we started).
    match retry(|| unsafe { libc::waitpid(pid, &mut status, flags) as libc::c_long }) {
        Ok(0) => Reaped::Running,
        Ok(_) => Reaped::Exited(returncode(status)),
        Err(err) => {
            evloop_sched::log_report(
                Level::Warn,
                &format!(
                    "Unknown child process pid {pid}, will report returncode {UNKNOWN_CHILD_CODE} ({err})"
                ),
            );
            Reaped::Exited(UNKNOWN_CHILD_CODE)
        }
    }
}

/// Blocks until `pid` has exited, without reaping it (`waitid(P_PID, WEXITED | WNOWAIT)`): the
/// pid stays ours, so the loop's thread can still signal it safely until it reaps it.
pub(crate) fn wait_exited_no_reap(pid: Pid) {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return;
    };
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer; the flags ask for no reaping. ECHILD (someone else
    // reaped it) ends the wait too: the reaping side then reports it.
    let _ = retry(|| unsafe {
        libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) as libc::c_long
    });
}

/// Sends `sig` to `pid`, which must be an unreaped child of ours (so the pid cannot have been
/// reused).
pub(crate) fn kill(pid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_are_exit_codes_or_minus_the_signal() {
        // A wait status: exit code in bits 8-15, or the terminating signal in bits 0-6.
        assert_eq!(returncode(3 << 8), 3);
        assert_eq!(returncode(0), 0);
        assert_eq!(returncode(libc::SIGKILL), -libc::SIGKILL);
        assert_eq!(returncode(libc::SIGTERM), -libc::SIGTERM);
    }
}
