//! A TCP echo client on protocols (asyncio's "TCP echo client protocol" example): sends a
//! message, prints what comes back, and closes once the whole echo arrived.
//!
//! Usage: `echo_client ADDR [MESSAGE]` (MESSAGE defaults to `Hello World!`).

use std::io;

use evloop::prelude::*;
use evloop::{ConnectOptions, Protocol, Transport};

struct Client {
    message: Vec<u8>,
    received: Vec<u8>,
    transport: Option<Transport>,
    lp: EventLoop,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&self.message);
        println!("Data sent: {}", String::from_utf8_lossy(&self.message));
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.received.extend_from_slice(data);
        if self.received.len() >= self.message.len() {
            println!("Data received: {}", String::from_utf8_lossy(&self.received));
            if let Some(t) = self.transport.take() {
                t.close();
            }
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        match err {
            None => println!("The connection is closed"),
            Some(err) => println!("The connection failed: {err}"),
        }
        self.lp.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .ok_or("usage: echo_client ADDR [MESSAGE]")?
        .parse()?;
    let message = args.next().unwrap_or_else(|| "Hello World!".to_string());
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let (_transport, client) = lp.run_until_complete(
        lp.create_connection(
            move || Client {
                message: message.into_bytes(),
                received: Vec::new(),
                transport: None,
                lp: l2,
            },
            ConnectOptions::new()
                .host(addr.ip().to_string())
                .port(addr.port()),
        ),
    )??;
    lp.run_forever()?;
    lp.close()?;
    let client = client.borrow();
    if client.received != client.message {
        return Err("the echo differs from the message".into());
    }
    Ok(())
}
