//! Debug mode: conformance area H. (H44, use from a wrong thread, is a compile error in evloop:
//! `EventLoop` is `!Send`; the `compile_fail` example on `EventLoop` pins that.)

mod util;

use std::any::Any;
use std::io;
use std::ptr::NonNull;
use std::time::Duration;

use evloop_sched::{DEFAULT_SLOW_CALLBACK, EventLoop, RawStep, StepName, StepVTable};
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
    lp.set_slow_callback_duration(Duration::from_millis(250));
    let slow = lp.call_soon(|| std::thread::sleep(Duration::from_millis(400)))?;
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
    assert!(secs >= 0.4, "{text}");

    // Not in non-debug mode.
    lp.set_debug(false);
    let quiet = lp.call_soon(|| std::thread::sleep(Duration::from_millis(400)))?;
    run_one_iteration(&lp)?;
    assert!(logged(&quiet.location().to_string()).is_empty());
    Ok(())
}

/// A step that sleeps when run; `name` is what its `inspect` gives a [`StepName`] sink.
struct Sleeper {
    name: Option<&'static str>,
    nap: Duration,
}

/// Takes back the box behind `ptr`.
///
/// # Safety
///
/// `ptr` is `Box::into_raw` of a `Sleeper` (see [`queue_sleeper`]), handed over once.
unsafe fn take_sleeper(ptr: NonNull<()>) -> Box<Sleeper> {
    // SAFETY: the caller's contract.
    unsafe { Box::from_raw(ptr.as_ptr().cast::<Sleeper>()) }
}

/// # Safety
///
/// As [`take_sleeper`].
unsafe fn run_sleeper(ptr: NonNull<()>) {
    // SAFETY: the loop runs a step's pointer once.
    let sleeper = unsafe { take_sleeper(ptr) };
    std::thread::sleep(sleeper.nap);
}

/// # Safety
///
/// As [`take_sleeper`].
unsafe fn drop_sleeper(ptr: NonNull<()>) {
    // SAFETY: the loop drops an unrun step's pointer once.
    drop(unsafe { take_sleeper(ptr) });
}

/// # Safety
///
/// `ptr` is a queued sleeper's pointer, borrowed.
unsafe fn inspect_sleeper(ptr: NonNull<()>, sink: &mut dyn Any) {
    // SAFETY: the caller's contract: the step is queued, so its box is alive.
    let sleeper = unsafe { &*ptr.as_ptr().cast::<Sleeper>() };
    if let Some(name) = sink.downcast_mut::<StepName>() {
        name.0 = sleeper.name.map(String::from);
    }
}

static SLEEPER: StepVTable = StepVTable {
    run: run_sleeper,
    drop: drop_sleeper,
    inspect: Some(inspect_sleeper),
};

fn queue_sleeper(lp: &EventLoop, name: Option<&'static str>, nap: Duration) -> io::Result<()> {
    let ptr = NonNull::from(Box::leak(Box::new(Sleeper { name, nap }))).cast::<()>();
    // SAFETY: `ptr` owns its box and `SLEEPER`'s functions each consume it once.
    let step = unsafe { RawStep::new(ptr, &SLEEPER) };
    Ok(lp.call_soon_step(step)?)
}

// CPython: base::…::test_log_slow_callbacks (H45), for queued steps (a task's step is a handle
// of `Task.__step` in asyncio): the warning names the step by what it told debug mode.
#[test]
fn slow_steps_are_logged_by_the_name_they_give_in_debug_mode() -> io::Result<()> {
    capture_logs();
    let lp = EventLoop::new()?;
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::from_millis(250));
    queue_sleeper(
        &lp,
        Some("<Sleeper 'slow-named'>"),
        Duration::from_millis(400),
    )?;
    queue_sleeper(&lp, None, Duration::from_millis(400))?;
    queue_sleeper(&lp, Some("<Sleeper 'fast-named'>"), Duration::ZERO)?;
    run_one_iteration(&lp)?;
    let named = logged("<Sleeper 'slow-named'>");
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].0, log::Level::Warn);
    let secs = named[0]
        .1
        .strip_prefix("Executing <Sleeper 'slow-named'> took ")
        .and_then(|t| t.strip_suffix(" seconds"))
        .and_then(|t| t.parse::<f64>().ok());
    assert!(secs.is_some_and(|s| s >= 0.4), "{named:?}");
    let unnamed = logged("Executing <queued step> took ");
    assert_eq!(unnamed.len(), 1, "{unnamed:?}");
    assert!(logged("fast-named").is_empty());

    // Not in non-debug mode.
    lp.set_debug(false);
    queue_sleeper(&lp, Some("<Sleeper 'quiet'>"), Duration::from_millis(400))?;
    run_one_iteration(&lp)?;
    assert!(logged("quiet").is_empty());
    Ok(())
}
