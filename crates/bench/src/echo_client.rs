//! The echo load client: closed loop, single-threaded, on a bare level-triggered epoll, so that
//! it is never the bottleneck of the server it measures.
//!
//! Each of `conns` connections sends `size` bytes of a known pattern, waits until all `size`
//! have come back, checks every byte, records the round trip's latency and starts the next
//! round, until the run's time is up. A wrong byte, a byte too many or a closed connection is a
//! wrong result (`Err`); so is a server that makes no progress for [`STALL_LIMIT`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::echo_epoll::{Epoll, READ, WRITE};

/// The pattern repeats every this many bytes. A prime, so that the start offsets
/// [`round_offset`] gives differ between connections and between consecutive rounds, and a
/// byte echoed to the wrong connection or from an earlier round is caught.
pub(crate) const PATTERN_PERIOD: usize = 251;

/// A server that moves no byte for this long has stalled: the run fails instead of hanging.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(5);

/// How long one `epoll_wait` may sleep, so that the clock is looked at regularly.
const WAIT_MS: i32 = 100;

/// The largest read the client does at once: 64 KiB, the same against every subject.
const READ_CHUNK: usize = 64 * 1024;

/// One load run's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Bytes per request (and per echoed reply).
    pub(crate) size: usize,
    /// Concurrent connections, each with one request in flight.
    pub(crate) conns: usize,
    /// Rounds completed before this much time has passed are not counted.
    pub(crate) warmup: Duration,
    /// How long the counted part lasts.
    pub(crate) duration: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// Round trips completed per second in the counted part.
    pub(crate) rps: f64,
    /// The 99th percentile of the latency of the round trips started and completed in the
    /// counted part, in µs; NaN if there were none.
    pub(crate) p99_us: f64,
    /// Round trips completed in the counted part.
    pub(crate) requests: usize,
    /// The latencies behind `p99_us`, sorted, in µs.
    pub(crate) latencies_us: Vec<f64>,
}

/// The pattern every request is cut from: byte `i` is `i % PATTERN_PERIOD`, long enough for a
/// request of `size` bytes at any start offset.
pub(crate) fn pattern(size: usize) -> Vec<u8> {
    (0..size + PATTERN_PERIOD)
        .map(|i| u8::try_from(i % PATTERN_PERIOD).unwrap_or(0))
        .collect()
}

/// How far apart the start offsets of neighbouring connections are; coprime with
/// [`PATTERN_PERIOD`], so up to 251 connections all start at different offsets.
const CONN_STRIDE: usize = 31;

/// How far a connection's start offset moves from one round to the next; coprime with
/// [`PATTERN_PERIOD`] and different from [`CONN_STRIDE`].
const ROUND_STRIDE: usize = 7;

/// Where in [`pattern`] the request of connection `conn` in round `round` starts.
pub(crate) fn round_offset(conn: usize, round: u64) -> usize {
    let round = usize::try_from(round % PATTERN_PERIOD as u64).unwrap_or(0);
    (conn % PATTERN_PERIOD * CONN_STRIDE + round * ROUND_STRIDE) % PATTERN_PERIOD
}

/// The index of the first byte where `got` differs from `expected` (which is at least as long),
/// or `None` when they agree.
pub(crate) fn first_mismatch(expected: &[u8], got: &[u8]) -> Option<usize> {
    let Some(expected) = expected.get(..got.len()) else {
        // More came back than was expected: the first extra byte is wrong.
        return Some(expected.len());
    };
    if expected == got {
        return None;
    }
    expected.iter().zip(got).position(|(a, b)| a != b)
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method; NaN when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One connection's state.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    round: u64,
    /// Where this round's request starts in the pattern.
    offset: usize,
    sent: usize,
    received: usize,
    started: Instant,
    /// Whether `WRITE` is in the epoll interest.
    writing: bool,
    /// Whether a round is in flight.
    busy: bool,
}

/// Runs `load` against the echo server at `addr` and checks every byte that comes back.
///
/// # Errors
///
/// A connection that cannot be made or is closed, a wrong or extra byte, an I/O error, or a
/// server that stalls for [`STALL_LIMIT`]; the message says which connection and round.
pub(crate) fn run(addr: SocketAddr, load: Load) -> Result<Outcome, String> {
    let pattern = pattern(load.size);
    let mut ep = Epoll::new(load.conns.max(16)).map_err(|e| format!("epoll: {e}"))?;
    let mut conns = Vec::with_capacity(load.conns);
    for i in 0..load.conns {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect #{i}: {e}"))?;
        let setup = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .and_then(|()| ep.add(stream.as_raw_fd(), READ, i as u64));
        setup.map_err(|e| format!("set up connection #{i}: {e}"))?;
        conns.push(Conn {
            stream,
            round: 0,
            offset: 0,
            sent: 0,
            received: 0,
            started: Instant::now(),
            writing: false,
            busy: false,
        });
    }

    let begin = Instant::now();
    let counted_from = begin + load.warmup;
    let stop_at = counted_from + load.duration;
    let mut latencies_ns: Vec<u64> = Vec::new();
    let mut completed = 0usize;
    let mut buf = vec![0u8; READ_CHUNK.min(load.size.max(1))];
    for (i, conn) in conns.iter_mut().enumerate() {
        start_round(conn, i, &pattern, load.size, &ep, begin)?;
    }
    let mut busy = conns.len();
    let mut last_progress = Instant::now();
    while busy > 0 {
        let n = ep.wait(WAIT_MS).map_err(|e| format!("epoll_wait: {e}"))?;
        let now = Instant::now();
        if n > 0 {
            last_progress = now;
        } else if now.duration_since(last_progress) >= STALL_LIMIT {
            return Err(format!(
                "no byte moved for {} s with {busy} round(s) in flight: the server stalled",
                STALL_LIMIT.as_secs()
            ));
        }
        for k in 0..n {
            let (token, events) = ep.event(k);
            let i = usize::try_from(token).unwrap_or(usize::MAX);
            let Some(conn) = conns.get_mut(i) else {
                return Err(format!("epoll reported an unknown token {token}"));
            };
            if events & WRITE != 0 && conn.sent < load.size {
                send_some(conn, &pattern, load.size, &ep, i)?;
            }
            if events & !WRITE == 0 {
                continue;
            }
            let done = receive_some(conn, &pattern, load.size, &mut buf, i)?;
            if !done {
                continue;
            }
            let finished = Instant::now();
            if finished >= counted_from && finished < stop_at {
                completed += 1;
                if conn.started >= counted_from {
                    latencies_ns.push(duration_ns(finished - conn.started));
                }
            }
            if finished < stop_at {
                conn.round += 1;
                start_round(conn, i, &pattern, load.size, &ep, finished)?;
            } else {
                conn.busy = false;
                busy -= 1;
            }
        }
    }
    // Every round has completed; closing now leaves the server nothing in flight.
    drop(conns);

    // Every connection finished at least its first round (checked), so the server is right;
    // a machine too busy to finish one in the counted time gives 0 rps and a NaN p99, not an
    // error: a slow result is never a wrong one.
    let requests = completed;
    let mut latencies_us: Vec<f64> = latencies_ns.iter().map(|&ns| ns as f64 / 1e3).collect();
    latencies_us.sort_by(f64::total_cmp);
    Ok(Outcome {
        rps: requests as f64 / load.duration.as_secs_f64(),
        p99_us: percentile(&latencies_us, 99.0),
        requests,
        latencies_us,
    })
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Starts the connection's next round: sends what the socket takes, and watches for
/// writability if some is left.
fn start_round(
    conn: &mut Conn,
    i: usize,
    pattern: &[u8],
    size: usize,
    ep: &Epoll,
    now: Instant,
) -> Result<(), String> {
    conn.offset = round_offset(i, conn.round);
    conn.sent = 0;
    conn.received = 0;
    conn.started = now;
    conn.busy = true;
    send_some(conn, pattern, size, ep, i)
}

/// Sends as much of the request as the socket takes now; watches for writability exactly while
/// some is left.
fn send_some(
    conn: &mut Conn,
    pattern: &[u8],
    size: usize,
    ep: &Epoll,
    i: usize,
) -> Result<(), String> {
    while conn.sent < size {
        let from = conn.offset + conn.sent;
        let to = conn.offset + size;
        match conn.stream.write(&pattern[from..to]) {
            Ok(0) => return Err(format!("connection #{i}: write returned 0")),
            Ok(n) => conn.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("connection #{i}, round {}: {e}", conn.round)),
        }
    }
    let want_write = conn.sent < size;
    if want_write != conn.writing {
        let interest = if want_write { READ | WRITE } else { READ };
        ep.modify(conn.stream.as_raw_fd(), interest, i as u64)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        conn.writing = want_write;
    }
    Ok(())
}

/// Reads what has come back (one read), checks it against the pattern, and says whether the
/// round is complete.
fn receive_some(
    conn: &mut Conn,
    pattern: &[u8],
    size: usize,
    buf: &mut [u8],
    i: usize,
) -> Result<bool, String> {
    let n = match conn.stream.read(buf) {
        Ok(0) => {
            return Err(format!(
                "connection #{i}, round {}: the server closed the connection after {} of {size} bytes",
                conn.round, conn.received
            ));
        }
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(format!("connection #{i}, round {}: {e}", conn.round)),
    };
    if !conn.busy || conn.received + n > conn.sent {
        return Err(format!(
            "connection #{i}, round {}: {} bytes came back, only {} were sent",
            conn.round,
            conn.received + n,
            conn.sent
        ));
    }
    let from = conn.offset + conn.received;
    if let Some(at) = first_mismatch(&pattern[from..from + n], &buf[..n]) {
        return Err(format!(
            "connection #{i}, round {}: byte {} came back as {}, expected {}",
            conn.round,
            conn.received + at,
            buf[at],
            pattern[from + at]
        ));
    }
    conn.received += n;
    Ok(conn.received == size)
}

/// The calling thread's CPU time so far, in ns (`CLOCK_THREAD_CPUTIME_ID`); 0 if unreadable.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for clock_gettime to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

/// Pins the calling thread to `cpu` (`sched_setaffinity` on thread id 0, the caller).
///
/// # Errors
///
/// The OS error, e.g. `EINVAL` for a CPU this process may not use.
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of `set`; the macro bounds-checks `cpu` against the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 names the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    #[test]
    fn pattern_offsets_differ_between_connections_and_rounds() {
        let p = pattern(10);
        assert_eq!(p.len(), 10 + PATTERN_PERIOD);
        assert_eq!(p[0], 0);
        assert_eq!(p[250], 250);
        assert_eq!(p[251], 0);
        let firsts: Vec<usize> = (0..100).map(|c| round_offset(c, 0)).collect();
        let mut unique = firsts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 100, "every connection starts elsewhere");
        assert_ne!(round_offset(3, 0), round_offset(3, 1));
        assert!((0..1000).all(|r| round_offset(99, r) < PATTERN_PERIOD));
    }

    #[test]
    fn thread_cpu_time_counts_this_thread_only() {
        let before = thread_cpu_ns();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_ns() - before;
        let started = Instant::now();
        let mut x = 1u64;
        while started.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let spun = thread_cpu_ns() - before - slept;
        // Sleeping costs next to no CPU; spinning for 20 ms of wall time costs some.
        assert!(slept < 20_000_000, "{slept} ns while sleeping");
        assert!(spun > slept, "{spun} ns spinning, {slept} ns sleeping");
    }

    #[test]
    fn mismatch_names_the_first_wrong_byte() {
        assert_eq!(first_mismatch(b"abcdef", b"abc"), None);
        assert_eq!(first_mismatch(b"abcdef", b"abXdeY"), Some(2));
        assert_eq!(first_mismatch(b"abcdef", b""), None);
        assert_eq!(first_mismatch(b"ab", b"abc"), Some(2));
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 99.0), 99.0);
        assert_eq!(percentile(&xs, 50.0), 50.0);
        assert_eq!(percentile(&xs, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 99.0), 3.0);
        assert!(percentile(&[], 99.0).is_nan());
    }

    /// A blocking echo server on a thread per connection; `corrupt` flips the 100th byte of
    /// every connection's stream.
    fn thread_echo(corrupt: bool) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut total = 0usize;
                    loop {
                        let n = match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if corrupt && total <= 100 && total + n > 100 {
                            buf[100 - total] ^= 0xFF;
                        }
                        total += n;
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(addr)
    }

    fn short_load(size: usize, conns: usize) -> Load {
        Load {
            size,
            conns,
            warmup: Duration::from_millis(10),
            duration: Duration::from_millis(100),
        }
    }

    #[test]
    fn counts_round_trips_against_a_correct_server() -> Result<(), Box<dyn std::error::Error>> {
        let addr = thread_echo(false)?;
        let out = run(addr, short_load(10_000, 4))?;
        assert!(out.requests > 0);
        assert!(out.rps > 0.0 && out.p99_us > 0.0, "{out:?}");
        // rps is requests over the counted 100 ms.
        assert!(
            (out.rps - out.requests as f64 * 10.0).abs() < 1e-6,
            "{out:?}"
        );
        Ok(())
    }

    #[test]
    fn a_wrong_byte_is_an_error_naming_it() -> io::Result<()> {
        let addr = thread_echo(true)?;
        let err = run(addr, short_load(1_000, 1)).err().unwrap_or_default();
        assert!(err.contains("connection #0, round 0: byte 100"), "{err}");
        Ok(())
    }

    #[test]
    fn a_closed_connection_is_an_error() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let closer = thread::spawn(move || {
            // Accept, then close at once.
            drop(listener.accept());
        });
        let err = run(addr, short_load(1_000, 1)).err().unwrap_or_default();
        let _ = closer.join();
        assert!(
            err.contains("closed the connection") || err.contains("reset"),
            "{err}"
        );
        Ok(())
    }
}
