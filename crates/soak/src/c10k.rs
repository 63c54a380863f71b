//! C10K: 10,000 connections open at once to the echo server, each sending a random number of
//! bytes that all come back and are checked byte by byte. The clients run in a helper process
//! (on evloop too), so neither side needs more than 10,000 fds.

use std::cell::{Cell, RefCell};
use std::io;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::{ConnectOptions, Protocol, Transport};
use serde_json::{Value, json};

use crate::echo;
use crate::line::Line;
use crate::sys::{self, Rng};
use crate::{Scale, alloc};

/// Fds a process needs beside its connections (loop, listener, std streams, pipes).
const SPARE_FDS: u64 = 64;
/// The largest message a connection sends.
const MAX_SIZE: usize = 16 * 1024;
/// Connections being set up at once (the listen backlog is larger).
const WAVE: usize = 256;
/// The clients' seed (their message sizes); `c10k-multi` sends the same.
pub(crate) const SEED: u64 = 0x00c1_0c4e;

/// Raises the soft fd limit to the hard one; returns how many connections fit, with a note
/// when that is fewer than `want`.
pub(crate) fn fit(want: usize) -> Result<(usize, Option<String>), String> {
    let (_, hard) = sys::nofile().map_err(|e| format!("getrlimit: {e}"))?;
    let soft = sys::set_nofile(hard).map_err(|e| format!("setrlimit: {e}"))?;
    let room = usize::try_from(soft.saturating_sub(SPARE_FDS)).unwrap_or(usize::MAX);
    if room >= want {
        Ok((want, None))
    } else {
        Ok((
            room,
            Some(format!(
                "SCALED DOWN from {want} to {room} connections: RLIMIT_NOFILE hard limit is {hard}"
            )),
        ))
    }
}

/// The test's line (the server's side).
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "c10k",
        "concurrent connections to the echo server, random sizes 1 B-16 KiB, every byte checked",
        |line| server_side(scale, line),
    )
}

fn server_side(scale: &Scale, line: &mut Line) -> Result<(), String> {
    // The quick run keeps the full count too: 10,000 connections take seconds even in debug.
    let want = scale.pick(10_000, 10_000);
    let (n, scaled) = fit(want)?;
    line.amount = format!("{n} connections open at once");
    if let Some(note) = scaled {
        line.amount.push_str(&format!(" ({note})"));
    }
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let (server, addr, stats) = echo::serve(&lp, 4096)?;
    let heap_idle = alloc::live();
    let cmd = sys::helper(
        "c10k-clients",
        &[addr.port().to_string(), n.to_string(), SEED.to_string()],
    )
    .map_err(|e| format!("current_exe: {e}"))?;
    let clients = sys::spawn_captured(cmd).map_err(|e| format!("starting the clients: {e}"))?;
    let clients = Rc::new(RefCell::new(Some(clients)));
    let heap_peak = Rc::new(Cell::new(0usize));
    let deadline = Instant::now() + Duration::from_secs(90);
    let timed_out = Rc::new(Cell::new(false));
    watch_clients(
        &lp,
        clients.clone(),
        stats.clone(),
        heap_peak.clone(),
        n,
        deadline,
        timed_out.clone(),
    );
    lp.run_forever().map_err(|e| format!("run_forever: {e}"))?;
    let captured = clients.borrow_mut().take().ok_or("the clients vanished")?;
    let (status, out, err) = captured.finish(timed_out.get());
    if timed_out.get() {
        line.fail("the clients did not finish within 90 s");
    }
    let report = judge_clients(line, n, status, &out, &err)?;
    line.check(stats.peak.get() == n, || {
        format!(
            "the server held {} connections at once, not {n}",
            stats.peak.get()
        )
    });
    line.check(stats.lost_err.get() == 0, || {
        format!(
            "{} server connections ended in an error",
            stats.lost_err.get()
        )
    });
    // The clients closed; the server sees every connection_lost.
    let until = Instant::now() + Duration::from_secs(10);
    lp.run_forever_setup().map_err(|e| e.to_string())?;
    while stats.open.get() > 0 && Instant::now() < until {
        lp.run_once_timeout(Duration::from_millis(20))
            .map_err(|e| e.to_string())?;
    }
    lp.run_forever_cleanup().map_err(|e| e.to_string())?;
    echo::shut(&lp, &server)?;
    drop(server);
    lp.close().map_err(|e| format!("close: {e}"))?;
    drop(lp);
    let fds_after = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    line.leaked = fds_after.saturating_sub(fds_before) as u64;
    line.check(fds_after <= fds_before, || {
        format!("server fds {fds_before} before, {fds_after} after")
    });
    let per_conn = heap_peak.get().saturating_sub(heap_idle) / n.max(1);
    line.note(format!(
        "{n} connections, {} bytes echoed, server heap ~{per_conn} B per open connection; \
         clients: {}",
        stats.bytes.get(),
        report
    ));
    Ok(())
}

/// Reads the client process's JSON report (its last JSON line) and checks that all `n` clients
/// connected and had their echo verified; bytes that came back wrong or never, and failed
/// clients, count as lost. Returns the report. Shared with the multi-loop line (`c10k_multi`).
pub(crate) fn judge_clients(
    line: &mut Line,
    n: usize,
    status: Option<ExitStatus>,
    out: &str,
    err: &str,
) -> Result<Value, String> {
    let report: Value = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            format!(
                "the clients printed no result ({}): {}",
                sys::describe(status, Duration::from_secs(90)),
                sys::tail(err, 3)
            )
        })?;
    let field = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
    let (connected, verified) = (field("connected"), field("verified"));
    line.lost = field("bad_bytes") + field("missing_bytes") + field("failed");
    line.check(connected == n as u64, || {
        format!("{connected} of {n} clients connected")
    });
    line.check(verified == n as u64, || {
        format!("{verified} of {n} echoes verified")
    });
    Ok(report)
}

/// Every 20 ms: notes the server's heap once all `n` are open, and stops the loop when the
/// clients' process ended or the deadline passed (killing it then).
fn watch_clients(
    lp: &EventLoop,
    clients: Rc<RefCell<Option<sys::Captured>>>,
    stats: Rc<echo::Stats>,
    heap_peak: Rc<Cell<usize>>,
    n: usize,
    deadline: Instant,
    timed_out: Rc<Cell<bool>>,
) {
    let l2 = lp.clone();
    let again = move || {
        if stats.open.get() == n && heap_peak.get() == 0 {
            heap_peak.set(alloc::live());
        }
        let ended = clients
            .borrow_mut()
            .as_mut()
            .is_none_or(|c| !matches!(c.child.try_wait(), Ok(None)));
        if ended {
            l2.stop();
        } else if Instant::now() >= deadline {
            timed_out.set(true);
            l2.stop();
        } else {
            watch_clients(&l2, clients, stats, heap_peak, n, deadline, timed_out);
        }
    };
    if lp.call_later(Duration::from_millis(20), again).is_err() {
        lp.stop();
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    connected: Cell<usize>,
    verified: Cell<usize>,
    bad_bytes: Cell<usize>,
    missing_bytes: Cell<usize>,
    failed: Cell<usize>,
    closed: Cell<usize>,
    target: Cell<usize>,
}

/// One client: checks every byte of its echo against the pattern, then closes.
struct Client {
    id: usize,
    size: usize,
    got: usize,
    bad: usize,
    transport: Option<Transport>,
    tally: Rc<Tally>,
    lp: EventLoop,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.tally.connected.set(self.tally.connected.get() + 1);
    }

    fn data_received(&mut self, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            if *b != sys::pattern(self.id, self.got + i) {
                self.bad += 1;
            }
        }
        self.got += data.len();
        if self.got >= self.size {
            if self.bad == 0 && self.got == self.size {
                self.tally.verified.set(self.tally.verified.get() + 1);
            }
            if let Some(t) = self.transport.take() {
                t.close();
            }
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.transport = None;
        let t = &self.tally;
        t.bad_bytes.set(t.bad_bytes.get() + self.bad);
        t.missing_bytes
            .set(t.missing_bytes.get() + self.size.saturating_sub(self.got));
        if err.is_some() {
            t.failed.set(t.failed.get() + 1);
        }
        t.closed.set(t.closed.get() + 1);
        if t.closed.get() >= t.target.get() {
            self.lp.stop();
        }
    }
}

/// The clients' process: `PORT N SEED`. Prints one JSON line of counts.
pub(crate) fn clients_main(args: &[String]) -> Result<(), String> {
    let [port, n, seed] = args else {
        return Err("usage: c10k-clients PORT N SEED".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port: {e}"))?;
    let n: usize = n.parse().map_err(|e| format!("n: {e}"))?;
    let seed: u64 = seed.parse().map_err(|e| format!("seed: {e}"))?;
    let (_, hard) = sys::nofile().map_err(|e| e.to_string())?;
    sys::set_nofile(hard).map_err(|e| e.to_string())?;
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let tally = Rc::new(Tally::default());
    let mut rng = Rng::new(seed);
    let sizes: Vec<usize> = (0..n).map(|_| rng.range(1, MAX_SIZE)).collect();
    let l2 = lp.clone();
    let t2 = tally.clone();
    let s2 = sizes.clone();
    let connect = async move {
        let mut open = Vec::with_capacity(n);
        for start in (0..n).step_by(WAVE) {
            let mut wave = Vec::new();
            for (id, &size) in s2
                .iter()
                .enumerate()
                .take((start + WAVE).min(n))
                .skip(start)
            {
                let (tally, lp) = (t2.clone(), l2.clone());
                let fut = l2.create_connection(
                    move || Client {
                        id,
                        size,
                        got: 0,
                        bad: 0,
                        transport: None,
                        tally,
                        lp,
                    },
                    ConnectOptions::new().host("127.0.0.1").port(port),
                );
                match l2.create_task(fut) {
                    Ok(task) => wave.push((id, task)),
                    Err(_) => t2.failed.set(t2.failed.get() + 1),
                }
            }
            for (id, task) in wave {
                match task.await {
                    Ok(Ok((transport, _))) => open.push((id, transport)),
                    _ => t2.failed.set(t2.failed.get() + 1),
                }
            }
        }
        open
    };
    let open = lp.run_until_complete(connect).map_err(|e| e.to_string())?;
    // Every connection is open now; each sends its bytes.
    tally.target.set(open.len());
    for (id, transport) in &open {
        let payload: Vec<u8> = (0..sizes[*id]).map(|i| sys::pattern(*id, i)).collect();
        transport.write(&payload);
    }
    drop(open);
    let l3 = lp.clone();
    let _ = lp.call_later(Duration::from_secs(60), move || l3.stop());
    if tally.target.get() > 0 {
        lp.run_forever().map_err(|e| e.to_string())?;
    }
    let unfinished = tally.target.get().saturating_sub(tally.closed.get());
    println!(
        "{}",
        json!({
            "connected": tally.connected.get(),
            "verified": tally.verified.get(),
            "bad_bytes": tally.bad_bytes.get(),
            "missing_bytes": tally.missing_bytes.get(),
            "failed": tally.failed.get() + unfinished,
        })
    );
    lp.close().map_err(|e| e.to_string())?;
    Ok(())
}
