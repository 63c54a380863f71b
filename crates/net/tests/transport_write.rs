//! Writing through a stream transport: conformance cases L65–L69 (immediate sends, the write
//! buffer, writes after close, write_eof, flow control).

mod proto;

use std::cell::RefCell;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_net::{LoopStreamExt, Transport};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use socket2::Socket;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A transport, its protocol, and the plain stream at the other end.
type Wrapped = (Transport, Rc<RefCell<Recorder>>, UnixStream);

fn wrapped(lp: &EventLoop, proto: impl FnOnce() -> Recorder + 'static) -> io::Result<Wrapped> {
    let (a, b) = UnixStream::pair()?;
    let sock = Socket::from(OwnedFd::from(a));
    let fut = lp.connect_accepted_socket(proto, sock);
    let (t, p) = lp.run_until_complete(fut)??;
    Ok((t, p, b))
}

/// Writes 64 KiB chunks until the kernel refuses some: the buffer then holds something.
fn fill_kernel(t: &Transport) {
    let chunk = vec![1u8; 64 * 1024];
    for _ in 0..1000 {
        if t.get_write_buffer_size() > 0 {
            return;
        }
        t.write(&chunk);
    }
}

/// Reads from `peer` (non-blocking) until `n` bytes came, while the loop runs.
fn drain_peer(lp: &EventLoop, peer: &mut UnixStream, n: usize) -> io::Result<Vec<u8>> {
    peer.set_nonblocking(true)?;
    let mut got = Vec::new();
    let mut buf = vec![0; 256 * 1024];
    let ok = run_until(lp, 400, || {
        loop {
            match peer.read(&mut buf) {
                Ok(0) => return true,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(_) => break,
            }
        }
        got.len() >= n
    })?;
    assert!(ok, "the peer got {} of {n} bytes", got.len());
    Ok(got)
}

// CPython: test_selector_events.py test_write_partial, test_write_tryagain, test_write_buffer,
// test_write_no_data
#[test]
fn a_write_goes_out_at_once_and_only_the_rest_is_buffered_in_order() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    t.write(b"");
    assert_eq!(t.get_write_buffer_size(), 0);
    t.write(b"data");
    // No iteration ran: the bytes were sent inside write().
    let mut four = [0; 4];
    peer.read_exact(&mut four)?;
    assert_eq!(&four, b"data");

    // 2 MB to a peer that is not reading: the kernel takes part, the rest is buffered.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    t.write(&big);
    let buffered = t.get_write_buffer_size();
    assert!(buffered > 0 && buffered < big.len(), "buffered {buffered}");
    // A write while data is buffered appends behind it.
    t.write(b"tail");
    assert_eq!(t.get_write_buffer_size(), buffered + 4);
    let got = drain_peer(&lp, &mut peer, big.len() + 4)?;
    assert_eq!(&got[..big.len()], &big[..]);
    assert_eq!(&got[big.len()..], b"tail");
    assert_eq!(t.get_write_buffer_size(), 0);
    Ok(())
}

#[test]
fn writelines_sends_every_buffer_in_order() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    t.writelines(&[b"ab", b"", b"cd", b"e"]);
    let mut five = [0; 5];
    peer.read_exact(&mut five)?;
    assert_eq!(&five, b"abcde");
    let big = vec![9u8; 1_000_000];
    t.writelines(&[b"head", &big, b"end"]);
    let got = drain_peer(&lp, &mut peer, big.len() + 7)?;
    assert_eq!(&got[..4], b"head");
    assert!(got[4..4 + big.len()].iter().all(|&b| b == 9));
    assert_eq!(&got[4 + big.len()..], b"end");
    Ok(())
}

// CPython: test_selector_events.py test_write_closing, test_write_exception
#[test]
fn writes_after_close_are_dropped() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    t.write(b"before");
    t.close();
    for _ in 0..6 {
        t.write(b"after");
    }
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(run_until(&lp, 20, || log
        .borrow()
        .contains(&Ev::Lost(None)))?);
    let mut all = Vec::new();
    peer.read_to_end(&mut all)?;
    assert_eq!(all, b"before");
    Ok(())
}

// CPython: test_selector_events.py test_write_eof, test_write_eof_buffer, test_write_eof_after_close
#[test]
fn write_eof_shuts_down_after_the_buffer_drains_and_refuses_later_writes() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    assert!(t.can_write_eof());
    let big = vec![3u8; 1_500_000];
    t.write(&big);
    assert!(t.get_write_buffer_size() > 0);
    t.write_eof();
    t.write_eof();
    t.write(b"refused");
    assert_eq!(seen.borrow().len(), 1);
    assert!(seen.borrow()[0].starts_with("Cannot call write() after write_eof()"));
    // The peer gets every byte, then EOF (read returns 0), though the transport is open.
    let got = drain_peer(&lp, &mut peer, usize::MAX)?;
    assert_eq!(got.len(), big.len());
    assert!(!t.is_closing());
    // The reading side still works.
    peer.set_nonblocking(false)?;
    io::Write::write_all(&mut peer, b"reply")?;
    assert!(run_until(&lp, 20, || Recorder::data(&log) == b"reply")?);
    t.close();
    t.write_eof();
    Ok(())
}

// CPython: transports.py _FlowControlMixin (observed on CPython 3.13)
#[test]
fn flow_control_pauses_strictly_above_high_and_resumes_at_low() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, mut peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
    fill_kernel(&t);
    let base = t.get_write_buffer_size();
    assert!(base > 0);
    t.set_write_buffer_limits(Some(base + 100), Some(0))?;
    t.write(&[0; 100]);
    assert_eq!(t.get_write_buffer_size(), base + 100);
    assert!(
        !log.borrow().contains(&Ev::Pause),
        "size == high does not pause"
    );
    t.write(&[0; 1]);
    for _ in 0..50 {
        t.write(&[0; 1000]);
    }
    let pauses = log.borrow().iter().filter(|e| **e == Ev::Pause).count();
    assert_eq!(pauses, 1, "one pause however much more is written");
    let total = t.get_write_buffer_size();
    drain_peer(&lp, &mut peer, 0)?;
    assert!(run_until(&lp, 400, || {
        let mut buf = vec![0; 1 << 20];
        let _ = peer.read(&mut buf);
        t.get_write_buffer_size() == 0
    })?);
    let flow: Vec<Ev> = log
        .borrow()
        .iter()
        .filter(|e| matches!(e, Ev::Pause | Ev::Resume))
        .cloned()
        .collect();
    assert_eq!(
        flow,
        [Ev::Pause, Ev::Resume],
        "after {total} bytes buffered"
    );
    Ok(())
}

#[test]
fn lowering_the_limits_below_the_buffer_pauses_at_once() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, _peer) = wrapped(&lp, move || Recorder::new(&l2))?;
    fill_kernel(&t);
    assert!(!log.borrow().contains(&Ev::Pause));
    t.set_write_buffer_limits(Some(1), None)?;
    assert_eq!(*log.borrow(), [Ev::Made, Ev::Pause]);
    assert_eq!(t.get_write_buffer_limits(), (0, 1));
    let err = t
        .set_write_buffer_limits(Some(10), Some(20))
        .err()
        .ok_or("low > high accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}

// CPython: transports.py _FlowControlMixin: 'protocol.pause_writing() failed'
#[test]
fn a_panicking_pause_writing_is_reported_and_the_transport_stays_open() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    let log = Log::default();
    let l2 = log.clone();
    let (t, _p, _peer) = wrapped(&lp, move || Recorder {
        panic_in_pause: true,
        ..Recorder::new(&l2)
    })?;
    fill_kernel(&t);
    t.set_write_buffer_limits(Some(1), None)?;
    assert_eq!(*seen.borrow(), ["protocol.pause_writing() failed"]);
    assert!(!t.is_closing());
    Ok(())
}

/// Pauses inside data_received: the protocol is busy, so the call waits until it returns.
struct Greedy {
    log: Log,
    t: Option<Transport>,
}

impl evloop_net::Protocol for Greedy {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
        t.set_write_buffer_limits(Some(10), None).ok();
    }
    fn data_received(&mut self, _data: &[u8]) {
        self.log.borrow_mut().push(Ev::Data(b"start".to_vec()));
        if let Some(t) = &self.t {
            t.write(&vec![5u8; 4 << 20]);
        }
        self.log.borrow_mut().push(Ev::Data(b"end".to_vec()));
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Pause);
    }
}

#[test]
fn a_pause_caused_inside_data_received_comes_right_after_it() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (a, mut b) = UnixStream::pair()?;
    let fut = lp.connect_accepted_socket(
        move || Greedy { log: l2, t: None },
        Socket::from(OwnedFd::from(a)),
    );
    let (_t, _p) = lp.run_until_complete(fut)??;
    io::Write::write_all(&mut b, b"go")?;
    assert!(run_until(&lp, 20, || log.borrow().contains(&Ev::Pause))?);
    assert_eq!(
        *log.borrow(),
        [
            Ev::Data(b"start".to_vec()),
            Ev::Data(b"end".to_vec()),
            Ev::Pause
        ]
    );
    Ok(())
}
