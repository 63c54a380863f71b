//! A TCP echo server and client on streams (asyncio's "TCP echo server/client using streams"
//! examples): the server sends back every byte until the client closes; the client sends a
//! message, reads the echo and prints it. Serves until SIGINT or SIGTERM.
//!
//! Usage: `echo_streams [--tls] [ADDR]` serves (default `127.0.0.1:0`, a port the kernel
//! picks) and prints `Serving on 127.0.0.1:PORT` once it listens; `echo_streams --client ADDR
//! [MESSAGE]` is the client. With `--tls` the same handler is served over TLS (asyncio's
//! `start_server(…, ssl=context)`): a self-signed certificate for `localhost` and `127.0.0.1`
//! is made at start (with rcgen) and written to a file whose path is printed first
//! (`Certificate: FILE`), so that a client can trust it, e.g. Python's
//! `ssl.create_default_context(cafile=FILE)` with `asyncio.open_connection(…, ssl=context)`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use evloop::prelude::*;
use evloop::rustls::ServerConfig;
use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop::{ConnectOptions, ServerOptions, StreamReader, StreamWriter};

/// One connection: echo everything until end of file, then close.
async fn handle_echo(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        let data = reader.read(64 * 1024).await?;
        if data.is_empty() {
            break;
        }
        writer.write(&data);
        writer.drain().await?;
    }
    writer.close();
    writer.wait_closed().await
}

/// A self-signed certificate, written to a file in the temp dir (printed), and the server
/// configuration presenting it.
fn self_signed() -> Result<(PathBuf, Arc<ServerConfig>), Box<dyn std::error::Error>> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)?;
    let file = std::env::temp_dir().join(format!("evloop-echo-streams-{}.pem", std::process::id()));
    std::fs::write(&file, made.cert.pem())?;
    println!("Certificate: {}", file.display());
    Ok((file, Arc::new(config)))
}

fn serve(addr: std::net::SocketAddr, tls: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut options = ServerOptions::new()
        .host(addr.ip().to_string())
        .port(addr.port());
    let mut cert_file = None;
    if tls {
        let (file, config) = self_signed()?;
        cert_file = Some(file);
        options = options.ssl(config);
    }
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(evloop::start_server(handle_echo, options, None))??;
    let bound = server.sockets()[0].local_addr()?;
    let bound = bound.as_socket().ok_or("not an inet address")?;
    println!("Serving on {bound}");
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || l2.stop())?;
    }
    lp.run_forever()?;
    server.close();
    server.abort_clients();
    let s2 = server.clone();
    lp.run_until_complete(async move { s2.wait_closed().await })?;
    println!("Server closed");
    lp.close()?;
    if let Some(file) = cert_file {
        std::fs::remove_file(file)?;
    }
    Ok(())
}

async fn client(addr: std::net::SocketAddr, message: String) -> io::Result<()> {
    let (mut reader, writer) = evloop::open_connection(
        ConnectOptions::new()
            .host(addr.ip().to_string())
            .port(addr.port()),
        None,
    )
    .await?;
    println!("Send: {message}");
    writer.write(message.as_bytes());
    writer.drain().await?;
    let data = reader.readexactly(message.len()).await?;
    println!("Received: {}", String::from_utf8_lossy(&data));
    println!("Close the connection");
    writer.close();
    writer.wait_closed().await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next() {
        Some(flag) if flag == "--client" => {
            let addr = args
                .next()
                .ok_or("usage: echo_streams --client ADDR [MESSAGE]")?
                .parse()?;
            let message = args.next().unwrap_or_else(|| "Hello World!".to_string());
            evloop::run(client(addr, message))??;
            Ok(())
        }
        Some(flag) if flag == "--tls" => serve(
            args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?,
            true,
        ),
        addr => serve(addr.as_deref().unwrap_or("127.0.0.1:0").parse()?, false),
    }
}
