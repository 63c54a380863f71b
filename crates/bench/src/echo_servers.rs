//! The echo servers the echo benchmarks measure, run in a process of their own: the bench
//! binary re-executes itself as `evloop-bench --serve <subject> [--addr 127.0.0.1:0]`.
//!
//! In that hidden mode the process raises RLIMIT_NOFILE to its hard limit, binds, prints the
//! port on one stdout line, and serves until it is killed or its stdin closes (so that no server
//! outlives the benchmark run that started it, even one that died). Every server sets
//! TCP_NODELAY on the sockets it accepts.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use evloop::prelude::*;
use evloop::socket2::{Domain, Socket, Type};

use crate::echo_epoll::{Epoll, READ, WRITE};

/// The per-connection read buffer of the task-per-connection servers (`tokio`,
/// `evloop_sock`): 64 KiB, so that the 100 KiB cells need two reads per message rather than
/// dozens. It is spare capacity the kernel fills (tokio's `read_buf`, evloop's `sock_recv`),
/// never zeroed, so an idle connection's untouched pages stay out of the RSS.
pub(crate) const ECHO_BUF: usize = 64 * 1024;

/// The `epoll` server's one read buffer, shared by all its connections: 256 KiB, as the loop's
/// shared read buffer of evloop's transports and uvloop's reads, so that a 100 KiB message
/// comes in one `recv` and goes back in one `send` (with 64 KiB, two of each: `strace -c` on
/// `echo_100k_c10`). Measured: 1.12× (full run, median of paired ratios) and 1.26× (quick run)
/// the rate of the same server with 64 KiB on `echo_100k_c10`, run side by side; the other
/// cells within noise.
const EPOLL_BUF: usize = 256 * 1024;

/// The listen backlog (the kernel caps it at `net.core.somaxconn`); large, so that the idle
/// memory run's 10,000 connects never wait for the accept loop.
const BACKLOG: i32 = 4096;

/// A server subject: it serves on the bound, non-blocking listener until an I/O error.
type Serve = fn(Socket) -> io::Result<()>;

/// The Rust echo servers, by subject name, in the order they are measured.
///
/// `evloop` is the protocol echo server, like the Python peers'.
pub(crate) const SERVERS: &[(&str, Serve)] = &[
    ("evloop", serve_evloop),
    ("evloop_sock", serve_evloop_sock),
    ("evloop_streams", crate::echo_streams::serve_evloop_streams),
    ("tokio", serve_tokio),
    ("epoll", serve_epoll),
    ("evloop_mc", crate::echo_mc::serve_evloop_mc),
    ("tokio_mt", crate::echo_mc::serve_tokio_mt),
];

/// The hidden server mode's arguments, after `--serve`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ServeArgs {
    pub(crate) subject: String,
    pub(crate) addr: SocketAddr,
}

/// Parses `<subject> [--addr ADDR]` (the default address is `127.0.0.1:0`).
pub(crate) fn parse_serve_args(args: &[String]) -> Result<ServeArgs, String> {
    let mut iter = args.iter();
    let subject = iter
        .next()
        .ok_or_else(|| "--serve needs a subject".to_string())?
        .clone();
    if !SERVERS.iter().any(|(name, _)| *name == subject) {
        let names: Vec<&str> = SERVERS.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "unknown echo server {subject:?}; servers: {}",
            names.join(", ")
        ));
    }
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 0));
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--addr" => {
                let value = iter.next().ok_or("--addr needs a value")?;
                addr = value
                    .parse()
                    .map_err(|e| format!("--addr {value:?}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?} after --serve")),
        }
    }
    Ok(ServeArgs { subject, addr })
}

/// The hidden server mode: `args` are what follows `--serve`.
pub(crate) fn serve_main(args: &[String]) -> ExitCode {
    let parsed = match parse_serve_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("evloop-bench --serve: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(&parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evloop-bench --serve {}: {e}", parsed.subject);
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> io::Result<()> {
    let Some((_, serve)) = SERVERS.iter().find(|(name, _)| *name == args.subject) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unknown subject",
        ));
    };
    raise_nofile_limit()?;
    let listener = bind(args.addr, crate::echo_mc::is_multicore(&args.subject))?;
    let port = listener
        .local_addr()?
        .as_socket()
        .map_or(0, |addr| addr.port());
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{port}")?;
    stdout.flush()?;
    drop(stdout);
    std::thread::spawn(exit_when_stdin_closes);
    serve(listener)
}

/// A non-blocking listening socket on `addr`, as every server takes it; with `SO_REUSEPORT`
/// for a multi-core subject, whose other listeners join it on the same port.
fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let listener = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    listener.set_reuse_address(true)?;
    listener.set_reuse_port(reuse_port)?;
    listener.bind(&addr.into())?;
    listener.listen(BACKLOG)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Blocks on stdin and ends the process once it closes: the benchmark that started this server
/// has finished or died.
fn exit_when_stdin_closes() {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    std::process::exit(0);
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (10,000 idle connections need
/// more than the usual 1024).
///
/// # Errors
///
/// The OS error of `getrlimit` or `setrlimit`.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit whose soft limit does not exceed its hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

// ----- evloop: a protocol echo server on create_server ----------------------------------

/// Writes every chunk straight back (asyncio's echo protocol).
#[derive(Default)]
pub(crate) struct EchoProtocol {
    transport: Option<evloop::Transport>,
}

impl evloop::Protocol for EchoProtocol {
    fn connection_made(&mut self, transport: &evloop::Transport) {
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

fn serve_evloop(listener: Socket) -> io::Result<()> {
    let lp = EventLoop::new()?;
    let opts = evloop::ServerOptions::new()
        .sock(listener)
        .backlog(u32::try_from(BACKLOG).unwrap_or(100));
    let server = lp.run_until_complete(lp.create_server(EchoProtocol::default, opts))??;
    lp.run_forever().map_err(io::Error::from)?;
    server.close();
    Ok(())
}

// ----- evloop_sock: sock_accept / sock_recv / sock_sendall, one task per connection -------

fn serve_evloop_sock(listener: Socket) -> io::Result<()> {
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let served = lp.run_until_complete(accept_loop(l2, listener));
    served.map_err(io::Error::from)?
}

async fn accept_loop(lp: EventLoop, listener: Socket) -> io::Result<()> {
    loop {
        let (conn, _) = lp.sock_accept(&listener).await?;
        conn.set_tcp_nodelay(true)?;
        let l2 = lp.clone();
        // The task runs on without its handle; it ends when the client closes.
        drop(lp.create_task(echo_conn(l2, conn))?);
    }
}

/// asyncio's own sock echo shape (uvloop's `echoserver.py`): `sock_recv`, then `sock_sendall`.
/// `sock_recv` rather than `sock_recv_into`: its buffer is spare capacity the kernel fills, so
/// a waiting connection's untouched pages stay out of the RSS, where a `sock_recv_into` buffer
/// must be zeroed (made resident) first and `idle_conn_memory` would measure 64 KiB of it.
async fn echo_conn(lp: EventLoop, conn: Socket) {
    loop {
        let data = match lp.sock_recv(&conn, ECHO_BUF).await {
            Ok(data) if !data.is_empty() => data,
            Ok(_) | Err(_) => return,
        };
        if lp.sock_sendall(&conn, &data).await.is_err() {
            return;
        }
    }
}

// ----- tokio: current_thread runtime, a spawned task per connection ------------------------

fn serve_tokio(listener: Socket) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(TcpListener::from(listener))?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                // `read_buf` reads into the spare capacity, so the buffer is never zeroed and
                // an idle connection's untouched pages stay out of the RSS.
                let mut buf = Vec::with_capacity(ECHO_BUF);
                loop {
                    buf.clear();
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if stream.write_all(&buf).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

// ----- epoll: bare libc epoll, level-triggered: the limit ------------------------------------

/// Events the epoll server takes per `epoll_wait`: more than the busiest cell's 100
/// connections, so one wait serves them all.
const EVENTS_PER_WAIT: usize = 1024;

/// The listener's token; connections use their fd as theirs.
const LISTENER: u64 = u64::MAX;

/// A connection of the epoll server: what it could not write back yet.
#[derive(Debug)]
struct EpollConn {
    stream: TcpStream,
    /// Bytes still to write back; while any are left the connection is watched for
    /// writability only, so a slow reader gets no more input (back-pressure).
    pending: Vec<u8>,
    written: usize,
}

fn serve_epoll(listener: Socket) -> io::Result<()> {
    let listener = TcpListener::from(listener);
    let mut ep = Epoll::new(EVENTS_PER_WAIT)?;
    ep.add(listener.as_raw_fd(), READ, LISTENER)?;
    // Indexed by fd: the kernel hands out the lowest free fd, so this stays dense.
    let mut conns: Vec<Option<EpollConn>> = Vec::new();
    let mut buf = vec![0u8; EPOLL_BUF];
    loop {
        let n = ep.wait(-1)?;
        for k in 0..n {
            let (token, events) = ep.event(k);
            if token == LISTENER {
                accept_all(&listener, &ep, &mut conns)?;
                continue;
            }
            let fd = usize::try_from(token).unwrap_or(usize::MAX);
            let Some(conn) = conns.get_mut(fd).and_then(Option::as_mut) else {
                continue;
            };
            let keep = if conn.pending.is_empty() {
                echo_some(conn, &mut buf, &ep, token)
            } else if events & WRITE != 0 || events & !READ != 0 {
                flush_pending(conn, &ep, token)
            } else {
                true
            };
            if !keep {
                // Dropping the stream closes it; epoll forgets a closed fd by itself, the
                // explicit delete only makes that order independent of dup'd fds.
                let _ = ep.delete(conn.stream.as_raw_fd());
                conns[fd] = None;
            }
        }
    }
}

/// Accepts every pending connection.
fn accept_all(
    listener: &TcpListener,
    ep: &Epoll,
    conns: &mut Vec<Option<EpollConn>>,
) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A connection reset before it was accepted is the client's business.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let fd = stream.as_raw_fd();
        let index = usize::try_from(fd).map_err(|_| io::Error::other("negative fd"))?;
        ep.add(fd, READ, index as u64)?;
        if conns.len() <= index {
            conns.resize_with(index + 1, || None);
        }
        conns[index] = Some(EpollConn {
            stream,
            pending: Vec::new(),
            written: 0,
        });
    }
}

/// One read, written straight back; what the socket does not take waits in `pending`. Returns
/// whether to keep the connection.
fn echo_some(conn: &mut EpollConn, buf: &mut [u8], ep: &Epoll, token: u64) -> bool {
    let n = match conn.stream.read(buf) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return true;
        }
        Err(_) => return false,
    };
    let mut written = 0;
    while written < n {
        match conn.stream.write(&buf[written..n]) {
            Ok(0) => return false,
            Ok(w) => written += w,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.pending.extend_from_slice(&buf[written..n]);
                conn.written = 0;
                return ep.modify(conn.stream.as_raw_fd(), WRITE, token).is_ok();
            }
            Err(_) => return false,
        }
    }
    true
}

/// Writes what is pending; once all is out, watches for input again. Returns whether to keep
/// the connection.
fn flush_pending(conn: &mut EpollConn, ep: &Epoll, token: u64) -> bool {
    while conn.written < conn.pending.len() {
        match conn.stream.write(&conn.pending[conn.written..]) {
            Ok(0) => return false,
            Ok(w) => conn.written += w,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    conn.pending.clear();
    conn.written = 0;
    ep.modify(conn.stream.as_raw_fd(), READ, token).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serve_args_default_to_loopback_port_zero() -> Result<(), String> {
        let args = parse_serve_args(&strings(&["epoll"]))?;
        assert_eq!(args.subject, "epoll");
        assert_eq!(args.addr, SocketAddr::from(([127, 0, 0, 1], 0)));
        let args = parse_serve_args(&strings(&["tokio", "--addr", "127.0.0.1:9"]))?;
        assert_eq!(args.addr, SocketAddr::from(([127, 0, 0, 1], 9)));
        Ok(())
    }

    #[test]
    fn bad_serve_args_are_named() {
        assert_eq!(
            parse_serve_args(&[]),
            Err("--serve needs a subject".to_string())
        );
        let unknown = parse_serve_args(&strings(&["nginx"]))
            .err()
            .unwrap_or_default();
        assert!(
            unknown.starts_with("unknown echo server \"nginx\""),
            "{unknown}"
        );
        assert_eq!(
            parse_serve_args(&strings(&["epoll", "--addr"])),
            Err("--addr needs a value".to_string())
        );
        assert!(parse_serve_args(&strings(&["epoll", "--addr", "nowhere"])).is_err());
        assert_eq!(
            parse_serve_args(&strings(&["epoll", "--port", "1"])),
            Err("unknown argument \"--port\" after --serve".to_string())
        );
    }

    #[test]
    fn every_server_echoes_every_byte_of_large_messages() -> Result<(), String> {
        use std::time::Duration;

        use crate::echo_client::{self, Load};

        for (name, serve) in SERVERS {
            let reuse_port = crate::echo_mc::is_multicore(name);
            let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), reuse_port)
                .map_err(|e| e.to_string())?;
            let addr = listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or("no local address")?;
            // The server runs until the test process ends, as it would until killed.
            std::thread::spawn(move || serve(listener));
            // 100 KiB messages need several reads and (on a full socket buffer) partial
            // writes; the client checks every byte.
            let load = Load {
                size: 100 * 1024,
                conns: 3,
                warmup: Duration::from_millis(10),
                duration: Duration::from_millis(100),
            };
            let out = echo_client::run(addr, load).map_err(|e| format!("{name}: {e}"))?;
            assert!(out.requests > 0, "{name}: {out:?}");
        }
        Ok(())
    }

    #[test]
    fn every_server_holds_back_what_a_slow_reader_cannot_take()
    -> Result<(), Box<dyn std::error::Error>> {
        use std::time::Duration;

        // Far more than the socket buffers on both sides hold: the server's writes must
        // block, and it must keep the rest until the client reads again.
        const TOTAL: usize = 8 * 1024 * 1024;
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 253) as u8).collect();
        for (name, serve) in SERVERS {
            let reuse_port = crate::echo_mc::is_multicore(name);
            let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), reuse_port)?;
            let addr = listener
                .local_addr()?
                .as_socket()
                .ok_or("no local address")?;
            std::thread::spawn(move || serve(listener));
            let mut stream = TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(20)))?;
            let mut writer = stream.try_clone()?;
            let sent = data.clone();
            let sender = std::thread::spawn(move || writer.write_all(&sent));
            // Not reading for a while fills the buffers back to the server.
            std::thread::sleep(Duration::from_millis(200));
            let mut back = vec![0u8; TOTAL];
            stream.read_exact(&mut back)?;
            sender.join().map_err(|_| "sender panicked")??;
            let wrong = back.iter().zip(&data).position(|(a, b)| a != b);
            assert_eq!(wrong, None, "{name}: first wrong byte");
        }
        Ok(())
    }

    #[test]
    fn server_names_are_unique() {
        let mut names: Vec<&str> = SERVERS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERVERS.len());
    }

    #[test]
    fn nofile_limit_is_raised_to_the_hard_limit() -> io::Result<()> {
        let soft = raise_nofile_limit()?;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(rc, 0);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(soft, limit.rlim_cur);
        Ok(())
    }
}
