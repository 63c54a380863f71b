//! Streams: churn through `start_server`'s client callbacks. Each connection's task reads,
//! writes back and drains until end of file, then closes and waits until closed; the clients
//! connect, send 1 B-16 KiB, half-close, read the echo to end of file and close, one at a
//! time, and every tenth one instead sends until the server is buried and resets the
//! connection, so that a task waiting in `drain` (or `read`) must end with the error rather
//! than wait forever. Every task must finish, the server's fds must be the same before and
//! after, and its heap must settle: after the last cycle within 5% of its level at the tenth.

use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::{ServerOptions, StreamReader, StreamWriter};

use crate::line::Line;
use crate::sys::{self, Rng};
use crate::{Scale, alloc};

/// How far the heap may grow between the reference point and the end.
const HEAP_SLACK: f64 = 0.05;

/// Every this many cycles, the client resets instead of reading.
const RESET_EVERY: usize = 10;

/// The most a resetting client sends before it resets (it stops earlier once the server
/// stops taking bytes).
const RESET_BURY: usize = 8 << 20;

/// What the server's tasks report, on the loop's thread.
#[derive(Default)]
struct Tasks {
    started: Cell<usize>,
    ok: Cell<usize>,
    failed: Cell<usize>,
}

impl Tasks {
    fn finished(&self) -> usize {
        self.ok.get() + self.failed.get()
    }
}

/// What the client thread shares with the loop.
#[derive(Default)]
struct Shared {
    done: AtomicUsize,
    resets: AtomicUsize,
    go_on: AtomicBool,
    abandon: AtomicBool,
    lost_bytes: AtomicUsize,
    failed: AtomicUsize,
}

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "streams",
        "start_server tasks (read / write / drain to EOF) against clients that send 1 B-16 KiB, \
         half-close and read the echo, one in ten resetting with the server's buffers full",
        |line| streams(scale, line),
    )
}

fn streams(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let total = scale.pick(50_000, 5_000);
    let reference = total / 10;
    line.amount = format!("{total} cycles, heap reference after {reference}");
    if scale.quick {
        line.amount
            .push_str(" (quick run; full run 50,000 and 5,000)");
    }
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let tasks = Rc::new(Tasks::default());
    let t2 = tasks.clone();
    let server = lp
        .run_until_complete(evloop::start_server(
            move |reader, writer| echo(reader, writer, t2.clone()),
            ServerOptions::new().host("127.0.0.1").port(0),
            None,
        ))
        .map_err(|e| format!("start_server: {e}"))?
        .map_err(|e| format!("start_server: {e}"))?;
    let addr = server
        .sockets()
        .first()
        .and_then(|s| s.local_addr().ok())
        .and_then(|a| a.as_socket())
        .ok_or("the server has no inet address")?;
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let shared = Arc::new(Shared::default());
    let s2 = shared.clone();
    let client = thread::spawn(move || client(addr, total, reference, &s2));
    let marks = Rc::new(Marks::default());
    let deadline = Instant::now() + Duration::from_secs(150);
    watch(
        &lp,
        shared.clone(),
        tasks.clone(),
        marks.clone(),
        (reference, total),
        deadline,
    );
    lp.run_forever().map_err(|e| format!("run_forever: {e}"))?;
    shared.abandon.store(true, Ordering::SeqCst);
    shared.go_on.store(true, Ordering::SeqCst);
    let _ = client.join();
    let done = shared.done.load(Ordering::SeqCst);
    let resets = shared.resets.load(Ordering::SeqCst);
    line.lost = (shared.lost_bytes.load(Ordering::SeqCst)
        + shared.failed.load(Ordering::SeqCst)
        + (total - done.min(total))) as u64;
    line.check(done == total, || {
        format!("{done} of {total} cycles finished in 150 s")
    });
    line.check(shared.failed.load(Ordering::SeqCst) == 0, || {
        format!(
            "{} client cycles failed",
            shared.failed.load(Ordering::SeqCst)
        )
    });
    line.check(tasks.finished() == tasks.started.get(), || {
        format!(
            "{} of {} connection tasks never finished",
            tasks.started.get() - tasks.finished(),
            tasks.started.get()
        )
    });
    line.check(tasks.failed.get() <= resets, || {
        format!(
            "{} tasks failed, more than the {resets} resets",
            tasks.failed.get()
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
        "{} tasks: {} ended Ok, {} with the reset's error ({resets} resets); server fds \
         {fds_before} before, {fds_after} after; heap {heap_ref} B after {reference} cycles, \
         {heap_end} B after {total} ({:+.2}%)",
        tasks.started.get(),
        tasks.ok.get(),
        tasks.failed.get(),
        growth * 100.0
    ));
    server.close();
    server.close_clients();
    let s2 = server.clone();
    lp.run_until_complete(async move { s2.wait_closed().await })
        .map_err(|e| format!("wait_closed: {e}"))?;
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// A connection's task: echo to end of file with `drain` after every write, then close and
/// wait until closed; the outcome is counted, never reported (a reset is expected here).
async fn echo(mut reader: StreamReader, writer: StreamWriter, tasks: Rc<Tasks>) -> io::Result<()> {
    tasks.started.set(tasks.started.get() + 1);
    let outcome = async {
        loop {
            let data = reader.read(64 * 1024).await?;
            if data.is_empty() {
                break;
            }
            writer.write(&data);
            writer.drain().await?;
        }
        writer.close();
        writer.wait_closed().await
    }
    .await;
    match outcome {
        Ok(()) => tasks.ok.set(tasks.ok.get() + 1),
        Err(_) => tasks.failed.set(tasks.failed.get() + 1),
    }
    Ok(())
}

/// The loop's measurements.
#[derive(Default)]
struct Marks {
    heap_ref: Cell<usize>,
    heap_end: Cell<usize>,
    fds_end: Cell<usize>,
}

/// Every 5 ms: at the reference point (every task so far finished) notes the heap and lets
/// the client go on; at the end notes heap and fds and stops the loop.
fn watch(
    lp: &EventLoop,
    shared: Arc<Shared>,
    tasks: Rc<Tasks>,
    marks: Rc<Marks>,
    (reference, total): (usize, usize),
    deadline: Instant,
) {
    let l2 = lp.clone();
    let tick = move || {
        let done = shared.done.load(Ordering::SeqCst);
        let finished = tasks.finished();
        if !shared.go_on.load(Ordering::SeqCst) && done >= reference && finished >= reference {
            marks.heap_ref.set(alloc::live());
            shared.go_on.store(true, Ordering::SeqCst);
        }
        let all_done = done >= total && finished >= total;
        if all_done {
            marks.heap_end.set(alloc::live());
            marks.fds_end.set(sys::fd_count().unwrap_or(usize::MAX));
        }
        if all_done || Instant::now() >= deadline {
            l2.stop();
        } else {
            watch(&l2, shared, tasks, marks, (reference, total), deadline);
        }
    };
    if lp.call_later(Duration::from_millis(5), tick).is_err() {
        lp.stop();
    }
}

/// The client thread: `total` cycles, pausing after `reference` until the loop has measured.
fn client(addr: SocketAddr, total: usize, reference: usize, shared: &Shared) {
    let mut rng = Rng::new(0x5723_a115);
    let mut got = Vec::with_capacity(16 * 1024);
    for i in 0..total {
        if i == reference {
            while !shared.go_on.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        if shared.abandon.load(Ordering::SeqCst) {
            return;
        }
        if i % RESET_EVERY == RESET_EVERY - 1 {
            match bury_and_reset(addr) {
                Ok(()) => {
                    shared.resets.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => {
                    shared.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
            shared.done.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let size = rng.range(1, 16 * 1024);
        let payload: Vec<u8> = (0..size).map(|k| sys::pattern(i, k)).collect();
        got.clear();
        let mut cycle = || -> io::Result<()> {
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

/// Sends without reading until the server stops taking bytes (its echo buffered, its task
/// waiting in `drain`) or [`RESET_BURY`] went out, then resets the connection.
fn bury_and_reset(addr: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nonblocking(true)?;
    let chunk = [0x5a_u8; 64 * 1024];
    let mut sent = 0;
    let mut idle = 0;
    while sent < RESET_BURY && idle < 20 {
        match s.write(&chunk) {
            Ok(n) => {
                sent += n;
                idle = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                idle += 1;
                thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e),
        }
    }
    evloop::socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
    drop(s);
    Ok(())
}
