//! C10K on many loops: the C10K line's 10,000 connections, same clients (`c10k-clients`), to
//! an echo server of one loop per CPU (at least two) made with `LoopGroup`, each loop with its
//! own `reuse_port` listener on one port. Besides every byte, it checks that the kernel spread
//! the connections over every loop, that the group stops from another thread, and that no
//! thread and no fd is left after `join`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::{LoopGroup, LoopGroupOptions, Protocol, ServerOptions, Transport};

use crate::c10k::{SEED, fit};
use crate::line::Line;
use crate::sys;
use crate::{Scale, alloc};

/// The prefix of the server loops' thread names, counted in `/proc/self/task` after `join`.
const THREADS: &str = "c10k-mc";

/// What the loops saw, shared by every loop's protocols (the loops run on threads of their
/// own, so the counts are atomic).
#[derive(Default)]
struct Stats {
    open: AtomicUsize,
    peak: AtomicUsize,
    lost_err: AtomicUsize,
    bytes: AtomicUsize,
    /// Connections accepted per loop.
    per_loop: Vec<AtomicUsize>,
}

/// Writes every chunk straight back, counting.
struct Echo {
    transport: Option<Transport>,
    stats: Arc<Stats>,
    index: usize,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        let s = &self.stats;
        let open = s.open.fetch_add(1, Ordering::SeqCst) + 1;
        s.peak.fetch_max(open, Ordering::SeqCst);
        if let Some(count) = s.per_loop.get(self.index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.stats.bytes.fetch_add(data.len(), Ordering::Relaxed);
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.transport = None;
        self.stats.open.fetch_sub(1, Ordering::SeqCst);
        if err.is_some() {
            self.stats.lost_err.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The test's line (the server's side).
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "c10k-multi",
        "concurrent connections to a LoopGroup echo server (one reuse_port loop per CPU, at least 2), random sizes 1 B-16 KiB, every byte checked",
        |line| server_side(scale, line),
    )
}

fn server_side(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let want = scale.pick(10_000, 10_000);
    let (n, scaled) = fit(want)?;
    let loops = std::thread::available_parallelism().map_or(2, |p| p.get().max(2));
    line.amount = format!("{n} connections open at once over {loops} loops");
    if let Some(note) = scaled {
        line.amount.push_str(&format!(" ({note})"));
    }
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let stats = Arc::new(Stats {
        per_loop: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
        ..Stats::default()
    });
    let s2 = stats.clone();
    let options = LoopGroupOptions::new().loops(loops).thread_name(THREADS);
    let group = LoopGroup::spawn(options, move |lp, seat| {
        let port = seat.first().map_or(0, |first: &u16| *first);
        let (stats, index) = (s2.clone(), seat.index());
        let factory = move || Echo {
            transport: None,
            stats: stats.clone(),
            index,
        };
        let options = ServerOptions::new()
            .host("127.0.0.1")
            .port(port)
            .reuse_port(true)
            .backlog(4096);
        let server = lp.run_until_complete(lp.create_server(factory, options))??;
        let port = server.sockets()[0]
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("not an inet address"))?;
        seat.keep(server);
        Ok(port)
    })
    .map_err(|e| format!("LoopGroup::spawn: {e}"))?;
    let port = group.values()[0];
    let heap_idle = alloc::live();
    let cmd = sys::helper(
        "c10k-clients",
        &[port.to_string(), n.to_string(), SEED.to_string()],
    )
    .map_err(|e| format!("current_exe: {e}"))?;
    let mut clients = sys::spawn_captured(cmd).map_err(|e| format!("starting the clients: {e}"))?;
    // The loops serve on their threads; this thread watches the clients.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut heap_peak = 0;
    let mut timed_out = false;
    while matches!(clients.child.try_wait(), Ok(None)) {
        if stats.open.load(Ordering::SeqCst) == n && heap_peak == 0 {
            heap_peak = alloc::live();
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, out, err) = clients.finish(timed_out);
    if timed_out {
        line.fail("the clients did not finish within 90 s");
    }
    let report = crate::c10k::judge_clients(line, n, status, &out, &err)?;
    let peak = stats.peak.load(Ordering::SeqCst);
    line.check(peak == n, || {
        format!("the loops held {peak} connections at once, not {n}")
    });
    let lost_err = stats.lost_err.load(Ordering::SeqCst);
    line.check(lost_err == 0, || {
        format!("{lost_err} server connections ended in an error")
    });
    let per_loop: Vec<usize> = stats
        .per_loop
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    // 10,000 connections hashed over a few listeners: a loop with none means the listeners
    // did not share the port.
    line.check(per_loop.iter().all(|&c| c > 0), || {
        format!("a loop served no connection: {per_loop:?}")
    });
    // The clients closed; every loop sees its connection_lost.
    let until = Instant::now() + Duration::from_secs(10);
    while stats.open.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped from this thread, which is none of the loops'.
    let stopper = group.stopper();
    stopper.stop();
    if let Err(e) = group.join() {
        line.fail(format!("join: {e}"));
    }
    let threads_left = threads_named(THREADS).map_err(|e| format!("/proc/self/task: {e}"))?;
    line.check(threads_left == 0, || {
        format!("{threads_left} loop threads still alive after join")
    });
    let fds_after = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    line.leaked = fds_after.saturating_sub(fds_before) as u64 + threads_left as u64;
    line.check(fds_after <= fds_before, || {
        format!("server fds {fds_before} before, {fds_after} after")
    });
    let per_conn = heap_peak.saturating_sub(heap_idle) / n.max(1);
    line.note(format!(
        "{n} connections over {loops} loops, accepted per loop {per_loop:?}, {} bytes echoed, \
         server heap ~{per_conn} B per open connection; clients: {report}",
        stats.bytes.load(Ordering::Relaxed),
    ));
    Ok(())
}

/// The threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> io::Result<usize> {
    let mut count = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            count += 1;
        }
    }
    Ok(count)
}
