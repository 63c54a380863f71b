//! A TCP echo server on protocols (asyncio's "TCP echo server protocol" example): every
//! connection gets back exactly what it sends. Serves until SIGINT or SIGTERM.
//!
//! Usage: `echo_server [ADDR]` (default `127.0.0.1:0`, a port the kernel picks); it prints
//! `Serving on 127.0.0.1:PORT` once it listens.

use evloop::prelude::*;
use evloop::{Protocol, ServerOptions, Transport};

/// Writes every chunk straight back.
#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, _err: Option<std::io::Error>) {
        self.transport = None;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()?;
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(
        lp.create_server(
            Echo::default,
            ServerOptions::new()
                .host(addr.ip().to_string())
                .port(addr.port()),
        ),
    )??;
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
    Ok(())
}
