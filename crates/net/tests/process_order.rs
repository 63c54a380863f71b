//! Subprocesses: the order of protocol calls, `close`, and exits that pipes outlive.

#[path = "util/process.rs"]
mod process_util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop_net::{LoopProcessExt, ProcessOptions, ProcessStdio, SubprocessProtocol};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use process_util::{Ev, Log, Rec, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Where `ev` first is in `log`.
fn pos(log: &[Ev], ev: impl Fn(&Ev) -> bool) -> Option<usize> {
    log.iter().position(ev)
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_subprocess_consistent_callbacks
// (gh-108973): connection_made first; per fd, data then pipe_connection_lost; process_exited
// once; connection_lost last, after every pipe closed and the exit.
#[test]
fn calls_come_in_asyncio_order() -> TestResult {
    let lp = EventLoop::new()?;
    for _ in 0..20 {
        let log = Log::default();
        let l2 = log.clone();
        let (t, _p) = lp.run_until_complete(lp.subprocess_shell(
            move || Rec::new(&l2),
            "printf stdout; printf stderr >&2",
            ProcessOptions::new(),
        ))??;
        assert!(run_until(&lp, Duration::from_secs(10), || log
            .borrow()
            .contains(&Ev::Lost))?);
        let log = log.borrow();
        assert_eq!(log[0], Ev::Made);
        assert_eq!(log.last(), Some(&Ev::Lost));
        assert_eq!(log.iter().filter(|e| **e == Ev::Lost).count(), 1);
        assert_eq!(log.iter().filter(|e| matches!(e, Ev::Exited(_))).count(), 1);
        assert!(log.contains(&Ev::Exited(Some(0))), "{log:?}");
        for fd in 0..3 {
            let lost = pos(&log, |e| *e == Ev::PipeLost(fd, None)).ok_or("a pipe never closed")?;
            assert_eq!(
                log.iter()
                    .filter(|e| matches!(e, Ev::PipeLost(f, _) if *f == fd))
                    .count(),
                1
            );
            if let Some(data) = log
                .iter()
                .rposition(|e| matches!(e, Ev::Data(f, _) if *f == fd))
            {
                assert!(data < lost, "data after its pipe closed: {log:?}");
            }
        }
        let data: Vec<u8> = log
            .iter()
            .filter_map(|e| match e {
                Ev::Data(1, d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(data, b"stdout");
        let data: Vec<u8> = log
            .iter()
            .filter_map(|e| match e {
                Ev::Data(2, d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(data, b"stderr");
        assert!(
            t.get_pipe_transport(1).is_none(),
            "pipes are dropped after connection_lost"
        );
    }
    lp.close()?;
    Ok(())
}

// A child whose stdout a grandchild keeps open: process_exited (and wait()) come at the
// child's exit, the pipe's last data and its close later, connection_lost last.
// CPython: Lib/asyncio/base_subprocess.py `_process_exited`, `_try_finish`; the protocol docs'
// note that pipe calls may follow process_exited (gh-108973); wait() at the exit (gh-119710).
#[test]
fn the_exit_is_reported_even_while_a_grandchild_holds_the_pipe() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let options = ProcessOptions::new()
        .stdin(ProcessStdio::Null)
        .stderr(ProcessStdio::Null);
    let (t, _p) = lp.run_until_complete(lp.subprocess_shell(
        move || Rec::new(&l2),
        "(sleep 2; echo late) & echo early",
        options,
    ))??;
    let code = lp.run_until_complete(t.wait())??;
    assert_eq!(code, 0);
    assert!(!log.borrow().contains(&Ev::Lost), "the pipe is still open");
    assert!(run_until(&lp, Duration::from_secs(10), || log
        .borrow()
        .contains(&Ev::Lost))?);
    let log = log.borrow();
    let exited = pos(&log, |e| matches!(e, Ev::Exited(_))).ok_or("no process_exited")?;
    let late = pos(&log, |e| *e == Ev::Data(1, b"late\n".to_vec())).ok_or("no late data")?;
    let lost = pos(&log, |e| *e == Ev::PipeLost(1, None)).ok_or("no pipe_connection_lost")?;
    assert!(exited < late && late < lost, "{log:?}");
    assert_eq!(log.last(), Some(&Ev::Lost));
    lp.close()?;
    Ok(())
}

// CPython: Lib/asyncio/base_subprocess.py `close` (pipes closed, a running child killed);
// test_events.py SubprocessTestsMixin::test_subprocess_close_after_finish: close after the
// end does nothing more.
#[test]
fn close_kills_a_running_child_and_still_ends_in_order() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) = lp.run_until_complete(lp.subprocess_exec(
        move || Rec::new(&l2),
        "sleep",
        ["30"],
        ProcessOptions::new(),
    ))??;
    t.close();
    assert!(t.is_closing());
    assert!(run_until(&lp, Duration::from_secs(10), || log
        .borrow()
        .contains(&Ev::Lost))?);
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    let log2 = log.borrow().clone();
    assert_eq!(log2.first(), Some(&Ev::Made));
    assert_eq!(log2.last(), Some(&Ev::Lost));
    for fd in 0..3 {
        assert!(log2.contains(&Ev::PipeLost(fd, None)), "{log2:?}");
    }
    t.close();
    run_until(&lp, Duration::from_millis(50), || false)?;
    assert_eq!(log.borrow().len(), log2.len());
    lp.close()?;
    Ok(())
}

/// Panics in `pipe_data_received`.
struct Panicky(Log);

impl SubprocessProtocol for Panicky {
    fn pipe_data_received(&mut self, _fd: i32, _data: &[u8]) {
        panic!("boom");
    }
    fn connection_lost(&mut self, _err: Option<std::io::Error>) {
        self.0.borrow_mut().push(Ev::Lost);
    }
}

// A panicking protocol method is reported to the exception handler, and the transport goes
// on to connection_lost. CPython: asyncio reports a callback's exception through
// call_exception_handler (test_base_events.py test_default_exc_handler_callback).
#[test]
fn a_panicking_protocol_is_reported_and_the_calls_go_on() -> TestResult {
    let lp = EventLoop::new()?;
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_string());
    })));
    let log = Log::default();
    let l2 = log.clone();
    let options = ProcessOptions::new().stdin(ProcessStdio::Null);
    let (t, _p) =
        lp.run_until_complete(lp.subprocess_shell(move || Panicky(l2), "echo hi", options))??;
    assert!(run_until(&lp, Duration::from_secs(10), || log
        .borrow()
        .contains(&Ev::Lost))?);
    assert_eq!(t.get_returncode(), Some(0));
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("pipe_data_received"), "{seen:?}");
    lp.close()?;
    Ok(())
}
