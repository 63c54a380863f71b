//! TLS: C1K over TLS (every byte of every echo checked), peers that reset in the middle of
//! the handshake or of a record, and clients that stall the handshake, which the server's
//! handshake timeout must drop in time. Each connection ends with exactly one
//! `connection_lost`, and the server goes on serving.

use std::cell::Cell;
use std::io::{self, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop::rustls::{ClientConfig, RootCertStore, ServerConfig};
use evloop::socket2::SockRef;
use evloop::{ConnectOptions, Protocol, Server, ServerOptions, Transport};

use crate::faults::drive;
use crate::line::Line;
use crate::sys::{self, Rng};
use crate::{Scale, alloc};

/// Connections being set up at once.
const WAVE: usize = 128;
/// The largest message a connection sends.
const MAX_SIZE: usize = 16 * 1024;
/// The server's handshake timeout, for the stalling clients.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
const SEED: u64 = 0x0071_5e11;

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "tls",
        "C1K over TLS (random sizes 1 B-16 KiB, every byte checked), resets mid-handshake and \
         mid-record, clients stalling the handshake (dropped at the timeout)",
        |line| tls(scale, line),
    )
}

/// What the server's protocols saw.
#[derive(Default)]
struct Stats {
    made: Cell<usize>,
    lost_clean: Cell<usize>,
    lost_err: Cell<usize>,
    timed_out: Cell<usize>,
}

/// Echoes over TLS, counting.
struct Echo {
    transport: Option<Transport>,
    stats: Rc<Stats>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
        self.stats.made.set(self.stats.made.get() + 1);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.transport = None;
        let s = &self.stats;
        match err {
            None => s.lost_clean.set(s.lost_clean.get() + 1),
            Some(err) => {
                if err.kind() == io::ErrorKind::TimedOut {
                    s.timed_out.set(s.timed_out.get() + 1);
                }
                s.lost_err.set(s.lost_err.get() + 1);
            }
        }
    }
}

/// A client that sends its message, checks the echo, and closes.
struct Client {
    message: Vec<u8>,
    got: Vec<u8>,
    transport: Option<Transport>,
    done: Rc<Cell<usize>>,
    bad: Rc<Cell<u64>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &Transport) {
        t.write(&self.message);
        self.transport = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.message.len() {
            if self.got != self.message {
                self.bad.set(self.bad.get() + self.message.len() as u64);
            }
            if let Some(t) = self.transport.take() {
                t.close();
            }
        }
    }
    fn connection_lost(&mut self, _err: Option<io::Error>) {
        if self.got.len() < self.message.len() {
            self.bad
                .set(self.bad.get() + (self.message.len() - self.got.len()) as u64);
        }
        self.transport = None;
        self.done.set(self.done.get() + 1);
    }
}

/// A self-signed certificate for localhost, as the server's and the clients' configurations.
fn configs() -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), String> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(|e| format!("rcgen: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .map_err(|e| format!("server config: {e}"))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(made.cert.der().clone())
        .map_err(|e| format!("roots: {e}"))?;
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server), Arc::new(client)))
}

fn tls(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let conns = scale.pick(1000, 200);
    let resets = scale.pick(200, 50);
    let stalls = scale.pick(200, 50);
    line.amount = format!(
        "{conns} TLS echo connections ({WAVE} at a time), {resets} resets mid-handshake and \
         {resets} mid-record, {stalls} stalled handshakes (timeout {HANDSHAKE_TIMEOUT:?})"
    );
    let fds_before = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let (server_config, client_config) = configs()?;
    let stats = Rc::new(Stats::default());
    // The C1K and reset server keeps asyncio's 60 s handshake timeout: a loaded machine may
    // take seconds over a wave of handshakes. The stalling clients get a server of their own.
    let (server, addr) = serve(&lp, &server_config, &stats, None, true)?;

    // C1K over TLS, in waves.
    let started = Instant::now();
    let done = Rc::new(Cell::new(0usize));
    let bad = Rc::new(Cell::new(0u64));
    let mut rng = Rng::new(SEED);
    let mut opened = 0;
    while opened < conns {
        let wave = WAVE.min(conns - opened);
        for _ in 0..wave {
            let size = rng.range(1, MAX_SIZE + 1);
            let message: Vec<u8> = (0..size).map(|i| sys::pattern(opened, i)).collect();
            let (d, b) = (done.clone(), bad.clone());
            let connect = lp.create_connection(
                move || Client {
                    message,
                    got: Vec::new(),
                    transport: None,
                    done: d,
                    bad: b,
                },
                ConnectOptions::new()
                    .host("127.0.0.1")
                    .port(addr.port())
                    .ssl(client_config.clone())
                    .server_hostname("localhost"),
            );
            let bad = bad.clone();
            // The task runs on without its handle; its outcome is counted in `bad`.
            let _task = lp
                .create_task(async move {
                    if connect.await.is_err() {
                        bad.set(bad.get() + 1);
                    }
                })
                .map_err(|e| format!("create_task: {e}"))?;
            opened += 1;
        }
        let target = opened;
        let waited = drive(&lp, Duration::from_secs(60), || {
            done.get() + usize::try_from(bad.get()).unwrap_or(0) >= target
        })?;
        line.check(waited, || {
            format!("the TLS echo wave up to {target} did not finish in 60 s")
        });
        if !waited {
            break;
        }
    }
    line.lost += bad.get();
    line.notes.push(format!(
        "C1K over TLS: {conns} connections in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    drive(&lp, Duration::from_secs(10), || {
        stats.lost_clean.get() + stats.lost_err.get() >= conns
    })?;
    line.check(stats.made.get() == conns, || {
        format!("{} of {conns} TLS connections were made", stats.made.get())
    });
    line.check(
        stats.lost_clean.get() == conns && stats.lost_err.get() == 0,
        || {
            format!(
                "the echo connections ended {} clean, {} with an error (expected {conns} clean)",
                stats.lost_clean.get(),
                stats.lost_err.get()
            )
        },
    );

    // Idle connections: the heap each costs, TLS beside plain (both ends are in this process).
    let idle = scale.pick(500, 100);
    let (plain_server, plain_addr) = serve(&lp, &server_config, &stats, None, false)?;
    let plain = idle_heap(&lp, plain_addr, None, idle)?;
    let tls = idle_heap(&lp, addr, Some(&client_config), idle)?;
    plain_server.close();
    drop(plain_server);
    line.notes.push(format!(
        "idle connection heap, client and server ends together: TLS {tls} B, plain {plain} B \
         ({idle} connections each; rustls' two connection states make up most of the TLS figure)"
    ));
    let made_before = stats.made.get();
    drive(&lp, Duration::from_secs(10), || {
        stats.lost_clean.get() + stats.lost_err.get() >= made_before
    })?;

    // Resets in the middle of the handshake: half a ClientHello, then RST.
    let before = (stats.lost_err.get(), stats.made.get());
    for _ in 0..resets {
        let sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let mut w = &sock;
        w.write_all(&[22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3])
            .map_err(|e| format!("write: {e}"))?;
        reset(&sock)?;
    }
    // Resets in the middle of a record, after a completed handshake.
    let half_record = Rc::new(Cell::new(0usize));
    for _ in 0..resets {
        let (t, _p) = lp
            .run_until_complete(
                lp.create_connection(
                    || NoOp,
                    ConnectOptions::new()
                        .host("127.0.0.1")
                        .port(addr.port())
                        .ssl(client_config.clone())
                        .server_hostname("localhost"),
                ),
            )
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("TLS connect: {e}"))?;
        // Raw bytes under the TLS layer: a record header promising 200 bytes, and 3 of them.
        let sent = t.with_socket(|s| {
            let _ = s.set_linger(Some(Duration::ZERO));
            s.send(&[23, 3, 3, 0, 200, 1, 2, 3]).is_ok()
        });
        if sent == Some(true) {
            half_record.set(half_record.get() + 1);
        }
        drive(&lp, Duration::from_millis(50), || false)?;
        t.abort();
    }
    let expected_errors = before.0 + 2 * resets;
    let ended = drive(&lp, Duration::from_secs(20), || {
        stats.lost_err.get() >= expected_errors
    })?;
    line.check(ended, || {
        format!(
            "after {resets} + {resets} resets the server saw {} failed connections (expected {})",
            stats.lost_err.get() - before.0,
            2 * resets
        )
    });
    line.check(stats.made.get() == before.1 + resets, || {
        format!(
            "{} connections were made during the resets (expected the {resets} that completed \
             their handshake)",
            stats.made.get() - before.1
        )
    });

    // Clients that connect and never say a word: dropped at the handshake timeout.
    let (stall_server, stall_addr) =
        serve(&lp, &server_config, &stats, Some(HANDSHAKE_TIMEOUT), true)?;
    let before = stats.timed_out.get();
    let stalled_at = Instant::now();
    let mut silent = Vec::with_capacity(stalls);
    for _ in 0..stalls {
        silent.push(TcpStream::connect(stall_addr).map_err(|e| format!("connect: {e}"))?);
    }
    let bound = HANDSHAKE_TIMEOUT + Duration::from_secs(5);
    let dropped = drive(&lp, bound, || stats.timed_out.get() >= before + stalls)?;
    line.check(dropped, || {
        format!(
            "{} of {stalls} stalled handshakes were dropped within {bound:?}",
            stats.timed_out.get() - before
        )
    });
    line.notes.push(format!(
        "{stalls} stalled handshakes dropped after {:.2} s (timeout {:.1} s)",
        stalled_at.elapsed().as_secs_f64(),
        HANDSHAKE_TIMEOUT.as_secs_f64()
    ));
    drop(silent);

    // The server still serves.
    let (d, b) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0u64)));
    let last = lp
        .run_until_complete(
            lp.create_connection(
                {
                    let (d, b) = (d.clone(), b.clone());
                    move || Client {
                        message: b"still serving".to_vec(),
                        got: Vec::new(),
                        transport: None,
                        done: d,
                        bad: b,
                    }
                },
                ConnectOptions::new()
                    .host("127.0.0.1")
                    .port(addr.port())
                    .ssl(client_config)
                    .server_hostname("localhost"),
            ),
        )
        .map_err(|e| e.to_string())?;
    line.check(last.is_ok(), || {
        "the server did not serve a TLS client after the faults".into()
    });
    // Its transport holds the loop: let go of it before counting the loop's fds.
    drop(last);
    drive(&lp, Duration::from_secs(10), || d.get() == 1)?;
    line.check(d.get() == 1 && b.get() == 0, || {
        "the last TLS echo did not come back whole".into()
    });

    server.close();
    stall_server.close();
    lp.close().map_err(|e| format!("close: {e}"))?;
    drop((server, stall_server, lp));
    let fds_after = sys::fd_count().map_err(|e| format!("/proc/self/fd: {e}"))?;
    line.leaked += fds_after.saturating_sub(fds_before) as u64;
    line.check(fds_after <= fds_before, || {
        let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        format!("{fds_before} fds before, {fds_after} after: {open:?}")
    });
    Ok(())
}

/// A TLS echo server on 127.0.0.1 whose protocols count into `stats`; `timeout` is its
/// handshake timeout (asyncio's default if `None`).
fn serve(
    lp: &EventLoop,
    config: &Arc<ServerConfig>,
    stats: &Rc<Stats>,
    timeout: Option<Duration>,
    tls: bool,
) -> Result<(Server, std::net::SocketAddr), String> {
    let s2 = stats.clone();
    let mut options = ServerOptions::new().host("127.0.0.1").port(0).backlog(1024);
    if tls {
        options = options.ssl(config.clone());
    }
    if let Some(timeout) = timeout {
        options = options.ssl_handshake_timeout(timeout);
    }
    let server = lp
        .run_until_complete(lp.create_server(
            move || Echo {
                transport: None,
                stats: s2.clone(),
            },
            options,
        ))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("create_server: {e}"))?;
    let addr = server.sockets()[0]
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("the server has no inet address")?;
    Ok((server, addr))
}

/// Opens `n` connections to `addr` (TLS with `config`), exchanges one message on each so that
/// both ends are settled, and returns the heap each connection holds (both ends) while idle;
/// then closes them.
fn idle_heap(
    lp: &EventLoop,
    addr: std::net::SocketAddr,
    config: Option<&Arc<ClientConfig>>,
    n: usize,
) -> Result<usize, String> {
    // Settle the loop's own buffers (the shared read buffer, the scratch) first.
    drive(lp, Duration::from_millis(50), || false)?;
    let before = alloc::live();
    let done = Rc::new(Cell::new(0usize));
    let bad = Rc::new(Cell::new(0u64));
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let (d, b) = (done.clone(), bad.clone());
        let mut options = ConnectOptions::new().host("127.0.0.1").port(addr.port());
        if let Some(config) = config {
            options = options.ssl(config.clone()).server_hostname("localhost");
        }
        let (t, _p) = lp
            .run_until_complete(lp.create_connection(
                move || Idle {
                    got: 0,
                    done: d,
                    bad: b,
                },
                options,
            ))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        t.write(b"ping");
        open.push(t);
    }
    drive(lp, Duration::from_secs(20), || done.get() >= n)?;
    drive(lp, Duration::from_millis(50), || false)?;
    let per_conn = alloc::live().saturating_sub(before) / n.max(1);
    for t in &open {
        t.close();
    }
    drop(open);
    Ok(per_conn)
}

/// Counts its echo, then stays idle.
struct Idle {
    got: usize,
    done: Rc<Cell<usize>>,
    bad: Rc<Cell<u64>>,
}

impl Protocol for Idle {
    fn data_received(&mut self, data: &[u8]) {
        self.got += data.len();
        if self.got == 4 {
            self.done.set(self.done.get() + 1);
        }
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        if err.is_some() {
            self.bad.set(self.bad.get() + 1);
        }
    }
}

/// A protocol that does nothing.
struct NoOp;

impl Protocol for NoOp {}

/// Closes `sock` with a reset (`SO_LINGER` 0) instead of a FIN.
fn reset(sock: &TcpStream) -> Result<(), String> {
    SockRef::from(sock)
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| format!("SO_LINGER: {e}"))
}
