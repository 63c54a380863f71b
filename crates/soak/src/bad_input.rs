//! Bad input: one table, a row per misuse of a public API. Each row must end in a clear error
//! or a documented no-op: never a panic, an abort, a hang or a silent drop. Every row runs in a
//! child process of its own (an abort kills only its row) under `catch_unwind` and a watchdog.

use std::cell::RefCell;
use std::fmt::Display;
use std::io::Write;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::socket2::{Domain, Socket, Type};
use evloop::{ConnectOptions, Protocol, ServerOptions, Transport};

use crate::Scale;
use crate::line::Line;
use crate::sys;

/// What a row saw: `Ok` for an acceptable outcome, `Err` for a wrong one; the text says which.
type Outcome = Result<String, String>;

/// One misuse: the call, what must happen, and the code that makes it.
struct Row {
    call: &'static str,
    expected: &'static str,
    run: fn() -> Outcome,
}

/// How long a row may take before it counts as a hang.
const ROW_LIMIT: Duration = Duration::from_secs(10);

const ROWS: &[Row] = &[
    Row {
        call: "call_later(f64::NAN, f)",
        expected: "invalid-argument error",
        run: || refused(new_loop()?.call_later(f64::NAN, || {})),
    },
    Row {
        call: "call_later(f64::INFINITY, f)",
        expected: "documented: scheduled for never, does not run",
        run: || {
            let lp = new_loop()?;
            let ran = Rc::new(RefCell::new(false));
            let r2 = ran.clone();
            let h = lp.call_later(f64::INFINITY, move || *r2.borrow_mut() = true);
            let _ = lp.run_once_timeout(Duration::from_millis(10));
            match h {
                Ok(_) if !*ran.borrow() => Ok("scheduled, never runs".into()),
                Ok(_) => Err("ran".into()),
                Err(e) => Ok(format!("error: {e}")),
            }
        },
    },
    Row {
        call: "sleep(f64::NAN).await",
        expected: "invalid-argument error",
        run: || {
            let lp = new_loop()?;
            let r = run_bounded(&lp, async { evloop::sleep(f64::NAN).await })?;
            refused(r)
        },
    },
    Row {
        call: "RemoteLoop::call_soon_threadsafe(f) from a thread, loop closed",
        expected: "closed error",
        run: || {
            let remote = closed_loop()?.remote();
            std::thread::spawn(move || refused(remote.call_soon_threadsafe(|| {})))
                .join()
                .map_err(|_| "the thread panicked".to_string())?
        },
    },
    Row {
        call: "run_in_executor(None, f) on a closed loop",
        expected: "closed error",
        run: || refused(closed_loop()?.run_in_executor(None, || 1).map(drop)),
    },
    Row {
        call: "remove_reader(-1)",
        expected: "documented no-op: false",
        run: || match new_loop()?.remove_reader(-1) {
            false => Ok("false".into()),
            true => Err("true".into()),
        },
    },
    Row {
        call: "add_writer(a closed fd, f)",
        expected: "error (EBADF)",
        run: || {
            let lp = new_loop()?;
            let (a, b) = UnixStream::pair().map_err(s)?;
            let fd = a.into_raw_fd();
            // SAFETY: `fd` was just released by `into_raw_fd` and is ours to close.
            unsafe { libc::close(fd) };
            let r = refused(lp.add_writer(fd, || {}));
            drop(b);
            r
        },
    },
    Row {
        call: "call_at(f64::NAN, f)",
        expected: "invalid-argument error",
        run: || refused(new_loop()?.call_at(f64::NAN, || {})),
    },
    Row {
        call: "add_reader(-1, f)",
        expected: "error",
        run: || refused(new_loop()?.add_reader(-1, || {})),
    },
    Row {
        call: "add_reader(a closed fd, f)",
        expected: "error (EBADF)",
        run: || {
            let lp = new_loop()?;
            let (a, b) = UnixStream::pair().map_err(s)?;
            let fd = a.into_raw_fd();
            // SAFETY: `fd` was just released by `into_raw_fd` and is ours to close.
            unsafe { libc::close(fd) };
            let r = refused(lp.add_reader(fd, || {}));
            drop(b);
            r
        },
    },
    Row {
        call: "add_reader(an fd a transport owns, f)",
        expected: "error (the fd is claimed)",
        run: || {
            let lp = new_loop()?;
            let (transport, _keep) = transport_pair(&lp)?;
            let fd = transport.fileno().ok_or("the transport has no fd")?;
            let r = refused(lp.add_reader(fd, || {}));
            transport.abort();
            r
        },
    },
    Row {
        call: "add_signal_handler(SIGKILL, f)",
        expected: "InvalidInput error",
        run: || refused(new_loop()?.add_signal_handler(libc::SIGKILL, || {})),
    },
    Row {
        call: "add_signal_handler(0, f)",
        expected: "InvalidInput error",
        run: || refused(new_loop()?.add_signal_handler(0, || {})),
    },
    Row {
        call: "add_signal_handler(65, f)",
        expected: "InvalidInput error",
        run: || refused(new_loop()?.add_signal_handler(65, || {})),
    },
    Row {
        call: "add_signal_handler(-1, f)",
        expected: "InvalidInput error",
        run: || refused(new_loop()?.add_signal_handler(-1, || {})),
    },
    Row {
        call: "remove_signal_handler(1000)",
        expected: "InvalidInput error",
        run: || refused(new_loop()?.remove_signal_handler(1000)),
    },
    Row {
        call: "sock_recv(a blocking socket with nothing to read, 10)",
        expected: "error (the socket must be non-blocking)",
        run: || {
            let lp = new_loop()?;
            let (a, _b) = UnixStream::pair().map_err(s)?;
            let a = Socket::from(OwnedFd::from(a));
            let l2 = lp.clone();
            let r = lp.run_until_complete(async move { l2.sock_recv(&a, 10).await });
            match r {
                Ok(inner) => refused(inner),
                Err(e) => Ok(format!("error: {e}")),
            }
        },
    },
    Row {
        call: "sock_sendall(a blocking, unconnected socket, data)",
        expected: "error (the socket must be non-blocking)",
        run: || {
            let lp = new_loop()?;
            let a = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(s)?;
            let l2 = lp.clone();
            let r = run_bounded(&lp, async move { l2.sock_sendall(&a, b"x").await })?;
            refused(r)
        },
    },
    Row {
        call: "sock_accept(a UDP socket)",
        expected: "error",
        run: || {
            let lp = new_loop()?;
            let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(s)?;
            sock.set_nonblocking(true).map_err(s)?;
            let l2 = lp.clone();
            let r = run_bounded(&lp, async move { l2.sock_accept(&sock).await.map(drop) })?;
            refused(r)
        },
    },
    Row {
        call: "connect_accepted_socket(a UDP socket)",
        expected: "error (a stream socket is needed)",
        run: || {
            let lp = new_loop()?;
            let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(s)?;
            let fut = lp.connect_accepted_socket(|| Quiet, sock);
            refused(run_bounded(&lp, fut)?.map(drop))
        },
    },
    Row {
        call: "sock_recv(sock, usize::MAX)",
        expected: "error, or at most what is there",
        run: || huge_recv(usize::MAX),
    },
    Row {
        call: "sock_recv(sock, 1 << 40)",
        expected: "error, or at most what is there",
        run: || huge_recv(1 << 40),
    },
    Row {
        call: "sock_recvfrom(udp, usize::MAX)",
        expected: "error, or at most what is there",
        run: || {
            let lp = new_loop()?;
            let a = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(s)?;
            a.bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .map_err(s)?
                    .into(),
            )
            .map_err(s)?;
            a.set_nonblocking(true).map_err(s)?;
            let to = a.local_addr().map_err(s)?;
            let b = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(s)?;
            b.send_to(b"datagram", &to).map_err(s)?;
            let l2 = lp.clone();
            let r = run_bounded(&lp, async move {
                l2.sock_recvfrom(&a, usize::MAX).await.map(|(d, _)| d.len())
            })?;
            match r {
                Ok(8) => Ok("8 bytes".into()),
                Ok(n) => Err(format!("{n} bytes")),
                Err(e) => Ok(format!("error: {e}")),
            }
        },
    },
    Row {
        call: "call_soon(f) on a closed loop",
        expected: "closed error",
        run: || refused(closed_loop()?.call_soon(|| {})),
    },
    Row {
        call: "run_forever() on a closed loop",
        expected: "closed error",
        run: || refused(closed_loop()?.run_forever()),
    },
    Row {
        call: "run_until_complete(fut) on a closed loop",
        expected: "closed error",
        run: || refused(closed_loop()?.run_until_complete(async {})),
    },
    Row {
        call: "create_task(fut) on a closed loop",
        expected: "closed error",
        run: || refused(closed_loop()?.create_task(async {})),
    },
    Row {
        call: "create_server(..) on a closed loop",
        expected: "closed error",
        run: || {
            let lp = closed_loop()?;
            let fut = lp.create_server(|| Quiet, ServerOptions::new().host("127.0.0.1").port(0));
            match lp.run_until_complete(fut) {
                Err(e) => Ok(format!("error: {e}")),
                Ok(r) => refused(r.map(drop)),
            }
        },
    },
    Row {
        call: "run_forever() inside a callback (nested run)",
        expected: "already-running error",
        run: || inside_a_callback(|lp| lp.run_forever().map_err(s)),
    },
    Row {
        call: "run_until_complete(fut) inside a callback (nested run)",
        expected: "already-running error",
        run: || inside_a_callback(|lp| lp.run_until_complete(async {}).map_err(s)),
    },
    Row {
        call: "close() inside a callback",
        expected: "close-while-running error, the loop keeps running",
        run: || inside_a_callback(|lp| lp.close().map_err(s)),
    },
    Row {
        call: "transport.write(data) after close()",
        expected: "documented no-op (asyncio ignores it)",
        run: || {
            let lp = new_loop()?;
            let (transport, _keep) = transport_pair(&lp)?;
            transport.close();
            transport.write(b"late");
            let _ = lp.run_once_timeout(Duration::from_millis(10));
            transport.write(b"later");
            Ok("ignored".into())
        },
    },
    Row {
        call: "transport.write(data) after write_eof()",
        expected: "documented: refused (asyncio raises; ours is a no-op, the peer gets nothing)",
        run: || {
            let lp = new_loop()?;
            let (transport, mut peer) = transport_pair(&lp)?;
            transport.write_eof();
            transport.write(b"late");
            let _ = lp.run_once_timeout(Duration::from_millis(10));
            let mut got = Vec::new();
            peer.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(s)?;
            std::io::Read::read_to_end(&mut peer, &mut got).map_err(s)?;
            transport.abort();
            if got.is_empty() {
                Ok("ignored; the peer read EOF only".into())
            } else {
                Err(format!("the peer read {:?}", String::from_utf8_lossy(&got)))
            }
        },
    },
    Row {
        call: "set_write_buffer_limits(high 10, low 20)",
        expected: "InvalidInput error",
        run: || {
            let lp = new_loop()?;
            let (transport, _keep) = transport_pair(&lp)?;
            let r = refused(transport.set_write_buffer_limits(Some(10), Some(20)));
            transport.abort();
            r
        },
    },
    Row {
        call: "connect_read_pipe(a regular file)",
        expected: "InvalidInput error",
        run: || {
            let lp = new_loop()?;
            let file = std::fs::File::open("/proc/self/status").map_err(s)?;
            let fut = lp.connect_read_pipe(|| Quiet, OwnedFd::from(file));
            refused(run_bounded(&lp, fut)?.map(drop))
        },
    },
    Row {
        call: "create_connection(port 0)",
        expected: "error",
        run: || {
            let lp = new_loop()?;
            let fut =
                lp.create_connection(|| Quiet, ConnectOptions::new().host("127.0.0.1").port(0));
            refused(run_bounded(&lp, fut)?.map(drop))
        },
    },
];

/// A protocol that does nothing.
struct Quiet;
impl Protocol for Quiet {}

fn s(e: impl Display) -> String {
    e.to_string()
}

fn new_loop() -> Result<EventLoop, String> {
    EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))
}

fn closed_loop() -> Result<EventLoop, String> {
    let lp = new_loop()?;
    lp.close().map_err(s)?;
    Ok(lp)
}

/// Runs `call` inside a callback of a running loop and expects it refused.
fn inside_a_callback(call: fn(&EventLoop) -> Result<(), String>) -> Outcome {
    let lp = new_loop()?;
    let seen = Rc::new(RefCell::new(None));
    let (l2, s2) = (lp.clone(), seen.clone());
    lp.call_soon(move || {
        *s2.borrow_mut() = Some(call(&l2));
        l2.stop();
    })
    .map_err(s)?;
    lp.run_forever().map_err(s)?;
    let seen = seen.borrow_mut().take().ok_or("the callback never ran")?;
    refused(seen)
}

/// An error is the right outcome; success is not.
fn refused<T, E: Display>(r: Result<T, E>) -> Outcome {
    match r {
        Err(e) => Ok(format!("error: {e}")),
        Ok(_) => Err("accepted".into()),
    }
}

/// Runs `fut` for at most 5 s (a hang is a wrong outcome).
fn run_bounded<T: 'static>(
    lp: &EventLoop,
    fut: impl std::future::Future<Output = T> + 'static,
) -> Result<T, String> {
    let task = lp.create_task(fut).map_err(s)?;
    let until = Instant::now() + Duration::from_secs(5);
    lp.run_forever_setup().map_err(s)?;
    while !task.done() && Instant::now() < until {
        lp.run_once_timeout(Duration::from_millis(10)).map_err(s)?;
    }
    lp.run_forever_cleanup().map_err(s)?;
    if !task.done() {
        return Err("hang: not done after 5 s".into());
    }
    task.take_result()
        .map_err(|e| format!("the task failed: {e}"))
}

/// A transport on one end of a Unix socket pair, and the other end.
fn transport_pair(lp: &EventLoop) -> Result<(Transport, UnixStream), String> {
    let (a, b) = UnixStream::pair().map_err(s)?;
    let fut = lp.connect_accepted_socket(|| Quiet, Socket::from(OwnedFd::from(a)));
    let (transport, _) = run_bounded(lp, fut)?.map_err(s)?;
    Ok((transport, b))
}

/// `sock_recv(sock, nbytes)` with 5 bytes waiting.
fn huge_recv(nbytes: usize) -> Outcome {
    let lp = new_loop()?;
    let (a, mut b) = UnixStream::pair().map_err(s)?;
    b.write_all(b"hello").map_err(s)?;
    let a = Socket::from(OwnedFd::from(a));
    a.set_nonblocking(true).map_err(s)?;
    let l2 = lp.clone();
    let r = run_bounded(&lp, async move {
        l2.sock_recv(&a, nbytes).await.map(|d| d.len())
    })?;
    match r {
        Ok(5) => Ok("5 bytes".into()),
        Ok(n) => Err(format!("{n} bytes")),
        Err(e) => Ok(format!("error: {e}")),
    }
}

/// The test's line: every row in its own child.
pub(crate) fn run(_scale: &Scale) -> Line {
    let started = Instant::now();
    let mut line = Line::new(
        "bad-input",
        "every public API with its misuse, a row per call, each in a child process",
    );
    line.amount = format!("{} rows (same in the quick run)", ROWS.len());
    let mut bad = 0;
    for (i, row) in ROWS.iter().enumerate() {
        let (ok, observed) = run_row(i);
        if !ok {
            bad += 1;
            line.fail(format!("`{}`: {observed}", row.call));
        }
        line.note(format!(
            "`{}` | expected: {} | observed: {observed} | {}",
            row.call,
            row.expected,
            if ok { "ok" } else { "WRONG" }
        ));
    }
    line.lost = bad;
    line.secs = started.elapsed().as_secs_f64();
    line.panics = sys::panics();
    line
}

/// Runs row `i` in a child; (acceptable, what was observed).
fn run_row(i: usize) -> (bool, String) {
    let cmd = match sys::helper("bad-input-row", &[i.to_string()]) {
        Ok(cmd) => cmd,
        Err(e) => return (false, format!("cannot start the row: {e}")),
    };
    let finished = match sys::run_with_watchdog(cmd, ROW_LIMIT, false) {
        Ok(f) => f,
        Err(e) => return (false, format!("cannot start the row: {e}")),
    };
    let said = finished
        .stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ROW "))
        .map(str::to_string);
    match (said, finished.status) {
        (Some(said), Some(status)) if status.success() => match said.split_once(' ') {
            Some(("ok", observed)) => (true, observed.to_string()),
            Some((_, observed)) => (false, observed.to_string()),
            None => (false, said),
        },
        (_, status) => (
            false,
            format!(
                "{}; stderr: {}",
                sys::describe(status, ROW_LIMIT),
                why(&finished.stderr)
            ),
        ),
    }
}

/// The line of a dead row's stderr that says why (an allocation failure, a panic).
fn why(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("memory allocation of") || l.contains("panicked at"))
        .map_or_else(|| sys::tail(stderr, 2), |l| l.trim().to_string())
}

/// The row's process: `I`. Prints `ROW ok|wrong OBSERVED`.
pub(crate) fn row_main(args: &[String]) -> Result<(), String> {
    let i: usize = args
        .first()
        .ok_or("usage: bad-input-row I")?
        .parse()
        .map_err(|e| format!("row: {e}"))?;
    let row = ROWS.get(i).ok_or("no such row")?;
    let outcome = catch_unwind(AssertUnwindSafe(row.run));
    let (verdict, observed) = match outcome {
        Ok(Ok(text)) if sys::panics() == 0 => ("ok", text),
        Ok(Ok(text)) => ("wrong", format!("{text}, after a panic inside the loop")),
        Ok(Err(text)) => ("wrong", text),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ("wrong", format!("panic: {msg}"))
        }
    };
    println!("ROW {verdict} {}", observed.replace('\n', " "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_its_call_once() {
        let mut calls: Vec<&str> = ROWS.iter().map(|r| r.call).collect();
        calls.sort_unstable();
        calls.dedup();
        assert_eq!(calls.len(), ROWS.len());
    }

    #[test]
    fn refused_accepts_errors_only() {
        assert!(refused::<(), _>(Err("no")).is_ok());
        assert!(refused::<(), String>(Ok(())).is_err());
    }
}
