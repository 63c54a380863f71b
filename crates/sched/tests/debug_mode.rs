//! Debug mode: conformance area H. (H44, use from a wrong thread, is a compile error in evloop:
//! `EventLoop` is `!Send`; the `compile_fail` example on `EventLoop` pins that.)

mod util;

use std::io;
use std::time::Duration;

use evloop_sched::{DEFAULT_SLOW_CALLBACK, EventLoop};
use util::{capture_logs, logged, run_one_iteration};

// CPython: base::…::test_set_debug (H43).
#[test]
fn debug_round_trips() -> io::Result<()> {
    let lp = EventLoop::new()?;
    lp.set_debug(true);
    assert!(lp.get_debug());
    lp.set_debug(false);
    assert!(!lp.get_debug());
    assert_eq!(lp.slow_callback_duration(), DEFAULT_SLOW_CALLBACK);
    assert_eq!(DEFAULT_SLOW_CALLBACK, Duration::from_millis(100));
    Ok(())
}

// CPython: base::…::test_log_slow_callbacks (H45).
#[test]
fn slow_callbacks_are_logged_with_their_creation_site_in_debug_mode() -> io::Result<()> {
    capture_logs();
    let lp = EventLoop::new()?;
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::from_millis(20));
    let slow = lp.call_soon(|| std::thread::sleep(Duration::from_millis(30)))?;
    lp.call_soon(|| ())?; // fast: not logged
    run_one_iteration(&lp)?;
    let site = slow.location().to_string();
    let records = logged(&site);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, log::Level::Warn);
    let text = &records[0].1;
    assert!(text.starts_with("Executing <Handle created at "), "{text}");
    let secs: f64 = text
        .rsplit(" took ")
        .next()
        .and_then(|t| t.strip_suffix(" seconds"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    assert!(secs >= 0.03, "{text}");

    // Not in non-debug mode.
    lp.set_debug(false);
    let quiet = lp.call_soon(|| std::thread::sleep(Duration::from_millis(30)))?;
    run_one_iteration(&lp)?;
    assert!(logged(&quiet.location().to_string()).is_empty());
    Ok(())
}
