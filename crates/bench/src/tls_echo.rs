//! The `tls_echo` group: `tls_echo_1k_c10`, a 1 KiB echo over TLS 1.3 on 10 connections,
//! evloop's `create_server(ssl=…)` against tokio with tokio-rustls, both on rustls' `ring`
//! provider with the same certificate. Each server runs on a thread of its own (one loop, one
//! current_thread runtime); one load thread drives both, slice by slice in turn, with blocking
//! rustls clients: it pays the same client-side crypto for both, so the ratio is what counts.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use evloop::rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use evloop::{Protocol, ServerOptions, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::Ctx;

const GROUP: &str = "tls_echo";
const CELL: &str = "tls_echo_1k_c10";
const SIZE: usize = 1024;
const CONNS: usize = 10;

pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    let (server_config, client_config) = configs()?;
    let (evloop_addr, evloop_stop) = evloop_server(server_config.clone())?;
    let (tokio_addr, tokio_stop) = tokio_server(server_config)?;
    let slice = if ctx.smoke {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(1000)
    };
    let slices = if ctx.smoke { 1 } else { 3 * ctx.repeats() };
    let mut clients = [
        ("evloop", connect_all(evloop_addr, &client_config)?),
        ("tokio", connect_all(tokio_addr, &client_config)?),
    ];
    // Warm-up, then the subjects take turns.
    for (_, conns) in clients.iter_mut() {
        echo_for(conns, slice / 4)?;
    }
    let mut trips = [0u64; 2];
    let mut time = [Duration::ZERO; 2];
    for _ in 0..slices {
        for (i, (_, conns)) in clients.iter_mut().enumerate() {
            let started = Instant::now();
            trips[i] += echo_for(conns, slice)?;
            time[i] += started.elapsed();
        }
    }
    drop(clients);
    evloop_stop();
    tokio_stop();
    let rps: Vec<f64> = (0..2)
        .map(|i| trips[i] as f64 / time[i].as_secs_f64().max(1e-9))
        .collect();
    ctx.record(CELL, "evloop", "rps", rps[0], "req/s");
    ctx.record(CELL, "tokio", "rps", rps[1], "req/s");
    ctx.record(
        CELL,
        "evloop",
        "rps_vs_tokio",
        rps[0] / rps[1].max(1e-9),
        "×",
    );
    ctx.note(
        GROUP,
        &format!(
            "loopback TCP, TLS 1.3 (rustls, ring) on both; evloop: create_server(ssl=…), a protocol \
             that writes every chunk back; tokio: current_thread runtime, tokio-rustls \
             TlsAcceptor, a task per connection, read + write_all; one load thread of blocking \
             rustls clients ({CONNS} connections, {SIZE} B each way per round trip), the \
             subjects in turn, {slices} slice(s) of {} ms each; the load's own TLS work bounds \
             both figures alike",
            slice.as_millis()
        ),
    );
    Ok(())
}

/// A self-signed certificate for localhost: the servers' configuration and the clients'.
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

type Client = StreamOwned<ClientConnection, TcpStream>;

fn connect_all(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Vec<Client>, String> {
    (0..CONNS)
        .map(|_| {
            let name = ServerName::try_from("localhost")
                .map_err(|e| e.to_string())?
                .to_owned();
            let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
            let sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
            sock.set_nodelay(true).map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            Ok(StreamOwned::new(conn, sock))
        })
        .collect()
}

/// Round trips on every connection (each sends, then each reads its echo) for `length`;
/// returns how many. An echo that differs is an error.
fn echo_for(conns: &mut [Client], length: Duration) -> Result<u64, String> {
    let message: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let mut got = vec![0u8; SIZE];
    let until = Instant::now() + length;
    let mut trips = 0u64;
    while Instant::now() < until {
        for c in conns.iter_mut() {
            c.write_all(&message).map_err(|e| format!("write: {e}"))?;
        }
        for c in conns.iter_mut() {
            c.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
            if got != message {
                return Err(format!("{CELL}: the echo differs"));
            }
        }
        trips += conns.len() as u64;
    }
    Ok(trips)
}

/// Writes every chunk back.
#[derive(Default)]
struct Echo(Option<Transport>);

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.0 = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.0 {
            t.write(data);
        }
    }
}

/// evloop's TLS echo server on a thread of its own; the closure stops it.
fn evloop_server(config: Arc<ServerConfig>) -> Result<(SocketAddr, impl FnOnce()), String> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let started = (|| -> io::Result<_> {
            let lp = EventLoop::new()?;
            let server = lp.run_until_complete(lp.create_server(
                Echo::default,
                ServerOptions::new().host("127.0.0.1").port(0).ssl(config),
            ))??;
            let addr = server.sockets()[0]
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("not inet"))?;
            Ok((lp, server, addr))
        })();
        match started {
            Ok((lp, server, addr)) => {
                let _ = tx.send(Ok((addr, lp.remote())));
                let _ = lp.run_forever();
                server.close();
                let _ = lp.close();
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
            }
        }
    });
    let (addr, remote) = rx
        .recv()
        .map_err(|_| "the evloop server thread died".to_string())??;
    Ok((addr, move || {
        let _ = remote.stop();
        let _ = handle.join();
    }))
}

/// tokio + tokio-rustls's TLS echo server on a thread of its own; the closure stops it.
fn tokio_server(config: Arc<ServerConfig>) -> Result<(SocketAddr, impl FnOnce()), String> {
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(listener.local_addr().map_err(|e| e.to_string()));
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let serve = async {
                while let Ok((sock, _)) = listener.accept().await {
                    let _ = sock.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(sock).await else {
                            return;
                        };
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if tls.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stop_rx => {}
            }
        });
    });
    let addr = rx
        .recv()
        .map_err(|_| "the tokio server thread died".to_string())??;
    Ok((addr, move || {
        let _ = stop_tx.send(());
        let _ = handle.join();
    }))
}
