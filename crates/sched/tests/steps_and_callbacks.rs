//! Callbacks and [`RawStep`]s sharing the ready queue. Each queue entry is two words (a data
//! pointer and a tagged vtable pointer), so these tests pin down what that representation must
//! keep: one FIFO for both kinds, panics blamed on the right entry, `close()` cancelling
//! callbacks and dropping steps exactly once, in queue order, and every source of callbacks
//! (plain, timer, fd, other thread) still running.

mod util;

use std::any::Any;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use evloop_sched::{Context, EventLoop, Handle, RawStep, StepVTable};
use util::run_one_iteration;

/// A log that steps, callbacks, closures' destructors and other threads all write to.
#[derive(Clone, Default)]
struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn push(&self, line: impl Into<String>) {
        self.lock().push(line.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock())
    }
}

/// Logs `drop NAME` when dropped: captured by a closure, it shows when the closure is released.
struct Guard(&'static str, Trace);

impl Drop for Guard {
    fn drop(&mut self) {
        self.1.push(format!("drop {}", self.0));
    }
}

/// The state behind a test step: `run NAME` or `drop NAME` goes to the trace.
struct Probe {
    name: &'static str,
    trace: Trace,
    panics: bool,
}

/// Takes back the count `ptr` owns.
///
/// # Safety
///
/// `ptr` is `Rc::into_raw` of an `Rc<Probe>` (see [`queue_step`]), handed over once.
unsafe fn take_probe(ptr: NonNull<()>) -> Rc<Probe> {
    // SAFETY: the caller's contract.
    unsafe { Rc::from_raw(ptr.as_ptr().cast_const().cast::<Probe>()) }
}

/// Runs the probe: records it, and panics if it is made to.
///
/// # Safety
///
/// As [`take_probe`].
unsafe fn run_probe(ptr: NonNull<()>) {
    // SAFETY: `PROBE`'s functions get the pointer of `queue_step`, once.
    let probe = unsafe { take_probe(ptr) };
    probe.trace.push(format!("run {}", probe.name));
    if probe.panics {
        panic!("step {} failed", probe.name);
    }
}

/// Drops the probe unrun, and records it.
///
/// # Safety
///
/// As [`take_probe`].
unsafe fn drop_probe(ptr: NonNull<()>) {
    // SAFETY: as in `run_probe`.
    let probe = unsafe { take_probe(ptr) };
    probe.trace.push(format!("drop {}", probe.name));
}

/// Adds the step's name to a `Vec<&str>` sink.
///
/// # Safety
///
/// `ptr` is the pointer of a queued probe step (its count keeps the `Probe` alive).
unsafe fn inspect_probe(ptr: NonNull<()>, sink: &mut dyn Any) {
    // SAFETY: the step is queued, so its count keeps the `Probe` alive; it is only borrowed.
    let probe = unsafe { ptr.cast::<Probe>().as_ref() };
    if let Some(names) = sink.downcast_mut::<Vec<&'static str>>() {
        names.push(probe.name);
    }
}

static PROBE: StepVTable = StepVTable {
    run: run_probe,
    drop: drop_probe,
    inspect: Some(inspect_probe),
};

/// Queues a step named `name`; returns its `Probe`, whose count shows whether the step was
/// released exactly once (the count is back to 1) and never twice (no crash).
fn queue_step(lp: &EventLoop, name: &'static str, trace: &Trace, panics: bool) -> Rc<Probe> {
    let probe = Rc::new(Probe {
        name,
        trace: trace.clone(),
        panics,
    });
    let raw = Rc::into_raw(probe.clone()).cast_mut().cast::<()>();
    let ptr = NonNull::new(raw).expect("Rc::into_raw is never null");
    // SAFETY: `ptr` owns one count of a `Probe`, which `PROBE`'s `run` or `drop` gives back once.
    let step = unsafe { RawStep::new(ptr, &PROBE) };
    // A closed loop drops the step (`drop NAME` is logged) and says so.
    let _ = lp.call_soon_step(step);
    probe
}

/// Queues a callback that logs `run NAME`; its closure logs `drop NAME` when released.
#[track_caller]
fn queue_callback(lp: &EventLoop, name: &'static str, trace: &Trace) -> io::Result<Handle> {
    let guard = Guard(name, trace.clone());
    Ok(lp.call_soon(move || guard.1.push(format!("run {}", guard.0)))?)
}

/// The `run …` lines of `lines`.
fn runs(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("run "))
        .collect()
}

fn all_released(probes: &[Rc<Probe>]) -> bool {
    probes.iter().all(|p| Rc::strong_count(p) == 1)
}

// One FIFO for callbacks and steps, also in debug mode (which runs both kinds on another
// path); what the batch queues runs on the next iteration, behind nothing it did not see.
#[test]
fn callbacks_and_steps_run_in_one_fifo() -> io::Result<()> {
    for debug in [false, true] {
        let lp = EventLoop::new()?;
        lp.set_debug(debug);
        let trace = Trace::default();
        let mut probes = Vec::new();
        queue_callback(&lp, "c0", &trace)?;
        probes.push(queue_step(&lp, "s1", &trace, false));
        probes.push(queue_step(&lp, "s2", &trace, false));
        queue_callback(&lp, "c3", &trace)?;
        let (l2, t2) = (lp.clone(), trace.clone());
        let later = Rc::new(std::cell::RefCell::new(Vec::new()));
        let later2 = later.clone();
        lp.call_soon(move || {
            t2.push("run c4");
            later2.borrow_mut().push(queue_step(&l2, "s6", &t2, false));
            let _ = queue_callback(&l2, "c7", &t2);
        })?;
        probes.push(queue_step(&lp, "s5", &trace, false));

        let mut queued: Vec<&'static str> = Vec::new();
        lp.inspect_queued_steps(&mut queued);
        assert_eq!(queued, ["s1", "s2", "s5"], "only steps, in queue order");

        run_one_iteration(&lp)?;
        assert_eq!(
            runs(&trace.take()),
            ["c0", "s1", "s2", "c3", "c4", "s5"],
            "debug={debug}"
        );
        run_one_iteration(&lp)?;
        assert_eq!(runs(&trace.take()), ["s6", "c7"], "debug={debug}");
        probes.extend(later.borrow_mut().drain(..));
        assert!(all_released(&probes), "debug={debug}");
    }
    Ok(())
}

// A panic is reported against the entry that panicked: a callback by its handle, a step with
// no handle, even right after a callback ran (which must not be blamed); the batch goes on.
#[test]
fn a_panic_is_blamed_on_the_callback_or_step_that_panicked() -> io::Result<()> {
    for debug in [false, true] {
        let lp = EventLoop::new()?;
        lp.set_debug(debug);
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let s2 = seen.clone();
        lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
            s2.borrow_mut().push((
                ctx.message().to_owned(),
                ctx.keys().collect::<Vec<_>>(),
                ctx.handle().map(|h| h.location().line()),
                ctx.exception().map(|e| e.message()),
            ));
        })));
        let trace = Trace::default();
        let mut probes = Vec::new();
        probes.push(queue_step(&lp, "s0", &trace, false));
        let t2 = trace.clone();
        let bad = lp.call_soon(move || {
            t2.push("run c1");
            panic!("c1 failed");
        })?;
        queue_callback(&lp, "c2", &trace)?;
        probes.push(queue_step(&lp, "s3", &trace, true));
        queue_callback(&lp, "c4", &trace)?;
        run_one_iteration(&lp)?;

        assert_eq!(
            runs(&trace.take()),
            ["s0", "c1", "c2", "s3", "c4"],
            "debug={debug}"
        );
        let seen = seen.take();
        assert_eq!(seen.len(), 2, "debug={debug}: {seen:?}");
        let (message, keys, line, exception) = &seen[0];
        assert!(
            message.starts_with("Exception in callback <Handle created at ")
                && message.contains(&format!("{}:{}:", file!(), bad.location().line())),
            "{message}"
        );
        assert_eq!(keys, &["message", "exception", "handle"]);
        assert_eq!(*line, Some(bad.location().line()));
        assert_eq!(exception.as_deref(), Some("c1 failed"));
        let (message, keys, line, exception) = &seen[1];
        assert_eq!(message, "Exception in a queued step");
        assert_eq!(keys, &["message", "exception"], "c2 must not be blamed");
        assert_eq!(*line, None);
        assert_eq!(exception.as_deref(), Some("step s3 failed"));
        assert!(all_released(&probes), "debug={debug}");
    }
    Ok(())
}

// close() takes the queued entries in queue order: callbacks are cancelled (their closures
// dropped, their handles cancelled), steps dropped, each exactly once, nothing runs; then the
// pending timers. A step queued after close() is dropped at once.
#[test]
fn close_cancels_queued_callbacks_and_drops_each_step_once_in_queue_order() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let trace = Trace::default();
    let remote_handle = {
        let remote = lp.remote();
        std::thread::spawn(move || remote.call_soon_threadsafe(|| panic!("never runs")))
            .join()
            .expect("submitting thread")?
    };
    let c0 = queue_callback(&lp, "c0", &trace)?;
    let s1 = queue_step(&lp, "s1", &trace, false);
    let s2 = queue_step(&lp, "s2", &trace, false);
    let c3 = queue_callback(&lp, "c3", &trace)?;
    let s4 = queue_step(&lp, "s4", &trace, false);
    let guard = Guard("t5", trace.clone());
    let t5 = lp.call_later(100.0, move || drop(guard))?;
    let mut queued: Vec<&'static str> = Vec::new();
    lp.inspect_queued_steps(&mut queued);
    assert_eq!(queued, ["s1", "s2", "s4"]);

    lp.close()?;
    assert_eq!(
        trace.take(),
        [
            "drop c0", "drop s1", "drop s2", "drop c3", "drop s4", "drop t5"
        ]
    );
    assert!(c0.cancelled() && c3.cancelled() && t5.cancelled());
    assert!(remote_handle.cancelled());
    assert!(all_released(&[s1, s2, s4]));

    let late = queue_step(&lp, "s6", &trace, false);
    assert_eq!(trace.take(), ["drop s6"]);
    assert!(all_released(&[late]));
    let mut queued: Vec<&'static str> = Vec::new();
    lp.inspect_queued_steps(&mut queued);
    assert!(queued.is_empty());
    lp.close()?;
    assert!(
        trace.take().is_empty(),
        "a second close() drops nothing again"
    );
    Ok(())
}

// A loop dropped without close() releases its queue: each step is dropped once, and a callback
// whose handle is gone is freed (its closure dropped, not run).
#[test]
fn a_loop_dropped_unclosed_releases_its_queued_callbacks_and_steps() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let trace = Trace::default();
    drop(queue_callback(&lp, "c0", &trace)?);
    let s1 = queue_step(&lp, "s1", &trace, false);
    drop(queue_callback(&lp, "c2", &trace)?);
    let guard = Guard("t3", trace.clone());
    drop(lp.call_later(100.0, move || drop(guard))?);
    drop(lp);
    let mut lines = trace.take();
    lines.sort();
    assert_eq!(lines, ["drop c0", "drop c2", "drop s1", "drop t3"]);
    assert!(all_released(&[s1]));
    Ok(())
}

// One iteration queues, behind what was ready (a step and a callback), the fd callbacks, then
// what other threads sent, then the expired timers; all of them run, in that order.
#[test]
fn fd_remote_and_timer_callbacks_queue_behind_steps_and_run() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let trace = Trace::default();
    let (mut r, mut w) = UnixStream::pair()?;
    r.set_nonblocking(true)?;
    w.write_all(b"x")?;
    let (fd, t2) = (r.as_raw_fd(), trace.clone());
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 8];
        if let Ok(n) = r.read(&mut buf) {
            t2.push(format!("run reader {n}"));
        }
    })?;
    let (remote, t3) = (lp.remote(), trace.clone());
    std::thread::spawn(move || remote.call_soon_threadsafe(move || t3.push("run remote")))
        .join()
        .expect("submitting thread")?;
    let t4 = trace.clone();
    lp.call_later(-1.0, move || t4.push("run timer"))?;
    let s0 = queue_step(&lp, "s0", &trace, false);
    queue_callback(&lp, "c1", &trace)?;

    // Pre-stopped: exactly one iteration, which polls.
    lp.stop();
    lp.run_forever()?;
    assert_eq!(
        runs(&trace.take()),
        ["s0", "c1", "reader 1", "remote", "timer"]
    );
    assert!(all_released(&[s0]));
    assert!(lp.remove_reader(fd));
    Ok(())
}

// A callback sent from another thread that panics is reported with its own handle, which names
// the place it was sent from.
#[test]
fn a_panicking_callback_from_another_thread_is_reported_with_its_handle() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut()
            .push((ctx.message().to_owned(), ctx.handle().map(Handle::location)));
    })));
    let remote = lp.remote();
    let sent = std::thread::spawn(move || {
        let line = line!() + 1;
        remote.call_soon_threadsafe(|| panic!("remote failed"))?;
        Ok::<u32, evloop_sched::Error>(line)
    })
    .join()
    .expect("submitting thread")?;
    let trace = Trace::default();
    queue_callback(&lp, "after", &trace)?;
    run_one_iteration(&lp)?;
    let seen = seen.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .0
            .starts_with("Exception in callback <Handle created at ")
    );
    let at = seen[0].1.expect("the context has a handle");
    assert_eq!((at.file(), at.line()), (file!(), sent));
    assert_eq!(runs(&trace.take()), ["after"]);
    Ok(())
}
