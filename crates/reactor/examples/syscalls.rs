//! Runs one kind of poll many times, for counting system calls and timing.
//!
//! ```text
//! cargo run --release -p evloop-reactor --example syscalls -- <mode> <rounds>
//! strace -c -f target/release/examples/syscalls <mode> <rounds>
//! ```
//!
//! Run each mode with 0 rounds too and subtract, so that set-up calls do not
//! count. Modes:
//! - `idle-zero`: zero-timeout poll, one fd registered, nothing ready;
//! - `ready-zero`: zero-timeout poll, one fd registered and ready;
//! - `raw-zero`: `polling::Poller::wait` with a zero timeout, nothing ready
//!   (what every zero-timeout poll would cost without the epoll-fd check);
//! - `timed`: 100 µs timeout that expires, nothing ready (a blocking wait);
//! - `ready-block`: no timeout, one fd ready (a blocking wait that returns);
//! - `wake`: prepare_sleep, one wake, a blocking poll that it ends;
//! - `storm`: prepare_sleep, 1000 wakes, a blocking poll that they end;
//! - `wake-zero`: prepare_sleep, one wake, a zero-timeout poll (the loop
//!   found work on its re-check): the wake-up is reset by a full wait.

use std::env;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evloop_reactor::{Interest, Reactor};

/// The timeout of the `timed` mode.
const TIMED: Duration = Duration::from_micros(100);

/// Wakes per poll in the `storm` mode.
const STORM: usize = 1000;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (mode, rounds) = match args.as_slice() {
        [mode, rounds] => match rounds.parse::<u32>() {
            Ok(rounds) => (mode.as_str(), rounds),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    match run(mode, rounds) {
        Ok(Some(elapsed)) => {
            let per_round = elapsed.checked_div(rounds).unwrap_or_default();
            println!("{mode}: {rounds} rounds in {elapsed:?}, {per_round:?} per round");
            ExitCode::SUCCESS
        }
        Ok(None) => usage(),
        Err(err) => {
            eprintln!("syscalls: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Prints how to call this program.
fn usage() -> ExitCode {
    eprintln!(
        "usage: syscalls <idle-zero|ready-zero|raw-zero|timed|ready-block|wake|storm|wake-zero> <rounds>"
    );
    ExitCode::FAILURE
}

/// Runs `rounds` rounds of `mode`; `None` for an unknown mode.
fn run(mode: &str, rounds: u32) -> io::Result<Option<Duration>> {
    let mut reactor = Reactor::new()?;
    let (a, _b) = UnixStream::pair()?;
    let mut ready = Vec::new();
    let start;
    match mode {
        "idle-zero" => {
            reactor.set_interest(a.as_raw_fd(), Interest::READABLE)?;
            start = Instant::now();
            for _ in 0..rounds {
                ready.clear();
                reactor.poll(Some(Duration::ZERO), &mut ready)?;
            }
        }
        "ready-zero" | "ready-block" => {
            reactor.set_interest(a.as_raw_fd(), Interest::WRITABLE)?;
            let timeout = (mode == "ready-zero").then_some(Duration::ZERO);
            start = Instant::now();
            for _ in 0..rounds {
                ready.clear();
                reactor.poll(timeout, &mut ready)?;
            }
        }
        "raw-zero" => {
            let poller = polling::Poller::new()?;
            let mut events = polling::Events::new();
            start = Instant::now();
            for _ in 0..rounds {
                events.clear();
                poller.wait(&mut events, Some(Duration::ZERO))?;
            }
        }
        "timed" => {
            start = Instant::now();
            for _ in 0..rounds {
                reactor.poll(Some(TIMED), &mut ready)?;
            }
        }
        "wake" | "storm" | "wake-zero" => {
            let waker = reactor.waker();
            let wakes = if mode == "storm" { STORM } else { 1 };
            let timeout = (mode == "wake-zero").then_some(Duration::ZERO);
            start = Instant::now();
            for _ in 0..rounds {
                reactor.prepare_sleep();
                for _ in 0..wakes {
                    waker.wake();
                }
                reactor.poll(timeout, &mut ready)?;
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(start.elapsed()))
}
