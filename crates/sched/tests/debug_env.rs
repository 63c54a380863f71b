//! CPython: base::…::test_env_var_debug (H43): `EVLOOP_DEBUG=1` turns debug mode on for new loops.
//! Alone in its test binary because it changes the process environment.

use std::io;

use evloop_sched::{DEBUG_ENV, EventLoop};

#[test]
fn the_environment_variable_sets_the_default() -> io::Result<()> {
    assert!(!EventLoop::new()?.get_debug());
    // SAFETY: this binary's only test; no other thread reads the environment concurrently.
    unsafe { std::env::set_var(DEBUG_ENV, "1") };
    assert!(EventLoop::new()?.get_debug());
    // SAFETY: as above.
    unsafe { std::env::set_var(DEBUG_ENV, "0") };
    assert!(!EventLoop::new()?.get_debug());
    Ok(())
}
