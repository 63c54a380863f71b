//! One loop per core: `LoopGroup` starts loops on threads of their own, each serving one port
//! with `reuse_port`, stops them all from any thread, and reports every failure.
//!
//! asyncio has no such helper: its documented pattern is one loop per process (or per thread,
//! `asyncio.new_event_loop` in each) with `reuse_port=True` on `create_server`
//! (CPython: test_asyncio/test_base_events.py::test_create_server_reuse_port).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evloop_net::{
    GroupError, LoopGroup, LoopGroupOptions, LoopSeat, LoopStreamExt, Protocol, ServerOptions,
    Transport,
};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Writes its loop's index as one byte on connecting, then echoes.
struct Tell {
    index: u8,
    transport: Option<Transport>,
}

impl Protocol for Tell {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&[self.index]);
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        self.transport = None;
    }
}

/// Serves `Tell` on 127.0.0.1 with `reuse_port`: on port 0 for the first loop, on the first
/// loop's port for the others. Returns the bound address.
fn serve_tell(lp: &EventLoop, seat: &LoopSeat<'_, SocketAddr>) -> io::Result<SocketAddr> {
    let port = seat.first().map_or(0, SocketAddr::port);
    let index = u8::try_from(seat.index()).map_err(|_| io::Error::other("index"))?;
    let options = ServerOptions::new()
        .host("127.0.0.1")
        .port(port)
        .reuse_port(true);
    let server = lp.run_until_complete(lp.create_server(
        move || Tell {
            index,
            transport: None,
        },
        options,
    ))??;
    let addr = server.sockets()[0].local_addr()?.as_socket();
    seat.keep(server);
    addr.ok_or_else(|| io::Error::other("not an inet address"))
}

/// A group of `loops` loops serving `Tell`, threads named `{name}-{i}`.
fn tell_group(loops: usize, name: &str) -> io::Result<LoopGroup<SocketAddr>> {
    let options = LoopGroupOptions::new().loops(loops).thread_name(name);
    LoopGroup::spawn(options, |lp, seat| serve_tell(lp, &seat))
}

/// Connects to `addr` and reads the serving loop's index.
fn served_by(addr: SocketAddr) -> io::Result<u8> {
    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut index = [0];
    client.read_exact(&mut index)?;
    Ok(index[0])
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

/// The group's error inside an `io::Error`.
fn group_error(err: &io::Error) -> io::Result<&GroupError> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<GroupError>())
        .ok_or_else(|| io::Error::other(format!("not a GroupError: {err:?}")))
}

#[test]
fn connections_are_spread_over_the_loops() -> TestResult {
    let group = tell_group(3, "mcspread")?;
    assert_eq!(group.len(), 3);
    let addr = group.values()[0];
    assert!(group.values().iter().all(|a| a.port() == addr.port()));
    assert_eq!(threads_named("mcspread-")?, 3);
    // SO_REUSEPORT hashes each connection's 4-tuple: new client ports land on any listener.
    // Each connection has 1/3 chance of each loop, so 200 all on one would be 3 × (1/3)^199.
    let mut seen = HashSet::new();
    for _ in 0..200 {
        seen.insert(served_by(addr)?);
        if seen.len() == 3 {
            break;
        }
    }
    assert!(seen.len() > 1, "every connection went to loops {seen:?}");
    assert!(seen.iter().all(|&i| i < 3));
    group.stop();
    group.join()?;
    Ok(())
}

#[test]
fn stop_from_another_thread_ends_every_loop() -> TestResult {
    let group = tell_group(3, "mcstop")?;
    let addr = group.values()[0];
    // Served, echoing: the loops run.
    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    client.write_all(b"hi")?;
    let mut buf = [0; 3];
    client.read_exact(&mut buf)?;
    assert_eq!(&buf[1..], b"hi");
    let stopper = group.stopper();
    assert!(!stopper.is_stopping());
    std::thread::spawn(move || stopper.stop())
        .join()
        .map_err(|_| "the stopping thread panicked")?;
    group.join()?;
    assert_eq!(threads_named("mcstop-")?, 0);
    // Each loop closed, which released its server and its connections.
    let err = TcpStream::connect(addr).err().ok_or("still listening")?;
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest)?, 0);
    Ok(())
}

#[test]
fn a_failing_setup_stops_the_others_and_is_reported() -> TestResult {
    let set_up = Arc::new(AtomicUsize::new(0));
    let counter = set_up.clone();
    let options = LoopGroupOptions::new().loops(3).thread_name("mcfail");
    let result = LoopGroup::spawn(options, move |lp, seat| {
        let addr = serve_tell(lp, &seat)?;
        counter.fetch_add(1, Ordering::SeqCst);
        if seat.index() == 1 {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "no seat 1"));
        }
        Ok(addr)
    });
    let err = result.err().ok_or("spawn succeeded")?;
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("loop 1: no seat 1"), "{err}");
    let failures = group_error(&err)?.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index(), 1);
    assert!(!failures[0].is_panic());
    assert_eq!(set_up.load(Ordering::SeqCst), 3);
    // Every loop was stopped and its thread joined before spawn returned.
    assert_eq!(threads_named("mcfail-")?, 0);
    Ok(())
}

#[test]
fn a_panicking_setup_is_reported_with_its_message() -> TestResult {
    let options = LoopGroupOptions::new().loops(2).thread_name("mcpanic");
    let result = LoopGroup::spawn(options, |lp, seat| {
        if seat.index() == 0 {
            return serve_tell(lp, &seat);
        }
        panic!("seat {} refuses", seat.index());
    });
    let err = result.err().ok_or("spawn succeeded")?;
    let failures = group_error(&err)?.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index(), 1);
    assert!(failures[0].is_panic());
    assert!(err.to_string().contains("seat 1 refuses"), "{err}");
    assert_eq!(threads_named("mcpanic-")?, 0);
    Ok(())
}

#[test]
fn a_loop_that_stops_stops_the_group() -> TestResult {
    let options = LoopGroupOptions::new().loops(3).thread_name("mcone");
    let group = LoopGroup::spawn(options, |lp, seat| {
        if seat.index() == 2 {
            let l2 = lp.clone();
            lp.call_later(0.05, move || l2.stop())?;
        }
        Ok(seat.index())
    })?;
    assert_eq!(group.values(), &[0, 1, 2]);
    let stopper = group.stopper();
    // Nobody calls stop: loop 2 stopping by itself ends the others (one for all).
    group.join()?;
    assert!(stopper.is_stopping());
    assert_eq!(threads_named("mcone-")?, 0);
    Ok(())
}

#[test]
fn dropping_the_group_stops_and_joins_every_thread() -> TestResult {
    let group = tell_group(2, "mcdrop")?;
    let addr = group.values()[0];
    assert_eq!(threads_named("mcdrop-")?, 2);
    drop(group);
    assert_eq!(threads_named("mcdrop-")?, 0);
    let err = TcpStream::connect(addr).err().ok_or("still listening")?;
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

#[test]
fn remotes_reach_each_loop_from_another_loop() -> TestResult {
    let options = LoopGroupOptions::new().loops(2).thread_name("mcremote");
    let group = LoopGroup::spawn(options, |_lp, seat| Ok(seat.index()))?;
    let to_loop_1 = group.remotes()[1].clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // From loop 0's thread, a call onto loop 1 runs on loop 1's thread.
    group.remotes()[0].call_soon_threadsafe(move || {
        let _ = to_loop_1.call_soon_threadsafe(move || {
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        });
    })?;
    let name = rx.recv_timeout(Duration::from_secs(10))?;
    assert_eq!(name.as_deref(), Some("mcremote-1"));
    group.stop();
    group.join()?;
    Ok(())
}

#[test]
fn pinned_loops_run_on_their_cpu() -> TestResult {
    let options = LoopGroupOptions::new()
        .loops(2)
        .thread_name("mcpin")
        .cpus([0]);
    let group = LoopGroup::spawn(options, |_lp, _seat| {
        // SAFETY: sched_getcpu has no preconditions.
        Ok(unsafe { libc::sched_getcpu() })
    })?;
    assert_eq!(group.values(), &[0, 0]);
    group.stop();
    group.join()?;
    Ok(())
}

#[test]
fn bad_options_are_clear_errors() -> TestResult {
    let zero = LoopGroup::spawn(LoopGroupOptions::new().loops(0), |_lp, _seat| Ok(()));
    let err = zero.err().ok_or("0 loops accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("loops"));
    let nul = LoopGroup::spawn(LoopGroupOptions::new().thread_name("a\0b"), |_lp, _seat| {
        Ok(())
    });
    let err = nul.err().ok_or("a nul byte accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("thread_name"));
    Ok(())
}

#[test]
fn default_is_one_loop_per_cpu() -> TestResult {
    let options = LoopGroupOptions::new().thread_name("mcdefault");
    let group = LoopGroup::spawn(options, |_lp, seat| Ok(seat.count()))?;
    let cpus = std::thread::available_parallelism()?.get();
    assert_eq!(group.len(), cpus);
    assert!(group.values().iter().all(|&count| count == cpus));
    group.stop();
    group.stop(); // twice is harmless
    group.join()?;
    Ok(())
}

/// Panics when dropped, as a kept value whose clean-up goes wrong.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("kept value refuses to go");
    }
}

#[test]
fn a_panic_after_setup_reaches_join() -> TestResult {
    let options = LoopGroupOptions::new().loops(2).thread_name("mcjoin");
    let group = LoopGroup::spawn(options, |_lp, seat| {
        if seat.index() == 1 {
            seat.keep(PanicOnDrop);
        }
        Ok(())
    })?;
    group.stop();
    let err = group.join().err().ok_or("join hid the panic")?;
    let failures = group_error(&err)?.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index(), 1);
    assert!(failures[0].is_panic());
    assert!(
        err.to_string().contains("kept value refuses to go"),
        "{err}"
    );
    assert_eq!(threads_named("mcjoin-")?, 0);
    Ok(())
}

/// The CPUs this thread may run on, by `sched_getaffinity`.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok((0..1024)
        .filter(|&cpu| {
            // SAFETY: CPU_ISSET reads one bit of `set`; 1024 is glibc's CPU_SETSIZE.
            unsafe { libc::CPU_ISSET(cpu, &set) }
        })
        .collect())
}

#[test]
fn pin_threads_puts_loop_i_on_the_i_th_allowed_cpu() -> TestResult {
    let allowed = allowed_cpus()?;
    let loops = allowed.len() + 1; // one more than CPUs: the last wraps around to the first
    let options = LoopGroupOptions::new()
        .loops(loops)
        .thread_name("mcpinall")
        .pin_threads(true);
    let group = LoopGroup::spawn(options, |_lp, _seat| allowed_cpus())?;
    for (i, cpus) in group.values().iter().enumerate() {
        assert_eq!(cpus, &[allowed[i % allowed.len()]], "loop {i}");
    }
    group.stop();
    group.join()?;
    Ok(())
}
