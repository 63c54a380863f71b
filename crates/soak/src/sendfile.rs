//! `sendfile` under resets: a server sends one file to every client with `loop.sendfile`;
//! half the clients read it all and check every byte, the other half read part of it and
//! reset. Each connection must end with exactly one `connection_lost`: `None` after a whole
//! file, `Some(err)` with the `sendfile`'s own error after a reset; nothing may hang, and the
//! fds must come back to their count.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use evloop::prelude::*;
use evloop::socket2::{Domain, SockRef, Socket, Type};
use evloop::{Protocol, ServerOptions, Transport};

use crate::Scale;
use crate::faults::drive;
use crate::line::Line;
use crate::sys;

/// Kernel buffers on both ends: small, so that a client that resets within the first half of
/// the file always does so while the `sendfile` is still running.
const SOCK_BUF: usize = 64 * 1024;
/// Client threads, each with its connections one after the other.
const CLIENT_THREADS: usize = 4;
/// What a client sends first: it reads the whole file, or part of it and resets.
const WHOLE: u8 = b'W';
const RESET: u8 = b'R';

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "sendfile",
        "loop.sendfile of one file to many clients, half of them resetting mid-file",
        |line| soak(scale, line),
    )
}

/// The byte at `offset` of the file.
fn byte_at(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// An unlinked file of `len` bytes of the pattern.
fn pattern_file(len: usize) -> io::Result<File> {
    let path = std::env::temp_dir().join(format!("evloop-soak-sendfile-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    let data: Vec<u8> = (0..len).map(byte_at).collect();
    file.write_all(&data)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// What the server saw of one connection.
#[derive(Default, Debug)]
struct Seen {
    /// The client's first byte: [`WHOLE`] or [`RESET`].
    mode: Option<u8>,
    /// The `sendfile`'s result: bytes sent, or the error's kind.
    sent: Option<Result<u64, io::ErrorKind>>,
    /// Every `connection_lost`: its error's kind, if any.
    lost: Vec<Option<io::ErrorKind>>,
}

type Seens = Rc<RefCell<Vec<Rc<RefCell<Seen>>>>>;

/// The server's protocol: the client's first byte says what it will do; then the file goes
/// out by `sendfile`, and the transport is closed once it went out whole.
struct Sender {
    lp: EventLoop,
    file: Rc<File>,
    transport: Option<Transport>,
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for Sender {
    fn connection_made(&mut self, t: &Transport) {
        t.with_socket(|s| s.set_send_buffer_size(SOCK_BUF));
        self.transport = Some(t.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.seen.borrow().mode.is_some() || data.is_empty() {
            return;
        }
        self.seen.borrow_mut().mode = Some(data[0]);
        let Some(t) = self.transport.clone() else {
            return;
        };
        let (lp, file, seen) = (self.lp.clone(), self.file.clone(), self.seen.clone());
        let task = self.lp.create_task(async move {
            let sent = lp.sendfile(&t, &file, 0, None, true).await;
            if sent.is_ok() {
                t.close();
            }
            seen.borrow_mut().sent = Some(sent.map_err(|e| e.kind()));
        });
        if task.is_err() {
            self.seen.borrow_mut().sent = Some(Err(io::ErrorKind::Other));
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.transport = None;
        self.seen.borrow_mut().lost.push(err.map(|e| e.kind()));
    }
}

/// One client thread: `count` connections, whole reads and resets in turn; returns the
/// number of whole reads whose bytes were wrong or short.
fn clients(
    addr: SocketAddr,
    first: usize,
    count: usize,
    len: usize,
) -> JoinHandle<io::Result<u64>> {
    thread::spawn(move || {
        let mut bad = 0;
        let mut rng = sys::Rng::new(first as u64 + 1);
        for i in first..first + count {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            sock.set_recv_buffer_size(SOCK_BUF)?;
            sock.connect(&addr.into())?;
            let mut conn = TcpStream::from(sock);
            conn.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut buf = vec![0; 64 * 1024];
            if i % 2 == 0 {
                conn.write_all(&[WHOLE])?;
                let mut got = 0;
                let mut wrong = false;
                loop {
                    let n = conn.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    wrong |= buf[..n]
                        .iter()
                        .enumerate()
                        .any(|(k, &b)| b != byte_at(got + k));
                    got += n;
                }
                if wrong || got != len {
                    bad += 1;
                }
            } else {
                conn.write_all(&[RESET])?;
                // Somewhere in the first half of the file, at least 1 KiB in.
                let stop = rng.range(1024, len / 2);
                let mut got = 0;
                while got < stop {
                    match conn.read(&mut buf[..(stop - got).min(64 * 1024)])? {
                        0 => break,
                        n => got += n,
                    }
                }
                SockRef::from(&conn).set_linger(Some(Duration::ZERO))?;
                drop(conn);
            }
        }
        Ok(bad)
    })
}

fn soak(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let conns = scale.pick(1_000, 100);
    let len = scale.pick(4 << 20, 1 << 20);
    line.amount = format!(
        "{conns} connections ({} whole files, {} resets in the first half), a {} MiB file",
        conns / 2,
        conns - conns / 2,
        len >> 20
    );
    if scale.quick {
        line.amount
            .push_str(" (quick run; full run 1,000 connections, 4 MiB)");
    }
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let file = Rc::new(pattern_file(len).map_err(|e| format!("the file: {e}"))?);
    let seens = Seens::default();
    let (l2, f2, s2) = (lp.clone(), file.clone(), seens.clone());
    let server = lp
        .run_until_complete(lp.create_server(
            move || {
                let seen = Rc::new(RefCell::new(Seen::default()));
                s2.borrow_mut().push(seen.clone());
                Sender {
                    lp: l2.clone(),
                    file: f2.clone(),
                    transport: None,
                    seen,
                }
            },
            ServerOptions::new().host("127.0.0.1").port(0).backlog(128),
        ))
        .map_err(|e| format!("create_server: {e}"))?
        .map_err(|e| format!("create_server: {e}"))?;
    let addr = server
        .sockets()
        .first()
        .and_then(|s| s.local_addr().ok())
        .and_then(|a| a.as_socket())
        .ok_or("the server has no inet address")?;
    let fds_before = sys::fd_count().map_err(|e| e.to_string())?;
    let per_thread = conns.div_ceil(CLIENT_THREADS);
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|k| {
            let first = k * per_thread;
            clients(
                addr,
                first,
                per_thread.min(conns.saturating_sub(first)),
                len,
            )
        })
        .collect();
    let all_ended = || {
        threads.iter().all(|t| t.is_finished())
            && seens.borrow().len() == conns
            && seens.borrow().iter().all(|s| {
                let s = s.borrow();
                !s.lost.is_empty() && s.sent.is_some()
            })
    };
    let ended = drive(&lp, Duration::from_secs(90), all_ended)?;
    line.check(ended, || {
        "not every connection ended within 90 s".to_string()
    });
    let mut bad_reads = 0;
    for t in threads {
        match t.join() {
            Ok(Ok(bad)) => bad_reads += bad,
            Ok(Err(e)) => line.fail(format!("a client thread failed: {e}")),
            Err(_) => line.fail("a client thread panicked"),
        }
    }
    let (mut whole, mut resets, mut wrong) = (0u64, 0u64, 0u64);
    for seen in seens.borrow().iter() {
        let s = seen.borrow();
        let fine = match (s.mode, &s.sent, s.lost.as_slice()) {
            (Some(WHOLE), Some(Ok(n)), [None]) => *n == len as u64,
            (Some(RESET), Some(Err(kind)), [Some(lost)]) => {
                kind == lost
                    && matches!(
                        kind,
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    )
            }
            _ => false,
        };
        match (fine, s.mode) {
            (true, Some(WHOLE)) => whole += 1,
            (true, _) => resets += 1,
            (false, _) => {
                if wrong < 3 {
                    line.note(format!("a connection ended wrong: {s:?}"));
                }
                wrong += 1;
            }
        }
    }
    let missing = conns.saturating_sub(seens.borrow().len()) as u64;
    line.lost = bad_reads + wrong + missing;
    line.note(format!(
        "{whole} whole files checked byte by byte, each connection_lost(None); {resets} resets, \
         each a failed sendfile and connection_lost(Some(err)) with its error; {bad_reads} wrong \
         reads, {wrong} connections ended otherwise, {missing} never reached the server"
    ));
    drop(seens);
    let fds_after = sys::fd_count().map_err(|e| e.to_string())?;
    line.leaked = fds_after.saturating_sub(fds_before) as u64;
    line.check(fds_after == fds_before, || {
        format!("fds: {fds_before} before the clients, {fds_after} after")
    });
    crate::echo::shut(&lp, &server)?;
    drop(file);
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}
