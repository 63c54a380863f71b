//! A minimal keep-alive HTTP/1.1 responder on protocols: every request on a connection gets
//! `Hello, World!`; the connection stays open until the client closes it or sends
//! `Connection: close`. Serves until SIGINT or SIGTERM.
//!
//! Usage: `http_hello [ADDR]` (default `127.0.0.1:0`); it prints `Serving on http://ADDR/`.

#[path = "support/http.rs"]
mod http;

use evloop::ServerOptions;
use evloop::prelude::*;
use http::Http;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()?;
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(
        lp.create_server(
            Http::default,
            ServerOptions::new()
                .host(addr.ip().to_string())
                .port(addr.port()),
        ),
    )??;
    let bound = server.sockets()[0].local_addr()?;
    println!(
        "Serving on http://{}/",
        bound.as_socket().ok_or("not inet")?
    );
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || l2.stop())?;
    }
    lp.run_forever()?;
    server.close();
    server.abort_clients();
    lp.close()?;
    println!("Server closed");
    Ok(())
}
