//! Lifecycle: neglect that programs commit. Loops dropped without `close()` on threads that
//! exit, with the everyday clone held by a pending timer; transports nobody holds when the loop
//! closes; a pending callback whose captured value panics in `Drop` at `close()`. The process's
//! fds and heap must come back to their baseline, and peers must see end-of-file.

use std::io::{self, Read};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::{ConnectOptions, Protocol};

use crate::line::Line;
use crate::sys;
use crate::{Scale, alloc};

/// Heap the process may keep above its baseline (thread bookkeeping, lazily made statics).
const HEAP_SLACK: usize = 16 * 1024;

/// Panics the test causes on purpose (the destructor bombs); not counted against the line.
static DELIBERATE: AtomicU64 = AtomicU64::new(0);

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    let started = Instant::now();
    let mut line = Line::new(
        "lifecycle",
        "loops dropped unclosed on exiting threads; unheld transports at close(); panicking Drop at close()",
    );
    if let Err(e) = lifecycle(scale, &mut line) {
        line.fail(e);
    }
    line.secs = started.elapsed().as_secs_f64();
    line.panics = sys::panics().saturating_sub(DELIBERATE.load(Ordering::SeqCst));
    line
}

/// A protocol that does nothing: the connection is all that matters.
struct Idle;
impl Protocol for Idle {}

fn lifecycle(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let loops = scale.pick(200, 20);
    let transports = scale.pick(20, 5);
    line.amount = format!(
        "{loops} unclosed loops, {transports} unheld transports, {transports} panicking destructors"
    );
    if scale.quick {
        line.amount.push_str(" (quick run; full run 200 and 20)");
    }
    // A loop and a thread once, so lazily made statics are not counted as leaks.
    warm_up()?;
    let fds_before = sys::fd_count().map_err(|e| e.to_string())?;
    let heap_before = alloc::live();
    unclosed_loops(loops)?;
    let fds_after = sys::fd_count().map_err(|e| e.to_string())?;
    let heap_after = alloc::live();
    let fd_leak = fds_after.saturating_sub(fds_before);
    let heap_leak = heap_after.saturating_sub(heap_before);
    if fd_leak > 0 || heap_leak > HEAP_SLACK {
        line.leaked += (fd_leak + heap_leak) as u64;
        line.fail(format!(
            "{loops} loops dropped without close() on exiting threads left {fd_leak} fds and \
             {heap_leak} B of heap"
        ));
    }
    line.note(format!(
        "unclosed loops: fds {fds_before} -> {fds_after}, heap {heap_before} -> {heap_after} B"
    ));
    let mut no_eof = 0;
    let mut escaped = 0;
    let mut leaked_fds = 0;
    let heap_before = alloc::live();
    for _ in 0..transports {
        let (eof, fds) = unheld_transport()?;
        no_eof += usize::from(!eof);
        leaked_fds += fds;
    }
    line.leaked += leaked_fds as u64;
    if no_eof > 0 {
        line.lost += no_eof as u64;
        line.fail(format!(
            "{no_eof} of {transports} unheld transports stayed open after close(): the peer saw \
             no EOF ({leaked_fds} fds left)"
        ));
    }
    heap_check(line, "unheld transports", heap_before);
    no_eof = 0;
    leaked_fds = 0;
    let heap_before = alloc::live();
    for _ in 0..transports {
        let (panicked, eof, fds) = panicking_drop_at_close()?;
        escaped += usize::from(panicked);
        no_eof += usize::from(!eof);
        leaked_fds += fds;
    }
    line.leaked += leaked_fds as u64;
    if escaped > 0 || no_eof > 0 {
        line.lost += no_eof as u64;
        line.fail(format!(
            "a panicking Drop in a pending callback: escaped close() {escaped} of {transports} \
             times; the held transport's peer saw no EOF {no_eof} times ({leaked_fds} fds left)"
        ));
    }
    heap_check(line, "panicking destructors", heap_before);
    Ok(())
}

/// Notes the heap since `before`, and fails the line if it grew beyond [`HEAP_SLACK`].
fn heap_check(line: &mut Line, what: &str, before: usize) {
    let after = alloc::live();
    line.note(format!("{what}: heap {before} -> {after} B"));
    let grown = after.saturating_sub(before);
    if grown > HEAP_SLACK {
        line.leaked += grown as u64;
        line.fail(format!("{what} left {grown} B of heap"));
    }
}

/// A loop with a connection, closed properly, on a thread of its own.
fn warm_up() -> Result<(), String> {
    thread::spawn(|| -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let lp = EventLoop::new()?;
        let fut = lp.create_connection(|| Idle, ConnectOptions::new().host("127.0.0.1").port(port));
        let (transport, _) = lp.run_until_complete(fut).map_err(io::Error::other)??;
        transport.abort();
        lp.run_until_complete(async {}).map_err(io::Error::other)?;
        lp.close().map_err(io::Error::other)
    })
    .join()
    .map_err(|_| "the warm-up thread panicked")?
    .map_err(|e| e.to_string())
}

/// Loops made and dropped without `close()`, each on a thread that exits, each with the
/// everyday `let l2 = lp.clone(); lp.call_later(.., move || l2.stop())` pending.
fn unclosed_loops(count: usize) -> Result<(), String> {
    for _ in 0..count {
        thread::spawn(|| -> io::Result<()> {
            let lp = EventLoop::new()?;
            let l2 = lp.clone();
            lp.call_later(3600.0, move || l2.stop())
                .map_err(io::Error::other)?;
            Ok(())
        })
        .join()
        .map_err(|_| "a loop thread panicked")?
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Opens a connection, drops every handle to it, closes and drops the loop. Returns whether
/// the peer saw EOF, and how many fds were left over.
fn unheld_transport() -> Result<(bool, usize), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let fds_before = sys::fd_count().map_err(|e| e.to_string())?;
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let fut = lp.create_connection(
        || Idle,
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    );
    let connection = lp
        .run_until_complete(fut)
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("create_connection: {e}"))?;
    drop(connection);
    let (peer, _) = listener.accept().map_err(|e| e.to_string())?;
    lp.close().map_err(|e| format!("close: {e}"))?;
    drop(lp);
    let eof = sees_eof(peer);
    let fds_after = sys::fd_count().map_err(|e| e.to_string())?;
    Ok((eof, fds_after.saturating_sub(fds_before)))
}

/// Whether `peer` reads end-of-file within 0.3 s.
fn sees_eof(mut peer: std::net::TcpStream) -> bool {
    if peer
        .set_read_timeout(Some(Duration::from_millis(300)))
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(peer.read(&mut buf), Ok(0))
}

/// A value that panics when dropped.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        DELIBERATE.fetch_add(1, Ordering::SeqCst);
        panic!("a destructor that panics (deliberate)");
    }
}

/// A loop with a held transport and a pending callback owning a [`Bomb`]: `close()` must not
/// let the panic escape and must still release the transport. Returns (the panic escaped,
/// the peer saw EOF, fds left over).
fn panicking_drop_at_close() -> Result<(bool, bool, usize), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let fds_before = sys::fd_count().map_err(|e| e.to_string())?;
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let fut = lp.create_connection(
        || Idle,
        ConnectOptions::new().host("127.0.0.1").port(addr.port()),
    );
    let (transport, _protocol) = lp
        .run_until_complete(fut)
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("create_connection: {e}"))?;
    let (peer, _) = listener.accept().map_err(|e| e.to_string())?;
    let bomb = Bomb;
    lp.call_soon(move || drop(bomb))
        .map_err(|e| e.to_string())?;
    let closed = catch_unwind(AssertUnwindSafe(|| lp.close()));
    let escaped = closed.is_err();
    drop(transport);
    drop(lp);
    let eof = sees_eof(peer);
    let fds_after = sys::fd_count().map_err(|e| e.to_string())?;
    Ok((escaped, eof, fds_after.saturating_sub(fds_before)))
}
