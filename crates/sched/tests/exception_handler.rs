//! The exception handler: conformance area G.

mod util;

use std::io;
use std::rc::Rc;

use evloop_sched::{Context, EventLoop, Exception};
use util::{Log, capture_logs, logged, record_exceptions, run_one_iteration};

// CPython: base::…::test_set_exc_handler_custom, test_set_exc_handler_invalid (G39).
#[test]
fn a_custom_handler_is_set_read_back_and_reset() -> io::Result<()> {
    let lp = EventLoop::new()?;
    assert!(lp.get_exception_handler().is_none());
    let seen = record_exceptions(&lp);
    assert!(lp.get_exception_handler().is_some());
    lp.call_exception_handler(Context::new("custom").with("socket", 3));
    assert_eq!(seen.take()[0].keys, ["message", "socket"]);
    lp.set_exception_handler(None);
    assert!(lp.get_exception_handler().is_none());
    Ok(())
}

// CPython: base::…::test_set_exc_handler_custom (G39): the default handler logs the message (or
// "Unhandled exception in event loop") and the other keys sorted.
#[test]
fn the_default_handler_logs_at_error_level() -> io::Result<()> {
    capture_logs();
    let lp = EventLoop::new()?;
    lp.call_exception_handler(
        Context::new("default-handler-test-1")
            .with("zeta", 1)
            .with_exception(Exception::from_error("bad thing")),
    );
    let records = logged("default-handler-test-1");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, log::Level::Error);
    assert_eq!(
        records[0].1,
        "default-handler-test-1\nexception: bad thing\nzeta: 1"
    );

    lp.call_exception_handler(Context::new("").with("marker", "default-handler-test-2"));
    let records = logged("default-handler-test-2");
    assert!(
        records[0]
            .1
            .starts_with("Unhandled exception in event loop\n")
    );
    Ok(())
}

// CPython: base::…::test_set_exc_handler_broken (G40).
#[test]
fn a_panicking_handler_falls_back_to_the_default_and_the_loop_goes_on() -> io::Result<()> {
    capture_logs();
    let lp = EventLoop::new()?;
    lp.set_exception_handler(Some(Rc::new(|_: &EventLoop, _: &Context| {
        panic!("handler is broken")
    })));
    lp.call_soon(|| panic!("callback-for-broken-handler"))?;
    let log = Log::new();
    let l2 = log.clone();
    lp.call_soon(move || l2.push("still running"))?;
    run_one_iteration(&lp)?;
    assert_eq!(log.take(), ["still running"]);
    let records = logged("callback-for-broken-handler");
    assert_eq!(records.len(), 1, "{records:?}");
    let text = &records[0].1;
    assert!(
        text.starts_with("Unhandled error in exception handler\n"),
        "{text}"
    );
    assert!(
        text.contains("exception: panic: handler is broken"),
        "{text}"
    );
    assert!(
        text.contains("context: {\"message\": \"Exception in callback"),
        "{text}"
    );
    Ok(())
}

// CPython: sel::SelectorTransportTests::test_fatal_error_custom_exception (G41), the callback
// case: exactly {message, exception, handle}.
#[test]
fn a_callback_failure_has_exactly_message_exception_and_handle() -> io::Result<()> {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    lp.call_later(0.0, || panic!("timer failed"))?;
    let l2 = lp.clone();
    lp.call_later(0.001, move || l2.stop())?;
    lp.run_forever()?;
    let seen = seen.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].keys, ["message", "exception", "handle"]);
    assert_eq!(seen[0].exception.as_deref(), Some("timer failed"));
    Ok(())
}
