//! Pipe transports on a pty (issue 18, item 7): a write pipe on a character device is not
//! watched for "the reader went away", so input arriving on the pty does not close it.

mod proto;
mod util;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use evloop_net::LoopStreamExt;
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Reads exactly `n` bytes from the pty master, waiting at most 5 s for each chunk.
fn read_master(master: &OwnedFd, n: usize) -> io::Result<Vec<u8>> {
    let mut file = File::from(master.try_clone()?);
    let mut got = vec![0u8; n];
    let mut at = 0;
    while at < n {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, 5000) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the pty master got {at} of {n} bytes"),
            ));
        }
        at += file.read(&mut got[at..])?;
    }
    Ok(got)
}

// CPython: test_asyncio/test_events.py::test_write_pty (a write pipe on a pty's slave end
// delivers to the master), and unix_events._UnixWritePipeTransport.__init__ (a character
// device is not watched for readability).
#[test]
fn a_write_pipe_on_a_pty_sends_and_input_does_not_close_it() -> TestResult {
    let lp = EventLoop::new()?;
    let (master, slave) = util::pty(true)?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p) =
        lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&l2), slave))??;
    t.write(b"1");
    assert_eq!(read_master(&master, 1)?, b"1");
    // Input arrives on the pty: the slave end is readable now. It is not the reader leaving.
    File::from(master.try_clone()?).write_all(b"input")?;
    // The pty hands input over asynchronously: give it half a second to show up.
    assert!(
        !run_until(&lp, 5, || t.is_closing())?,
        "input must not close a pty's write pipe"
    );
    assert_eq!(*log.borrow(), [Ev::Made]);
    t.write(b"2345");
    assert_eq!(read_master(&master, 4)?, b"2345");
    t.close();
    assert!(run_until(&lp, 20, || log.borrow().len() == 2)?);
    assert_eq!(*log.borrow(), [Ev::Made, Ev::Lost(None)]);
    Ok(())
}

// CPython: test_asyncio/test_events.py::test_bidirectional_pty (one pty slave used by a read
// pipe and a write pipe at once: both directions keep working).
#[test]
fn a_pty_is_read_and_written_through_two_pipe_transports() -> TestResult {
    let lp = EventLoop::new()?;
    let (master, slave) = util::pty(true)?;
    let slave_w = slave.try_clone()?;
    let (rlog, wlog) = (Log::default(), Log::default());
    let (r2, w2) = (rlog.clone(), wlog.clone());
    let (rt, _rp) =
        lp.run_until_complete(lp.connect_read_pipe(move || Recorder::new(&r2), slave))??;
    let (wt, _wp) =
        lp.run_until_complete(lp.connect_write_pipe(move || Recorder::new(&w2), slave_w))??;
    let mut to_pty = File::from(master.try_clone()?);
    for round in 0..3u8 {
        let input = [b'a' + round; 3];
        to_pty.write_all(&input)?;
        let want = 3 * (usize::from(round) + 1);
        assert!(run_until(&lp, 40, || Recorder::data(&rlog).len() >= want)?);
        let output = [b'A' + round; 2];
        wt.write(&output);
        assert_eq!(read_master(&master, 2)?, output);
        assert!(
            !wt.is_closing(),
            "round {round}: the write pipe closed on input"
        );
    }
    assert_eq!(Recorder::data(&rlog), b"aaabbbccc");
    assert_eq!(*wlog.borrow(), [Ev::Made]);
    rt.close();
    wt.close();
    assert!(run_until(&lp, 20, || rlog.borrow().len() >= 5
        && wlog.borrow().len() == 2)?);
    assert_eq!(wlog.borrow().last(), Some(&Ev::Lost(None)));
    assert_eq!(rlog.borrow().last(), Some(&Ev::Lost(None)));
    Ok(())
}
