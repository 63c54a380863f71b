//! The multi-core echo subjects: `evloop_mc`, one evloop loop per server core with a
//! `reuse_port` listener each (`evloop::LoopGroup`), and `tokio_mt`, tokio's multi-thread
//! runtime with one accept loop and a task per connection, work-stealing over its workers.
//!
//! Both get the same CPUs (every CPU but the load's, [`server_cpus`]) and the same number of
//! threads ([`server_threads`]): at least two, so that on a 2-core machine, where one CPU is
//! left for them, `evloop_mc` still runs two listeners and two loops (what can and cannot be
//! shown there is in the echo group's note and docs/architecture.md).

use std::io;
use std::net::{SocketAddr, TcpListener};

use evloop::prelude::*;
use evloop::socket2::Socket;
use evloop::{LoopGroup, LoopGroupOptions, ServerOptions};

use crate::echo_proc::CLIENT_CPU;
use crate::echo_servers::{ECHO_BUF, EchoProtocol};
use crate::sys::nproc;

/// The multi-core subjects, which get [`server_cpus`] instead of the one server CPU.
pub(crate) const MULTICORE: [&str; 2] = ["evloop_mc", "tokio_mt"];

/// Whether `subject` is a multi-core subject.
pub(crate) fn is_multicore(subject: &str) -> bool {
    MULTICORE.contains(&subject)
}

/// The CPUs a multi-core server runs on, as `taskset -c` takes them: every CPU but the load's
/// (CPU 0 alone on a 2-core machine).
pub(crate) fn server_cpus() -> String {
    let cpus: Vec<String> = (0..nproc())
        .filter(|&cpu| cpu != CLIENT_CPU)
        .map(|cpu| cpu.to_string())
        .collect();
    cpus.join(",")
}

/// The echo group's note on the multi-core subjects: what they are and what this machine can
/// show of them.
pub(crate) fn note() -> String {
    let cpus = nproc();
    let shown = if cpus > 2 {
        format!(
            "{} CPU(s) for the server, so scaling shows within that",
            cpus - 1
        )
    } else {
        "a 2-core machine leaves them one CPU (the other is the load's), so two loops or two workers take turns on one core: this compares the two designs' overheads (SO_REUSEPORT's two listeners against one accept loop and work stealing), not scaling, which needs more cores and a client with more than one thread; and where other processes share that CPU, a server with two threads gets a larger share of it than one with one thread, so the multi-core subjects against the single-thread ones (their rps_vs_epoll / rps_vs_tokio) measure that share as much as the design: compare evloop_mc with tokio_mt".to_string()
    };
    format!(
        "evloop_mc: LoopGroup, {} loops each with a reuse_port listener on one port, the protocol echo of `evloop`; tokio_mt: tokio's multi-thread runtime with as many workers, one accept loop, the `tokio` echo task; both pinned to every CPU but the load's ({}); {shown}",
        server_threads_for(cpus),
        server_cpus()
    )
}

/// [`server_threads`] in a process that may use `cpus` CPUs.
fn server_threads_for(cpus: usize) -> usize {
    cpus.saturating_sub(1).max(2)
}

/// The threads (loops, workers) of a multi-core server: one per CPU it may use (taskset has
/// narrowed them), at least two.
fn server_threads() -> usize {
    nproc().max(2)
}

/// `evloop_mc`: `LoopGroup` with [`server_threads`] loops; loop 0 serves on the listener the
/// bench bound (with `SO_REUSEPORT`), the others bind their own on its port.
pub(crate) fn serve_evloop_mc(listener: Socket) -> io::Result<()> {
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet address"))?;
    // The setup closure is shared by the loops' threads: the first listener goes to loop 0.
    let first = std::sync::Mutex::new(Some(listener));
    let options = LoopGroupOptions::new()
        .loops(server_threads())
        .thread_name("evloop_mc");
    let group = LoopGroup::spawn(options, move |lp, seat| {
        let taken = first.lock().map_or(None, |mut slot| slot.take());
        let options = match taken {
            Some(listener) => ServerOptions::new().sock(listener),
            None => ServerOptions::new()
                .host(addr.ip().to_string())
                .port(addr.port())
                .reuse_port(true),
        };
        let server =
            lp.run_until_complete(lp.create_server(EchoProtocol::default, options.backlog(4096)))??;
        seat.keep(server);
        Ok(())
    })?;
    // Serves until the process ends (killed, or stdin closed).
    group.join()
}

/// `tokio_mt`: tokio's multi-thread runtime with [`server_threads`] workers, one accept loop,
/// the same per-connection task as `tokio`.
pub(crate) fn serve_tokio_mt(listener: Socket) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads())
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(TcpListener::from(listener))?;
        loop {
            let (mut stream, _): (_, SocketAddr) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
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
