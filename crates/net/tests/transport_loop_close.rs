//! Closing the loop releases every transport it still watches, held or not (issue 12,
//! defect 5): the fd is closed, so the peer sees end of file.

mod proto;
mod util;

use std::cell::Cell;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop_net::{
    DatagramOptions, DatagramProtocol, LoopDatagramExt, LoopStreamExt, Protocol, ServerOptions,
    Transport,
};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Log, Recorder, run_until};
use socket2::Socket;
use util::TestResult;

/// A protocol that keeps nothing: once the caller drops its handles, only the loop's fd
/// watches hold the transport.
struct Forgetful;
impl Protocol for Forgetful {}

/// Whether the blocking `peer` sees end of file within a few seconds (not a timeout).
fn sees_eof(peer: &mut UnixStream) -> io::Result<bool> {
    peer.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 16];
    match peer.read(&mut buf) {
        Ok(0) => Ok(true),
        Ok(_) => Ok(false),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(err) if err.kind() == io::ErrorKind::TimedOut => Ok(false),
        Err(err) => Err(err),
    }
}

fn wrap<P: Protocol>(
    lp: &EventLoop,
    proto: impl FnOnce() -> P + 'static,
) -> io::Result<UnixStream> {
    let (a, b) = UnixStream::pair()?;
    let (t, p) =
        lp.run_until_complete(lp.connect_accepted_socket(proto, Socket::from(OwnedFd::from(a))))??;
    drop((t, p));
    Ok(b)
}

// CPython: asyncio/selector_events.py `_SelectorTransport.__del__` (a transport nobody holds
// closes its socket); issue 12, defect 5.
#[test]
fn closing_the_loop_closes_a_transport_nobody_holds() -> TestResult {
    let lp = EventLoop::new()?;
    let mut peer = wrap(&lp, || Forgetful)?;
    // A write pipe nobody holds, on a pipe whose read end we keep.
    let (mut pipe_r, pipe_w) = std::io::pipe()?;
    let (t, p) =
        lp.run_until_complete(lp.connect_write_pipe(|| Forgetful, OwnedFd::from(pipe_w)))??;
    drop((t, p));
    lp.close()?;
    assert!(
        sees_eof(&mut peer)?,
        "the peer must see end of file after close()"
    );
    // Non-blocking: an fd left open is `WouldBlock`, not a hang.
    socket2::SockRef::from(&pipe_r).set_nonblocking(true)?;
    let mut buf = [0u8; 4];
    assert_eq!(
        pipe_r.read(&mut buf).map_err(|e| e.kind()),
        Ok(0),
        "the pipe's reader must see end of file"
    );
    drop(lp);
    Ok(())
}

// Issue 12, defect 5: the same with a protocol that keeps its transport (an `Rc` cycle), a
// transport paused for reading (no reader watch holds it), and one with bytes buffered.
#[test]
fn closing_the_loop_closes_cycles_paused_and_buffered_transports() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let mut cycle = wrap(&lp, move || Recorder::new(&l2))?;
    let l3 = log.clone();
    let mut paused = wrap(&lp, move || Recorder {
        pause_in_made: true,
        ..Recorder::new(&l3)
    })?;
    let (a, mut buffered) = UnixStream::pair()?;
    let (t, p) = lp.run_until_complete(
        lp.connect_accepted_socket(|| Forgetful, Socket::from(OwnedFd::from(a))),
    )??;
    t.write(&vec![7u8; 4 << 20]);
    assert!(t.get_write_buffer_size() > 0, "the peer does not read yet");
    drop((t, p));
    lp.close()?;
    assert!(sees_eof(&mut cycle)?);
    assert!(sees_eof(&mut paused)?);
    // What the kernel took arrives, then end of file: the fd is closed, not leaked.
    buffered.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut rest = Vec::new();
    buffered.read_to_end(&mut rest)?;
    assert!(rest.iter().all(|&b| b == 7));
    Ok(())
}

/// Counts `connection_made` and keeps nothing else.
struct Counted(Rc<Cell<u32>>);
impl Protocol for Counted {
    fn connection_made(&mut self, _: &Transport) {
        self.0.set(self.0.get() + 1);
    }
}

// Issue 12, defect 5: a server's accepted connection nobody holds, and the server itself.
#[test]
fn closing_the_loop_closes_unheld_server_connections() -> TestResult {
    let lp = EventLoop::new()?;
    let made = Rc::new(Cell::new(0));
    let m2 = made.clone();
    let server = lp.run_until_complete(lp.create_server(
        move || Counted(m2.clone()),
        ServerOptions::new().host("127.0.0.1").port(0),
    ))??;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or("not an inet address")?;
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port))?;
    assert!(run_until(&lp, 50, || made.get() == 1)?);
    lp.close()?;
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 4];
    assert_eq!(client.read(&mut buf)?, 0, "the client must see end of file");
    // The server, still held, no longer listens.
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionRefused)
    );
    drop(server);
    Ok(())
}

/// A datagram protocol that keeps nothing.
struct Quiet;
impl DatagramProtocol for Quiet {}

// Issue 12, defect 5: a datagram endpoint, held or not, lets go of its socket at close():
// its port can be bound again.
#[test]
fn closing_the_loop_closes_datagram_endpoints_held_or_not() -> TestResult {
    let lp = EventLoop::new()?;
    let mut ports = Vec::new();
    let mut held = Vec::new();
    for keep in [false, true] {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        ports.push(udp.local_addr()?.port());
        let sock = Socket::from(udp);
        sock.set_nonblocking(true)?;
        let (t, p) = lp.run_until_complete(
            lp.create_datagram_endpoint(|| Quiet, DatagramOptions::new().sock(sock)),
        )??;
        if keep {
            held.push((t, p));
        }
    }
    lp.close()?;
    for port in ports {
        std::net::UdpSocket::bind(("127.0.0.1", port))?;
    }
    drop(held);
    Ok(())
}

// CPython: test_asyncio/test_events.py::test_unclosed_pipe_transport (a transport left open
// keeps a working repr after loop.close()). A deliberate difference: asyncio's loop.close()
// leaves a held transport's socket open until the transport is collected; evloop closes it
// at once (issue 12, defect 5), without connection_lost (a closed loop runs no callbacks).
// Documented on `Transport` (# Closing the loop).
#[test]
fn a_held_transport_is_closed_by_the_loop_and_stays_usable() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let (a, mut peer) = UnixStream::pair()?;
    let (t, p) = lp.run_until_complete(
        lp.connect_accepted_socket(move || Recorder::new(&l2), Socket::from(OwnedFd::from(a))),
    )??;
    assert!(t.fileno().is_some());
    lp.close()?;
    assert!(sees_eof(&mut peer)?);
    assert!(t.is_closing());
    assert_eq!(t.fileno(), None);
    assert!(format!("{t:?}").contains("closed"), "{t:?}");
    // Calls on it do nothing and never panic.
    t.write(b"after close");
    t.pause_reading();
    t.resume_reading();
    t.write_eof();
    t.close();
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(
        *log.borrow(),
        [proto::Ev::Made],
        "no callback runs on a closed loop"
    );
    drop(p);
    Ok(())
}
