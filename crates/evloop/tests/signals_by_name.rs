//! Signals by name through the facade: a program installs a handler with `evloop::signal` and no
//! `libc` (CPython: test_unix_events.py::SelectorEventLoopSignalTests::test_add_signal_handler,
//! with `signal.SIGHUP` by name).

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use evloop::{EventLoop, signal};

#[test]
fn a_handler_installed_by_name_runs_when_the_signal_is_raised() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let seen = Rc::new(Cell::new(None));
    let (s2, l2) = (seen.clone(), lp.clone());
    let sig = signal::from_name("USR2").ok_or_else(|| io::Error::other("no SIGUSR2"))?;
    assert_eq!(sig, signal::SIGUSR2);
    lp.add_signal_handler(sig, move || {
        s2.set(signal::name(sig));
        l2.stop();
    })?;
    signal::raise(signal::SIGUSR2)?;
    lp.run_forever()?;
    assert_eq!(seen.get(), Some("SIGUSR2"));
    assert!(lp.remove_signal_handler(signal::SIGUSR2)?);
    // SIGKILL by name is refused as by number.
    let err = lp.add_signal_handler(signal::SIGKILL, || ()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    lp.close()?;
    Ok(())
}
