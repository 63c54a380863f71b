//! How much one read of a stream transport hands to `data_received`: up to 256 KiB, as
//! asyncio's `max_size` and uvloop's reads, so that a large message comes up in one piece.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_net::{LoopStreamExt, Protocol, Transport};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::Socket;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Records the size of each `data_received`; stops the loop once `want` bytes came.
struct Sizes {
    lp: EventLoop,
    want: usize,
    got: Rc<RefCell<Vec<usize>>>,
}

impl Protocol for Sizes {
    fn connection_made(&mut self, _transport: &Transport) {}

    fn data_received(&mut self, data: &[u8]) {
        let mut got = self.got.borrow_mut();
        got.push(data.len());
        if got.iter().sum::<usize>() >= self.want {
            self.lp.stop();
        }
    }
}

// CPython: Lib/asyncio/selector_events.py, `_SelectorTransport.max_size = 256 * 1024` (one
// `recv` of up to 256 KiB per readiness event); uvloop reads up to 256,000 bytes.
#[test]
fn a_100_kib_message_already_queued_comes_up_in_one_data_received() -> TestResult {
    const MESSAGE: usize = 100 * 1024;
    let lp = EventLoop::new()?;
    let (ours, mut peer) = UnixStream::pair()?;
    // Well under the socket's default buffer (about 208 KiB): queued whole before reading.
    peer.write_all(&vec![7u8; MESSAGE])?;
    let got = Rc::new(RefCell::new(Vec::new()));
    let (l2, g2) = (lp.clone(), got.clone());
    let proto = move || Sizes {
        lp: l2,
        want: MESSAGE,
        got: g2,
    };
    let sock = Socket::from(OwnedFd::from(ours));
    let (transport, _) = lp.run_until_complete(lp.connect_accepted_socket(proto, sock))??;
    lp.run_forever()?;
    assert_eq!(*got.borrow(), vec![MESSAGE]);
    transport.close();
    lp.close()?;
    Ok(())
}
