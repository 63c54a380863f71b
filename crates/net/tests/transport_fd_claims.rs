//! A transport owns its fd's watches: conformance case J52.

mod proto;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use evloop_net::{DatagramOptions, DatagramProtocol, LoopDatagramExt, LoopStreamExt};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Log, Recorder};
use socket2::Socket;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn assert_busy(result: io::Result<()>, fd: i32) {
    let err = result.expect_err("the transport's fd was watched by someone else");
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
    assert_eq!(
        err.to_string(),
        format!("File descriptor {fd} is used by a transport")
    );
}

// CPython: test_unix_events.py TestFunctional::test_add_reader_or_writer_transport_fd.
// asyncio raises RuntimeError from all four calls; evloop's add_* return ResourceBusy and its
// remove_* (which return a bool) return false and leave the transport's watch in place.
#[test]
fn a_stream_transports_fd_cannot_be_watched_by_anyone_else() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, mut b) = UnixStream::pair()?;
    let log = Log::default();
    let l2 = log.clone();
    let fut =
        lp.connect_accepted_socket(move || Recorder::new(&l2), Socket::from(OwnedFd::from(a)));
    let (t, _p) = lp.run_until_complete(fut)??;
    let fd = t.fileno().ok_or("no fd")?;
    assert_busy(lp.add_reader(fd, || {}), fd);
    assert_busy(lp.add_writer(fd, || {}), fd);
    assert!(!lp.remove_reader(fd));
    assert!(!lp.remove_writer(fd));
    // The transport still reads: its reader was not removed.
    io::Write::write_all(&mut b, b"still mine")?;
    lp.run_forever_setup()?;
    for _ in 0..20 {
        if Recorder::data(&log) == b"still mine" {
            break;
        }
        lp.run_once_timeout(std::time::Duration::from_millis(50))?;
    }
    lp.run_forever_cleanup()?;
    assert_eq!(Recorder::data(&log), b"still mine");
    // Once the transport is gone, the fd number is free again.
    t.abort();
    lp.run_until_complete(async {})?;
    assert_eq!(t.fileno(), None);
    let (c, _d) = UnixStream::pair()?;
    let cfd = std::os::fd::AsRawFd::as_raw_fd(&c);
    lp.add_reader(cfd, || {})?;
    assert!(lp.remove_reader(cfd));
    Ok(())
}

struct Quiet;
impl DatagramProtocol for Quiet {}

#[test]
fn a_datagram_endpoints_fd_cannot_be_watched_by_anyone_else() -> TestResult {
    let lp = EventLoop::new()?;
    let fut =
        lp.create_datagram_endpoint(|| Quiet, DatagramOptions::new().local_addr("127.0.0.1", 0));
    let (t, _p) = lp.run_until_complete(fut)??;
    let fd = t
        .with_socket(|s| std::os::fd::AsRawFd::as_raw_fd(&*s))
        .ok_or("no socket")?;
    assert_busy(lp.add_reader(fd, || {}), fd);
    assert!(!lp.remove_reader(fd));
    t.close();
    Ok(())
}
