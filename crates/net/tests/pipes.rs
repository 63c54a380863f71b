//! Pipe transports: conformance cases P92–P95.

mod proto;
mod util;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::rc::Rc;

use evloop_net::LoopStreamExt;
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, iterate, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

// CPython: test_events.py test_read_pipe; test_unix_events.py test__read_ready_eof
#[test]
fn a_read_pipe_delivers_bytes_then_eof_and_loss() -> TestResult {
    let lp = EventLoop::new()?;
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let fut = lp.connect_read_pipe(
        move || Recorder {
            // Ignored for pipes: the transport closes anyway.
            keep_open: true,
            ..Recorder::new(&l2)
        },
        r,
    );
    let (t, _p) = lp.run_until_complete(fut)??;
    assert!(t.get_extra_info("pipe").is_some());
    assert!(t.get_extra_info("socket").is_none());
    assert!(!t.can_write_eof());
    let mut w = File::from(w);
    w.write_all(b"1")?;
    assert!(run_until(&lp, 40, || Recorder::data(&log) == b"1")?);
    w.write_all(b"2345")?;
    assert!(run_until(&lp, 40, || Recorder::data(&log).len() == 5)?);
    drop(w);
    assert!(run_until(&lp, 40, || log
        .borrow()
        .contains(&Ev::Lost(None)))?);
    assert_eq!(
        Recorder::shape(&log),
        [
            Ev::Made,
            Ev::Data(b"12345".to_vec()),
            Ev::Eof,
            Ev::Lost(None)
        ]
    );
    assert!(t.is_closing());
    Ok(())
}

// CPython: test_unix_events.py test_pause_reading_on_closed_pipe,
// test_resume_reading_on_paused_pipe; Pipe transport is for pipes/sockets only.
#[test]
fn pipes_refuse_regular_files_and_pausing_is_idempotent() -> TestResult {
    let lp = EventLoop::new()?;
    let file = std::env::temp_dir().join(format!("evloop-pipe-{}", std::process::id()));
    std::fs::write(&file, b"x")?;
    let fd = OwnedFd::from(File::open(&file)?);
    std::fs::remove_file(&file)?;
    let log = Log::default();
    let l2 = log.clone();
    let err = lp
        .run_until_complete(lp.connect_read_pipe(move || Recorder::new(&l2), fd))?
        .err()
        .ok_or("a regular file was accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "Pipe transport is for pipes/sockets only.");

    let (r, w) = util::pipe()?;
    let l3 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_read_pipe(move || Recorder::new(&l3), r))??;
    t.pause_reading();
    t.pause_reading();
    assert!(!t.is_reading());
    let mut w = File::from(w);
    w.write_all(b"held")?;
    iterate(&lp, 3)?;
    assert_eq!(*log.borrow(), [Ev::Made]);
    t.resume_reading();
    t.resume_reading();
    assert!(run_until(&lp, 40, || Recorder::data(&log) == b"held")?);
    t.close();
    t.pause_reading();
    t.resume_reading();
    assert!(!t.is_reading());
    Ok(())
}

// CPython: test_unix_events.py UnixWritePipeTransportTests::test_write, test_write_partial,
// test_write_again, test_write_no_data, test_write_eof, test_write_eof_pending
#[test]
fn a_write_pipe_sends_buffers_and_closes_after_the_flush() -> TestResult {
    let lp = EventLoop::new()?;
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&l2), w))??;
    assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
    assert!(t.can_write_eof());
    assert!(!t.is_reading());
    t.write(b"");
    t.write(b"data");
    assert_eq!(
        t.get_write_buffer_size(),
        0,
        "a pipe with room takes it all"
    );
    let mut r = File::from(r);
    let mut four = [0; 4];
    r.read_exact(&mut four)?;
    assert_eq!(&four, b"data");
    // More than a pipe holds (64 KiB by default): the rest is buffered.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    t.write(&big);
    assert!(t.get_write_buffer_size() > 0);
    t.write_eof();
    assert!(t.is_closing());
    iterate(&lp, 1)?;
    assert!(
        !log.borrow().iter().any(|e| matches!(e, Ev::Lost(_))),
        "not before the flush"
    );
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        r.read_to_end(&mut all).map(|_| all)
    });
    assert!(run_until(&lp, 200, || log
        .borrow()
        .contains(&Ev::Lost(None)))?);
    let all = reader.join().map_err(|_| "reader panicked")??;
    assert_eq!(all, big);
    t.close();
    Ok(())
}

// CPython: test_unix_events.py test_write_err, test_abort, test_close;
// unix_events._UnixWritePipeTransport._fatal_error (issue 12, defect 7)
#[test]
fn a_write_pipe_whose_reader_left_fails_with_broken_pipe() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&l2), w))??;
    drop(r);
    t.write(b"into the void");
    assert!(run_until(&lp, 40, || log
        .borrow()
        .iter()
        .any(|e| matches!(e, Ev::Lost(_))))?);
    assert_eq!(
        log.borrow().last(),
        Some(&Ev::Lost(Some(io::ErrorKind::BrokenPipe)))
    );
    // An OSError on a write pipe is logged at debug level only, never handed to the exception
    // handler (CPython: asyncio/unix_events.py `_UnixWritePipeTransport._fatal_error`).
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    for _ in 0..6 {
        t.write(b"dropped");
    }
    assert_eq!(t.get_write_buffer_size(), 0);

    // abort: the buffer goes, connection_lost(None) on the next iteration.
    let (r, w) = util::pipe()?;
    let log = Log::default();
    let l3 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&l3), w))??;
    t.write(&vec![0u8; 200_000]);
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    iterate(&lp, 1)?;
    assert_eq!(log.borrow().last(), Some(&Ev::Lost(None)));
    t.close();
    drop(r);
    Ok(())
}

#[test]
fn a_write_on_a_read_pipe_is_reported_not_silently_dropped() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    let (r, _w) = util::pipe()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_read_pipe(move || Recorder::new(&l2), r))??;
    t.write(b"nowhere to go");
    t.writelines(&[b"nor", b"this"]);
    assert_eq!(
        *seen.borrow(),
        [
            "write() on a read pipe transport: the data was dropped",
            "write() on a read pipe transport: the data was dropped"
        ]
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(!t.is_closing());
    Ok(())
}
