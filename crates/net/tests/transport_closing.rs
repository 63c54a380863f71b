//! Closing paths of stream transports, against asyncio's `selector_events` (issue 18).

mod proto;
mod util;

use std::cell::RefCell;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop_net::{LoopStreamExt, Protocol, Transport};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::run_until;
use socket2::Socket;
use util::TestResult;

/// What a [`Tail`] protocol was told, in order.
type Calls = Rc<RefCell<Vec<String>>>;

/// Writes `tail` from its first `resume_writing`, and records its calls.
struct Tail {
    transport: Option<Transport>,
    tail: &'static [u8],
    calls: Calls,
}

impl Protocol for Tail {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }
    fn pause_writing(&mut self) {
        self.calls.borrow_mut().push("pause".into());
    }
    fn resume_writing(&mut self) {
        self.calls.borrow_mut().push("resume".into());
        if let Some(t) = &self.transport {
            t.write(std::mem::take(&mut self.tail));
        }
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.calls
            .borrow_mut()
            .push(format!("lost({:?})", err.map(|e| e.kind())));
        self.transport = None;
    }
}

/// Reads `peer` to end of file on a thread of its own.
fn drain(mut peer: UnixStream) -> std::thread::JoinHandle<io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        peer.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut all = Vec::new();
        peer.read_to_end(&mut all)?;
        Ok(all)
    })
}

// CPython: test_asyncio/test_selector_events.py
// SelectorSocketTransportTests::test_write_buffer_after_close (gh-115514): while close() is
// still flushing, a write from resume_writing is appended and sent before
// connection_lost(None); writes are dropped only once connection_lost is scheduled.
#[test]
fn a_write_from_resume_writing_during_the_closing_flush_is_sent() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, peer) = UnixStream::pair()?;
    let calls = Calls::default();
    let c2 = calls.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_accepted_socket(
        move || Tail {
            transport: None,
            tail: b"TAIL",
            calls: c2,
        },
        Socket::from(OwnedFd::from(a)),
    ))??;
    let body = vec![b'x'; 1 << 20];
    t.write(&body);
    assert!(
        t.get_write_buffer_size() > 65536,
        "the peer does not read yet"
    );
    t.close();
    // Writes from outside the protocol while the flush goes on are kept too (asyncio's
    // `_conn_lost` is still 0).
    t.write(b"MORE");
    let reader = drain(peer);
    assert!(run_until(&lp, 200, || calls
        .borrow()
        .iter()
        .any(|c| c.starts_with("lost")))?);
    let got = reader.join().map_err(|_| "reader panicked")??;
    let mut want = body.clone();
    want.extend_from_slice(b"MORE");
    want.extend_from_slice(b"TAIL");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "every byte, in order");
    assert_eq!(*calls.borrow(), ["pause", "resume", "lost(None)"]);
    // Once connection_lost is scheduled, writes are dropped.
    t.write(b"late");
    assert_eq!(t.get_write_buffer_size(), 0);
    Ok(())
}

// CPython: asyncio/unix_events.py `_UnixWritePipeTransport.write` (`if self._conn_lost or
// self._closing`: dropped) and `_write_ready` (resume_writing may append, but a closing pipe
// refuses it): unlike a socket, a write pipe drops writes from close() on, even those
// resume_writing makes during the closing flush. connection_lost(None) still follows the
// flush of what was buffered before close().
#[test]
fn a_write_pipe_drops_writes_from_close_on_even_during_the_flush() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, peer) = UnixStream::pair()?;
    let calls = Calls::default();
    let c2 = calls.clone();
    let (t, _p) = lp.run_until_complete(lp.connect_write_pipe(
        move || Tail {
            transport: None,
            tail: b"TAIL",
            calls: c2,
        },
        OwnedFd::from(a),
    ))??;
    let body = vec![b'y'; 1 << 20];
    t.write(&body);
    assert!(t.get_write_buffer_size() > 65536);
    t.close();
    t.write(b"MORE");
    let reader = drain(peer);
    assert!(run_until(&lp, 200, || calls
        .borrow()
        .iter()
        .any(|c| c.starts_with("lost")))?);
    let got = reader.join().map_err(|_| "reader panicked")??;
    assert_eq!(got.len(), body.len());
    assert!(got == body, "only what was written before close()");
    assert_eq!(*calls.borrow(), ["pause", "resume", "lost(None)"]);
    Ok(())
}
