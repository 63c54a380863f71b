//! How a pipe transport ends, condition by condition, against asyncio's
//! `unix_events._UnixReadPipeTransport` and `_UnixWritePipeTransport` (issue 12, defect 7):
//! which end in `connection_lost(None)`, which in `connection_lost(err)`, and which reach the
//! exception handler.

mod proto;
mod util;

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_net::LoopStreamExt;
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, iterate, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The messages the exception handler got.
type Seen = Rc<RefCell<Vec<String>>>;

fn record_exceptions(lp: &EventLoop) -> Seen {
    let seen = Seen::default();
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    seen
}

fn lost(log: &Log) -> bool {
    log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
}

// CPython: test_unix_events.py UnixReadPipeTransportTests::test__read_ready_eof: end of file
// → eof_received, then connection_lost(None); the handler hears nothing.
#[test]
fn read_pipe_eof_is_lost_none_unreported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (_t, _p) = lp.run_until_complete(lp.connect_read_pipe(move || Recorder::new(&l2), r))??;
    drop(w);
    assert!(run_until(&lp, 40, || lost(&log))?);
    assert_eq!(*log.borrow(), [Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(seen.borrow().is_empty());
    Ok(())
}

// CPython: test_unix_events.py UnixReadPipeTransportTests::test__read_ready_error: a read
// OSError → the handler gets 'Fatal read error on pipe transport', then
// connection_lost(err). (A socket reset by its peer stands in for the failing read.)
#[test]
fn read_pipe_os_error_is_reported_and_lost_with_it() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let ours = TcpStream::connect(listener.local_addr()?)?;
    let (theirs, _) = listener.accept()?;
    let log = Log::default();
    let l2 = log.clone();
    let (_t, _p) = lp.run_until_complete(
        lp.connect_read_pipe(move || Recorder::new(&l2), OwnedFd::from(ours)),
    )??;
    // SO_LINGER 0: closing sends a reset.
    socket2::SockRef::from(&theirs).set_linger(Some(std::time::Duration::ZERO))?;
    drop(theirs);
    assert!(run_until(&lp, 40, || lost(&log))?);
    assert_eq!(
        *log.borrow(),
        [Ev::Made, Ev::Lost(Some(io::ErrorKind::ConnectionReset))]
    );
    assert_eq!(*seen.borrow(), ["Fatal read error on pipe transport"]);
    Ok(())
}

// CPython: asyncio/unix_events.py `_UnixReadPipeTransport._fatal_error`: EIO (a pty whose
// other side hung up) is not reported, and connection_lost gets the EIO error itself
// (`_close(exc)`), not None. test_events.py::test_read_pty_output reads such a pty.
#[test]
fn read_pipe_pty_eio_is_lost_with_it_unreported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let (master, slave) = util::pty(false)?;
    let log = Log::default();
    let l2 = log.clone();
    let (_t, p) =
        lp.run_until_complete(lp.connect_read_pipe(move || Recorder::new(&l2), master))??;
    std::fs::File::from(slave.try_clone()?).write_all(b"x")?;
    assert!(run_until(&lp, 40, || !Recorder::data(&log).is_empty())?);
    drop(slave);
    assert!(run_until(&lp, 40, || lost(&log))?);
    assert!(matches!(log.borrow().last(), Some(Ev::Lost(Some(_)))));
    let p = p.borrow();
    let err = p.lost_error.as_ref().ok_or("no error")?;
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    Ok(())
}

// CPython: test_unix_events.py UnixWritePipeTransportTests::test__read_ready: the reader went
// away with nothing buffered → connection_lost(None), unreported.
#[test]
fn write_pipe_reader_gone_with_nothing_buffered_is_lost_none() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&l2), w))??;
    drop(r);
    assert!(run_until(&lp, 40, || lost(&log))?);
    assert_eq!(*log.borrow(), [Ev::Made, Ev::Lost(None)]);
    assert!(t.is_closing());
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    Ok(())
}

// CPython: asyncio/unix_events.py `_UnixWritePipeTransport._read_ready` (`_close(
// BrokenPipeError())` when bytes are buffered) and `_fatal_error` (an OSError is logged at
// debug level only): the reader went away with bytes buffered → connection_lost(BrokenPipe),
// and the handler hears nothing.
#[test]
fn write_pipe_reader_gone_with_bytes_buffered_is_broken_pipe_unreported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    // A socket as the write pipe: its peer leaving makes it readable.
    let (ours, peer) = UnixStream::pair()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(
        lp.connect_write_pipe(move || Recorder::new(&l2), OwnedFd::from(ours)),
    )??;
    t.write(&vec![1u8; 4 << 20]);
    assert!(t.get_write_buffer_size() > 0);
    drop(peer);
    assert!(run_until(&lp, 40, || lost(&log))?);
    assert_eq!(
        *log.borrow(),
        [
            Ev::Made,
            Ev::Pause,
            Ev::Lost(Some(io::ErrorKind::BrokenPipe))
        ]
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    Ok(())
}

// CPython: test_unix_events.py UnixWritePipeTransportTests::test_write_close: after the
// reader went away, writes are counted and dropped; test_abort: abort() → connection_lost(None)
// on the next iteration, unreported.
#[test]
fn write_pipe_abort_is_lost_none_and_later_writes_are_dropped() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&l2), w))??;
    t.write(&vec![2u8; 1 << 20]);
    t.abort();
    t.write(b"dropped");
    assert_eq!(t.get_write_buffer_size(), 0);
    iterate(&lp, 1)?;
    assert_eq!(log.borrow().last(), Some(&Ev::Lost(None)));
    assert!(seen.borrow().is_empty());
    assert!(r.as_raw_fd() >= 0);
    Ok(())
}

// A deliberate difference: asyncio's `_UnixReadPipeTransport._read_ready` calls
// data_received unguarded, so an exception there reaches the handler as "Exception in
// callback" and the pipe stays open. evloop ends a read pipe as it ends a socket
// (`_SelectorSocketTransport._read_ready__data_received`): reported as a failed
// data_received, then connection_lost(err). Documented on `Protocol` (# Panics).
#[test]
fn read_pipe_data_received_panic_is_reported_and_lost_with_it() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_read_pipe(
        move || Recorder {
            panic_in_data: true,
            ..Recorder::new(&l2)
        },
        r,
    ))??;
    std::fs::File::from(w).write_all(b"boom")?;
    assert!(run_until(&lp, 40, || lost(&log))?);
    assert_eq!(
        *log.borrow(),
        [
            Ev::Made,
            Ev::Data(b"boom".to_vec()),
            Ev::Lost(Some(io::ErrorKind::Other))
        ]
    );
    assert_eq!(
        *seen.borrow(),
        ["Fatal error: protocol.data_received() call failed."]
    );
    assert!(t.is_closing());
    Ok(())
}
