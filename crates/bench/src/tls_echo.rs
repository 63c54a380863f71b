//! The `tls_echo` group: `tls_echo_1k_c10`, a 1 KiB echo over TLS 1.3 on 10 connections,
//! evloop's `create_server(ssl=…)` against tokio with tokio-rustls, both on rustls' `ring`
//! provider with the same certificate, and against Python's asyncio, uvloop and evloop_py
//! (evloop as CPython's loop) serving `python/tls_echo_server.py` with an `ssl.SSLContext`
//! loaded from that certificate's PEM files, where they can run (a missing peer is a skip
//! with its reason). The Rust servers run on threads of their own (one loop, one
//! current_thread runtime), the Python ones as child processes; one load thread drives them
//! all, slice by slice in turn, with blocking rustls clients: it pays the same client-side
//! crypto for each, so the ratios are what counts.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use evloop::rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use evloop::{Protocol, ServerOptions, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::echo_proc::{Launch, python_launches};
use crate::harness::Ctx;

const GROUP: &str = "tls_echo";
const CELL: &str = "tls_echo_1k_c10";
const SIZE: usize = 1024;
const CONNS: usize = 10;

/// How long a Python server may take to print its port (it imports asyncio and ssl first).
const PY_START_LIMIT: Duration = Duration::from_secs(20);

pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    let certs = certificate()?;
    let (evloop_addr, evloop_stop) = evloop_server(certs.server.clone())?;
    let (tokio_addr, tokio_stop) = tokio_server(certs.server.clone())?;
    let client_config = certs.client.clone();
    let slice = if ctx.smoke {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(1000)
    };
    let slices = if ctx.smoke { 1 } else { 3 * ctx.repeats() };
    let mut clients: Vec<(&'static str, Vec<Client>)> = vec![
        ("evloop", connect_all(evloop_addr, &client_config)?),
        ("tokio", connect_all(tokio_addr, &client_config)?),
    ];
    // The Python peers (none in smoke mode: python_launches skips them there), each loop once:
    // the echo groups' `<peer>_sock` shapes have no TLS form.
    let pem = PemFiles::write(&ctx.out_dir.join("tls_echo"), &certs)?;
    let mut py_servers = Vec::new();
    for launch in python_launches(ctx, GROUP) {
        let Launch::Python { subject, python } = launch else {
            continue;
        };
        if subject.ends_with("_sock") {
            continue;
        }
        let started = PyServer::start(subject, &python, &pem)
            .and_then(|server| Ok((connect_all(server.addr, &client_config)?, server)));
        match started {
            Ok((conns, server)) => {
                clients.push((subject, conns));
                py_servers.push(server);
            }
            Err(reason) => ctx.skip(GROUP, subject, &reason),
        }
    }
    // Warm-up, then the subjects take turns.
    for (_, conns) in clients.iter_mut() {
        echo_for(conns, slice / 4)?;
    }
    let mut trips = vec![0u64; clients.len()];
    let mut time = vec![Duration::ZERO; clients.len()];
    for _ in 0..slices {
        for (i, (_, conns)) in clients.iter_mut().enumerate() {
            let started = Instant::now();
            trips[i] += echo_for(conns, slice)?;
            time[i] += started.elapsed();
        }
    }
    let subjects: Vec<&str> = clients.iter().map(|(subject, _)| *subject).collect();
    drop(clients);
    drop(py_servers);
    drop(pem);
    evloop_stop();
    tokio_stop();
    let rps: Vec<f64> = (0..subjects.len())
        .map(|i| trips[i] as f64 / time[i].as_secs_f64().max(1e-9))
        .collect();
    for (subject, rps) in subjects.iter().zip(&rps) {
        ctx.record(CELL, subject, "rps", *rps, "req/s");
    }
    // evloop (index 0) against every other subject.
    for (subject, other) in subjects.iter().zip(&rps).skip(1) {
        ctx.record(
            CELL,
            "evloop",
            &format!("rps_vs_{subject}"),
            rps[0] / other.max(1e-9),
            "×",
        );
    }
    ctx.note(
        GROUP,
        &format!(
            "loopback TCP, TLS 1.3 (rustls, ring) on the Rust servers; evloop: \
             create_server(ssl=…), a protocol that writes every chunk back; tokio: \
             current_thread runtime, tokio-rustls TlsAcceptor, a task per connection, read + \
             write_all; asyncio/uvloop/evloop_py: python/tls_echo_server.py, a Protocol echo \
             behind create_server(ssl=SSLContext) with the same certificate (CPython's ssl \
             module, OpenSSL), TLS 1.3 only, a process of its own; one load thread of blocking \
             rustls clients ({CONNS} connections, {SIZE} B each way per round trip), the \
             subjects in turn, {slices} slice(s) of {} ms each; the load's own TLS work bounds \
             every figure alike",
            slice.as_millis()
        ),
    );
    Ok(())
}

/// A self-signed certificate for localhost: the Rust servers' configuration, the clients',
/// and the PEM texts for the Python servers.
struct Certificate {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    cert_pem: String,
    key_pem: String,
}

fn certificate() -> Result<Certificate, String> {
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
    Ok(Certificate {
        server: Arc::new(server),
        client: Arc::new(client),
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
    })
}

/// The certificate and key as PEM files in a folder of their own, removed when dropped.
struct PemFiles {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl PemFiles {
    fn write(dir: &Path, certs: &Certificate) -> Result<PemFiles, String> {
        let failed = |e: io::Error| format!("writing the PEM files to {}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(failed)?;
        let files = PemFiles {
            dir: dir.to_path_buf(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, &certs.cert_pem).map_err(failed)?;
        std::fs::write(&files.key, &certs.key_pem).map_err(failed)?;
        Ok(files)
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Python TLS echo server (`python/tls_echo_server.py`) as a child process; killed and
/// reaped when dropped (it also exits when its stdin closes).
struct PyServer {
    child: Child,
    addr: SocketAddr,
}

impl PyServer {
    /// Starts the server of `subject` on `python` and waits for the port it prints; the
    /// reason it could not, with the last line of its error output.
    fn start(subject: &str, python: &Path, pem: &PemFiles) -> Result<PyServer, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join("tls_echo_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .args(["--loop", subject, "--port", "0", "--cert"])
            .arg(&pem.cert)
            .arg("--key")
            .arg(&pem.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        println!(
            "+ {} {} --loop {subject} --port 0 --cert {} --key {}",
            python.display(),
            script.display(),
            pem.cert.display(),
            pem.key.display()
        );
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {subject} TLS server: {e}"))?;
        let (port_tx, port_rx) = mpsc::channel();
        let stdout = child.stdout.take();
        // Reads the port line, then drains the rest so that the server never blocks on it.
        thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let _ = port_tx.send(lines.next());
            for _ in lines {}
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take();
        // Keeps the last line of the error output for a skip reason, and drains the rest.
        thread::spawn(move || {
            let Some(stderr) = stderr else { return };
            let last = BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .filter(|line| !line.trim().is_empty())
                .last();
            let _ = err_tx.send(last);
        });
        let mut server = PyServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let port = match port_rx.recv_timeout(PY_START_LIMIT) {
            Ok(Some(Ok(line))) => line.trim().parse::<u16>().ok(),
            _ => None,
        };
        let Some(port) = port else {
            let _ = server.child.kill();
            let _ = server.child.wait();
            let why = err_rx
                .recv_timeout(Duration::from_secs(2))
                .ok()
                .flatten()
                .unwrap_or_else(|| "no error output".to_string());
            return Err(format!(
                "the {subject} TLS server did not print its port within {} s: {why}",
                PY_START_LIMIT.as_secs()
            ));
        };
        server.addr.set_port(port);
        Ok(server)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `python3` on `PATH`, if any (the tests pass without one, as python.rs's do).
    fn python3() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("python3"))
            .find(|candidate| candidate.is_file())
    }

    fn pem_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("evloop-bench-{name}-{}", std::process::id()))
    }

    #[test]
    fn the_asyncio_server_echoes_over_tls_with_the_generated_pem_files() -> Result<(), String> {
        let Some(python) = python3() else {
            return Ok(());
        };
        let certs = certificate()?;
        let pem = PemFiles::write(&pem_dir("tls-ok"), &certs)?;
        let server = PyServer::start("asyncio", &python, &pem)?;
        let mut conns = connect_all(server.addr, &certs.client)?;
        // At least one round trip on every connection, each echo checked.
        let trips = echo_for(&mut conns, Duration::from_millis(10))?;
        assert!(trips >= CONNS as u64, "{trips} round trips");
        Ok(())
    }

    #[test]
    fn a_python_server_that_cannot_start_is_a_reason() -> Result<(), String> {
        let Some(python) = python3() else {
            return Ok(());
        };
        let dir = pem_dir("tls-missing");
        let pem = PemFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        match PyServer::start("asyncio", &python, &pem) {
            Ok(server) => Err(format!(
                "a server started without its PEM files: {}",
                server.addr
            )),
            Err(reason) => {
                assert!(reason.contains("FileNotFoundError"), "{reason}");
                Ok(())
            }
        }
    }
}
