//! EMFILE: the server runs with `RLIMIT_NOFILE` 64 while 200 clients connect. Accepting runs out
//! of fds: that must be reported to the exception handler, must not spin (the CPU time over the
//! episode is measured with getrusage), and every client must be served once fds free up. This
//! test always runs in a child process, so the limit touches nothing else.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::prelude::*;

use crate::Scale;
use crate::echo;
use crate::line::Line;
use crate::sys;

/// The server's fd limit.
const LIMIT: u64 = 64;
/// CPU time over wall time above which the episode counts as a spin.
const SPIN_RATIO: f64 = 0.3;

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "emfile",
        "RLIMIT_NOFILE 64 on the server, clients connect at once and wait for their echo",
        |line| emfile(scale, line),
    )
}

fn emfile(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let clients = scale.pick(200, 200);
    line.amount = format!("{clients} clients, server fd limit {LIMIT} (same in the quick run)");
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let reports = Rc::new(Cell::new(0usize));
    let r2 = reports.clone();
    lp.set_exception_handler(Some(Rc::new(move |lp: &EventLoop, ctx: &Context| {
        if ctx.message().contains("out of system resource") {
            r2.set(r2.get() + 1);
        } else {
            lp.default_exception_handler(ctx);
        }
    })));
    let (server, addr, stats) = echo::serve(&lp, 1024)?;
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let cmd = sys::helper("emfile-clients", &[addr.to_string(), clients.to_string()])
        .map_err(|e| format!("current_exe: {e}"))?;
    let helper = sys::spawn_captured(cmd).map_err(|e| format!("starting the clients: {e}"))?;
    let old = sys::nofile().map_err(|e| e.to_string())?.0;
    sys::set_nofile(LIMIT).map_err(|e| format!("setrlimit: {e}"))?;
    let cpu_start = sys::cpu_time();
    let wall_start = Instant::now();
    let helper = Rc::new(std::cell::RefCell::new(helper));
    let deadline = wall_start + Duration::from_secs(45);
    let timed_out = Rc::new(Cell::new(false));
    poll_helper(&lp, helper.clone(), deadline, timed_out.clone());
    lp.run_forever().map_err(|e| format!("run_forever: {e}"))?;
    let cpu = sys::cpu_time().saturating_sub(cpu_start);
    let wall = wall_start.elapsed();
    sys::set_nofile(old).map_err(|e| format!("setrlimit: {e}"))?;
    let helper = Rc::try_unwrap(helper)
        .map_err(|_| "the helper is still shared")?
        .into_inner();
    let (status, out, err) = helper.finish(timed_out.get());
    let served: usize = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("served ")?.parse().ok())
        .ok_or_else(|| {
            format!(
                "the clients printed no result ({}): {}",
                sys::describe(status, Duration::from_secs(45)),
                sys::tail(&err, 3)
            )
        })?;
    line.lost = (clients - served.min(clients)) as u64;
    line.check(served == clients, || {
        format!("{served} of {clients} clients served")
    });
    line.check(reports.get() > 0, || {
        "EMFILE was never reported".to_string()
    });
    let ratio = cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9);
    line.check(ratio < SPIN_RATIO, || {
        format!(
            "spin: {:.2} s of CPU in {:.2} s (ratio {ratio:.2}, limit {SPIN_RATIO})",
            cpu.as_secs_f64(),
            wall.as_secs_f64()
        )
    });
    // Recovery: with the limit back, a new client is served at once.
    let until = Instant::now() + Duration::from_secs(10);
    lp.run_forever_setup().map_err(|e| e.to_string())?;
    while stats.open.get() > 0 && Instant::now() < until {
        lp.run_once_timeout(Duration::from_millis(20))
            .map_err(|e| e.to_string())?;
    }
    lp.run_forever_cleanup().map_err(|e| e.to_string())?;
    let fds_after = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    line.leaked = fds_after.saturating_sub(fds_before) as u64;
    line.check(fds_after <= fds_before, || {
        format!("server fds {fds_before} before, {fds_after} after")
    });
    let echoed = one_more(&lp, addr);
    line.check(echoed.is_ok(), || {
        format!("after the episode a new client was not served: {echoed:?}")
    });
    line.note(format!(
        "EMFILE reported {} times; {:.3} s CPU over {:.2} s ({:.1}%); {served} of {clients} served",
        reports.get(),
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        ratio * 100.0
    ));
    echo::shut(&lp, &server)?;
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// One client on a thread while the loop runs: its echo must come back.
fn one_more(lp: &EventLoop, addr: SocketAddr) -> Result<(), String> {
    let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"again")?;
        let mut got = [0u8; 5];
        s.read_exact(&mut got)?;
        Ok(got.to_vec())
    });
    let until = Instant::now() + Duration::from_secs(6);
    lp.run_forever_setup().map_err(|e| e.to_string())?;
    while !client.is_finished() && Instant::now() < until {
        lp.run_once_timeout(Duration::from_millis(10))
            .map_err(|e| e.to_string())?;
    }
    lp.run_forever_cleanup().map_err(|e| e.to_string())?;
    match client.join() {
        Ok(Ok(got)) if got == b"again" => Ok(()),
        Ok(Ok(got)) => Err(format!("echo {got:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the client panicked".into()),
    }
}

/// Every 10 ms: stops the loop once the clients' process ended or the deadline passed.
fn poll_helper(
    lp: &EventLoop,
    helper: Rc<std::cell::RefCell<sys::Captured>>,
    deadline: Instant,
    timed_out: Rc<Cell<bool>>,
) {
    let l2 = lp.clone();
    let tick = move || {
        let ended = !matches!(helper.borrow_mut().child.try_wait(), Ok(None));
        if ended {
            l2.stop();
        } else if Instant::now() >= deadline {
            timed_out.set(true);
            l2.stop();
        } else {
            poll_helper(&l2, helper, deadline, timed_out);
        }
    };
    if lp.call_later(Duration::from_millis(10), tick).is_err() {
        lp.stop();
    }
}

/// The clients' process: `ADDR N`. Opens N connections at once, sends a byte on each, then in
/// order waits for each echo (up to 20 s) and closes it. Prints `served K`.
pub(crate) fn clients_main(args: &[String]) -> Result<(), String> {
    let [addr, n] = args else {
        return Err("usage: emfile-clients ADDR N".into());
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("addr: {e}"))?;
    let n: usize = n.parse().map_err(|e| format!("n: {e}"))?;
    let mut conns = Vec::new();
    for i in 0..n {
        let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
        s.write_all(&[i.to_le_bytes()[0]])
            .map_err(|e| format!("write {i}: {e}"))?;
        conns.push(s);
    }
    let mut served = 0;
    for (i, mut s) in conns.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut got = [0u8; 1];
        if s.read_exact(&mut got).is_ok() && got[0] == i.to_le_bytes()[0] {
            served += 1;
        }
    }
    println!("served {served}");
    Ok(())
}
