//! The echo server every network test talks to: evloop's `create_server` with a protocol
//! that writes every chunk straight back, counting connections as they come and go.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use evloop::prelude::*;
use evloop::{Protocol, Server, ServerOptions, Transport};

/// What the server saw, shared by every connection's protocol.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) made: Cell<usize>,
    pub(crate) lost_clean: Cell<usize>,
    pub(crate) lost_err: Cell<usize>,
    pub(crate) open: Cell<usize>,
    pub(crate) peak: Cell<usize>,
    pub(crate) bytes: Cell<usize>,
}

/// Writes every chunk straight back.
pub(crate) struct Echo {
    transport: Option<Transport>,
    stats: Rc<Stats>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        let s = &self.stats;
        s.made.set(s.made.get() + 1);
        s.open.set(s.open.get() + 1);
        s.peak.set(s.peak.get().max(s.open.get()));
    }

    fn data_received(&mut self, data: &[u8]) {
        self.stats.bytes.set(self.stats.bytes.get() + data.len());
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.transport = None;
        let s = &self.stats;
        s.open.set(s.open.get().saturating_sub(1));
        match err {
            None => s.lost_clean.set(s.lost_clean.get() + 1),
            Some(_) => s.lost_err.set(s.lost_err.get() + 1),
        }
    }
}

/// Starts an echo server on 127.0.0.1 (a port the kernel picks) with `backlog`.
pub(crate) fn serve(
    lp: &EventLoop,
    backlog: u32,
) -> Result<(Server, SocketAddr, Rc<Stats>), String> {
    let stats = Rc::new(Stats::default());
    let s2 = stats.clone();
    let fut = lp.create_server(
        move || Echo {
            transport: None,
            stats: s2.clone(),
        },
        ServerOptions::new()
            .host("127.0.0.1")
            .port(0)
            .backlog(backlog),
    );
    let server = lp
        .run_until_complete(fut)
        .map_err(|e| format!("create_server: {e}"))?
        .map_err(|e| format!("create_server: {e}"))?;
    let addr = server
        .sockets()
        .first()
        .and_then(|s| s.local_addr().ok())
        .and_then(|a| a.as_socket())
        .ok_or("the server has no inet address")?;
    Ok((server, addr, stats))
}

/// Closes `server` and its clients and waits until it is closed.
pub(crate) fn shut(lp: &EventLoop, server: &Server) -> Result<(), String> {
    server.close();
    server.close_clients();
    let s2 = server.clone();
    lp.run_until_complete(async move { s2.wait_closed().await })
        .map_err(|e| format!("wait_closed: {e}"))
}
