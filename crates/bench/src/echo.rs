//! The echo groups: TCP echo servers on loopback, each in its own process pinned to one core,
//! driven by a load pinned to another.
//!
//! - `echo_<size>_c<conns>`: our closed-loop load client ([`crate::echo_client`])
//!   with `conns` connections and `size`-byte messages, every byte checked; metrics `rps` and
//!   `p99_us`, and each subject's paired ratios to `epoll` and `tokio`;
//! - `echo_cpu_fixed_load`: the server's CPU time per request while `redis-benchmark` sends a
//!   fixed number of 1 KiB `ECHO` requests (an echo server's reply is the request itself, which
//!   redis-benchmark reads as a valid array reply);
//! - `idle_conn_memory`: the server's RSS growth per idle connection with 10,000 open.
//!
//! Subjects are interleaved within each repeat: for each repeat and cell, fresh servers of every
//! subject are started side by side and the load visits them in turn, a short slice at a time,
//! the order rotating between slices and repeats (`echo_cpu_fixed_load` and `idle_conn_memory`
//! start a fresh server per measurement, subject after subject). Absolute figures drift between
//! minutes on a shared machine; the paired ratios (a subject against `epoll` or `tokio` in the
//! same repeat and cell, then the median over repeats) are what counts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::echo_client::{
    self, Load, PATTERN_PERIOD, percentile, pin_current_thread, thread_cpu_ns,
};
use crate::echo_proc::{CLIENT_CPU, Launch, ServerProc, can_pin, python_launches};
use crate::echo_servers::{SERVERS, raise_nofile_limit};
use crate::harness::{Ctx, median};
use crate::sys::{pinned, run_with_limit};

/// The group every note and skip that concerns all echo cells goes under.
const GROUP: &str = "echo";

/// The throughput cells: `(group, message bytes, connections)`; 1k is 1 KiB.
const CELLS: &[(&str, usize, usize)] = &[
    ("echo_1k_c10", 1024, 10),
    ("echo_1k_c100", 1024, 100),
    ("echo_10k_c10", 10 * 1024, 10),
    ("echo_10k_c100", 10 * 1024, 100),
    ("echo_100k_c10", 100 * 1024, 10),
];

/// The counted time of one throughput slice, its uncounted warm-up (connecting, first rounds),
/// and the slices per subject and cell. All subjects' servers of a cell run side by side (an
/// idle one costs nothing) and the load visits them in turn, slice by slice, so that a drift of
/// the machine's speed hits every subject alike.
const FULL_RUN: (Duration, Duration, usize) =
    (Duration::from_millis(500), Duration::from_millis(50), 4);

/// The same in smoke mode: long enough for every subject to echo some rounds correctly.
const SMOKE_RUN: (Duration, Duration, usize) =
    (Duration::from_millis(100), Duration::from_millis(20), 1);

/// The subjects the ratios are taken against.
const REFERENCES: [&str; 2] = ["epoll", "tokio"];

/// Runs every echo group.
pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    let mut launches: Vec<Launch> = SERVERS.iter().map(|(name, _)| Launch::Rust(name)).collect();
    launches.extend(python_launches(ctx, GROUP));
    let pinning = if can_pin() {
        format!(
            "servers pinned to CPU {} (taskset), load to CPU {CLIENT_CPU} (sched_setaffinity)",
            crate::echo_proc::SERVER_CPU
        )
    } else {
        "one core only: server and load are not pinned".to_string()
    };
    ctx.note(GROUP, &format!("loopback TCP; every server in its own process, fresh ones for every cell and repeat; {pinning}; subjects interleaved within each repeat; *_vs_epoll / *_vs_tokio are the medians of ratios paired within each repeat"));
    ctx.note(GROUP, "epoll: bare libc epoll, level-triggered, one 256 KiB read buffer for all connections, per-connection pending bytes + EPOLLOUT on partial writes (the limit); tokio: current_thread runtime, a spawned task per connection, read_buf into a 64 KiB Vec's spare capacity + write_all; evloop_sock: sock_accept / sock_recv(64 KiB) / sock_sendall, a task per connection (asyncio's sock echo shape; sock_recv rather than sock_recv_into, whose buffer must be zeroed and so would be resident on every idle connection); asyncio/uvloop/evloop_py: python/echo_server.py, a Protocol echo (write in data_received); asyncio_sock/uvloop_sock/evloop_py_sock: the same script and loops serving asyncio's sock echo shape (sock_accept, a task per connection doing sock_recv(65536) then sock_sendall)");
    ctx.note(GROUP, &crate::echo_mc::note());
    let load_before = load_average();
    throughput(ctx, &launches)?;
    cpu_fixed_load(ctx, &launches)?;
    idle_memory(ctx, &launches)?;
    let text = format!(
        "load average (1 min, /proc/loadavg) before the echo groups: {load_before}, after: {}; other processes on the two cores disturb every figure",
        load_average()
    );
    ctx.note(GROUP, &text);
    Ok(())
}

/// The 1-minute load average, or `unknown`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Runs `f` on a thread of its own pinned to [`CLIENT_CPU`] (when [`can_pin`]), so that the
/// pinning never sticks to the benchmark's main thread.
fn on_client_cpu<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    thread::spawn(move || {
        if can_pin() {
            if let Err(e) = pin_current_thread(CLIENT_CPU) {
                eprintln!("evloop-bench: cannot pin the load to CPU {CLIENT_CPU}: {e}");
            }
        }
        f()
    })
    .join()
    .map_err(|_| "the load client panicked".to_string())?
}

/// The order of the subjects in repeat `repeat`: rotated, so that none is always first.
fn rotation(len: usize, repeat: usize) -> impl Iterator<Item = usize> {
    (0..len).map(move |i| (i + repeat) % len.max(1))
}

/// The median over repeats of `values[s][r] / values[reference][r]`, or None without a
/// reference among the subjects.
fn paired_ratio(values: &[Vec<f64>], s: usize, reference: Option<usize>) -> Option<f64> {
    let reference = reference?;
    let mut ratios: Vec<f64> = values[s]
        .iter()
        .zip(&values[reference])
        .map(|(ours, theirs)| ours / theirs)
        .collect();
    Some(median(&mut ratios))
}

// ----- echo_<size>_c<conns> -------------------------------------------------------------------

fn throughput(ctx: &mut Ctx, launches: &[Launch]) -> Result<(), String> {
    let (duration, warmup, slices) = if ctx.smoke { SMOKE_RUN } else { FULL_RUN };
    // figures[cell][subject][repeat].
    let mut figures = vec![vec![Vec::new(); launches.len()]; CELLS.len()];
    for repeat in 0..ctx.repeats() {
        for (c, &(group, size, conns)) in CELLS.iter().enumerate() {
            let load = Load {
                size,
                conns,
                warmup,
                duration,
            };
            let cell =
                measure_cell(launches, load, slices, repeat).map_err(|e| format!("{group}/{e}"))?;
            for (s, f) in cell.into_iter().enumerate() {
                figures[c][s].push(f);
            }
        }
    }
    let references = REFERENCES.map(|r| launches.iter().position(|l| l.subject() == r));
    for (c, &(group, _, _)) in CELLS.iter().enumerate() {
        let rps: Vec<Vec<f64>> = figures[c]
            .iter()
            .map(|repeats| repeats.iter().map(|f| f.rps).collect())
            .collect();
        for (s, launch) in launches.iter().enumerate() {
            let subject = launch.subject();
            let median_of = |field: fn(&CellFigures) -> f64| {
                median(&mut figures[c][s].iter().map(field).collect::<Vec<_>>())
            };
            ctx.record(group, subject, "rps", median_of(|f| f.rps), "req/s");
            ctx.record(group, subject, "p99_us", median_of(|f| f.p99_us), "us");
            for (name, reference) in REFERENCES.iter().zip(references) {
                if reference == Some(s) {
                    continue;
                }
                if let Some(ratio) = paired_ratio(&rps, s, reference) {
                    ctx.record(group, subject, &format!("rps_vs_{name}"), ratio, "×");
                }
            }
            let server_cpu = median_of(|f| f.server_cpu_pct);
            let client_cpu = median_of(|f| f.client_cpu_pct);
            ctx.record(group, subject, "server_cpu", server_cpu, "%");
            ctx.record(group, subject, "client_cpu", client_cpu, "%");
        }
    }
    ctx.note(GROUP, &format!("echo_<size>_c<conns>: per repeat and cell, {slices} slice(s) per subject of {} ms counted after {} ms of warm-up, subjects taking turns slice by slice; rps = round trips / counted time, p99 over every counted round trip; server_cpu / client_cpu: CPU time of the server process / of the load thread over the slices' wall time (100% = one core; a client near 100% means the client may be the limit)", duration.as_millis(), warmup.as_millis()));
    Ok(())
}

/// What one subject did in one cell of one repeat.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CellFigures {
    rps: f64,
    p99_us: f64,
    /// The server's CPU time over the wall time of its slices, in percent (100: one core).
    server_cpu_pct: f64,
    /// The load client's thread CPU time over the same wall time: near 100 means the client,
    /// not the server, may be what limits `rps`.
    client_cpu_pct: f64,
}

/// One cell of one repeat: every subject's figures, in the order of `launches`; an error
/// names the subject.
fn measure_cell(
    launches: &[Launch],
    load: Load,
    slices: usize,
    repeat: usize,
) -> Result<Vec<CellFigures>, String> {
    let mut servers = Vec::with_capacity(launches.len());
    for launch in launches {
        servers.push(ServerProc::start(launch).map_err(|e| format!("{}: {e}", launch.subject()))?);
    }
    let n = launches.len();
    let mut requests = vec![0usize; n];
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); n];
    // Per subject: wall, server CPU and client CPU time of its slices, in ns.
    let mut wall_ns = vec![0u64; n];
    let mut server_ns = vec![0u64; n];
    let mut client_ns = vec![0u64; n];
    for slice in 0..slices {
        for s in rotation(n, repeat + slice) {
            let named = |e: String| format!("{}: {e}", launches[s].subject());
            let addr = servers[s].addr;
            let server_before = servers[s].cpu_ns().map_err(named)?;
            let started = Instant::now();
            let (out, client) = on_client_cpu(move || {
                let before = thread_cpu_ns();
                let out = echo_client::run(addr, load)?;
                Ok((out, thread_cpu_ns().saturating_sub(before)))
            })
            .map_err(named)?;
            wall_ns[s] += u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            server_ns[s] += servers[s]
                .cpu_ns()
                .map_err(named)?
                .saturating_sub(server_before);
            client_ns[s] += client;
            requests[s] += out.requests;
            latencies[s].extend(out.latencies_us);
        }
    }
    let counted = load.duration.as_secs_f64() * slices as f64;
    let mut figures = Vec::with_capacity(n);
    for (s, server) in servers.iter_mut().enumerate() {
        server
            .check_alive()
            .map_err(|e| format!("{}: {e}", launches[s].subject()))?;
        latencies[s].sort_by(f64::total_cmp);
        let wall = wall_ns[s].max(1) as f64;
        figures.push(CellFigures {
            rps: requests[s] as f64 / counted,
            p99_us: percentile(&latencies[s], 99.0),
            server_cpu_pct: server_ns[s] as f64 / wall * 100.0,
            client_cpu_pct: client_ns[s] as f64 / wall * 100.0,
        });
    }
    Ok(figures)
}

// ----- echo_cpu_fixed_load --------------------------------------------------------------------

/// redis-benchmark's connections and the size of its `ECHO` argument.
const REDIS_CONNS: usize = 10;
const REDIS_ARG_BYTES: usize = 1024;

/// How long one redis-benchmark run may take before it is killed (a wrong result).
const REDIS_LIMIT: Duration = Duration::from_secs(120);

fn cpu_fixed_load(ctx: &mut Ctx, launches: &[Launch]) -> Result<(), String> {
    let group = "echo_cpu_fixed_load";
    if !redis_benchmark_available() {
        for launch in launches {
            ctx.skip(group, launch.subject(), "redis-benchmark is not installed");
        }
        return Ok(());
    }
    // 100,000 requests (about 2 s a subject): with 20,000 the figure moved ±10% between runs,
    // more than the 3% the target allows.
    let requests = if ctx.smoke { 200 } else { 100_000 };
    let mut cpu_us = vec![Vec::new(); launches.len()];
    let mut rps = vec![Vec::new(); launches.len()];
    for repeat in 0..ctx.repeats() {
        for s in rotation(launches.len(), repeat) {
            let launch = &launches[s];
            let (cpu, rate) = measure_redis(launch, requests)
                .map_err(|e| format!("{group}/{}: {e}", launch.subject()))?;
            cpu_us[s].push(cpu);
            rps[s].push(rate);
        }
    }
    let epoll = launches.iter().position(|l| l.subject() == "epoll");
    for (s, launch) in launches.iter().enumerate() {
        let subject = launch.subject();
        let cpu = median(&mut cpu_us[s].clone());
        ctx.record(group, subject, "cpu_us_per_req", cpu, "us");
        ctx.record(group, subject, "rps", median(&mut rps[s]), "req/s");
        if epoll != Some(s) {
            if let Some(ratio) = paired_ratio(&cpu_us, s, epoll) {
                ctx.record(group, subject, "cpu_vs_epoll", ratio, "×");
            }
        }
    }
    ctx.note(group, &format!("redis-benchmark -c {REDIS_CONNS} -n {requests} -q ECHO <{REDIS_ARG_BYTES} bytes>, pinned to CPU {CLIENT_CPU}; server CPU = sum over its threads of /proc/PID/task/*/schedstat (ns) across the run, divided by the requests"));
    Ok(())
}

fn redis_benchmark_available() -> bool {
    Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One redis-benchmark run: the server's CPU µs per request and redis-benchmark's rate.
fn measure_redis(launch: &Launch, requests: usize) -> Result<(f64, f64), String> {
    let mut server = ServerProc::start(launch)?;
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", "127.0.0.1", "-p"])
        .arg(server.addr.port().to_string())
        .args(["-c", &REDIS_CONNS.to_string(), "-n", &requests.to_string()])
        .args(["-q", "ECHO"])
        .arg("x".repeat(REDIS_ARG_BYTES));
    if can_pin() {
        pinned(&mut cmd, CLIENT_CPU);
    }
    let before = server.cpu_ns()?;
    let done =
        run_with_limit(&mut cmd, REDIS_LIMIT).map_err(|e| format!("redis-benchmark: {e}"))?;
    let after = server.cpu_ns()?;
    server.check_alive()?;
    let rate = redis_rate(&done.stdout, &done.stderr)
        .map_err(|e| format!("redis-benchmark ({}): {e}", done.status))?;
    if !done.status.success() {
        return Err(format!("redis-benchmark exited with {}", done.status));
    }
    let cpu_us = after.saturating_sub(before) as f64 / 1e3 / requests as f64;
    Ok((cpu_us, rate))
}

/// The requests per second of redis-benchmark's `-q` output: the last progress segment (they
/// are separated by `\r`) reading `ECHO <arg>: 24600.25 requests per second, ...`. Any `error`
/// in either output is a wrong result.
fn redis_rate(stdout: &str, stderr: &str) -> Result<f64, String> {
    for text in [stdout, stderr] {
        if let Some(line) = text
            .split(['\r', '\n'])
            .find(|l| l.to_ascii_lowercase().contains("error"))
        {
            return Err(format!("reported an error: {}", line.trim()));
        }
    }
    let segment = stdout
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))
        .ok_or_else(|| "no `requests per second` in its output".to_string())?;
    let (_, after) = segment
        .rsplit_once(": ")
        .ok_or_else(|| format!("unreadable summary {:?}", last_chars(segment)))?;
    after
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("unreadable summary {:?}", last_chars(segment)))
}

/// The end of a long line (the `ECHO` argument makes them 1 KiB long), for a message.
fn last_chars(line: &str) -> &str {
    let start = line.len().saturating_sub(80);
    line.get(start..).unwrap_or(line)
}

// ----- idle_conn_memory -----------------------------------------------------------------------

/// How long one idle connection's first round trip may take before it is a wrong result.
const IDLE_IO_LIMIT: Duration = Duration::from_secs(10);

/// What the server may still be doing after the last connection's round trip (a Python server
/// allocates lazily) before its RSS is read.
const IDLE_SETTLE: Duration = Duration::from_millis(100);

/// File descriptors the benchmark keeps for itself beyond the idle connections.
const FD_HEADROOM: u64 = 64;

fn idle_memory(ctx: &mut Ctx, launches: &[Launch]) -> Result<(), String> {
    let group = "idle_conn_memory";
    let count = ctx.n(10_000).max(100);
    let limit = raise_nofile_limit().unwrap_or(0);
    if limit < count as u64 + FD_HEADROOM {
        for launch in launches {
            let reason = format!("RLIMIT_NOFILE is {limit}, {count} connections need more");
            ctx.skip(group, launch.subject(), &reason);
        }
        return Ok(());
    }
    let mut per_conn = vec![Vec::new(); launches.len()];
    for repeat in 0..ctx.repeats() {
        for s in rotation(launches.len(), repeat) {
            let launch = &launches[s];
            let bytes = measure_idle(launch, count)
                .map_err(|e| format!("{group}/{}: {e}", launch.subject()))?;
            per_conn[s].push(bytes);
        }
    }
    for (s, launch) in launches.iter().enumerate() {
        ctx.record(
            group,
            launch.subject(),
            "bytes_per_conn",
            median(&mut per_conn[s]),
            "B",
        );
    }
    ctx.note(group, &format!("{count} connections opened one after another, each with a 1-byte round trip so the server has accepted it; (VmRSS after the last - VmRSS before the first) / {count}, read {} ms after the last", IDLE_SETTLE.as_millis()));
    Ok(())
}

/// The server's RSS growth per connection with `count` idle connections open.
fn measure_idle(launch: &Launch, count: usize) -> Result<f64, String> {
    let server = ServerProc::start(launch)?;
    let addr = server.addr;
    let before = server.rss_bytes()?;
    let conns = on_client_cpu(move || open_idle(addr, count))?;
    thread::sleep(IDLE_SETTLE);
    let after = server.rss_bytes()?;
    drop(conns);
    Ok((after as f64 - before as f64) / count as f64)
}

/// Opens `count` connections to `addr`, each echoing one byte back, and keeps them open.
fn open_idle(addr: SocketAddr, count: usize) -> Result<Vec<TcpStream>, String> {
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let fail = |e: std::io::Error| format!("idle connection #{i}: {e}");
        let mut stream = TcpStream::connect(addr).map_err(fail)?;
        stream.set_nodelay(true).map_err(fail)?;
        stream.set_read_timeout(Some(IDLE_IO_LIMIT)).map_err(fail)?;
        let byte = [u8::try_from(i % PATTERN_PERIOD).unwrap_or(0)];
        stream.write_all(&byte).map_err(fail)?;
        let mut back = [0u8; 1];
        stream.read_exact(&mut back).map_err(fail)?;
        if back != byte {
            return Err(format!(
                "idle connection #{i}: sent {}, got {} back",
                byte[0], back[0]
            ));
        }
        conns.push(stream);
    }
    Ok(conns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_visits_every_subject_once_starting_elsewhere() {
        assert_eq!(rotation(4, 0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(rotation(4, 1).collect::<Vec<_>>(), [1, 2, 3, 0]);
        assert_eq!(rotation(4, 6).collect::<Vec<_>>(), [2, 3, 0, 1]);
        assert_eq!(rotation(0, 3).count(), 0);
    }

    #[test]
    fn ratios_are_paired_within_a_repeat_then_the_median() {
        // Subject 0 drifts with the machine; its ratio to subject 1 stays near 0.5.
        let values = vec![vec![50.0, 100.0, 20.0], vec![100.0, 190.0, 40.0]];
        assert_eq!(paired_ratio(&values, 0, Some(1)), Some(0.5));
        assert_eq!(paired_ratio(&values, 1, Some(1)), Some(1.0));
        assert_eq!(paired_ratio(&values, 0, None), None);
    }

    #[test]
    fn redis_rate_reads_the_last_summary() {
        let out = "ECHO xxx: rps=0.0 (overall: 0.0) avg_msec=-nan\r ECHO xxx: rps=24565.7\rECHO xxx: 24600.25 requests per second, p50=0.287 msec\n";
        assert_eq!(redis_rate(out, ""), Ok(24600.25));
        assert_eq!(
            redis_rate("", ""),
            Err("no `requests per second` in its output".to_string())
        );
        let err = redis_rate(out, "Error: Connection reset by peer\n").err();
        assert_eq!(
            err.as_deref(),
            Some("reported an error: Error: Connection reset by peer")
        );
    }

    #[test]
    fn cells_are_named_after_their_shape() {
        for (name, size, conns) in CELLS {
            assert_eq!(*name, format!("echo_{}k_c{conns}", size / 1024));
        }
    }
}
