//! The datagram write buffer: conformance case N85 (blocked sends are buffered as copies and
//! drained in order, close flushes, abort drops) and flow control.
//!
//! A Unix datagram socketpair makes sends block deterministically: once the receiver's queue
//! is full (`net.unix.max_dgram_qlen`), `send` fails with `EAGAIN` until it is read.

use std::cell::RefCell;
use std::error::Error;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
use evloop_sched::EventLoop;
use evloop_task::{LoopFuture, LoopTaskExt};
use socket2::{SockAddr, Socket};

type TestResult = Result<(), Box<dyn Error>>;

/// The size of each test datagram.
const SIZE: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ev {
    Made,
    Pause,
    Resume,
    Lost(bool),
}

#[derive(Default)]
struct Rec {
    events: Vec<Ev>,
    wake: Option<LoopFuture<()>>,
}

impl Rec {
    fn push(&mut self, ev: Ev) {
        self.events.push(ev);
        if let Some(wake) = self.wake.take() {
            let _ = wake.set_result(());
        }
    }
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, _transport: &DatagramTransport) {
        self.push(Ev::Made);
    }
    fn datagram_received(&mut self, _data: &[u8], _addr: &SockAddr) {}
    fn pause_writing(&mut self) {
        self.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.push(Ev::Resume);
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.push(Ev::Lost(err.is_some()));
    }
}

/// The receiving end: a plain non-blocking Unix datagram socket the loop drains on demand.
struct Receiver {
    sock: UnixDatagram,
    got: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl Receiver {
    /// Starts reading every datagram that arrives, on the loop.
    fn drain_on(&self, lp: &EventLoop, rec: &Rc<RefCell<Rec>>) -> io::Result<()> {
        let sock = self.sock.try_clone()?;
        let got = self.got.clone();
        let rec = rec.clone();
        lp.add_reader(self.sock.as_raw_fd(), move || {
            let mut buf = [0; 2 * SIZE];
            while let Ok(n) = sock.recv(&mut buf) {
                got.borrow_mut().push(buf[..n].to_vec());
            }
            // Progress for `wait_for`.
            if let Some(wake) = rec.borrow_mut().wake.take() {
                let _ = wake.set_result(());
            }
        })
    }
}

/// An endpoint on one end of a socketpair, and the other end.
fn pair(lp: &EventLoop) -> io::Result<(DatagramTransport, Rc<RefCell<Rec>>, Receiver)> {
    let (a, b) = UnixDatagram::pair()?;
    b.set_nonblocking(true)?;
    let sock = Socket::from(OwnedFd::from(a));
    let opts = DatagramOptions::new().sock(sock);
    let (t, rec) = lp.run_until_complete(lp.create_datagram_endpoint(Rec::default, opts))??;
    let receiver = Receiver {
        sock: b,
        got: Rc::default(),
    };
    Ok((t, rec, receiver))
}

/// Datagram `i`: its number, then filler.
fn datagram(i: usize, buf: &mut [u8; SIZE]) -> &[u8] {
    buf.fill(b'.');
    buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
    buf
}

/// Sends until `extra` datagrams had to be buffered; returns how many were sent in all. The
/// one scratch buffer is rewritten after every call, so the buffered datagrams must be copies.
fn send_until_buffered(t: &DatagramTransport, extra: usize) -> io::Result<usize> {
    let mut scratch = [0; SIZE];
    let mut i = 0;
    while t.get_write_buffer_size() == 0 {
        t.sendto(datagram(i, &mut scratch), None)?;
        i += 1;
        if i > 100_000 {
            return Err(io::Error::other("sends never blocked"));
        }
    }
    for _ in 1..extra {
        t.sendto(datagram(i, &mut scratch), None)?;
        i += 1;
    }
    Ok(i)
}

fn wait_for(lp: &EventLoop, rec: &Rc<RefCell<Rec>>, done: impl Fn() -> bool) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out; events so far: {:?}", rec.borrow().events),
            ));
        }
        let woken = lp.create_future::<()>();
        rec.borrow_mut().wake = Some(woken.clone());
        let timeout = woken.clone();
        let timer = lp.call_later(deadline - now, move || {
            timeout.cancel(None);
        })?;
        let _ = lp.run_until_complete(woken)?;
        timer.cancel();
    }
    Ok(())
}

fn assert_in_order(got: &[Vec<u8>], count: usize) {
    assert_eq!(got.len(), count);
    let mut scratch = [0; SIZE];
    for (i, d) in got.iter().enumerate() {
        assert_eq!(&d[..], datagram(i, &mut scratch), "datagram {i}");
    }
}

/// CPython: `sel::…::test_sendto_tryagain`, `test_sendto_buffer_bytearray`.
#[test]
fn blocked_sends_are_buffered_as_copies_and_drained_in_order() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, rec, receiver) = pair(&lp)?;
    t.set_write_buffer_limits(Some(20 * (SIZE + 8)), None)?;
    let sent = send_until_buffered(&t, 40)?;
    // 40 datagrams wait, counted with 8 bytes of header each.
    assert_eq!(t.get_write_buffer_size(), 40 * (SIZE + 8));
    assert_eq!(rec.borrow().events, [Ev::Made, Ev::Pause]);

    receiver.drain_on(&lp, &rec)?;
    wait_for(&lp, &rec, || receiver.got.borrow().len() == sent)?;
    assert_in_order(&receiver.got.borrow(), sent);
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(rec.borrow().events, [Ev::Made, Ev::Pause, Ev::Resume]);
    assert!(!t.is_closing());
    Ok(())
}

/// CPython: `sel::…::test_sendto_ready_closing`.
#[test]
fn close_flushes_the_buffer_before_connection_lost() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, rec, receiver) = pair(&lp)?;
    let sent = send_until_buffered(&t, 10)?;
    t.close();
    assert!(t.is_closing());
    // Sends after close are dropped, not buffered.
    t.sendto(b"late", None)?;
    assert_eq!(t.get_write_buffer_size(), 10 * (SIZE + 8));
    // Nothing is lost while the buffer waits.
    lp.run_until_complete(evloop_task::sleep(Duration::ZERO))??;
    assert!(!rec.borrow().events.contains(&Ev::Lost(false)));

    receiver.drain_on(&lp, &rec)?;
    wait_for(&lp, &rec, || rec.borrow().events.contains(&Ev::Lost(false)))?;
    wait_for(&lp, &rec, || receiver.got.borrow().len() == sent)?;
    assert_in_order(&receiver.got.borrow(), sent);
    assert_eq!(rec.borrow().events.last(), Some(&Ev::Lost(false)));
    assert_eq!(t.with_socket(|_| ()), None);
    Ok(())
}

#[test]
fn abort_drops_the_buffer_and_reports_on_the_next_iteration() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, rec, receiver) = pair(&lp)?;
    let sent = send_until_buffered(&t, 10)?;
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.is_closing());
    assert_eq!(rec.borrow().events, [Ev::Made], "never inline");
    lp.run_until_complete(evloop_task::sleep(Duration::ZERO))??;
    assert_eq!(rec.borrow().events, [Ev::Made, Ev::Lost(false)]);

    let mut buf = [0; 2 * SIZE];
    let mut got = 0;
    while receiver.sock.recv(&mut buf).is_ok() {
        got += 1;
    }
    assert_eq!(got, sent - 10, "the buffered datagrams were dropped");
    Ok(())
}

#[test]
fn lowering_the_high_water_mark_below_the_buffer_pauses_at_once() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, rec, receiver) = pair(&lp)?;
    send_until_buffered(&t, 3)?;
    assert_eq!(
        rec.borrow().events,
        [Ev::Made],
        "3 datagrams are under 64 KiB"
    );
    t.set_write_buffer_limits(Some(SIZE), Some(0))?;
    assert_eq!(rec.borrow().events, [Ev::Made, Ev::Pause]);
    assert_eq!(t.get_write_buffer_limits(), (0, SIZE));
    // Setting it again does not pause twice.
    t.set_write_buffer_limits(Some(SIZE), Some(0))?;
    assert_eq!(rec.borrow().events, [Ev::Made, Ev::Pause]);

    receiver.drain_on(&lp, &rec)?;
    wait_for(&lp, &rec, || rec.borrow().events.contains(&Ev::Resume))?;
    assert_eq!(t.get_write_buffer_size(), 0);
    Ok(())
}

#[test]
fn limits_with_low_above_high_are_refused_and_unchanged() -> TestResult {
    let lp = EventLoop::new()?;
    let (t, _rec, _receiver) = pair(&lp)?;
    let err = t
        .set_write_buffer_limits(Some(10), Some(20))
        .expect_err("low > high");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "high (10) must be >= low (20)");
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.set_write_buffer_limits(None, Some(1000))?;
    assert_eq!(t.get_write_buffer_limits(), (1000, 4000));
    Ok(())
}
