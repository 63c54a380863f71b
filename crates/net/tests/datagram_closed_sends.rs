//! Sends on a closed datagram transport: conformance case N85's second half. They are
//! dropped silently and counted; from the fifth on, each one is logged at warning level.
//!
//! This file holds one test because it installs the process-wide logger.

use std::error::Error;
use std::net::UdpSocket;
use std::sync::Mutex;

use evloop_net::{DatagramOptions, DatagramProtocol, LoopDatagramExt};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;

/// Keeps the warnings logged under the `evloop` target.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "evloop" && record.level() == log::Level::Warn {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(record.args().to_string());
            }
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

struct Quiet;
impl DatagramProtocol for Quiet {}

/// CPython: `sel::…::test_sendto_closing`.
#[test]
fn sends_after_close_are_dropped_and_warned_about_from_the_fifth() -> Result<(), Box<dyn Error>> {
    log::set_logger(&CAPTURE).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Warn);
    let warnings = || CAPTURE.0.lock().map(|w| w.len()).unwrap_or(usize::MAX);

    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    peer.set_nonblocking(true)?;
    let opts = DatagramOptions::new().remote_socket_addr(peer.local_addr()?);
    let (t, _) = lp.run_until_complete(lp.create_datagram_endpoint(|| Quiet, opts))??;
    t.close();
    for n in 1..=7_usize {
        t.sendto(b"dropped", None)?;
        assert_eq!(warnings(), n.saturating_sub(4), "after {n} dropped sends");
    }
    lp.run_until_complete(evloop_task::sleep(std::time::Duration::ZERO))??;
    let mut buf = [0; 16];
    let nothing = peer.recv(&mut buf).expect_err("nothing may have been sent");
    assert_eq!(nothing.kind(), std::io::ErrorKind::WouldBlock);
    let last = CAPTURE.0.lock().map(|w| w.last().cloned()).ok().flatten();
    assert_eq!(
        last.as_deref(),
        Some("sendto() on a closed datagram transport: datagram dropped (7 so far)")
    );
    Ok(())
}
