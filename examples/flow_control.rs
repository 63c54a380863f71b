//! Write flow control: stream 16 MiB to a slow reader without burying the transport.
//!
//! The producer writes from `connection_made` and again from `resume_writing`, and stops each
//! time the transport says so with `is_writing_paused()`. That check is the one to use inside
//! a protocol method: `pause_writing` cannot be delivered while the protocol is busy, so a loop
//! waiting for its own `paused` flag would never stop. The reader is a thread that reads slowly.
//!
//! Usage: `flow_control`. It prints how much was sent and the largest write buffer seen, which
//! stays near the high-water mark (64 KiB), not near the 16 MiB sent.

use std::cell::Cell;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop::prelude::*;
use evloop::{Protocol, Transport};

const TOTAL: usize = 16 << 20;
const CHUNK: usize = 16 * 1024;

struct Producer {
    transport: Option<Transport>,
    left: usize,
    peak: Rc<Cell<usize>>,
    lp: EventLoop,
}

impl Producer {
    /// Writes until the transport is paused or everything is sent.
    fn fill(&mut self) {
        let Some(t) = &self.transport else {
            return;
        };
        let chunk = [b'x'; CHUNK];
        // `is_closing`: if the connection failed, writes are dropped and would never pause.
        while self.left > 0 && !t.is_writing_paused() && !t.is_closing() {
            let n = self.left.min(CHUNK);
            t.write(&chunk[..n]);
            self.left -= n;
        }
        self.peak
            .set(self.peak.get().max(t.get_write_buffer_size()));
        if self.left == 0 {
            t.close();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.fill();
    }

    fn resume_writing(&mut self) {
        self.fill();
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        self.transport = None;
        self.lp.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = EventLoop::new()?;
    let (ours, mut theirs) = UnixStream::pair()?;
    let reader = std::thread::spawn(move || -> io::Result<usize> {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        loop {
            let n = theirs.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
            std::thread::sleep(Duration::from_micros(50));
        }
    });
    let peak = Rc::new(Cell::new(0));
    let (p2, l2) = (peak.clone(), lp.clone());
    let (_transport, _producer) = lp.run_until_complete(lp.connect_accepted_socket(
        move || Producer {
            transport: None,
            left: TOTAL,
            peak: p2,
            lp: l2,
        },
        OwnedFd::from(ours).into(),
    ))??;
    lp.run_forever()?;
    lp.close()?;
    let received = reader.join().map_err(|_| "the reader panicked")??;
    println!(
        "sent {TOTAL} bytes, received {received}; the write buffer peaked at {} bytes \
         (high-water mark 65536)",
        peak.get()
    );
    if received != TOTAL {
        return Err("bytes were lost".into());
    }
    Ok(())
}
