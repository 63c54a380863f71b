//! The process-wide table of watched signals: how many reactors watch each
//! one, and how to give the signal its default disposition back.
//!
//! signal-hook-registry installs its handler the first time a signal is
//! registered and never uninstalls it; unregistering the last action leaves a
//! handler that does nothing, so the signal would be silently ignored. asyncio
//! promises the default disposition once no handler remains. So when the last
//! watcher of a signal goes, this table swaps in `SIG_DFL` and keeps the
//! handler it took out (signal-hook-registry's); when a watcher comes back, it
//! puts that handler back, because signal-hook-registry would not install it
//! again (it believes it still is).
//!
//! # Ground rules
//!
//! - Every watch and unwatch of every reactor goes through [`watch`] and
//!   [`unwatch`], which hold the table's lock across the registry call and the
//!   `sigaction` call, so those two never interleave with another thread's.
//! - The lock is never taken in a signal handler: handlers see only the
//!   per-reactor inbox (see `signal.rs`).
//! - Other code that registers the same signal with signal-hook-registry
//!   loses its handler when our last watcher goes, as it would with asyncio's
//!   `remove_signal_handler`. Watch a signal from one place.

use std::io;
use std::ptr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use signal_hook_registry::SigId;

use crate::sys::NSIG;

/// What the table knows about one signal.
struct Entry {
    /// How many reactors watch the signal now.
    watchers: usize,
    /// The handler taken out when `watchers` last fell to 0, to be put back
    /// when it rises again. `None` before the first watch.
    saved: Option<libc::sigaction>,
}

impl Entry {
    /// A signal nobody has watched yet.
    const UNWATCHED: Entry = Entry {
        watchers: 0,
        saved: None,
    };
}

/// One entry per signal number, indexed by the number.
static TABLE: Mutex<[Entry; NSIG]> = Mutex::new([Entry::UNWATCHED; NSIG]);

/// Locks the table. A panic while it was held cannot leave it inconsistent
/// (every update is a single assignment after the system calls succeeded), so
/// poisoning is stripped here, once.
fn table() -> MutexGuard<'static, [Entry; NSIG]> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `action` for `signum` and makes sure the signal reaches it.
///
/// # Safety
///
/// `action` runs inside a signal handler: it must be async-signal-safe (only
/// atomics and system calls such as `write`), must not allocate, lock or
/// panic.
///
/// # Errors
///
/// - `signum` is not below [`NSIG`]: `InvalidInput` (callers validate first).
/// - The OS refuses the `sigaction` call (for example `EINVAL` for a number it
///   does not have); nothing stays registered then.
pub(crate) unsafe fn watch<F>(signum: libc::c_int, action: F) -> io::Result<SigId>
where
    F: Fn() + Send + Sync + 'static,
{
    let index = index(signum)?;
    let mut table = table();
    let entry = &mut table[index];
    // SAFETY: our own caller promises that `action` is async-signal-safe,
    // which is all `register` asks. `signum` is not in signal-hook-registry's
    // FORBIDDEN list (validate_signal refuses those), so it does not panic.
    let id = unsafe { signal_hook_registry::register(signum, action) }?;
    // Register first, restore second: until the handler is back, the signal
    // keeps its default disposition, exactly as if the watch had not begun.
    if entry.watchers == 0 {
        if let Some(saved) = entry.saved {
            if let Err(err) = set_action(signum, &saved) {
                signal_hook_registry::unregister(id);
                return Err(err);
            }
            entry.saved = None;
        }
    }
    entry.watchers += 1;
    Ok(id)
}

/// Unregisters `id` (an action for `signum`); the last watcher's going gives
/// the signal its default disposition back.
///
/// # Errors
///
/// - `signum` is not below [`NSIG`]: `InvalidInput`.
/// - The OS refuses to install `SIG_DFL` (it never does for a number it let
///   us watch); the action is unregistered all the same.
pub(crate) fn unwatch(signum: libc::c_int, id: SigId) -> io::Result<()> {
    let index = index(signum)?;
    let mut table = table();
    let entry = &mut table[index];
    signal_hook_registry::unregister(id);
    entry.watchers = entry.watchers.saturating_sub(1);
    if entry.watchers == 0 {
        // SAFETY: an all-zero `sigaction` is a valid value: no flags, an empty
        // mask, and a handler of 0, which is `SIG_DFL`.
        let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        entry.saved = Some(swap_action(signum, &default)?);
    }
    Ok(())
}

/// The current handler of `signum`, without changing it.
///
/// # Errors
///
/// `EINVAL` from the OS for a number it does not have (or reserves, as glibc
/// does with 32 and 33).
pub(crate) fn current_action(signum: libc::c_int) -> io::Result<libc::sigaction> {
    // SAFETY: as in `unwatch`, all-zero is a valid `sigaction`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action makes this a pure query; `old` is a valid
    // place for the kernel to write the current one.
    if unsafe { libc::sigaction(signum, ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Installs `action` for `signum`.
fn set_action(signum: libc::c_int, action: &libc::sigaction) -> io::Result<()> {
    // SAFETY: `action` is a valid `sigaction` that outlives the call; a null
    // old-action pointer is allowed. The handler in it is either `SIG_DFL` or
    // one the kernel handed us earlier (signal-hook-registry's, which lives
    // as long as the process).
    if unsafe { libc::sigaction(signum, action, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs `action` for `signum` and returns the one it replaced.
fn swap_action(signum: libc::c_int, action: &libc::sigaction) -> io::Result<libc::sigaction> {
    // SAFETY: as in `unwatch`, all-zero is a valid `sigaction`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; see `set_action` for the
    // handler we install.
    if unsafe { libc::sigaction(signum, action, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// The table index of `signum`, or `InvalidInput`.
fn index(signum: libc::c_int) -> io::Result<usize> {
    usize::try_from(signum)
        .ok()
        .filter(|&index| index > 0 && index < NSIG)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid signal number {signum}"),
            )
        })
}
