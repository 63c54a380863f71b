//! Churn: connect, send, half-close, read the echo to end-of-file, close; 100,000 times
//! against one echo server. The server's fds must be the same before and after, and its heap
//! must settle: after the last cycle within 5% of what it was after the first 10,000.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;

use crate::echo::{self, Stats};
use crate::line::Line;
use crate::sys::{self, Rng};
use crate::{Scale, alloc};

/// How far the heap may grow between the reference point and the end.
const HEAP_SLACK: f64 = 0.05;

/// What the client thread shares with the loop.
#[derive(Default)]
struct Shared {
    /// Cycles finished.
    done: AtomicUsize,
    /// Set by the loop once it has measured the reference point.
    go_on: AtomicBool,
    /// Set by the loop at its deadline: the client stops.
    abandon: AtomicBool,
    /// Bytes that did not come back as sent.
    lost_bytes: AtomicUsize,
    /// Cycles that failed with an error.
    failed: AtomicUsize,
}

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "churn",
        "connect, send 1 B-1 KiB, half-close, read the echo to EOF, close; one at a time",
        |line| churn(scale, line),
    )
}

fn churn(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let total = scale.pick(100_000, 10_000);
    let reference = total / 10;
    line.amount = format!("{total} cycles, heap reference after {reference}");
    if scale.quick {
        line.amount
            .push_str(" (quick run; full run 100,000 and 10,000)");
    }
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let (server, addr, stats) = echo::serve(&lp, 1024)?;
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let shared = Arc::new(Shared::default());
    let s2 = shared.clone();
    let client = thread::spawn(move || client(addr, total, reference, &s2));
    let marks = Rc::new(Marks::default());
    let deadline = Instant::now() + Duration::from_secs(150);
    watch(
        &lp,
        shared.clone(),
        stats.clone(),
        marks.clone(),
        (reference, total),
        deadline,
    );
    lp.run_forever().map_err(|e| format!("run_forever: {e}"))?;
    shared.abandon.store(true, Ordering::SeqCst);
    shared.go_on.store(true, Ordering::SeqCst);
    let _ = client.join();
    let done = shared.done.load(Ordering::SeqCst);
    line.lost = (shared.lost_bytes.load(Ordering::SeqCst)
        + shared.failed.load(Ordering::SeqCst)
        + (total - done.min(total))) as u64;
    line.check(done == total, || {
        format!("{done} of {total} cycles finished in 150 s")
    });
    line.check(stats.lost_err.get() == 0, || {
        format!(
            "{} server connections ended in an error",
            stats.lost_err.get()
        )
    });
    let fds_after = marks.fds_end.get();
    line.leaked = fds_after.saturating_sub(fds_before) as u64;
    line.check(fds_after == fds_before, || {
        format!("server fds {fds_before} before, {fds_after} after")
    });
    let (heap_ref, heap_end) = (marks.heap_ref.get(), marks.heap_end.get());
    let growth = heap_end as f64 / heap_ref.max(1) as f64 - 1.0;
    if growth > HEAP_SLACK {
        line.leaked += (heap_end - heap_ref) as u64;
        line.fail(format!(
            "heap {heap_ref} B after {reference} cycles, {heap_end} B after {total} (+{:.1}%, over 5%)",
            growth * 100.0
        ));
    }
    line.note(format!(
        "server fds {fds_before} before, {fds_after} after; heap {heap_ref} B after {reference} \
         cycles, {heap_end} B after {total} ({:+.2}%); {} connections served",
        growth * 100.0,
        stats.made.get()
    ));
    echo::shut(&lp, &server)?;
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// The loop's measurements.
#[derive(Default)]
struct Marks {
    heap_ref: Cell<usize>,
    heap_end: Cell<usize>,
    fds_end: Cell<usize>,
}

/// Every 5 ms: at the reference point (every connection so far gone on both sides) notes the
/// heap and lets the client go on; at the end notes heap and fds and stops the loop.
fn watch(
    lp: &EventLoop,
    shared: Arc<Shared>,
    stats: Rc<Stats>,
    marks: Rc<Marks>,
    (reference, total): (usize, usize),
    deadline: Instant,
) {
    let l2 = lp.clone();
    let tick = move || {
        let done = shared.done.load(Ordering::SeqCst);
        let gone = stats.lost_clean.get() + stats.lost_err.get();
        if !shared.go_on.load(Ordering::SeqCst) && done >= reference && gone >= reference {
            marks.heap_ref.set(alloc::live());
            shared.go_on.store(true, Ordering::SeqCst);
        }
        let finished = done >= total && gone >= total;
        if finished {
            marks.heap_end.set(alloc::live());
            marks.fds_end.set(sys::fd_count().unwrap_or(usize::MAX));
        }
        if finished || Instant::now() >= deadline {
            l2.stop();
        } else {
            watch(&l2, shared, stats, marks, (reference, total), deadline);
        }
    };
    if lp.call_later(Duration::from_millis(5), tick).is_err() {
        lp.stop();
    }
}

/// The client thread: `total` cycles, pausing after `reference` until the loop has measured.
fn client(addr: SocketAddr, total: usize, reference: usize, shared: &Shared) {
    let mut rng = Rng::new(0x00c4_0e11);
    let mut got = Vec::with_capacity(1024);
    for i in 0..total {
        if i == reference {
            while !shared.go_on.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        if shared.abandon.load(Ordering::SeqCst) {
            return;
        }
        let size = rng.range(1, 1024);
        let payload: Vec<u8> = (0..size).map(|k| sys::pattern(i, k)).collect();
        got.clear();
        let mut cycle = || -> std::io::Result<()> {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(&payload)?;
            s.shutdown(Shutdown::Write)?;
            s.read_to_end(&mut got)?;
            Ok(())
        };
        match cycle() {
            Ok(()) => {
                let same = got.iter().zip(&payload).filter(|(a, b)| a == b).count();
                let wrong = payload.len().max(got.len()) - same;
                shared.lost_bytes.fetch_add(wrong, Ordering::SeqCst);
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        shared.done.fetch_add(1, Ordering::SeqCst);
    }
}
