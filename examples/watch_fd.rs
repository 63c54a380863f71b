//! Watch a file descriptor for read events (asyncio reference 18.5.1.18.3): wait until a socket
//! receives data with `add_reader`, print it, then stop.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use evloop::EventLoop;

fn main() -> std::io::Result<()> {
    // Create a pair of connected sockets.
    let (mut rsock, mut wsock) = UnixStream::pair()?;
    let fd = rsock.as_raw_fd();
    let lp = EventLoop::new()?;

    let l2 = lp.clone();
    lp.add_reader(fd, move || {
        let mut data = [0u8; 100];
        match rsock.read(&mut data) {
            Ok(n) => println!("Received: {}", String::from_utf8_lossy(&data[..n])),
            Err(err) => eprintln!("recv failed: {err}"),
        }
        // We are done: unregister the file descriptor, and stop the loop.
        l2.remove_reader(fd);
        l2.stop();
    })?;

    // Simulate the reception of data from the network.
    lp.call_soon(move || {
        if let Err(err) = wsock.write_all(b"abc") {
            eprintln!("send failed: {err}");
        }
    })?;

    lp.run_forever()?;
    lp.close()?;
    Ok(())
}
