//! A TCP echo server and client on streams (asyncio's "TCP echo server/client using streams"
//! examples): the server sends back every byte until the client closes; the client sends a
//! message, reads the echo and prints it. Serves until SIGINT or SIGTERM.
//!
//! Usage: `echo_streams [ADDR]` serves (default `127.0.0.1:0`, a port the kernel picks) and
//! prints `Serving on 127.0.0.1:PORT` once it listens; `echo_streams --client ADDR [MESSAGE]`
//! is the client.

use std::io;

use evloop::prelude::*;
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

fn serve(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(evloop::start_server(
        handle_echo,
        ServerOptions::new()
            .host(addr.ip().to_string())
            .port(addr.port()),
        None,
    ))??;
    let bound = server.sockets()[0].local_addr()?;
    let bound = bound.as_socket().ok_or("not an inet address")?;
    println!("Serving on {bound}");
    for signum in [libc::SIGINT, libc::SIGTERM] {
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
        addr => serve(addr.as_deref().unwrap_or("127.0.0.1:0").parse()?),
    }
}
