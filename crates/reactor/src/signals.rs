//! POSIX signals by name (re-exported by the facade as `evloop::signal`): signal numbers by
//! name, their names by number, and [`raise`], what Python's `signal.Signals` gives an asyncio
//! program, so that a program installs a handler without `libc`.
//!
//! Every loop method that takes a signal takes its number (`i32`), so these constants and any
//! number from elsewhere work alike.
//!
//! # Examples
//!
//! ```
//! use evloop::signal;
//!
//! assert_eq!(signal::name(signal::SIGINT), Some("SIGINT"));
//! assert_eq!(signal::from_name("SIGTERM"), Some(signal::SIGTERM));
//! assert_eq!(signal::from_name("term"), Some(signal::SIGTERM));
//! assert_eq!(signal::from_name("SIGNOPE"), None);
//! ```

use std::io;

macro_rules! signals {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "`.")]
            pub const $name: i32 = libc::$name;
        )*
        /// Every signal this module names, with its name, in number order on Linux.
        pub const ALL: &[(&str, i32)] = &[$((stringify!($name), libc::$name)),*];
    };
}

signals!(
    SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1, SIGSEGV,
    SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU,
    SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGSYS,
);

/// The name of signal `signum` (`"SIGINT"`), if this module names it.
pub fn name(signum: i32) -> Option<&'static str> {
    ALL.iter()
        .find(|(_, n)| *n == signum)
        .map(|(name, _)| *name)
}

/// The number of the signal called `name`: `"SIGINT"`, or `"INT"`, in any case.
pub fn from_name(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    ALL.iter().find(|(n, _)| *n == full).map(|(_, num)| *num)
}

/// Sends signal `signum` to the calling thread (`raise(3)`): a handler installed with
/// `add_signal_handler` sees it on the loop's next iteration.
///
/// # Errors
///
/// `InvalidInput` "invalid signal number N" for a number the OS refuses.
pub fn raise(signum: i32) -> io::Result<()> {
    // SAFETY: `raise` has no memory-safety preconditions; an invalid number is refused
    // with a non-zero return.
    if unsafe { libc::raise(signum) } == 0 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid signal number {signum}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for (n, num) in ALL {
            assert_eq!(name(*num), Some(*n));
            assert_eq!(from_name(n), Some(*num));
            assert_eq!(from_name(&n[3..].to_ascii_lowercase()), Some(*num));
        }
        assert_eq!(SIGINT, 2);
        assert_eq!(name(0), None);
        assert_eq!(from_name(""), None);
        assert_eq!(from_name("SIG"), None);
    }

    #[test]
    fn raising_a_bad_number_is_an_invalid_input_error() {
        let err = raise(100_000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "invalid signal number 100000");
    }
}
