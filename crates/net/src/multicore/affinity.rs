//! CPU affinity for a group's threads: which CPUs this process may use, and pinning the calling
//! thread to one of them (`sched_getaffinity`/`sched_setaffinity` on thread id 0, the caller).

use std::io;
use std::mem;

/// The number of CPUs a `cpu_set_t` can name (glibc's `CPU_SETSIZE`).
const CPU_SETSIZE: usize = 8 * mem::size_of::<libc::cpu_set_t>();

/// The CPUs the calling thread may run on, in increasing order.
///
/// # Errors
///
/// The OS error of `sched_getaffinity`.
pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed; pid 0 is the caller.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..CPU_SETSIZE)
        .filter(|&cpu| {
            // SAFETY: CPU_ISSET reads one bit of `set`; every index is below the set's size.
            unsafe { libc::CPU_ISSET(cpu, &set) }
        })
        .collect())
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
///
/// - `InvalidInput` if `cpu` is beyond what a `cpu_set_t` can name;
/// - the OS error otherwise, e.g. `EINVAL` for a CPU this process may not use.
pub(super) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= CPU_SETSIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpus: a cpu number is too large",
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of `set`; `cpu` is below the set's size (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 names the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
