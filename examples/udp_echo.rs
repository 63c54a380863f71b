//! A UDP echo server on datagram protocols (asyncio's "UDP echo server protocol" example):
//! every datagram goes straight back to its sender. Serves until SIGINT or SIGTERM.
//!
//! Usage: `udp_echo [ADDR] [--selftest [COUNT]]` (ADDR defaults to `127.0.0.1:0`, a port the
//! kernel picks); it prints `Serving on 127.0.0.1:PORT` once it listens. With `--selftest` it
//! also opens a client endpoint, sends COUNT datagrams (default 1000) to its own server one at
//! a time, checks every echo byte for byte, prints the round-trip rate and exits: 0 if every
//! echo came back intact, 1 otherwise (after 10 seconds at most).

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::socket2::SockAddr;
use evloop::{DatagramOptions, DatagramProtocol, DatagramTransport};

/// How long the self-test may take before it counts as failed.
const SELFTEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The server: sends each datagram back where it came from.
#[derive(Default)]
struct Echo {
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for Echo {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        if let Some(t) = &self.transport {
            if let Err(err) = t.sendto(data, Some(addr)) {
                eprintln!("udp_echo: cannot answer: {err}");
            }
        }
    }

    fn error_received(&mut self, err: io::Error) {
        eprintln!("udp_echo: {err}");
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        self.transport = None;
    }
}

/// The self-test client: sends datagram `i`, waits for its echo, then sends `i + 1`.
struct Pinger {
    transport: Option<DatagramTransport>,
    next: usize,
    count: usize,
    /// Completed with the outcome once every echo came back, or one was wrong.
    done: LoopFuture<Result<(), String>>,
}

fn payload(i: usize) -> String {
    format!("datagram {i}")
}

impl Pinger {
    fn send_next(&mut self) {
        if let Some(t) = &self.transport {
            if let Err(err) = t.sendto(payload(self.next).as_bytes(), None) {
                let _ = self.done.set_result(Err(format!("sendto failed: {err}")));
            }
        }
    }
}

impl DatagramProtocol for Pinger {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
        self.send_next();
    }

    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        let want = payload(self.next);
        if data != want.as_bytes() {
            let got = String::from_utf8_lossy(data).into_owned();
            let _ = self
                .done
                .set_result(Err(format!("expected {want:?}, got {got:?}")));
            return;
        }
        self.next += 1;
        if self.next == self.count {
            let _ = self.done.set_result(Ok(()));
        } else {
            self.send_next();
        }
    }

    fn error_received(&mut self, err: io::Error) {
        let _ = self.done.set_result(Err(format!("error received: {err}")));
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        self.transport = None;
    }
}

/// Sends `count` datagrams to `server` one at a time and checks each echo.
fn selftest(lp: &EventLoop, server: SocketAddr, count: usize) -> Result<(), Box<dyn Error>> {
    let done = lp.create_future::<Result<(), String>>();
    let pinger = Pinger {
        transport: None,
        next: 0,
        count,
        done: done.clone(),
    };
    let start = Instant::now();
    let opts = DatagramOptions::new().remote_socket_addr(server);
    let (client, _) =
        lp.run_until_complete(lp.create_datagram_endpoint(move || pinger, opts))??;
    let timeout = done.clone();
    let timer = lp.call_later(SELFTEST_TIMEOUT, move || {
        let _ = timeout.set_result(Err("timed out waiting for an echo".to_owned()));
    })?;
    let outcome = lp.run_until_complete(done)??;
    timer.cancel();
    client.close();
    outcome?;
    let elapsed = start.elapsed();
    println!(
        "selftest: {count} echoes checked in {:.1} ms ({:.0} round trips/s)",
        elapsed.as_secs_f64() * 1e3,
        count as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let selftest_at = args.iter().position(|a| a == "--selftest");
    let count: usize = match selftest_at.and_then(|i| args.get(i + 1)) {
        Some(n) => n.parse()?,
        None => 1000,
    };
    let addr: SocketAddr = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && selftest_at.is_none_or(|s| *i != s + 1))
        .map_or("127.0.0.1:0", |(_, a)| a.as_str())
        .parse()?;

    let lp = EventLoop::new()?;
    let opts = DatagramOptions::new().local_socket_addr(addr);
    let (server, _) = lp.run_until_complete(lp.create_datagram_endpoint(Echo::default, opts))??;
    let bound = server
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or("not an inet address")?;
    println!("Serving on {bound}");

    if selftest_at.is_some() {
        selftest(&lp, bound, count)?;
    } else {
        for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
            let l2 = lp.clone();
            lp.add_signal_handler(signum, move || l2.stop())?;
        }
        lp.run_forever()?;
    }
    server.close();
    // One more iteration delivers connection_lost and closes the socket.
    lp.run_until_complete(sleep(Duration::ZERO))??;
    println!("Server closed");
    lp.close()?;
    Ok(())
}
