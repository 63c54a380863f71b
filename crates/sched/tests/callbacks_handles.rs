//! `call_soon` and handles: conformance area C.

mod util;

use std::io;
use std::rc::Rc;

use evloop_sched::EventLoop;
use util::{Log, record_exceptions, run_one_iteration};

// CPython: events::…::test_call_soon, base::…::test_call_soon (C13).
#[test]
fn callbacks_run_in_fifo_order_with_their_captured_arguments() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    for word in ["hello", "world", "again"] {
        let log = log.clone();
        lp.call_soon(move || log.push(word))?;
    }
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["hello", "world", "again"]);
    Ok(())
}

// CPython: base::…::test__add_callback_cancelled_handle (C14).
#[test]
fn a_handle_cancelled_by_an_earlier_callback_of_the_batch_never_runs() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let log = Log::new();
    let victim_slot = Rc::new(std::cell::RefCell::new(None::<evloop_sched::Handle>));
    let slot = victim_slot.clone();
    lp.call_soon(move || {
        if let Some(h) = slot.borrow().as_ref() {
            h.cancel();
        }
    })?;
    let l2 = log.clone();
    let victim = lp.call_soon(move || l2.push("victim ran"))?;
    *victim_slot.borrow_mut() = Some(victim.clone());
    run_one_iteration(&lp)?;
    assert!(victim.cancelled());
    assert!(log.take().is_empty());
    Ok(())
}

// CPython: events::HandleTests::test_handle, events::TimerTests::test_timer (C15).
#[test]
fn cancel_releases_the_closure_at_once_and_is_harmless_twice() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let captured = Rc::new(42);
    let c2 = captured.clone();
    let h = lp.call_soon(move || drop(c2))?;
    let c3 = captured.clone();
    let t = lp.call_later(100.0, move || drop(c3))?;
    assert_eq!(Rc::strong_count(&captured), 3);
    h.cancel();
    t.cancel();
    assert_eq!(
        Rc::strong_count(&captured),
        1,
        "cancel must drop the closures now"
    );
    h.cancel();
    t.cancel();
    assert!(h.cancelled() && t.cancelled());
    Ok(())
}

// CPython: events::HandleTests::test_callback_with_exception, base::…::test_set_exc_handler_custom (C16).
#[test]
fn a_panicking_callback_is_reported_and_the_batch_goes_on() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let log = Log::new();
    let bad = lp.call_soon(|| panic!("boom in callback"))?;
    let l2 = log.clone();
    lp.call_soon(move || l2.push("after"))?;
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["after"]);
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].keys, ["message", "exception", "handle"]);
    assert_eq!(seen[0].exception.as_deref(), Some("boom in callback"));
    assert!(seen[0].message.starts_with("Exception in callback <Handle"));
    assert!(seen[0].message.contains(file!()), "{}", seen[0].message);
    assert!(!bad.cancelled());
    Ok(())
}

// The handler receives the very handle that failed (CPython: base::…::test_set_exc_handler_custom).
#[test]
fn the_context_carries_the_failing_handle() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let got = Log::new();
    let g2 = got.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, ctx: &evloop_sched::Context| {
            g2.push(ctx.handle().map(|h| h.location().line()));
        },
    )));
    let h = lp.call_soon(|| panic!("x"))?;
    run_one_iteration(&lp)?;
    assert_eq!(got.take(), [Some(h.location().line())]);
    Ok(())
}
