//! `cat` on a read-pipe transport: `connect_read_pipe` on stdin, every chunk written to
//! stdout, until end of file. stdin must be a pipe, FIFO, socket or terminal (a pipe transport
//! refuses regular files, as asyncio's does): `some_command | cat_pipe`.
//!
//! Usage: `... | cat_pipe`; at the end it prints the byte count on stderr. When stdin cannot
//! be watched (`/dev/null` and regular files: epoll refuses them with EPERM), the transport
//! reports it through `connection_lost` and `cat_pipe` exits with status 1.

use std::io::{self, Write};
use std::os::fd::AsFd;

use evloop::Protocol;
use evloop::prelude::*;

struct Cat {
    bytes: usize,
    lp: EventLoop,
    failed: Option<io::Error>,
}

impl Protocol for Cat {
    fn data_received(&mut self, data: &[u8]) {
        self.bytes += data.len();
        if let Err(err) = io::stdout().write_all(data) {
            self.failed = Some(err);
            self.lp.stop();
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        if let Some(err) = err {
            self.failed = Some(err);
        }
        self.lp.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = EventLoop::new()?;
    // A duplicate of fd 0: the transport owns and closes it; std keeps its own.
    let stdin = io::stdin().as_fd().try_clone_to_owned()?;
    let l2 = lp.clone();
    let (_transport, cat) = lp.run_until_complete(lp.connect_read_pipe(
        move || Cat {
            bytes: 0,
            lp: l2,
            failed: None,
        },
        stdin,
    ))??;
    lp.run_forever()?;
    lp.close()?;
    io::stdout().flush()?;
    let mut cat = cat.borrow_mut();
    if let Some(err) = cat.failed.take() {
        return Err(err.into());
    }
    eprintln!("cat_pipe: {} bytes", cat.bytes);
    Ok(())
}
