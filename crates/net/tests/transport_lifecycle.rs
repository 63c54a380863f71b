//! Stream transports from connection to loss: conformance cases L59–L64 and C60.

mod proto;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_net::{LoopStreamExt, Transport};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, iterate, run_until};
use socket2::Socket;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A transport, its protocol, and the plain stream at the other end.
type Wrapped = (Transport, Rc<RefCell<Recorder>>, UnixStream);

/// One end wrapped in a transport with `proto`, the other a plain blocking stream.
fn wrapped(lp: &EventLoop, proto: impl FnOnce() -> Recorder + 'static) -> io::Result<Wrapped> {
    let (a, b) = UnixStream::pair()?;
    let sock = Socket::from(OwnedFd::from(a));
    let fut = lp.connect_accepted_socket(proto, sock);
    let (t, p) = lp.run_until_complete(fut)??;
    Ok((t, p, b))
}

/// What the exception handler was told: each message with its keys.
type Seen = Rc<RefCell<Vec<(String, Vec<&'static str>)>>>;

fn record_exceptions(lp: &EventLoop) -> Seen {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut()
            .push((ctx.message().to_owned(), ctx.keys().collect()));
    })));
    seen
}

// CPython: test_selector_events.py SelectorSocketTransportTests::test_ctor, test_ctor_with_waiter
#[test]
fn connection_made_is_scheduled_never_inline_and_the_future_waits_for_it() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let (a, _b) = UnixStream::pair()?;
    let order = Rc::new(RefCell::new(Vec::new()));
    let (l2, log2, o2) = (lp.clone(), log.clone(), order.clone());
    let t = lp.run_until_complete(async move {
        let fut = l2.connect_accepted_socket(
            {
                let log = log2.clone();
                move || Recorder::new(&log)
            },
            Socket::from(OwnedFd::from(a)),
        );
        let o3 = o2.clone();
        l2.call_soon(move || o3.borrow_mut().push("call_soon before"))
            .map_err(io::Error::other)?;
        let (t, _p) = fut.await?;
        o2.borrow_mut().push(if log2.borrow().contains(&Ev::Made) {
            "returned after made"
        } else {
            "returned before made"
        });
        io::Result::Ok(t)
    })??;
    assert_eq!(*order.borrow(), ["call_soon before", "returned after made"]);
    assert!(!t.is_closing());
    assert_eq!(*log.borrow(), [Ev::Made]);
    Ok(())
}

// CPython: C60, observed on CPython 3.13 (connection_made raising); asyncio reports it as
// 'Exception in callback P.connection_made()'.
#[test]
fn a_panicking_connection_made_is_reported_and_data_still_arrives() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder {
        panic_in_made: true,
        ..Recorder::new(&l2)
    })?;
    assert!(!t.is_closing());
    {
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].0,
            "Exception in callback Protocol::connection_made()"
        );
        assert_eq!(seen[0].1, ["message", "exception", "transport", "protocol"]);
    }
    peer.write_all(b"still here")?;
    assert!(run_until(&lp, 20, || Recorder::data(&log) == b"still here")?);
    Ok(())
}

// CPython: test_selector_events.py test_pause_reading_connection_made, test_pause_resume_reading
#[test]
fn pausing_in_connection_made_holds_reads_until_resumed() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder {
        pause_in_made: true,
        ..Recorder::new(&l2)
    })?;
    assert!(!t.is_reading());
    peer.write_all(b"held")?;
    iterate(&lp, 3)?;
    assert_eq!(*log.borrow(), [Ev::Made], "no read while paused");
    t.pause_reading();
    assert!(!t.is_reading());
    t.resume_reading();
    t.resume_reading();
    assert!(t.is_reading());
    assert!(run_until(&lp, 20, || Recorder::data(&log) == b"held")?);
    t.close();
    assert!(!t.is_reading(), "a closing transport does not read");
    t.resume_reading();
    assert!(!t.is_reading());
    Ok(())
}

// CPython: test_selector_events.py test_read_ready_eof; test_events.py MyBaseProto states
#[test]
fn eof_without_keep_open_closes_the_connection() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    peer.write_all(b"hi")?;
    peer.shutdown(Shutdown::Write)?;
    assert!(run_until(&lp, 20, || log.borrow().last() == Some(&Ev::Lost(None)))?);
    assert_eq!(
        Recorder::shape(&log),
        [Ev::Made, Ev::Data(b"hi".to_vec()), Ev::Eof, Ev::Lost(None)]
    );
    assert!(t.is_closing());
    assert_eq!(
        t.fileno(),
        None,
        "the socket is closed after connection_lost"
    );
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest)?;
    assert!(rest.is_empty(), "the peer sees the close");
    Ok(())
}

// CPython: test_selector_events.py test_read_ready_eof_keep_open
#[test]
fn eof_with_keep_open_leaves_a_half_open_connection() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder {
        keep_open: true,
        ..Recorder::new(&l2)
    })?;
    peer.shutdown(Shutdown::Write)?;
    assert!(run_until(&lp, 20, || log.borrow().contains(&Ev::Eof))?);
    iterate(&lp, 2)?;
    assert_eq!(*log.borrow(), [Ev::Made, Ev::Eof]);
    assert!(!t.is_closing());
    assert!(
        t.is_reading(),
        "asyncio's quirk: still 'reading' after a kept-open EOF"
    );
    t.write(b"after-eof");
    let mut buf = [0; 9];
    peer.read_exact(&mut buf)?;
    assert_eq!(&buf, b"after-eof");
    t.close();
    assert!(run_until(&lp, 20, || log.borrow().last() == Some(&Ev::Lost(None)))?);
    Ok(())
}

// CPython: test_selector_events.py test_data_received_error, test_read_eof_received_error
#[test]
fn a_panicking_data_received_is_fatal_and_reported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let log = Log::default();
    let l2 = log.clone();
    let (t, p, mut peer) = wrapped(&lp, move || Recorder {
        panic_in_data: true,
        ..Recorder::new(&l2)
    })?;
    peer.write_all(b"x")?;
    assert!(run_until(&lp, 20, || matches!(
        log.borrow().last(),
        Some(Ev::Lost(Some(_)))
    ))?);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].0,
        "Fatal error: protocol.data_received() call failed."
    );
    assert_eq!(seen[0].1, ["message", "exception", "transport", "protocol"]);
    let err = p.borrow_mut().lost_error.take().ok_or("no error")?;
    assert!(err.to_string().contains("boom in data_received"), "{err}");
    assert!(t.is_closing());
    Ok(())
}

// CPython: test_selector_events.py SelectorTransportTests::test_force_close, test_abort,
// test_connection_lost
#[test]
fn abort_drops_the_buffer_and_loses_the_connection_on_the_next_iteration() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, p, _peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    // The peer never reads: most of this stays buffered.
    t.write(&vec![7u8; 490_000]);
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.is_closing());
    assert!(
        !log.borrow().iter().any(|e| matches!(e, Ev::Lost(_))),
        "not inline"
    );
    t.abort();
    iterate(&lp, 1)?;
    let lost: Vec<_> = log
        .borrow()
        .iter()
        .filter(|e| matches!(e, Ev::Lost(_)))
        .cloned()
        .collect();
    assert_eq!(
        lost,
        [Ev::Lost(None)],
        "exactly once, on the next iteration"
    );
    assert_eq!(t.fileno(), None);
    // The transport let go of the protocol: only our handle (and the protocol's own handle
    // to the transport, dropped in connection_lost) remain.
    assert_eq!(Rc::strong_count(&p), 1);
    Ok(())
}

#[test]
fn closing_the_loop_releases_transports_kept_alive_by_their_protocols() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    drop(t);
    let weak = Rc::downgrade(&p);
    drop(p);
    assert!(
        weak.upgrade().is_some(),
        "the protocol and transport hold each other"
    );
    lp.close()?;
    assert!(weak.upgrade().is_none(), "closing the loop broke the cycle");
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest)?;
    assert!(rest.is_empty(), "the fd was closed");
    Ok(())
}
